"""What a node remembers of fencing, and the check of an ApplicationMaster's commands.

Two numbers fence the commands a node obeys: the highest leader epoch it has seen, and for
each app the highest AM attempt. Both are kept on disk (<state_dir>/fencing.json, written
atomically and fsynced before the command they admitted runs), so a node manager restarted
while etcd is out of reach still refuses what it refused before.

An AM's command is checked against the app's current attempt in etcd (the AM's allocation,
allocations/<app_id>/am, which the leader writes before it starts that attempt), read for
each AM command: an old AM resumed after a pause is refused even by a node the new AM never
talked to. Where etcd cannot answer, what the node has seen decides.
"""
import logging
import os
import threading
import time

from gaia_node import state

log = logging.getLogger("gaia.node.fencing")

FILE = "fencing.json"
# Apps remembered; the oldest raised is forgotten first (etcd still fences it, the disk did
# only while etcd was away). Updates are rare (a new AM attempt reaching this node).
MAX_APPS = 10_000
NO_AM = -1   # what the etcd read returns for an app with no AM allocation (finished, unknown)


class StaleAttempt(Exception):
    pass


class FencingStore:
    """The highest epoch and per-app AM attempts seen, on disk. Values only grow."""

    def __init__(self, state_dir: str, max_apps: int = MAX_APPS):
        self.path = os.path.join(os.path.abspath(state_dir), FILE)
        self.max_apps = max_apps
        self._lock = threading.Lock()
        self._epoch, self._attempts = _load(self.path)

    @property
    def epoch(self) -> int:
        return self._epoch

    def attempt(self, app_id: str) -> int:
        return self._attempts.get(app_id, 0)

    def raise_epoch(self, epoch: int) -> bool:
        """Remember `epoch` if it is above the known one; True when it was (and is now on disk)."""
        with self._lock:
            if epoch <= self._epoch:
                return False
            self._epoch = epoch
            self._save()
        return True

    def raise_attempt(self, app_id: str, attempt: int) -> bool:
        with self._lock:
            if attempt <= self._attempts.get(app_id, 0):
                return False
            self._attempts.pop(app_id, None)     # re-inserted last: the newest is forgotten last
            self._attempts[app_id] = attempt
            while len(self._attempts) > self.max_apps:
                self._attempts.pop(next(iter(self._attempts)))
            self._save()
        return True

    def _save(self):
        # pairs, not a mapping: the order (oldest raised first) is what MAX_APPS forgets by
        state.write_json_atomic(self.path, {"epoch": self._epoch, "attempts": list(self._attempts.items())})
        _fsync_dir(os.path.dirname(self.path))   # the rename itself survives a crash


def _load(path: str):
    doc = state.read_json(path)
    if doc is None:
        if os.path.exists(path):
            log.warning("%s is unreadable: fencing starts from what etcd says", path)
        return 0, {}
    try:
        epoch = int(doc.get("epoch", 0))
        attempts = {str(k): int(v) for k, v in doc.get("attempts") or ()}
    except (AttributeError, TypeError, ValueError):
        log.warning("%s holds no fencing record: fencing starts from what etcd says", path)
        return 0, {}
    return max(0, epoch), attempts


def _fsync_dir(directory: str):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AttemptGuard:
    """Admit an AM's command only when its attempt is the app's newest known."""

    def __init__(self, store: FencingStore, read_am_attempt, max_age: float = 0.0, errors=(Exception,),
                 clock=time.monotonic, retry_after: float = 1.0, max_cached: int = MAX_APPS):
        self.store = store
        self._read = read_am_attempt        # app_id -> the attempt in etcd, or NO_AM
        self._errors = errors
        # 0: etcd is read for every AM command (one small read beside a container start); a
        # cached read would let an old AM through for that long after a new attempt is written
        self.max_age = max_age
        self.retry_after = retry_after      # after a failed read, etcd is not asked again for this long
        self._clock = clock
        self._max_cached = max_cached
        self._lock = threading.Lock()
        self._current = {}                  # app_id -> (attempt read, clock time of the read)
        self._failed_at = None
        self._refused = 0

    @property
    def refused_commands(self) -> int:
        return self._refused

    def refresh(self, app_id: str):
        """The app's attempt in etcd (NO_AM: none), or None when etcd cannot answer."""
        try:
            current = int(self._read(app_id))
        except self._errors as e:
            log.debug("cannot read the AM attempt of %s: %s", app_id, e)
            with self._lock:
                self._failed_at = self._clock()
            return None
        with self._lock:
            self._failed_at = None
            if len(self._current) >= self._max_cached:
                self._current.clear()       # a cache: everything is simply read again
            self._current[app_id] = (current, self._clock())
        if current > 0:
            self.store.raise_attempt(app_id, current)
        return current

    def admit(self, app_id: str, attempt: int) -> None:
        """Accept a command of AM `attempt` of `app_id` or raise StaleAttempt (counted)."""
        current = self._current_attempt(app_id, attempt)
        known = self.store.attempt(app_id)
        if attempt < known:
            self._refuse(f"stale AM attempt {attempt} of {app_id}: attempt {known} has replaced it")
        if current == NO_AM:
            self._refuse(f"AM attempt {attempt} of {app_id}: the app has no ApplicationMaster "
                         "(it finished or is unknown)")
        if current is not None and attempt > max(current, known):
            # a made-up future attempt, remembered, would lock the app's real AM out of this node
            # (one at most the remembered one was confirmed by etcd once: a restored etcd may lag)
            self._refuse(f"AM attempt {attempt} of {app_id} is not one etcd knows (the app's AM is attempt {current})")
        self.store.raise_attempt(app_id, attempt)   # on disk before the command runs

    def _current_attempt(self, app_id: str, attempt: int):
        """The app's attempt in etcd: read now, or the last read when it is fresh enough (or
        etcd failed just now); None when nothing is known."""
        now = self._clock()
        with self._lock:
            cached = self._current.get(app_id)
            etcd_down = self._failed_at is not None and now - self._failed_at < self.retry_after
        if cached is not None and cached[0] == attempt and now - cached[1] < self.max_age:
            return cached[0]
        if etcd_down:
            return cached[0] if cached is not None else None
        return self.refresh(app_id)

    def _refuse(self, message: str):
        with self._lock:
            self._refused += 1
        raise StaleAttempt(message)


def am_attempt_reader(etcd, keys):
    """app_id -> its AM allocation's attempt in etcd, or NO_AM when it has none."""
    from gaia_common.pb import types_pb2

    def read(app_id: str) -> int:
        value, _ = etcd.get(keys.allocation(app_id, "am"))
        if value is None:
            return NO_AM
        alloc = types_pb2.Allocation()
        alloc.ParseFromString(value)
        return alloc.attempt or NO_AM
    return read
