"""Epoch fencing: refuse commands authorised by a leader older than the newest one known.

The known epoch is the larger of the current leader's epoch in etcd and the highest epoch of
a command already accepted. It is re-read before a command when the last read is older than
`max_age`, so a deposed leader's command that arrives just after a failover is refused even
between two background refreshes. With a `store` (gaia_node/fencing.FencingStore) the known
epoch starts from the one kept on disk and every rise is on disk before the command it
admitted runs: a restarted node manager refuses a deposed leader even while etcd is away.
"""
import logging
import threading
import time

log = logging.getLogger("gaia.node.epoch")


class StaleEpoch(Exception):
    pass


class EpochGuard:
    def __init__(self, read_leader_epoch, max_age: float = 0.5, errors=(Exception,), clock=time.monotonic,
                 store=None):
        self._read = read_leader_epoch
        self._errors = errors
        self.max_age = max_age
        self._clock = clock
        self._store = store
        self._lock = threading.Lock()
        self._known = store.epoch if store is not None else 0
        self._refused = 0
        self._read_at = None      # clock time of the last successful read

    @property
    def known_epoch(self) -> int:
        return self._known

    @property
    def refused_commands(self) -> int:
        return self._refused

    def refresh(self) -> bool:
        """Read the leader's epoch; False when it cannot be read (the last known one stays)."""
        try:
            leader = self._read()
        except self._errors as e:
            log.debug("cannot read the leader epoch: %s", e)
            return False
        with self._lock:
            self._known = max(self._known, leader)
            self._read_at = self._clock()
            known = self._known
        self._remember(known)
        return True

    def admit(self, epoch: int) -> None:
        """Accept a command of `epoch` or raise StaleEpoch (and count the refusal)."""
        if self._read_at is None or self._clock() - self._read_at > self.max_age:
            self.refresh()  # when etcd cannot answer, no new leader can be elected either
        with self._lock:
            if epoch <= 0 or epoch < self._known:
                self._refused += 1
                raise StaleEpoch(f"stale epoch {epoch} < {max(self._known, 1)}")
            self._known = epoch
        self._remember(epoch)

    def _remember(self, epoch: int):
        if self._store is not None:
            self._store.raise_epoch(epoch)   # a no-op unless it grew
