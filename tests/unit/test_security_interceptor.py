"""The interceptor on a real mutual-TLS server: the handler sees the caller from its certificate
(also while a response stream is iterated) and the bearer token; wrong roles and foreign
clusters are refused before the handler runs; without TLS everything passes as ANONYMOUS."""
import grpc
import pytest

from gaia_common import rpc
from gaia_common.pb import master_pb2, master_pb2_grpc, types_pb2
from gaia_common.security import identity, pki
from gaia_common.security.identity import Identity
from gaia_common.security.interceptor import AuthInterceptor
from gaia_common.security.tls import TlsFiles

CLUSTER = "c"


class Servicer(master_pb2_grpc.MasterServicer):
    """Answers with who called, as the handler sees it."""
    calls = 0

    def WhoAmI(self, request, context):
        Servicer.calls += 1
        me = identity.current()
        return master_pb2.WhoAmIResponse(role=me.role, name=me.name, attempt=me.attempt,
                                         tenant=identity.bearer_token())

    def Logs(self, request, context):
        for i in range(3):
            yield types_pb2.LogChunk(data=f"{identity.current()}#{i}".encode())

    def RegisterAM(self, request, context):
        Servicer.calls += 1
        return master_pb2.AppStatus()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = pki.CertificateAuthority.create(d, CLUSTER)
    made = {}
    for stem, ident, hosts in (("server", Identity("master", "m1", CLUSTER), ("127.0.0.1",)),
                               ("alice", Identity("user", "alice", CLUSTER), ()),
                               ("node", Identity("node", "n1", CLUSTER), ()),
                               ("am", Identity.am(CLUSTER, "web-1a2b", 2), ())):
        ca.issue(ident, hosts=hosts, directory=d, stem=stem)
        made[stem] = TlsFiles(str(d / "ca.crt"), str(d / f"{stem}.crt"), str(d / f"{stem}.key"))
    # the same CA's key signing for another cluster (one CA shared by two clusters)
    pki.CertificateAuthority("", ca.cert, ca.key).issue(Identity("master", "m9", "other"), directory=d, stem="other")
    made["other"] = TlsFiles(str(d / "ca.crt"), str(d / "other.crt"), str(d / "other.key"))
    return made


def serve(tls):
    auth = AuthInterceptor(CLUSTER, tls=tls is not None)
    server = rpc.make_server(max_workers=4, interceptors=[auth])
    master_pb2_grpc.add_MasterServicer_to_server(Servicer(), server)
    address = rpc.bind(server, "127.0.0.1:0", tls=tls)
    server.start()
    return server, address, auth


@pytest.fixture(scope="module")
def tls_server(certs):
    server, address, auth = serve(certs["server"])
    yield address, auth
    server.stop(0)


def stub(address, files, token=None):
    return master_pb2_grpc.MasterStub(rpc.channel(address, tls=files, token=token))


def test_handler_sees_the_certificate_identity_and_token(tls_server, certs):
    address, _ = tls_server
    got = stub(address, certs["alice"], token="t0k").WhoAmI(master_pb2.WhoAmIRequest(), timeout=5)
    assert (got.role, got.name, got.tenant) == ("user", "alice", "t0k")
    got = stub(address, certs["am"]).WhoAmI(master_pb2.WhoAmIRequest(), timeout=5)
    assert (got.role, got.name, got.attempt, got.tenant) == ("am", "web-1a2b", 2, "")


def test_identity_is_current_while_a_stream_is_iterated(tls_server, certs):
    address, _ = tls_server
    chunks = list(stub(address, certs["alice"]).Logs(master_pb2.AppLogsRequest(), timeout=5))
    assert [c.data for c in chunks] == [f"user alice#{i}".encode() for i in range(3)]


@pytest.mark.parametrize("who, request_, why", [
    ("alice", master_pb2.RegisterAMRequest(app_id="web-1a2b", attempt=2), "user alice may not call it"),
    ("node", master_pb2.RegisterAMRequest(app_id="web-1a2b", attempt=2), "node n1 may not call it"),
    ("am", master_pb2.RegisterAMRequest(app_id="db-0000", attempt=2), "its own app"),
    ("am", master_pb2.RegisterAMRequest(app_id="web-1a2b", attempt=1), "its own app"),
    ("other", master_pb2.RegisterAMRequest(), "cluster 'other'"),
])
def test_refused_before_the_handler_runs(tls_server, certs, who, request_, why):
    address, auth = tls_server
    before, denied = Servicer.calls, sum(auth.denied.values())
    with pytest.raises(grpc.RpcError) as err:
        stub(address, certs[who]).RegisterAM(request_, timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert why in err.value.details()
    assert Servicer.calls == before and sum(auth.denied.values()) == denied + 1


def test_am_with_its_own_app_and_attempt_gets_through(tls_server, certs):
    address, _ = tls_server
    stub(address, certs["am"]).RegisterAM(master_pb2.RegisterAMRequest(app_id="web-1a2b", attempt=2), timeout=5)


def test_plaintext_server_serves_everyone_as_anonymous():
    server, address, _ = serve(None)
    try:
        got = stub(address, None).WhoAmI(master_pb2.WhoAmIRequest(), timeout=5)
        assert (got.role, got.tenant) == ("anonymous", "")
        got = stub(address, None, token="abc").WhoAmI(master_pb2.WhoAmIRequest(), timeout=5)
        assert (got.role, got.tenant) == ("anonymous", "abc")   # the master maps tokens to users (S2)
        stub(address, None).RegisterAM(master_pb2.RegisterAMRequest(app_id="x"), timeout=5)
    finally:
        server.stop(0)


def test_cli_client_presents_the_config_entrys_certificate_and_token(tls_server, certs, client_config):
    from gaia_common import config
    from gaia_common.client import MasterClient
    address, _ = tls_server
    alice = certs["alice"]
    config.save_client_config({"current": "c", "clusters": {"c": {
        "masters": [address], "token": "s3cret", "tls": {"ca": alice.ca, "cert": alice.cert, "key": alice.key}}}})
    client = MasterClient.for_cluster("c", retry_for=1)
    try:
        got = client.call("WhoAmI", master_pb2.WhoAmIRequest())
    finally:
        client.close()
    assert (got.role, got.name, got.tenant) == ("user", "alice", "s3cret")
