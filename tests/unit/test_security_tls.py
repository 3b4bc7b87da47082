"""TLS material from config and env, and real handshakes: mutual TLS works; plaintext, no client
certificate, an expired or a foreign-CA certificate are refused at the handshake."""
import datetime

import grpc
import pytest

from gaia_common import rpc
from gaia_common.security import pki, tls
from gaia_common.security.identity import Identity

CLUSTER = "t"


def echo_server(server_files):
    server = rpc.make_server(max_workers=2)
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Echo", {"Echo": handler})])
    address = rpc.bind(server, "127.0.0.1:0", tls=server_files)
    server.start()
    return server, address


def files(directory, stem) -> tls.TlsFiles:
    return tls.TlsFiles(str(directory / "ca.crt"), str(directory / f"{stem}.crt"), str(directory / f"{stem}.key"))


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = pki.CertificateAuthority.create(d, CLUSTER)
    ca.issue(Identity("master", "m", CLUSTER), hosts=("127.0.0.1",), directory=d, stem="server")
    ca.issue(Identity("user", "alice", CLUSTER), directory=d, stem="alice")
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)
    ca.issue(Identity("user", "old", CLUSTER), days=1, not_before=past, directory=d, stem="expired")
    foreign = pki.CertificateAuthority.create(d / "foreign", CLUSTER)
    foreign.issue(Identity("user", "alice", CLUSTER), directory=d, stem="foreign")
    return d


@pytest.fixture(scope="module")
def server(pki_dir):
    srv, address = echo_server(files(pki_dir, "server"))
    yield address
    srv.stop(0)


def echo(channel) -> bytes:
    call = channel.unary_unary("/t.Echo/Echo", request_serializer=None, response_deserializer=None)
    return call(b"hi", timeout=3)


def test_mutual_tls_call_works(server, pki_dir):
    with rpc.channel(server, tls=files(pki_dir, "alice")) as ch:
        assert echo(ch) == b"hi"


@pytest.mark.parametrize("client", ["plaintext", "no-cert", "expired", "foreign"])
def test_handshake_refused(server, pki_dir, client):
    credentials = {"plaintext": None,
                   "no-cert": tls.TlsFiles(str(pki_dir / "ca.crt")),
                   "expired": files(pki_dir, "expired"),
                   "foreign": files(pki_dir, "foreign")}[client]
    with rpc.channel(server, tls=credentials) as ch:
        with pytest.raises(grpc.RpcError) as err:
            echo(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_refuses_server_of_another_ca(pki_dir):
    srv, address = echo_server(tls.TlsFiles(str(pki_dir / "foreign" / "ca.crt"), str(pki_dir / "foreign.crt"),
                                            str(pki_dir / "foreign.key")))
    try:
        with rpc.channel(address, tls=files(pki_dir, "alice")) as ch, pytest.raises(grpc.RpcError) as err:
            echo(ch)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop(0)


def test_from_config_checks_fields(tmp_path, pki_dir):
    assert tls.TlsFiles.from_config(None) is None and tls.TlsFiles.from_config({}) is None
    with pytest.raises(tls.TlsConfigError, match="tls.ca"):
        tls.TlsFiles.from_config({"cert": "x", "key": "y"})
    with pytest.raises(tls.TlsConfigError, match="tls.cert"):
        tls.TlsFiles.from_config({"ca": str(pki_dir / "ca.crt"), "cert": str(pki_dir / "alice.crt")})
    with pytest.raises(tls.TlsConfigError, match="tls.crt"):
        tls.TlsFiles.from_config({"ca": str(pki_dir / "ca.crt"), "crt": "x"})
    with pytest.raises(tls.TlsConfigError, match="tls.key: cannot read"):
        tls.TlsFiles.from_config({"ca": str(pki_dir / "ca.crt"), "cert": str(pki_dir / "alice.crt"),
                                  "key": str(tmp_path / "missing.key")})


def test_from_env_dir_and_files(tmp_path, pki_dir):
    d = tmp_path / "tlsdir"
    d.mkdir()
    for src, dst in (("ca.crt", "ca.crt"), ("alice.crt", "tls.crt"), ("alice.key", "tls.key")):
        (d / dst).write_bytes((pki_dir / src).read_bytes())
    got = tls.TlsFiles.from_env({"GAIA_TLS_DIR": str(d)})
    assert got == tls.TlsFiles(str(d / "ca.crt"), str(d / "tls.crt"), str(d / "tls.key"))
    got = tls.TlsFiles.from_env({"GAIA_TLS_CA": str(pki_dir / "ca.crt"), "GAIA_TLS_CERT": str(pki_dir / "alice.crt"),
                                 "GAIA_TLS_KEY": str(pki_dir / "alice.key")})
    assert got.cert.endswith("alice.crt")
    assert tls.TlsFiles.from_env({}) is None


def test_configure_makes_tls_the_process_default(server, pki_dir):
    try:
        rpc.configure(files(pki_dir, "alice"))
        with rpc.channel(server) as ch:
            assert echo(ch) == b"hi"
    finally:
        rpc.configure(None)
    with rpc.channel(server) as ch, pytest.raises(grpc.RpcError):
        echo(ch)
