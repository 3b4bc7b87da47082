"""What the applications ask for and have not got yet: the scheduler's input queue.

An AM asks for its app's target instance count (idempotent: asking again replaces the ask),
and the reconciler asks for an ApplicationMaster. Asks live in the leader's memory only:
AMs repeat theirs every pass and the reconciler re-asks on its next pass, so a new leader
rebuilds the queue within a second without storing it anywhere.
"""
from __future__ import annotations

import dataclasses
import threading
import time

from gaia_common.pb import types_pb2


@dataclasses.dataclass
class InstanceAsk:
    app_id: str
    attempt: int                   # the AM attempt that asked: a superseded AM's ask is void
    target: int                    # instances the app wants to hold in all
    shape: types_pb2.Resources
    since: float                   # wall clock of the first ask of this kind, for reclaim/reservation
    gang: bool = False


@dataclasses.dataclass
class AmAsk:
    app_id: str
    attempt: int                   # the attempt to place (record.am_attempt + 1)
    why: str                       # becomes the app's message when the AM is placed
    shape: types_pb2.Resources
    since: float


@dataclasses.dataclass
class MoveAsk:
    """Re-place these instances of an app elsewhere (their node was lost or is draining)."""
    app_id: str
    attempt: int
    origins: tuple                 # ((instance_id, node it is moved off), ...) in asked order
    keep_old: bool                 # a drain: the old place stays held until the AM finishes
    cause: str
    shape: types_pb2.Resources
    since: float


class RequestBook:
    def __init__(self):
        self._lock = threading.Lock()
        self._instances: dict = {}    # app_id -> InstanceAsk
        self._ams: dict = {}          # app_id -> AmAsk
        self._moves: dict = {}        # (app_id, keep_old) -> MoveAsk: lost-node and drain moves apart
        self._cycle = threading.Condition(self._lock)
        self.started = 0              # cycles begun
        self.cycles = 0               # cycles finished: a caller waits for the next one

    def ask_instances(self, app_id: str, attempt: int, target: int, shape, gang: bool) -> None:
        with self._lock:
            old = self._instances.get(app_id)
            since = old.since if old is not None and old.shape == shape else time.time()
            self._instances[app_id] = InstanceAsk(app_id, attempt, target, shape, since, gang)

    def ask_am(self, app_id: str, attempt: int, why: str, shape) -> None:
        with self._lock:
            old = self._ams.get(app_id)
            since = old.since if old is not None and old.attempt == attempt else time.time()
            self._ams[app_id] = AmAsk(app_id, attempt, why, shape, since)

    def ask_moves(self, app_id: str, attempt: int, origins, keep_old: bool, cause: str, shape) -> None:
        """Replaces the app's earlier move ask: an AM asks for every instance it still wants
        moved. `origins`: (instance_id, node_id it is on now); once it is elsewhere it is done."""
        key = (app_id, bool(keep_old))
        with self._lock:
            old = self._moves.get(key)
            since = old.since if old is not None else time.time()
            self._moves[key] = MoveAsk(app_id, attempt, tuple(origins), keep_old, cause, shape, since)

    def drop_moves(self, app_id: str, ask: MoveAsk) -> None:
        key = (app_id, bool(ask.keep_old))
        with self._lock:
            if self._moves.get(key) is ask:
                del self._moves[key]

    def drop(self, app_id: str) -> None:
        with self._lock:
            self._instances.pop(app_id, None)
            self._ams.pop(app_id, None)
            for key in ((app_id, False), (app_id, True)):
                self._moves.pop(key, None)

    def drop_am(self, app_id: str, attempt: int) -> None:
        with self._lock:
            ask = self._ams.get(app_id)
            if ask is not None and ask.attempt <= attempt:
                del self._ams[app_id]

    def drop_instances(self, app_id: str, ask: InstanceAsk) -> None:
        """Forget `ask` once it is satisfied, unless a newer one replaced it meanwhile."""
        with self._lock:
            if self._instances.get(app_id) is ask:
                del self._instances[app_id]

    def clear(self) -> None:
        with self._lock:
            self._instances.clear()
            self._ams.clear()
            self._moves.clear()

    def asks(self) -> tuple:
        """(instance asks, AM asks by app_id; move asks by (app_id, keep_old))."""
        with self._lock:
            return dict(self._instances), dict(self._ams), dict(self._moves)

    # ---- cycles ----

    def cycle_started(self) -> None:
        with self._cycle:
            self.started += 1

    def cycle_done(self) -> None:
        with self._cycle:
            self.cycles += 1
            self._cycle.notify_all()

    def mark(self) -> int:
        with self._cycle:
            return self.started

    def wait_cycle(self, mark: int, timeout: float) -> bool:
        """Wait until a cycle begun after `mark()` returned has finished (it saw our ask)."""
        deadline = time.monotonic() + timeout
        with self._cycle:
            while self.cycles < mark + 1:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cycle.wait(left)
        return True
