"""etcd RBAC and client TLS on a real, dedicated etcd: each kind of credential reaches what
its role grants and nothing else, expired tokens are renewed, and a whole cluster (masters,
node, AM, CLI) runs with its own logins, over etcd client TLS with client certificates."""
import pathlib
import time

import grpc
import pytest

from gaia_common import etcd as etcd_mod, etcd_auth
from gaia_common.config import DnsConfig, NodeConfig
from gaia_common.etcd import AuthError, TokenExpired, connect, connect_config
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_dns.main import DnsDaemon
from gaia_common.security.identity import Identity
from gaia_common.security.pki import CertificateAuthority
from tests.integration.etcd_rbac_support import RbacCluster, make_pki, rbac_etcd, tls_files
from tests.integration.harness import wait_for

A, B = Keys("rbac-a"), Keys("rbac-b")
TOKEN_TTL = 2          # seconds an idle etcd token lives on this etcd


@pytest.fixture(scope="module")
def rbac(tmp_path_factory):
    """(etcd server, {cluster: {kind: (user, password file)}}) with RBAC on for two clusters."""
    with rbac_etcd(tmp_path_factory.mktemp("rbac"), ["rbac-a", "rbac-b"], auth_token_ttl=TOKEN_TTL) as both:
        yield both


def login(server, creds, cluster: str, kind: str):
    user, path = creds[cluster][kind]
    return server.connect(user=user, password=etcd_mod.read_password(str(path)))


def denied(call) -> bool:
    try:
        call()
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.PERMISSION_DENIED
    return False


def test_anonymous_clients_are_refused(rbac):
    server, _ = rbac
    anonymous = connect([server.endpoint])
    with pytest.raises(grpc.RpcError, match="user name is empty"):
        anonymous.get(A.leader)


def test_node_credential_writes_node_keys_and_nothing_else(rbac):
    server, creds = rbac
    node = login(server, creds, "rbac-a", "node")
    lease = node.lease(10)
    for key in (A.node("n1"), A.container("app1", "c1"), A.service("web", "0")):
        node.put(key, b"x", lease=lease)
    tx = node.transactions        # the registration's compare-and-delete needs read too
    ok, _ = node.transaction(compare=[tx.value(A.service("web", "0")) == b"x"],
                             success=[tx.delete(A.service("web", "0"))], failure=[])
    assert ok
    assert node.get_prefix_response(A.election).header.revision > 0     # the leader's epoch, for fencing
    node.get(A.allocation("app1", "am"))                                 # the app's AM attempt
    node.get(A.app("web"))                                               # an AM's spec is checked against it
    for key in (A.app("web"), A.allocation("app1", "0"), A.pool("ads"), A.leader, A.drain("n1"),
                A.join_token("abc"), B.node("n1"), B.service("web", "0")):
        assert denied(lambda: node.put(key, b"evil")), key
    for key in (A.etcd_credential("node"), A.user("u"), B.node("n1"), B.app("web")):
        assert denied(lambda: node.get(key)), key
    assert denied(lambda: node.delete_prefix(A.root))


def test_client_credential_reads_the_masters_and_nothing_else(rbac):
    server, creds = rbac
    root = server.connect()
    root.put(A.leader, b"leader")
    client = login(server, creds, "rbac-a", "client")
    assert client.get(A.leader)[0] == b"leader"
    assert client.get_prefix_response(A.election).header.revision > 0
    for key in (A.app("web"), A.node("n1"), A.service("web", "0"), A.etcd_credential("client"), B.leader):
        assert denied(lambda: client.get(key)), key
    assert denied(lambda: client.put(A.leader, b"me"))


def test_dns_credential_reads_services_and_cannot_write(rbac):
    server, creds = rbac
    dns = login(server, creds, "rbac-a", "dns")
    dns.get_prefix_response(A.services)
    assert denied(lambda: dns.put(A.service("web", "9"), b"x"))
    assert denied(lambda: dns.get(A.node("n1")))
    assert denied(lambda: dns.get_prefix_response(B.services))


def test_the_dns_server_follows_the_registry_with_its_login(rbac):
    """gaia dns run with etcd_user/etcd_password_file: its mirror of services/ loads and follows."""
    server, creds = rbac
    user, password_file = creds["rbac-a"]["dns"]
    daemon = DnsDaemon(DnsConfig(cluster="rbac-a", etcd=[server.endpoint], listen="127.0.0.1:0",
                                 etcd_user=user, etcd_password_file=str(password_file))).start()
    try:
        root = server.connect()
        endpoint = types_pb2.ServiceEndpoint(host="10.0.0.7", ports={"http": 8080}, node_id="n1")
        root.put(A.service("shop", "0"), endpoint.SerializeToString())
        wait_for(lambda: "0" in daemon.cache.entries.get("shop", {}), 10, what="the DNS cache to see shop/0")
    finally:
        daemon.stop()


