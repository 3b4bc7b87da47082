"""The node's lease and every key bound to it: the node record, container statuses, services.

The node keeps the keys it wants in etcd in memory (`desired`) and writes them through; a
write that fails stays pending and the keepalive thread retries it. When the lease is lost
(etcd answered that it expired, or was unreachable past the TTL) a new lease is granted and
every desired key re-written under it, so a node that comes back re-appears whole.
The lease is never revoked on stop: containers keep running, and a restarted node manager
takes over within the TTL.

While etcd does not answer, writes wait for the keepalive thread instead of being tried
inline (each try would block its caller for the client's timeout), and `unrenewed_for` says
how long the lease has gone without a renewal: the partition fence (partition.py) reads it.
"""
import logging
import threading
import time


from gaia_common import etcd as etcd_mod

log = logging.getLogger("gaia.node.registration")

ETCD_ERRORS = etcd_mod.TRANSIENT  # includes NoServerAvailableError (every endpoint failed)


class Registration:
    def __init__(self, etcd, ttl: int):
        self.etcd = etcd
        self.ttl = max(1, int(ttl))
        self.lease_id = None
        self._desired = {}          # key -> value the node wants under its lease
        self._to_put = set()
        self._to_delete = {}        # key -> the value we wrote (delete only if still ours), or None
        self._state_lock = threading.Lock()
        self._io_lock = threading.Lock()   # one writer at a time: no put overtakes a newer one
        self._stop = threading.Event()
        self._thread = None
        # when the lease was last renewed; start() counts from there too: a node that never
        # reached etcd is as cut off as one that lost it
        self._renewed_at = time.monotonic()
        self.reachable = True                 # False from a failed etcd call to the next renewal

    # ---- what the rest of the node calls ----

    def set(self, key: str, value: bytes) -> None:
        with self._state_lock:
            if self._desired.get(key) == value and key not in self._to_put:
                return
            self._desired[key] = value
            self._to_put.add(key)
            self._to_delete.pop(key, None)
        if self.reachable:
            self.flush()

    def remove(self, key: str, only_if_ours: bool = False, ours: bytes = None) -> None:
        """Forget `key`; with only_if_ours, leave it if someone else has written it since.
        `ours`: the value this node wrote, when an earlier run of it did (hot restart)."""
        with self._state_lock:
            value = self._desired.pop(key, None)
            self._to_put.discard(key)
            if not only_if_ours:
                self._to_delete[key] = None
            elif value is not None or ours is not None:
                self._to_delete[key] = value if value is not None else ours
        if self.reachable:
            self.flush()

    def unrenewed_for(self) -> float:
        """Seconds since the lease was last renewed (or granted)."""
        return time.monotonic() - self._renewed_at

    def start(self) -> "Registration":
        self._renewed_at = time.monotonic()
        self._renew()  # register at once when etcd is up; otherwise the thread keeps trying
        self._thread = threading.Thread(target=self._keepalive_loop, name="gaia-node-lease", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    # ---- etcd ----

    def flush(self) -> bool:
        """Write pending puts and deletes; False when some are left for the next try."""
        if self.lease_id is None:
            return False
        with self._io_lock:
            try:
                self._apply_deletes()
                self._apply_puts()
            except ETCD_ERRORS as e:
                self.reachable = False
                log.warning("etcd write failed, will retry: %s", e)
                return False
        return True

    def _apply_puts(self):
        with self._state_lock:
            pending = {k: self._desired[k] for k in self._to_put}
        for key, value in pending.items():
            self.etcd.put(key, value, lease=self.lease_id)
            with self._state_lock:
                if self._desired.get(key) == value:
                    self._to_put.discard(key)

    def _apply_deletes(self):
        with self._state_lock:
            pending = dict(self._to_delete)
        for key, ours in pending.items():
            if ours is None:
                self.etcd.delete(key)
            else:
                tx = self.etcd.transactions
                self.etcd.transaction(compare=[tx.value(key) == ours], success=[tx.delete(key)], failure=[])
            with self._state_lock:
                if self._to_delete.get(key, "gone") == ours:
                    del self._to_delete[key]

    def _renew(self) -> None:
        """Refresh the lease, or get a new one and re-write every key when it was lost."""
        try:
            if self.lease_id is not None and self._refresh_ok():
                self._renewed()
                self.flush()
                return
            with self._io_lock:
                self.lease_id = self.etcd.lease(self.ttl).id
                with self._state_lock:
                    self._to_put = set(self._desired)
            self._renewed()
            log.info("registered with lease %x", self.lease_id)
            self.flush()
        except ETCD_ERRORS as e:
            self.reachable = False
            log.warning("cannot renew the node lease (%.0fs since the last renewal): %s", self.unrenewed_for(), e)

    def _renewed(self):
        self._renewed_at = time.monotonic()
        self.reachable = True

    def _refresh_ok(self) -> bool:
        responses = list(self.etcd.refresh_lease(self.lease_id))
        if responses and responses[0].TTL > 0:
            return True
        log.warning("node lease %x expired; registering again", self.lease_id)
        return False

    def _keepalive_loop(self):
        while not self._stop.wait(self.ttl / 3):
            self._renew()
