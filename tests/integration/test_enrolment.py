"""Node enrolment on real TLS and real etcd RBAC: a one-time token joins one node once, and the
joined node runs with the certificate and etcd credential it was given."""
import concurrent.futures
import os
import stat
import subprocess
import sys
import time

import grpc
import pytest
import yaml

from gaia_common import etcd as etcd_mod
from gaia_common.client import GaiaError, MasterClient
from gaia_common.keys import Keys
from gaia_common.pb import master_pb2, master_pb2_grpc
from gaia_common.security.identity import Identity, node_server_name
from gaia_common.security.pki import dns_names, identity_of, make_csr
from gaia_common.security.tls import TlsFiles
from gaia_common import rpc
from gaia_master.enrol import JoinTokens, Refused
from tests.integration.etcd_rbac_support import RbacCluster, rbac_etcd
from tests.integration.harness import ROOT, wait_for

NAME = "enrol-a"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("enrol")
    with rbac_etcd(base, [NAME]) as (server, creds):
        c = RbacCluster(server, NAME, base / "cluster", creds[NAME], tls=True)
        c.join_address = f"127.0.0.1:{etcd_mod.free_port()}"
        try:
            c.start_master(join_listen=c.join_address)
            c.wait_ready(nodes=0)
            yield c
        finally:
            c.stop()


def token(cluster, *args) -> str:
    return cluster.cli("node", "token", "create", *args).stdout.splitlines()[0]


def join(cluster, tok: str, node_id: str, state_dir, check: bool = True, ca: str = None):
    base = state_dir.parent / f"{state_dir.name}-base.yaml"
    base.write_text(yaml.safe_dump({"listen": "127.0.0.1:0", "lease_ttl": 3, "cgroup_parent": f"gaia-{NAME}"}))
    return cluster.cli("node", "join", "--master", cluster.join_address, "--token", tok, "--id", node_id,
                       "--ca", ca or cluster.admin_tls["ca"], "--state-dir", str(state_dir), "--config", str(base),
                       check=check)


def run_node(cluster, node_id: str, state_dir) -> subprocess.Popen:
    """`gaia node run --config <state dir>/node.yaml`, exactly as an operator would."""
    log = open(os.path.join(cluster.workdir, f"{node_id}.log"), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "gaia_cli", "node", "run", "--config", str(state_dir / "node.yaml")],
                            stdout=log, stderr=subprocess.STDOUT, env=cluster._env(), start_new_session=True, cwd=ROOT)
    cluster.nodes[node_id] = proc
    return proc


def test_a_joined_node_runs_with_its_certificate_and_etcd_login(cluster, tmp_path):
    state = tmp_path / "n1"
    out = join(cluster, token(cluster, "--node", "enrol-n1"), "enrol-n1", state)
    assert f"gaia node run --config {state / 'node.yaml'}" in out.stdout
    settings = yaml.safe_load((state / "node.yaml").read_text())
    assert settings["etcd_user"] == f"gaia-{NAME}-node" and settings["id"] == "enrol-n1"
    assert identity_of((state / "tls/node.crt").read_bytes()) == Identity("node", "enrol-n1", NAME)
    for secret in ("tls/node.key", "etcd.password"):
        assert stat.S_IMODE(os.stat(state / secret).st_mode) == 0o600, secret

    run_node(cluster, "enrol-n1", state)
    client = cluster.client(retry_for=5)
    wait_for(lambda: any(n.info.node_id == "enrol-n1" and n.alive
                         for n in client.call("ListNodes", master_pb2.ListNodesRequest()).nodes),
             30, what="the joined node alive", on_timeout=lambda: cluster.log("enrol-n1")[-1500:])
    cluster.submit_sleeper("hello")

    def running():
        status = cluster.cli_json("status", "hello")
        return [(i.get("status", {}).get("state"), i["allocation"]["node_id"]) for i in status["instances"]] == \
            [("CONTAINER_STATE_RUNNING", "enrol-n1")]
    wait_for(running, 60, what="hello running on the joined node", on_timeout=lambda: cluster.log("enrol-n1")[-1500:])
    assert "PERMISSION_DENIED" not in cluster.log("enrol-n1")


def test_a_live_node_cannot_be_enrolled_again(cluster, tmp_path):
    """Runs after the test above: enrol-n1 is alive, so its name is not to be had."""
    again = join(cluster, token(cluster), "enrol-n1", tmp_path / "twin", check=False)
    assert again.returncode != 0 and "node 'enrol-n1' is alive" in again.stderr, again.stderr


def test_a_token_joins_once(cluster, tmp_path):
    tok = token(cluster)
    join(cluster, tok, "enrol-once", tmp_path / "first")
    again = join(cluster, tok, "enrol-twice", tmp_path / "second", check=False)
    assert again.returncode != 0 and "already used (by node enrol-once)" in again.stderr
    assert not (tmp_path / "second" / "node.yaml").exists()


