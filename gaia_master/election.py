"""Leader election the way etcd's own election recipe works, on python-etcd3 leases and txns.

Each replica puts a key under masters/election/ bound to its lease; the key with the lowest
create revision leads, and that revision is the leader's epoch (its fencing token). We do not
use python-etcd3's Lock: it hands out no token, and a lock alone is not mutual exclusion.

A leader only acts while its lease is provably alive: after each keepalive we know the lease
lives at least TTL seconds from when the keepalive was *sent* (monotonic clock). If that
moment passes without a newer answer, the leader stops acting at once, even before etcd has
revoked anything.
"""
import logging
import threading
import time

from gaia_common import etcd as etcd_mod
from gaia_common.keys import Keys
from gaia_common.masters import list_masters
from gaia_common.pb import types_pb2

log = logging.getLogger(__name__)
# Slack for clock-rate differences between us and etcd's leader.
SAFETY_MARGIN = 0.15


class Election:
    """Campaigns until stopped; calls on_elected(epoch) / on_deposed() from its own thread."""

    def __init__(self, etcd, keys: Keys, me: types_pb2.MasterInfo, ttl: int,
                 on_elected=None, on_deposed=None):
        self.etcd = etcd
        self.keys = keys
        self.me = me
        self.ttl = ttl
        self.on_elected = on_elected or (lambda epoch: None)
        self.on_deposed = on_deposed or (lambda: None)
        self.lease = None
        self.key = ""
        self.epoch = 0                  # nonzero while we lead
        self._valid_until = 0.0         # monotonic deadline of our proven lease life
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._threads = []

    # ---- what the rest of the master asks ----

    def is_leader(self) -> bool:
        return self.epoch > 0 and time.monotonic() < self._valid_until

    def leader(self):
        """The current leader's MasterInfo as etcd shows it, or None."""
        try:
            masters = list_masters(self.etcd, self.keys)
        except etcd_mod.TRANSIENT:
            return None
        return masters[0] if masters else None

    # ---- lifecycle ----

    def start(self):
        for target, name in ((self._keepalive_loop, "lease-keepalive"), (self._campaign_loop, "campaign")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def resign(self):
        """Give up leadership at once (SIGTERM): revoking the lease deletes our key."""
        self._stop.set()
        self._changed.set()
        self._step_down("resigned")
        if self.lease is not None:
            try:
                self.lease.revoke()
            except Exception:  # etcd may be gone; the lease then expires on its own
                log.warning("could not revoke lease on resign")
        for t in self._threads:
            t.join(timeout=2)

    # ---- internals ----

    def _new_lease(self):
        self.lease = self.etcd.lease(self.ttl)
        self._valid_until = time.monotonic() + self.ttl - SAFETY_MARGIN
        self.key = self.keys.election_key(self.lease.id)
        self.etcd.transaction(compare=[self.etcd.transactions.create(self.key) == 0],
                              success=[self.etcd.transactions.put(self.key, self.me.SerializeToString(),
                                                                  lease=self.lease)],
                              failure=[])

    def _keepalive_loop(self):
        while not self._stop.wait(self.ttl / 4):
            lease = self.lease  # the campaign thread may replace it meanwhile
            if lease is None:
                continue
            sent = time.monotonic()
            try:
                ttl = next(iter(self.etcd.refresh_lease(lease.id))).TTL
            except Exception as e:  # unreachable etcd: our deadline simply is not extended
                log.warning("lease keepalive failed: %s", e)
                continue
            if lease is not self.lease:
                continue  # an answer about a lease we already gave up
            if ttl <= 0:
                log.warning("lease %x expired", lease.id)
                self._step_down("lease expired")
                self.lease = None
                self._changed.set()
            else:
                self._valid_until = max(self._valid_until, sent + ttl - SAFETY_MARGIN)

    def _campaign_loop(self):
        while not self._stop.is_set():
            try:
                self._campaign_once()
            except etcd_mod.TRANSIENT as e:
                log.warning("election: etcd unavailable: %s", e)
                self._stop.wait(0.2)
            except Exception:
                log.exception("election loop error")
                self._stop.wait(0.5)

    def _campaign_once(self):
        if self.lease is None:
            self._new_lease()
        response = self.etcd.get_prefix_response(self.keys.election, sort_target="create",
                                                 sort_order="ascend")
        keys = [kv.key.decode() for kv in response.kvs]
        if self.epoch and not self.is_leader():
            # keepalives stalled past the proven lease life (e.g. etcd re-electing its own
            # leader): the leader's loops have stopped acting, so step down; once the lease is
            # proven alive again the campaign elects us anew and a new term starts them again
            self._step_down("lease not renewed in time")
        if self.key not in keys:
            self._step_down("election key gone")
            self.lease = None
            return
        if keys[0] == self.key and not self.epoch and self.is_lease_alive():
            self._become_leader(response.kvs[0].create_revision)
        elif keys[0] != self.key and self.epoch:
            self._step_down("another key leads")
        self._wait_for_change(response.header.revision + 1)

    def is_lease_alive(self) -> bool:
        return time.monotonic() < self._valid_until

    def _become_leader(self, epoch: int):
        log.info("elected leader with epoch %d", epoch)
        self.epoch = epoch
        try:
            self.on_elected(epoch)
        except Exception:
            log.exception("on_elected failed; stepping down")
            self._step_down("start-up failed")
            self.lease.revoke()
            self.lease = None

    def _step_down(self, why: str):
        if self.epoch:
            log.warning("stepping down (%s)", why)
            self.epoch = 0
            self.on_deposed()

    def _wait_for_change(self, start_revision: int):
        """Block until the election prefix changes, our lease is lost, or a short timeout."""
        self._changed.clear()
        done = threading.Event()

        def on_event(_response):
            done.set()

        try:
            watch_id = self.etcd.add_watch_prefix_callback(self.keys.election, on_event,
                                                           start_revision=start_revision)
        except Exception:
            self._stop.wait(0.2)
            return
        try:
            deadline = time.monotonic() + 1.0
            while not (done.is_set() or self._changed.is_set() or self._stop.is_set()):
                if time.monotonic() > deadline or (self.epoch and not self.is_leader()):
                    break
                done.wait(0.05)
        finally:
            try:
                self.etcd.cancel_watch(watch_id)
            except Exception:
                pass
