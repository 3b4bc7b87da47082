"""gRPC plumbing shared by the servers and clients: limits, deadlines, the leader redirect, TLS.

`configure(files)` sets the process's TLS material once (daemons from their config's `tls:`,
an ApplicationMaster from GAIA_TLS_DIR); from then on `bind` serves mutual TLS (client
certificates required) and `channel` dials with the process's certificate. Unconfigured, both
stay plaintext, as a dev cluster without TLS expects.
"""
import threading
from concurrent import futures

import grpc

from gaia_common import edge
from gaia_common.security import tls as tls_mod

# Below etcd's 1.5 MiB request limit, so nothing a client sends can become an unstorable write.
MAX_MESSAGE_BYTES = 1024 * 1024
LEADER_METADATA = "gaia-leader"      # trailing metadata a follower answers with
NODE_METADATA = "gaia-node"          # request metadata naming the node meant (one process may serve many: hollow nodes)
DEFAULT_DEADLINE = 10.0
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", 16 * MAX_MESSAGE_BYTES)]


AUTHORIZATION = "authorization"      # request metadata: "Bearer <token>" (a user's token)
DEFAULT = object()                   # "the process's TLS setting" (configure)


class _Tls:
    """The process-wide TLS setting, with its credentials built once (files read at configure)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.files = None
        self.server = None
        self.channel = None


_tls = _Tls()


def configure(files) -> None:
    """Set the process's TLS: a TlsFiles (or a config's `tls:` mapping), or None for plaintext."""
    files = tls_mod.TlsFiles.from_config(files)
    with _tls.lock:
        _tls.files = files
        _tls.channel = tls_mod.channel_credentials(files) if files else None
        _tls.server = tls_mod.server_credentials(files) if files and files.cert else None


def configured():
    """The process's TlsFiles, or None when it speaks plaintext."""
    return _tls.files


# Bounded concurrency: calls beyond this many at once (running, or queued for a worker) are
# refused at once with RESOURCE_EXHAUSTED, so a flood holds at most this many requests in memory.
MIN_CONCURRENT_RPCS = 256
CONCURRENT_RPCS_PER_WORKER = 4


def make_server(max_workers: int = 32, interceptors=(), max_concurrent_rpcs: int = 0) -> grpc.Server:
    limit = max_concurrent_rpcs or max(MIN_CONCURRENT_RPCS, CONCURRENT_RPCS_PER_WORKER * max_workers)
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                       # outermost: a request that does not parse is refused before anything else
                       interceptors=[edge.MalformedRequests(), *(interceptors or ())],
                       maximum_concurrent_rpcs=limit,
                       options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                ("grpc.so_reuseport", 0)])


def bind(server: grpc.Server, listen: str, tls=DEFAULT) -> str:
    """Bind `listen` (host:port, port 0 = any free) and return the bound host:port. With TLS
    (the process's, or `tls`: TlsFiles / grpc.ServerCredentials / None) every client must
    present a certificate signed by the cluster's CA."""
    host = listen.rsplit(":", 1)[0]
    credentials = _server_credentials(tls)
    port = server.add_secure_port(listen, credentials) if credentials else server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return f"{host}:{port}"


def _server_credentials(tls):
    if tls is DEFAULT:
        return _tls.server
    if tls is None or isinstance(tls, grpc.ServerCredentials):
        return tls
    return tls_mod.server_credentials(tls)


def channel(address: str, tls=DEFAULT, token: str = None, server_name: str = None) -> grpc.Channel:
    """A channel to `address`: TLS with the process's certificate when configured (or with
    `tls`: TlsFiles / grpc.ChannelCredentials / None = plaintext). A `token` goes with every
    call as `authorization: Bearer <token>`. `server_name`: the name the server's certificate
    must carry instead of the address's host (a node's: identity.node_server_name)."""
    credentials = _tls.channel if tls is DEFAULT else tls
    if isinstance(credentials, tls_mod.TlsFiles):
        credentials = tls_mod.channel_credentials(credentials)
    if credentials is not None:
        options = CHANNEL_OPTIONS + ([("grpc.ssl_target_name_override", server_name)] if server_name else [])
        ch = grpc.secure_channel(address, credentials, options=options)
    else:
        ch = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    return grpc.intercept_channel(ch, _BearerToken(token)) if token else ch


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call (plaintext or TLS alike)."""

    def __init__(self, token: str):
        self.header = (AUTHORIZATION, f"Bearer {token}")

    def _with_token(self, details):
        metadata = list(details.metadata or ()) + [self.header]
        return _Details(details.method, details.timeout, metadata, details.credentials,
                        getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def leader_of(error: grpc.RpcError) -> str:
    """The leader's address a follower named in its answer, or ''."""
    for key, value in (error.trailing_metadata() or ()):
        if key == LEADER_METADATA:
            return value
    return ""