def test_an_expired_token_is_refused(cluster, tmp_path):
    tok = token(cluster, "--ttl", "1")
    time.sleep(1.5)
    late = join(cluster, tok, "enrol-late", tmp_path / "late", check=False)
    assert late.returncode != 0 and "expired" in late.stderr


def test_a_token_for_one_node_cannot_enrol_another(cluster, tmp_path):
    tok = token(cluster, "--node", "enrol-node-a")
    other = join(cluster, tok, "enrol-node-b", tmp_path / "b", check=False)
    assert other.returncode != 0 and "made for another node" in other.stderr
    join(cluster, tok, "enrol-node-a", tmp_path / "a")        # the refusal did not use it up


def test_concurrent_joins_with_one_token_enrol_one_node(cluster):
    tok = token(cluster)
    channel = rpc.channel(cluster.join_address, tls=TlsFiles(ca=cluster.admin_tls["ca"]))
    stub = master_pb2_grpc.EnrolStub(channel)

    def attempt(i):
        node_id = f"enrol-race-{i}"
        csr, _ = make_csr(Identity("node", node_id, NAME), ["127.0.0.1"])
        try:
            stub.JoinNode(master_pb2.JoinNodeRequest(token=tok, node_id=node_id, csr_pem=csr,
                                                     addresses=["127.0.0.1"]), timeout=20)
            return "ok"
        except grpc.RpcError as e:
            return e.code()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    channel.close()
    assert results.count("ok") == 1, results
    assert set(results) - {"ok"} == {grpc.StatusCode.PERMISSION_DENIED}


def test_two_joins_that_both_passed_the_check_cannot_both_take_the_token(cluster):
    """The window the race above may miss, held open: both read the token as unused, and
    only the first transaction on its revision commits."""
    tokens = JoinTokens(Keys(NAME), cluster.etcd)
    tok = token(cluster)
    first, second = tokens.check(tok, "enrol-x"), tokens.check(tok, "enrol-y")
    tokens.take(*first, "enrol-x")
    with pytest.raises(Refused, match="taken by another join"):
        tokens.take(*second, "enrol-y")


def test_the_enrolment_port_checks_the_master_against_the_ca(cluster, tmp_path):
    from gaia_common.security.pki import CertificateAuthority
    CertificateAuthority.create(tmp_path / "foreign", NAME)
    refused = join(cluster, token(cluster), "enrol-mitm", tmp_path / "m", check=False,
                   ca=str(tmp_path / "foreign" / "ca.crt"))
    assert refused.returncode != 0 and "no master answered the join" in refused.stderr, refused.stderr
    assert "handshake" in refused.stderr.lower() or "ssl" in refused.stderr.lower(), refused.stderr


def test_only_admins_make_tokens(cluster):
    node = MasterClient(NAME, etcd_endpoints=cluster.etcd_endpoints, etcd_options=cluster.client_options(),
                        tls=cluster.tls_files("node", "enrol-n1"), retry_for=1)
    cluster._clients.append(node)
    with pytest.raises(GaiaError) as refused:
        node.call("CreateJoinToken", master_pb2.JoinTokenRequest())
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("how", ["csr", "addresses"])
def test_a_join_asking_for_another_nodes_server_name_is_refused(cluster, how):
    """node-2 asking for node-1's server name (in its CSR or its addresses) would get a
    certificate to pose as node-1 to the master and AMs: refused, and the token stays good."""
    tok = token(cluster)
    other = node_server_name(NAME, "enrol-n1")
    asks = Identity("node", "enrol-n1", NAME) if how == "csr" else Identity("node", "enrol-pose", NAME)
    csr, _ = make_csr(asks, ["127.0.0.1"])
    addresses = ["127.0.0.1"] + ([other] if how == "addresses" else [])
    with rpc.channel(cluster.join_address, tls=TlsFiles(ca=cluster.admin_tls["ca"])) as channel:
        with pytest.raises(grpc.RpcError) as err:
            master_pb2_grpc.EnrolStub(channel).JoinNode(master_pb2.JoinNodeRequest(
                token=tok, node_id="enrol-pose", csr_pem=csr, addresses=addresses), timeout=20)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and other in err.value.details()
        own, _ = make_csr(Identity("node", "enrol-pose", NAME), ["127.0.0.1"])
        answer = master_pb2_grpc.EnrolStub(channel).JoinNode(master_pb2.JoinNodeRequest(
            token=tok, node_id="enrol-pose", csr_pem=own, addresses=["127.0.0.1"]), timeout=20)
    assert dns_names(bytes(answer.cert_pem)) == [node_server_name(NAME, "enrol-pose")]
