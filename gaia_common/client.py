"""A client of the leading master, found by cluster name, that follows failovers.

Used by the CLI, ApplicationMasters and users' programs. It reads only the masters' addresses
from etcd; everything else goes through the master's gRPC API.
"""
import random
import threading
import time

import grpc

from gaia_common import config, etcd as etcd_mod, rpc
from gaia_common.keys import Keys
from gaia_common.masters import list_masters
from gaia_common.pb import master_pb2_grpc
from gaia_common.security.tls import TlsFiles

# Codes after which the same call may succeed against another replica or a moment later.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION,
             grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}


class GaiaError(Exception):
    """An answer from Gaia that is final (bad input, not found...) or a give-up after retries."""

    def __init__(self, code, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def etcd_options(entry: dict) -> dict:
    """connect() options of a client config entry: etcd_tls {ca, cert, key}, and etcd_user with
    etcd_password_file (the cluster's client user: it may read the masters' addresses only)."""
    tls = entry.get("etcd_tls") or {}
    options = {"ca_file": tls.get("ca"), "cert_file": tls.get("cert"), "key_file": tls.get("key")}
    if entry.get("etcd_user"):
        options.update(user=entry["etcd_user"], password=etcd_mod.read_password(entry.get("etcd_password_file")))
    return options


class MasterClient:
    def __init__(self, cluster: str, etcd_endpoints=None, masters=None,
                 deadline: float = rpc.DEFAULT_DEADLINE, retry_for: float = 30.0,
                 tls=rpc.DEFAULT, token: str = None, etcd_options: dict = None):
        """tls: TlsFiles (or a config's `tls:` mapping), None for plaintext, or the process's
        (rpc.configure; an AM's). token: sent as `authorization: Bearer` on every call."""
        self.keys = Keys(cluster)
        self.cluster = cluster
        self.static_masters = list(masters or [])
        # etcd_options: connect()'s ca_file/cert_file/key_file/user/password (etcd TLS, RBAC login)
        self._etcd = etcd_mod.connect(etcd_endpoints, timeout=3, **(etcd_options or {})) if etcd_endpoints else None
        self.deadline = deadline
        self.retry_for = retry_for
        self.tls = tls if tls is rpc.DEFAULT else TlsFiles.from_config(tls)
        self.token = token or None
        self._leader = ""
        self._channels = {}
        self._lock = threading.Lock()

    @classmethod
    def for_cluster(cls, name: str, **kwargs) -> "MasterClient":
        """Look `name` up in the client config (~/.gaia/config.yaml or $GAIA_CONFIG)."""
        entry = config.cluster_entry(name)
        if entry.get("tls"):
            kwargs.setdefault("tls", entry["tls"])
        if entry.get("token"):
            kwargs.setdefault("token", entry["token"])
        if entry.get("etcd") and "etcd_options" not in kwargs:
            kwargs["etcd_options"] = etcd_options(entry)
        return cls(name, etcd_endpoints=entry.get("etcd"), masters=entry.get("masters"), **kwargs)

    def close(self):
        for ch in self._channels.values():
            ch.close()
        if self._etcd:
            self._etcd.close()

    def masters(self) -> list:
        if not self._etcd:
            raise GaiaError(grpc.StatusCode.FAILED_PRECONDITION,
                            f"cluster {self.cluster!r} has no etcd endpoints in the client config")
        return list_masters(self._etcd, self.keys)

    def _candidates(self) -> list:
        if self._leader:
            return [self._leader]
        if self._etcd:
            try:
                found = [m.address for m in self.masters()]
            except etcd_mod.TRANSIENT:
                found = []
            if found:
                return found[:1]
        return self.static_masters

    def _stub(self, address: str):
        with self._lock:   # an AM calls from several threads (its loop, its watch, its events)
            if address not in self._channels:
                self._channels[address] = rpc.channel(address, tls=self.tls, token=self.token)
            return master_pb2_grpc.MasterStub(self._channels[address])

    def call(self, method: str, request, timeout: float = None):
        """Call `method` on the leader; follow redirects and retry through failovers.

        Only safe for idempotent calls or calls that carry an idempotency key.
        """
        return self._on_leader(lambda stub: getattr(stub, method)(request, timeout=timeout or self.deadline))

    def open_stream(self, method: str, request, timeout: float = None, on_call=None):
        """Open a server-streaming `method` on the leader and read its first message, following
        redirects and failovers: (call, [first message] or []). `on_call(call)` sees every call
        as it is made, so another thread can cancel one that hangs (a paused master)."""
        def open_one(stub):
            call = getattr(stub, method)(request, timeout=timeout)
            if on_call is not None:
                on_call(call)
            try:
                return call, [next(call)]
            except StopIteration:
                return call, []
            except grpc.RpcError:
                call.cancel()
                raise

        return self._on_leader(open_one)

    def stream(self, method: str, request, timeout: float = None):
        """Iterate a server-streaming `method` on the leader. Redirects and failovers are
        followed until the first message arrives; after that an error ends the stream
        (resuming a half-read stream could repeat what was already yielded)."""
        call, head = self.open_stream(method, request, timeout)
        try:
            yield from head
            yield from call
        except grpc.RpcError as e:
            raise GaiaError(e.code(), e.details()) from None
        finally:
            call.cancel()

    def _on_leader(self, attempt):
        """`attempt(stub)` against the leading master: a retryable gRPC error moves on to the
        leader a follower names, or, after a short backoff, to whoever leads now."""
        give_up = time.monotonic() + self.retry_for
        last = "no master is registered for this cluster"
        backoffs = 0
        while True:
            for address in self._candidates():
                try:
                    answer = attempt(self._stub(address))
                    self._leader = address   # the next call goes straight there, not via etcd
                    return answer
                except grpc.RpcError as e:
                    if e.code() not in RETRYABLE:
                        self._leader = address   # it answered: a refusal is not a failover
                        raise GaiaError(e.code(), e.details()) from None
                    last = f"{address}: {e.code().name}: {e.details()}"
                    self._leader = rpc.leader_of(e) if e.code() == grpc.StatusCode.FAILED_PRECONDITION else ""
                    if self._leader:
                        break  # redirected: go straight to the named leader
            if time.monotonic() > give_up:
                raise GaiaError(grpc.StatusCode.UNAVAILABLE, f"no leading master answered: {last}")
            if not self._leader:
                backoffs += 1
                time.sleep(min(0.5, 0.05 * 2 ** min(backoffs, 4)) * (0.5 + random.random()))
