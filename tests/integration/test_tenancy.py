"""Tenants on a real cluster: mutual TLS (a CA made for the test), real etcd, real processes.

Tenant A's user acts on tenant B's apps, pools, users and policies through every Master RPC;
the matrix of requests is keyed by the method names the proto descriptors declare, so an RPC
added later without an entry fails the test. Every answer is denied, or filtered down to
nothing of B's; a denial for B's thing reads word for word as for a thing that does not exist.
"""
import dataclasses
import os
import subprocess
import sys

import grpc
import pytest
import yaml

from gaia_common import spec as spec_mod
from gaia_common.client import GaiaError
from gaia_common.pb import master_pb2, types_pb2
from gaia_dns.cache import Cache
from gaia_dns.names import Zone
from tests.integration.harness import ROOT, LocalCluster, wait_for

MASTER = master_pb2.DESCRIPTOR.services_by_name["Master"]
CAPS = ["submit", "read", "kill", "scale", "logs", "admin"]
NF, DENIED, BAD = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT
SERVER = ("import http.server, sys; "
          "http.server.HTTPServer(('0.0.0.0', int(sys.argv[1])), http.server.BaseHTTPRequestHandler).serve_forever()")


@dataclasses.dataclass
class Target:
    """The names a request aims at: tenant B's real ones, or ones nothing has."""
    app: str
    app_id: str
    pool: str
    tenant: str
    user: str
    policy_id: str
    node: str


def app_spec(name: str, pool: str, private: bool = False) -> types_pb2.AppSpec:
    return spec_mod.from_dict({"name": name, "pool": pool, "private": private, "ports": ["http"],
                               "command": ["python3", "-c", SERVER, "${GAIA_PORT_HTTP}"],
                               "resources": {"request": {"cpu": "10m", "memory": "16Mi"}}})


