"""Mutual TLS on a real cluster (master, node, AM, CLI, real etcd): an app runs end to end with
every call authenticated; bad clients fail the handshake; and the certificate-role matrix,
generated from the proto descriptors, makes a real call for every RPC with every role's
certificate: roles the policy leaves out get PERMISSION_DENIED, the others get past it."""
import datetime
import itertools
import os
import pathlib
import stat

import grpc
import pytest
from google.protobuf import message_factory

from gaia_common import rpc
from gaia_common.pb import master_pb2, node_pb2, node_pb2_grpc
from gaia_common.security import policy
from gaia_common.security.identity import Identity, node_server_name
from gaia_common.security.pki import CertificateAuthority
from gaia_common.security.tls import TlsFiles
from tests.integration.harness import LocalCluster, wait_for

_seq = itertools.count(1)
GHOST = "ghost-00000000"          # an app that does not exist: the AM certificate node calls use
ROLES = ("master", "node", "am", "user", "dns")
SERVICES = ("gaia.v1.Master", "gaia.v1.Node")   # Enrol (server-auth only) is the enrolment tests'
MATRIX = [(name, desc, role) for name, desc in policy.all_methods() for role in ROLES
          if name.split("/")[1] in SERVICES]

@pytest.fixture(scope="module")
def cluster(etcd_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tls")
    c = LocalCluster(etcd_server.endpoint, f"tls{os.getpid()}-{next(_seq)}", workdir, tls=True)
    try:
        c.start_master()
        c.start_node()
        c.wait_ready(nodes=1)
        c.app_id = c.submit_sleeper("sleeper")      # the CLI, as user admin, over mTLS
        wait_for(lambda: running(c), 60, what="the app running (its AM speaking mTLS)")
        c.node_id = next(iter(c.nodes))
        c.master_address = c.leader().address
        c.node_address = c.cli_json("nodes")["nodes"][0]["info"]["address"]
        yield c
    finally:
        c.stop()


def running(c) -> bool:
    status = c.cli_json("status", "sleeper")
    states = [i.get("status", {}).get("state") for i in status["instances"]]
    return states == ["CONTAINER_STATE_RUNNING"] and status["am"]["status"]["state"] == "CONTAINER_STATE_RUNNING"


def files(cluster, role, name, **issue) -> TlsFiles:
    return TlsFiles(**cluster.tls_files(role, name, **issue))


def certificate(cluster, role: str, service: str) -> TlsFiles:
    """One certificate per role. The AM's: the real app's (GetApp by name needs it) at an attempt
    that is not current (the master refuses it as stale: nothing changes); on nodes a ghost app's
    (so no node records a newer attempt of the real app)."""
    if role == "am":
        app, attempt = (cluster.app_id, 7) if service == "gaia.v1.Master" else (GHOST, 1)
        return files(cluster, "am", app, attempt=attempt, stem=f"matrix-{attempt}")
    return files(cluster, role, {"user": "admin"}.get(role, f"matrix-{role}"), stem="matrix")


def request_for(cluster, descriptor, service: str):
    """An empty request of the method's type, with the fields an AM is bound by set to the
    AM certificate's own values (so a role that is allowed gets past the binding checks)."""
    request = message_factory.GetMessageClass(descriptor.input_type)()
    rule = policy.rule_for(f"/{service}/{descriptor.name}")
    app = cluster.app_id if service == "gaia.v1.Master" else GHOST
    values = {rule.am_app: app, rule.am_attempt: 7 if service == "gaia.v1.Master" else 1,
              rule.am_container: f"{app}.matrix.1", rule.am_app_name: "sleeper"}
    for path, value in values.items():
        if path:
            *parents, leaf = path.split(".")
            target = request
            for part in parents:
                target = getattr(target, part)
            setattr(target, leaf, value)
    return request


def call(address: str, tls: TlsFiles, full_method: str, descriptor, request):
    """Make the call; the status code it ends with (OK for an answer or a first streamed item)."""
    response_type = message_factory.GetMessageClass(descriptor.output_type)
    with rpc.channel(address, tls=tls) as channel:
        kind = channel.unary_stream if descriptor.server_streaming else channel.unary_unary
        method = kind(full_method, request_serializer=type(request).SerializeToString,
                      response_deserializer=response_type.FromString)
        try:
            answer = method(request, timeout=3)
            if descriptor.server_streaming:
                next(answer, None)
                answer.cancel()
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()


@pytest.mark.parametrize("full_method, descriptor, role", MATRIX,
                         ids=[f"{m.split('/', 1)[1]}-{r}" for m, _, r in MATRIX])
def test_certificate_role_matrix(cluster, full_method, descriptor, role):
    service = full_method.split("/")[1]
    address = cluster.master_address if service == "gaia.v1.Master" else cluster.node_address
    code, details = call(address, certificate(cluster, role, service), full_method, descriptor,
                         request_for(cluster, descriptor, service))
    if role in policy.rule_for(full_method).roles:
        assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), \
            f"{role} should get past auth on {full_method}: {code.name}: {details}"
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED, f"{role} on {full_method}: {code.name}: {details}"
        assert role in details


BAD_CLIENTS = ["plaintext", "no-certificate", "expired", "foreign-ca"]