def test_master_credential_has_its_cluster_only(rbac):
    server, creds = rbac
    master = login(server, creds, "rbac-a", "master")
    master.put(A.app("web"), b"spec")
    assert master.get(A.etcd_credential("node"))[0]       # it hands this to enrolling nodes
    assert denied(lambda: master.put(B.app("web"), b"spec"))
    assert denied(lambda: master.get(B.etcd_credential("node")))


def test_setup_again_keeps_known_passwords_and_other_clusters(rbac, tmp_path):
    server, creds = rbac
    root = server.connect()
    known = etcd_auth.read_passwords(pathlib.Path(creds["rbac-a"]["master"][1]).parent, "rbac-a")
    etcd_auth.setup(root, "rbac-a", passwords=known)
    login(server, creds, "rbac-a", "node").get(A.node("n1"))       # the same passwords still log in
    login(server, creds, "rbac-b", "client").get(B.leader)


def test_wrong_password_is_refused_naming_the_user(rbac):
    server, _ = rbac
    with pytest.raises(AuthError, match="gaia-rbac-a-node"):
        server.connect(user="gaia-rbac-a-node", password="guess")


def test_an_expired_token_is_renewed(rbac):
    server, creds = rbac
    node = login(server, creds, "rbac-a", "node")
    node.put(A.node("idle"), b"1")
    time.sleep(TOKEN_TTL + 1.5)          # idle past --auth-token-ttl: etcd forgets the token
    with pytest.raises(TokenExpired):
        node.get(A.node("idle"))
    assert etcd_mod.retry(lambda: node.get(A.node("idle")))[0] == b"1"   # TRANSIENT: callers retry


@pytest.fixture(scope="module")
def tls_rbac(tmp_path_factory):
    """An etcd serving client TLS, asking for client certificates, with RBAC on."""
    base = tmp_path_factory.mktemp("tls-rbac")
    make_pki(base / "pki", "rbac-t")
    with rbac_etcd(base, ["rbac-t", "rbac-u"], pki_dir=base / "pki", client_cert_auth=True) as (server, creds):
        yield server, creds, base / "pki"


def test_etcd_client_tls_wants_a_certificate_of_the_cluster_ca(tls_rbac, tmp_path):
    server, creds, pki = tls_rbac
    user, password_file = creds["rbac-u"]["node"]
    cfg = NodeConfig(cluster="rbac-u", etcd=[server.endpoint], etcd_user=user, etcd_password_file=str(password_file),
                     etcd_tls=tls_files(pki, "root"))
    etcd = connect_config(cfg)                              # the daemons' way in
    etcd.put(Keys("rbac-u").node("n1"), b"x")
    assert etcd.get(Keys("rbac-u").node("n1"))[0] == b"x"
    password = etcd_mod.read_password(str(password_file))
    no_cert = connect([server.endpoint], timeout=2, ca_file=str(pki / "ca.crt"), user=user, password=password)
    with pytest.raises(etcd_mod.TRANSIENT):                 # no client certificate: the handshake fails
        no_cert.get(Keys("rbac-u").node("n1"))
    foreign = CertificateAuthority.create(tmp_path / "foreign", "rbac-t")
    foreign.issue(Identity("node", "n1", "rbac-t"), directory=tmp_path / "foreign", stem="node")
    other_ca = connect([server.endpoint], timeout=2, ca_file=str(pki / "ca.crt"), user=user, password=password,
                       cert_file=str(tmp_path / "foreign/node.crt"), key_file=str(tmp_path / "foreign/node.key"))
    with pytest.raises(etcd_mod.TRANSIENT):                 # a certificate of another CA: refused too
        other_ca.get(Keys("rbac-u").node("n1"))
    plaintext = connect([server.endpoint.replace("https://", "http://")], timeout=2, user=user, password=password)
    with pytest.raises(etcd_mod.TRANSIENT):                 # and plaintext gets nowhere
        plaintext.get(Keys("rbac-u").node("n1"))


def test_a_cluster_runs_under_rbac_over_etcd_tls(tls_rbac, tmp_path):
    """Masters, a node, the AM and the CLI each log in as their own user, over client TLS."""
    server, creds, pki = tls_rbac
    cluster = RbacCluster(server, "rbac-t", tmp_path, creds["rbac-t"], etcd_tls=tls_files(pki, "root"))
    try:
        cluster.start_master()
        cluster.start_node()
        cluster.wait_ready(nodes=1)
        cluster.submit_sleeper("hello")

        def running():
            status = cluster.cli_json("status", "hello")
            states = [i.get("status", {}).get("state") for i in status["instances"]]
            return states == ["CONTAINER_STATE_RUNNING"]
        wait_for(running, 60, what="hello running", on_timeout=lambda: cluster.log(f"{cluster.name}-n1")[-2000:])
        assert "PERMISSION_DENIED" not in cluster.log("master-1") + cluster.log(f"{cluster.name}-n1")
    finally:
        cluster.stop()