# method -> the request aimed at `t`, and what tenant A's user gets: an error code (the same,
# word for word, as for a missing target) or None: it succeeds and must show nothing of B's.
MATRIX = {
    "SubmitApp": (lambda t: master_pb2.SubmitAppRequest(spec=app_spec("a-new", t.pool)), BAD),
    "GetApp": (lambda t: master_pb2.GetAppRequest(name=t.app), NF),
    "ListApps": (lambda t: master_pb2.ListAppsRequest(), None),
    "ScaleApp": (lambda t: master_pb2.ScaleAppRequest(name=t.app, instances=5), NF),
    "KillApp": (lambda t: master_pb2.KillAppRequest(name=t.app), NF),
    "ListNodes": (lambda t: master_pb2.ListNodesRequest(), DENIED),
    "GetNode": (lambda t: master_pb2.GetNodeRequest(node_id=t.node), DENIED),
    "Resolve": (lambda t: master_pb2.ResolveRequest(app=t.app), NF),
    "WatchEndpoints": (lambda t: master_pb2.WatchEndpointsRequest(app=t.app), NF),
    "Logs": (lambda t: master_pb2.AppLogsRequest(app=t.app), NF),
    "UpdateApp": (lambda t: master_pb2.UpdateAppRequest(name=t.app, spec=app_spec(t.app, t.pool)), NF),
    "RollbackApp": (lambda t: master_pb2.RollbackAppRequest(name=t.app), NF),
    "ControlInstances": (lambda t: master_pb2.InstanceControlRequest(
        name=t.app, action=master_pb2.INSTANCE_ACTION_STOP, instance_ids=["0"]), NF),
    "ListEvents": (lambda t: master_pb2.ListEventsRequest(name=t.app), NF),
    "DrainNode": (lambda t: master_pb2.DrainNodeRequest(node_id=t.node), DENIED),
    "CreatePool": (lambda t: master_pb2.PoolRequest(pool=types_pb2.Pool(path=f"{t.pool}/sub", weight=1)), BAD),
    "UpdatePool": (lambda t: master_pb2.PoolRequest(pool=types_pb2.Pool(path=t.pool, weight=9)), NF),
    "DeletePool": (lambda t: master_pb2.DeletePoolRequest(path=t.pool), NF),
    "ListPools": (lambda t: master_pb2.ListPoolsRequest(), None),
    # ApplicationMaster calls: a user certificate may make none of them
    "RegisterAM": (lambda t: master_pb2.RegisterAMRequest(app_id=t.app_id, attempt=1), DENIED),
    "RequestContainers": (lambda t: master_pb2.ContainerRequest(app_id=t.app_id, attempt=1, count=1), DENIED),
    "ReleaseContainers": (lambda t: master_pb2.ReleaseRequest(app_id=t.app_id, attempt=1, instance_ids=["0"]), DENIED),
    "ReportAppState": (lambda t: master_pb2.AppStateReport(app_id=t.app_id, attempt=1,
                                                           state=types_pb2.APP_STATE_FAILED), DENIED),
    "WatchApp": (lambda t: master_pb2.WatchAppRequest(app_id=t.app_id), DENIED),
    "RecordEvents": (lambda t: master_pb2.EventsReport(app_id=t.app_id, attempt=1), DENIED),
    "MoveInstances": (lambda t: master_pb2.MoveRequest(app_id=t.app_id, attempt=1, instance_ids=["0"]), DENIED),
    "FinishMoves": (lambda t: master_pb2.ReleaseRequest(app_id=t.app_id, attempt=1, instance_ids=["0"]), DENIED),
    "SetInstanceVersions": (lambda t: master_pb2.InstanceVersionsRequest(app_id=t.app_id, attempt=1,
                                                                         instance_ids=["0"], version=1), DENIED),
    "ReportRollout": (lambda t: master_pb2.RolloutReport(app_id=t.app_id, attempt=1, state="failed"), DENIED),
    "AutoscaleApp": (lambda t: master_pb2.AutoscaleRequest(app_id=t.app_id, attempt=1, instances=0), DENIED),
    # security
    "WhoAmI": (lambda t: master_pb2.WhoAmIRequest(), None),
    "CreateTenant": (lambda t: types_pb2.Tenant(name=f"{t.tenant}-2"), DENIED),
    "DeleteTenant": (lambda t: master_pb2.DeleteTenantRequest(name=t.tenant), DENIED),
    "ListTenants": (lambda t: master_pb2.ListTenantsRequest(), None),
    "CreateUser": (lambda t: master_pb2.CreateUserRequest(name="eve", tenant=t.tenant), DENIED),
    "DeleteUser": (lambda t: master_pb2.DeleteUserRequest(name=t.user), DENIED),
    "ListUsers": (lambda t: master_pb2.ListUsersRequest(tenant=t.tenant), None),
    "SetAcl": (lambda t: types_pb2.AclPolicy(subject="user:alice", pool=t.pool, capabilities=["read"]), BAD),
    "DeleteAcl": (lambda t: master_pb2.DeleteAclRequest(id=t.policy_id), NF),
    "ListAcl": (lambda t: master_pb2.ListAclRequest(subject=f"tenant:{t.tenant}"), None),
    "CreateJoinToken": (lambda t: master_pb2.JoinTokenRequest(node_id=t.node), DENIED),
}


@pytest.fixture(scope="module")
def world(etcd_server, tmp_path_factory):
    name = f"t{os.getpid()}-tenancy"
    workdir = tmp_path_factory.mktemp("tenancy")
    node_id = f"{name}-n1"
    cluster = LocalCluster(etcd_server.endpoint, name, workdir, tls=True)   # a CA of its own, mTLS everywhere
    try:
        certs = {u: cluster.tls_files("user", u) for u in ("alice", "bob", "carol", "mallory")}
        certs["admin"] = cluster.admin_tls
        cluster.start_master()
        cluster.start_node(node_id)
        as_user = {u: cluster.client(tls=certs[u], retry_for=20) for u in ("admin", "alice", "bob", "carol")}
        admin = as_user["admin"]
        wait_for(lambda: admin.call("ListNodes", master_pb2.ListNodesRequest()).nodes, 30, what="the TLS cluster")
        tokens = setup_tenants(admin)
        bob = as_user["bob"]
        for spec in (app_spec("b-web", "pool-b"), app_spec("b-db", "pool-b", private=True)):
            bob.call("SubmitApp", master_pb2.SubmitAppRequest(spec=spec))
        as_user["alice"].call("SubmitApp", master_pb2.SubmitAppRequest(spec=app_spec("a-web", "pool-a")))
        for app in ("b-web", "b-db", "a-web"):
            wait_for(lambda: admin.call("Resolve", master_pb2.ResolveRequest(app=app)).endpoints, 45,
                     what=f"{app} resolvable")
        policy_b = bob.call("ListAcl", master_pb2.ListAclRequest(subject="tenant:tenant-b")).policies[0].id
        ids = {a.app.spec.name: a.app.app_id for a in admin.call("ListApps", master_pb2.ListAppsRequest()).apps}
        b = Target("b-db", ids["b-db"], "pool-b", "tenant-b", "bob", policy_b, node_id)
        yield dataclasses.make_dataclass("World", ["cluster", "certs", "users", "tokens", "b", "ids"])(
            cluster, certs, as_user, tokens, b, ids)
    finally:
        cluster.stop()