def bad_client(cluster, kind):
    if kind == "plaintext":
        return None
    if kind == "no-certificate":
        return TlsFiles(cluster.admin_tls["ca"])
    if kind == "expired":
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)
        return files(cluster, "user", "admin", days=1, not_before=past, stem="expired")
    foreign = CertificateAuthority.create(os.path.join(cluster.workdir, "foreign"), cluster.name)
    foreign.issue(Identity("user", "admin", cluster.name), directory=os.path.join(cluster.workdir, "foreign"),
                  stem="admin")
    d = os.path.join(cluster.workdir, "foreign")
    return TlsFiles(cluster.admin_tls["ca"], os.path.join(d, "admin.crt"), os.path.join(d, "admin.key"))


@pytest.mark.parametrize("server", ["master", "node"])
@pytest.mark.parametrize("kind", BAD_CLIENTS)
def test_handshake_refused(cluster, server, kind):
    full, request = (("/gaia.v1.Master/WhoAmI", master_pb2.WhoAmIRequest()) if server == "master"
                     else ("/gaia.v1.Node/Status", node_pb2.NodeStatusRequest()))
    descriptor = dict(policy.all_methods())[full]
    address = cluster.master_address if server == "master" else cluster.node_address
    code, details = call(address, bad_client(cluster, kind), full, descriptor, request)
    assert code == grpc.StatusCode.UNAVAILABLE, f"{kind} client got {code.name}: {details}"


def test_certificate_of_another_cluster_is_refused(cluster):
    ca = CertificateAuthority.load(os.path.join(cluster.workdir, "tls"))
    d = os.path.join(cluster.workdir, "tls")
    CertificateAuthority("", ca.cert, ca.key).issue(Identity("master", "m", "elsewhere"), directory=d, stem="elsewhere")
    other = TlsFiles(os.path.join(d, "ca.crt"), os.path.join(d, "elsewhere.crt"), os.path.join(d, "elsewhere.key"))
    code, details = call(cluster.master_address, other, "/gaia.v1.Master/ListApps",
                         dict(policy.all_methods())["/gaia.v1.Master/ListApps"], master_pb2.ListAppsRequest())
    assert code == grpc.StatusCode.PERMISSION_DENIED and "elsewhere" in details


def node_stub(cluster, tls):
    """Dialed as the master and AMs dial a node: expecting its own server name."""
    return node_pb2_grpc.NodeStub(rpc.channel(cluster.node_address, tls=tls,
                                              server_name=node_server_name(cluster.name, cluster.node_id)))


def test_one_node_cannot_command_another(cluster):
    other_node = files(cluster, "node", "node-2")
    with pytest.raises(grpc.RpcError) as err:
        node_stub(cluster, other_node).StopContainer(node_pb2.StopContainerRequest(
            epoch=10**9, container_id=f"{cluster.app_id}.0.1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert running(cluster)


def test_am_sees_and_stops_only_its_own_containers(cluster):
    mine = files(cluster, "am", cluster.app_id, attempt=1, stem="own")
    ghost = files(cluster, "am", GHOST, attempt=1, stem="ghost")
    master = files(cluster, "master", "matrix-status", stem="status")
    everything = {c.app_id for c in
                  node_stub(cluster, master).Status(node_pb2.NodeStatusRequest(), timeout=5).containers}
    assert cluster.app_id in everything
    own = node_stub(cluster, mine).Status(node_pb2.NodeStatusRequest(), timeout=5).containers
    assert own and {c.app_id for c in own} == {cluster.app_id}
    assert list(node_stub(cluster, ghost).Status(node_pb2.NodeStatusRequest(), timeout=5).containers) == []
    victim = next(c.container_id for c in own if ".am." not in c.container_id)
    with pytest.raises(grpc.RpcError) as err:
        node_stub(cluster, ghost).StopContainer(node_pb2.StopContainerRequest(
            container_id=victim, app_id=GHOST, am_attempt=1), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert running(cluster)


def test_am_certificates_never_reach_etcd_or_answers(cluster):
    leaked = [key for value, key in ((v, m.key) for v, m in cluster.etcd.get_prefix(cluster.keys.root))
              if b"PRIVATE KEY" in value]
    assert leaked == []
    # on the node: the AM's own 0600 files, and no record of the node's holds the key
    containers = pathlib.Path(cluster.workdir) / cluster.node_id / "containers"
    tls_dir = containers / f"{cluster.app_id}.am.1" / "tls"
    assert sorted(f.name for f in tls_dir.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in tls_dir.iterdir()} == {0o600}
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    records = [f for f in containers.rglob("*.json") if b"PRIVATE KEY" in f.read_bytes()]
    assert records == []
    status = cluster.cli("status", "sleeper", "-o", "json").stdout
    node = cluster.cli("nodes", "-o", "json").stdout
    assert "PRIVATE KEY" not in status and "PRIVATE KEY" not in node


def test_bench_tls_measures_both_modes_on_both_channel_kinds():
    from gaia_cli.bench import tls as bench
    figures = bench.run(submits=3, starts=2, fuzz=False)
    for what in ("submit", "container_start"):
        for kind in ("reused_channel", "new_channel"):
            side = figures[what][kind]
            assert side["plaintext_ms"]["n"] == side["mtls_ms"]["n"] == (3 if what == "submit" else 2)
            assert side["plaintext_ms"]["p50"] > 0 and side["mtls_ms"]["p50"] > 0
            assert "extra_p50_pct" in side
    assert isinstance(figures["met"], bool)
