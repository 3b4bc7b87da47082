"""Epoch fencing: refuse commands authorised by a leader older than the newest one known.

The known epoch is the highest leader epoch etcd has told this node of. Only etcd raises it:
a command's epoch never does, since anyone who may send a command (an ApplicationMaster, or
anyone while TLS is off) could otherwise send a made-up future epoch, which would be kept (on
disk too) and lock every real master out. A command whose epoch is above the known one makes
the node read the leader's epoch again; unless etcd then confirms it, the command is refused
(as it is when etcd cannot answer: a future epoch nobody can vouch for). The known epoch itself
is accepted from memory while etcd is away: no new leader can be elected then either. While etcd
says no master campaigns at all (a node driven directly, as tests do), any epoch from the known
one up is obeyed but not remembered, so it locks nobody out.

The known epoch is re-read before a command when the last read is older than `max_age`, so a
deposed leader's command that arrives just after a failover is refused even between two
background refreshes. With a `store` (gaia_node/fencing.FencingStore) the known epoch starts
from the one kept on disk and every rise is on disk before the command it admitted runs: a
restarted node manager refuses a deposed leader even while etcd is away.
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
        self._leader = 0          # the leader's epoch at that read (0: no master campaigned)

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
            self._leader = leader
            self._known = max(self._known, leader)
            self._read_at = self._clock()
            known = self._known
        self._remember(known)
        return True

    def admit(self, epoch: int) -> None:
        """Accept a command of `epoch` or raise StaleEpoch (and count the refusal)."""
        tried = read = False
        if self._read_at is None or self._clock() - self._read_at > self.max_age:
            tried, read = True, self.refresh()  # etcd away: no new leader can be elected either
        if epoch > self._known and not tried:
            read = self.refresh()  # a newer leader, or a made-up epoch: only etcd can tell
        with self._lock:
            known = self._known
            if epoch <= 0 or epoch < known:
                self._refused += 1
                raise StaleEpoch(f"stale epoch {epoch} < {max(known, 1)}")
            if epoch > known and not read:
                self._refused += 1
                raise StaleEpoch(f"epoch {epoch} is above the known leader epoch {known} and etcd "
                                 "cannot be read to confirm it")
            if epoch > known and self._leader:
                self._refused += 1
                raise StaleEpoch(f"epoch {epoch} is not one etcd knows (the leader's epoch is {known})")
            # else: etcd says no master campaigns at all (a node driven directly, in tests):
            # nobody to lock out and nothing to confirm against; admitted, never remembered

    def _remember(self, epoch: int):
        if self._store is not None:
            self._store.raise_epoch(epoch)   # a no-op unless it grew