def setup_tenants(admin) -> dict:
    tokens = {}
    for tenant in ("tenant-a", "tenant-b"):
        admin.call("CreateTenant", types_pb2.Tenant(name=tenant))
    for user, tenant in (("alice", "tenant-a"), ("bob", "tenant-b"), ("carol", "tenant-a")):
        tokens[user] = admin.call("CreateUser", master_pb2.CreateUserRequest(name=user, tenant=tenant)).token
    for pool, tenant in (("pool-a", "tenant-a"), ("pool-b", "tenant-b")):
        admin.call("CreatePool", master_pb2.PoolRequest(pool=types_pb2.Pool(path=pool, weight=1, tenant=tenant)))
    admin.call("SetAcl", types_pb2.AclPolicy(subject="user:alice", pool="pool-a", capabilities=CAPS))
    admin.call("SetAcl", types_pb2.AclPolicy(subject="tenant:tenant-b", pool="pool-b", capabilities=CAPS))
    return tokens


def invoke(client, method: str, request):
    """The answer (a stream's first message, or None), or the GaiaError."""
    try:
        if MASTER.methods_by_name[method].server_streaming:
            call, head = client.open_stream(method, request, timeout=5)
            call.cancel()
            return head[0] if head else None
        return client.call(method, request)
    except GaiaError as e:
        return e


def normalized(message: str, t: Target) -> str:
    for field in ("app_id", "policy_id", "app", "pool", "tenant", "user", "node"):   # longest first
        message = message.replace(getattr(t, field), f"<{field}>")
    return message


def secrets_of_b(w) -> list:
    return ["tenant-b", "bob", "pool-b", "b-web", "b-db", w.ids["b-web"], w.ids["b-db"], w.b.policy_id]


def test_every_master_method_is_in_the_matrix():
    assert set(MATRIX) == {m.name for m in MASTER.methods}


def test_tenant_a_acting_on_tenant_b_is_denied_and_learns_nothing(world):
    alice, b = world.users["alice"], world.b
    missing = Target("no-such-app", "no-such-app-00000000", "no-such-pool", "no-such-tenant", "nobody",
                     "000000000000", b.node)
    failures = []
    for method, (build, code) in sorted(MATRIX.items()):
        got = invoke(alice, method, build(b))
        if code is None:
            shown = b"" if got is None else got.SerializeToString()
            if isinstance(got, GaiaError) or any(s.encode() in shown for s in secrets_of_b(world)):
                failures.append(f"{method}: {got!r}")
            continue
        if not isinstance(got, GaiaError) or got.code != code:
            failures.append(f"{method}: expected {code.name}, got {got!r}")
            continue
        twin = invoke(alice, method, build(missing))
        if not isinstance(twin, GaiaError) or (twin.code, normalized(twin.message, missing)) != \
                (got.code, normalized(got.message, b)):
            failures.append(f"{method}: for B's thing {got.code.name} {got.message!r}, for a missing one {twin!r}")
    assert not failures, "\n".join(failures)
    # and nothing of B's changed
    bob = world.users["bob"]
    status = bob.call("GetApp", master_pb2.GetAppRequest(name="b-db"))
    assert status.app.state == types_pb2.APP_STATE_RUNNING and status.app.spec.instances == 1
    assert [p.path for p in bob.call("ListPools", master_pb2.ListPoolsRequest()).pools] == ["pool-b"]
    assert bob.call("WhoAmI", master_pb2.WhoAmIRequest()).tenant == "tenant-b"


def test_the_owner_sees_its_own_and_lists_show_only_it(world):
    bob, alice, admin = world.users["bob"], world.users["alice"], world.users["admin"]
    def names(client):
        return sorted(a.app.spec.name for a in client.call("ListApps", master_pb2.ListAppsRequest()).apps)
    assert names(bob) == ["b-db", "b-web"] and names(alice) == ["a-web"]
    assert names(admin) == ["a-web", "b-db", "b-web"]
    assert bob.call("Resolve", master_pb2.ResolveRequest(app="b-db")).endpoints
    assert bob.call("ListEvents", master_pb2.ListEventsRequest(name="b-db")).events
    update = invoke(bob, "WatchEndpoints", master_pb2.WatchEndpointsRequest(app="b-db"))
    assert update.full and update.endpoints
    assert [p.path for p in alice.call("ListPools", master_pb2.ListPoolsRequest()).pools] == ["pool-a"]
    assert [u.name for u in alice.call("ListUsers", master_pb2.ListUsersRequest()).users] == ["alice"]
    assert [t.name for t in alice.call("ListTenants", master_pb2.ListTenantsRequest()).tenants] == ["tenant-a"]


def test_public_apps_resolve_across_tenants_private_ones_only_in_their_own(world):
    alice, carol = world.users["alice"], world.users["carol"]
    assert alice.call("Resolve", master_pb2.ResolveRequest(app="b-web")).endpoints      # service discovery
    for method, request in (("GetApp", master_pb2.GetAppRequest(name="b-web")),
                            ("ListEvents", master_pb2.ListEventsRequest(name="b-web"))):
        with pytest.raises(GaiaError) as info:
            alice.call(method, request)
        assert info.value.code == NF                                                  # but nothing else of it
    # carol is tenant A's with no grant at all: A's private app would resolve for her, B's does not
    with pytest.raises(GaiaError) as info:
        carol.call("Resolve", master_pb2.ResolveRequest(app="b-db"))
    assert info.value.code == NF
    # the registry marks the private app, and DNS built from it has no name for it
    entries = list(world.cluster.etcd.get_prefix(world.cluster.keys.services))
    by_app = {types_pb2.ServiceEndpoint.FromString(v).app: types_pb2.ServiceEndpoint.FromString(v) for v, _ in entries}
    assert by_app["b-db"].private and not by_app["b-web"].private
    cache = Cache(Zone(world.cluster.name), ttl=5)
    cache.load(1, {"services/": [(m.key.decode().split("/services/", 1)[1], v) for v, m in entries]})
    assert "b-web" in cache.apps and "b-db" not in cache.apps


def test_default_deny_then_a_tenant_grant(world):
    admin, carol = world.users["admin"], world.users["carol"]
    assert not carol.call("ListApps", master_pb2.ListAppsRequest()).apps
    with pytest.raises(GaiaError) as info:
        carol.call("GetApp", master_pb2.GetAppRequest(name="a-web"))
    assert info.value.code == NF
    policy = admin.call("SetAcl", types_pb2.AclPolicy(subject="tenant:tenant-a", pool="pool-a", capabilities=["read"]))
    try:
        assert [a.app.spec.name for a in carol.call("ListApps", master_pb2.ListAppsRequest()).apps] == ["a-web"]
        with pytest.raises(GaiaError) as info:
            carol.call("KillApp", master_pb2.KillAppRequest(name="a-web"))
        assert info.value.code == DENIED and "kill" in info.value.message      # seen, not hers to kill
    finally:
        admin.call("DeleteAcl", master_pb2.DeleteAclRequest(id=policy.id))
    assert not carol.call("ListApps", master_pb2.ListAppsRequest()).apps


def test_a_tenant_admin_manages_its_subtree_only(world):
    alice = world.users["alice"]
    child = alice.call("CreatePool", master_pb2.PoolRequest(pool=types_pb2.Pool(path="pool-a/batch", weight=1)))
    assert child.path == "pool-a/batch"
    refusals = [
        ("UpdatePool", master_pb2.PoolRequest(pool=types_pb2.Pool(path="pool-a", weight=50)), "cluster admins"),
        ("CreatePool", master_pb2.PoolRequest(pool=types_pb2.Pool(path="mine", weight=1)), "cluster admins"),
        ("CreatePool", master_pb2.PoolRequest(pool=types_pb2.Pool(path="pool-a/x", weight=1, tenant="tenant-b")),
         "another tenant"),
        ("SetAcl", types_pb2.AclPolicy(subject="tenant:tenant-a", pool="pool-a/batch", capabilities=["privileged"]),
         "lacks it"),
    ]
    for method, request, words in refusals:
        with pytest.raises(GaiaError) as info:
            alice.call(method, request)
        assert info.value.code == DENIED and words in info.value.message, (method, info.value.message)
    granted = alice.call("SetAcl", types_pb2.AclPolicy(subject="user:carol", pool="pool-a/batch",
                                                       capabilities=["read"]))
    assert world.users["carol"].call("ListPools", master_pb2.ListPoolsRequest()).pools[0].path == "pool-a/batch"
    # another tenant's user is as unknown to alice as a user nobody made
    answers = []
    for subject in ("user:bob", "user:nobody"):
        with pytest.raises(GaiaError) as info:
            alice.call("SetAcl", types_pb2.AclPolicy(subject=subject, pool="pool-a", capabilities=["read"]))
        answers.append((info.value.code, info.value.message.replace(subject.split(":")[1], "<u>")))
    assert answers[0] == answers[1] and answers[0][0] == BAD
    alice.call("DeleteAcl", master_pb2.DeleteAclRequest(id=granted.id))
    alice.call("DeletePool", master_pb2.DeletePoolRequest(path="pool-a/batch"))


def test_tokens_unknown_users_and_revocation(world):
    cluster, certs = world.cluster, world.certs
    mallory = cluster.client(tls=certs["mallory"], retry_for=5)     # a CA-signed cert, but no such user
    with pytest.raises(GaiaError) as info:
        mallory.call("GetApp", master_pb2.GetAppRequest(name="no-such-app"))
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED              # before anything is looked up
    carol = cluster.client(tls=certs["mallory"], token=world.tokens["carol"], retry_for=5)
    assert carol.call("WhoAmI", master_pb2.WhoAmIRequest()).name == "carol"    # the token decides
    forged = cluster.client(tls=certs["alice"], token=world.tokens["carol"] + "x", retry_for=5)
    with pytest.raises(GaiaError) as info:
        forged.call("WhoAmI", master_pb2.WhoAmIRequest())
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    admin = world.users["admin"]
    made = admin.call("CreateUser", master_pb2.CreateUserRequest(name="temp", tenant="tenant-a"))
    temp = cluster.client(tls=certs["mallory"], token=made.token, retry_for=5)
    assert temp.call("WhoAmI", master_pb2.WhoAmIRequest()).tenant == "tenant-a"
    admin.call("DeleteUser", master_pb2.DeleteUserRequest(name="temp"))
    with pytest.raises(GaiaError) as info:
        temp.call("WhoAmI", master_pb2.WhoAmIRequest())
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED              # revoked at once
    stored = b"".join(v for v, _ in cluster.etcd.get_prefix(cluster.keys.users))
    assert made.token.encode() not in stored and world.tokens["carol"].encode() not in stored


def cli_as(w, entry: dict, *args) -> subprocess.CompletedProcess:
    path = os.path.join(w.cluster.workdir, f"client-{abs(hash(str(entry)))}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump({"current": w.cluster.name,
                        "clusters": {w.cluster.name: {"etcd": w.cluster.etcd_endpoints, **entry}}}, f)
    env = dict(w.cluster._env(), GAIA_CONFIG=path)
    return subprocess.run([sys.executable, "-m", "gaia_cli", *args], capture_output=True, text=True,
                          env=env, timeout=60, cwd=ROOT)


def test_the_cli_over_tls(world):
    admin = {"tls": world.certs["admin"]}
    out = cli_as(world, admin, "user", "create", "dave", "--tenant", "tenant-a")
    assert out.returncode == 0 and "created user dave in tenant tenant-a" in out.stdout, out.stderr
    token = out.stdout.split("token: ", 1)[1].split()[0]
    policy = cli_as(world, admin, "acl", "set", "--subject", "user:dave", "--pool", "pool-a", "--cap", "read,logs")
    assert policy.returncode == 0 and "user:dave may read,logs in pool-a" in policy.stdout
    dave = {"tls": world.certs["mallory"], "token": token}
    who = cli_as(world, dave, "whoami")
    assert who.returncode == 0 and "dave" in who.stdout and "tenant-a" in who.stdout
    assert cli_as(world, dave, "list").stdout.split().count("a-web") == 1
    assert "b-web" not in cli_as(world, dave, "list").stdout
    missing = cli_as(world, dave, "status", "b-db")
    assert missing.returncode == 3 and "no application named 'b-db'" in missing.stderr
    denied = cli_as(world, dave, "tenant", "create", "tenant-x")
    assert denied.returncode == 1 and "only cluster admins" in denied.stderr
    listed = cli_as(world, admin, "acl", "list", "--subject", "user:dave", "-o", "json")
    assert [p["capabilities"] for p in yaml.safe_load(listed.stdout)["policies"]] == [["read", "logs"]]
    assert cli_as(world, admin, "user", "delete", "dave").returncode == 0
    assert cli_as(world, dave, "whoami").returncode == 1
    assert not world.users["admin"].call("ListAcl", master_pb2.ListAclRequest(subject="user:dave")).policies


def test_privileged_asks_and_idempotency_keys_are_per_tenant_user(world):
    alice, bob = world.users["alice"], world.users["bob"]
    host = app_spec("a-host", "pool-a")
    host.network = "host"
    with pytest.raises(GaiaError) as info:
        alice.call("SubmitApp", master_pb2.SubmitAppRequest(spec=host))
    assert info.value.code == DENIED and "network: host" in info.value.message and "privileged" in info.value.message
    mine = alice.call("SubmitApp", master_pb2.SubmitAppRequest(spec=app_spec("a-key", "pool-a"), idempotency_key="k1"))
    theirs = bob.call("SubmitApp", master_pb2.SubmitAppRequest(spec=app_spec("b-key", "pool-b"), idempotency_key="k1"))
    assert not theirs.existed and theirs.app_id != mine.app_id and theirs.app_id.startswith("b-key-")
    again = alice.call("SubmitApp", master_pb2.SubmitAppRequest(spec=app_spec("a-key", "pool-a"), idempotency_key="k1"))
    assert again.existed and again.app_id == mine.app_id                   # a retry is still a retry
    for client, name in ((alice, "a-key"), (bob, "b-key")):
        client.call("KillApp", master_pb2.KillAppRequest(name=name))


def test_a_finished_app_of_another_tenant_keeps_its_name(world):
    """App names are cluster-wide: tenant A submitting the name of tenant B's finished app
    used to replace it (B's record and events erased, B's name now resolving to A's
    instances). It is refused, saying only that the name is taken; B's app stays B's."""
    alice, bob, admin = world.users["alice"], world.users["bob"], world.users["admin"]
    bob.call("SubmitApp", master_pb2.SubmitAppRequest(spec=app_spec("b-done", "pool-b")))
    bob.call("KillApp", master_pb2.KillAppRequest(name="b-done"))
    for name in ("b-done", "b-web"):          # finished and running alike
        with pytest.raises(GaiaError) as info:
            alice.call("SubmitApp", master_pb2.SubmitAppRequest(spec=app_spec(name, "pool-a")))
        assert info.value.code == grpc.StatusCode.ALREADY_EXISTS, info.value.message
        assert info.value.message == f"the name '{name}' is taken by an application you may not see"
    status = bob.call("GetApp", master_pb2.GetAppRequest(name="b-done"))
    assert status.app.spec.pool == "pool-b" and status.app.state == types_pb2.APP_STATE_KILLED
    again = admin.call("SubmitApp", master_pb2.SubmitAppRequest(spec=app_spec("b-done", "pool-b"), idempotency_key="x"))
    assert not again.existed        # a cluster admin may still reuse it
    admin.call("KillApp", master_pb2.KillAppRequest(name="b-done"))
