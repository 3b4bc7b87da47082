"""WatchApp: a stream of an app's status, the current one first, then one after every change.

Changes are signalled, not polled: the application table calls `Notifier.notify(app_id)` when
an app's record or allocations change in memory, the node view when one of its containers
does (or a node goes: notify_all). Each watch waits on an Event of its own, so a change wakes
only that app's watchers. Sends are coalesced (at most one per MIN_INTERVAL; a burst of
changes becomes one status), skipped when nothing visible changed, and repeated as a
keepalive at least every KEEPALIVE seconds, so a client can tell a quiet stream from a dead one.

Every long stream (WatchApp, WatchEndpoints, Logs) holds one of the gRPC server's worker
threads for its whole life, so they are counted (`Watches.slot`, StreamLimits): at most
`total` at once, and the server has that many workers for them on top of the unary calls'
(gaia_master/main.py), so no number of streams can keep a GetApp, a Submit or an AM's call
from a worker. Within the total each caller has a cap of its own: a user (by name: a token
counts as its user), an AM (per app, all attempts together), and the tenant the caller acts
for; masters, and the anonymous caller of a plaintext cluster (everyone, there), only the total.
A caller over a cap gets RESOURCE_EXHAUSTED naming the limit (an AM polls GetApp instead).
"""
import contextlib
import dataclasses
import threading
import time

import grpc

from gaia_common import edge, rpc
from gaia_master.app_table import TERMINAL

MIN_INTERVAL = 0.05      # at most ~20 statuses a second per watch
KEEPALIVE = 5.0
CHECK = 0.5              # how often a quiet watch looks at its client and the leadership
MAX_WATCHES = 256        # long streams at once (MasterConfig.max_streams)
# Logs relays to one node at once: each holds a worker of the node's too (it serves with
# rpc.make_server's default 32), and the master's own calls to it must find one
LOGS_PER_NODE = 16


@dataclasses.dataclass(frozen=True)
class StreamLimits:
    """How many long streams may be open at once: in all, and per caller (0: no cap). The
    MasterConfig settings of the same names with `max_streams` in front."""
    total: int = MAX_WATCHES
    per_user: int = 64         # one user (the CLI's `gaia logs -f`, a program's Resolver watches)
    per_am: int = 8            # one app's AM (one WatchApp, and its reconnects)
    per_tenant: int = 192      # everyone acting for one tenant: its users and its apps' AMs

    @classmethod
    def from_config(cls, cfg) -> "StreamLimits":
        return cls(cfg.max_streams, cfg.max_streams_per_user, cfg.max_streams_per_am, cfg.max_streams_per_tenant)

    def of(self, caller) -> list:
        """The edge.Limits a stream of `caller` (an access.Principal, or None: only the total)
        counts against."""
        if caller is None or caller.role not in ("user", "am"):
            return []      # masters; anonymous (TLS off: every caller is one, so only the total)
        if caller.role == "user":
            limits = [edge.Limit(("user", caller.name), self.per_user, f"user {caller.name}",
                                 "max_streams_per_user")]
        else:
            limits = [edge.Limit(("am", caller.app_id), self.per_am, f"the AM of {caller.app_id}",
                                 "max_streams_per_am")]
        tenant = getattr(caller, "tenant", "")
        if tenant:
            limits.append(edge.Limit(("tenant", tenant), self.per_tenant, f"tenant {tenant}",
                                     "max_streams_per_tenant"))
        return limits


class Notifier:
    """Per-app change signals, cheap enough to raise from any thread under any lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._subs = {}          # app_id -> {threading.Event}

    def subscribe(self, app_id: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._subs.setdefault(app_id, set()).add(event)
        return event

    def unsubscribe(self, app_id: str, event: threading.Event):
        with self._lock:
            subs = self._subs.get(app_id)
            if subs is not None:
                subs.discard(event)
                if not subs:
                    del self._subs[app_id]

    def notify(self, app_id: str):
        with self._lock:
            for event in self._subs.get(app_id, ()):
                event.set()

    def notify_many(self, app_ids):
        with self._lock:
            for app_id in app_ids:
                for event in self._subs.get(app_id, ()):
                    event.set()

    def notify_all(self):
        with self._lock:
            for subs in self._subs.values():
                for event in subs:
                    event.set()


class Watches:
    def __init__(self, max_watches: int = MAX_WATCHES, min_interval: float = MIN_INTERVAL,
                 keepalive: float = KEEPALIVE, check: float = CHECK, limits: StreamLimits = None,
                 caller=None):
        """`limits`: the caps (default: StreamLimits with total `max_watches`); `caller()`: who
        calls the RPC being served, an access.Principal (None, or no `caller`: only the total)."""
        self.notifier = Notifier()
        self.limits = limits or StreamLimits(total=max_watches)
        self.max_watches = self.limits.total
        self.min_interval = min_interval
        self.keepalive = keepalive
        self.check = check
        self.caller = caller or (lambda: None)
        self.slots = edge.Slots(self.max_watches, "max_streams")

    def stream(self, app_id: str, build, ended, alive, context):
        """The statuses of one watch (a generator for gRPC).

        `build()`: the app's status now, or None once the app is gone; `ended(status)`: the
        last one to send (app finished, AM superseded); `alive()`: None while the stream may go
        on, else (gRPC code, details, the leader's address or '') to end it with (leadership
        lost)."""
        with self.slot(context, "poll GetApp instead"):
            for status in self.follow(app_id, build, ended, lambda: _check(alive, context)):
                yield status

    @contextlib.contextmanager
    def slot(self, context, instead: str, more=()):
        """A place for one long stream (WatchApp, WatchEndpoints and Logs share them) for the
        `with` block, counted against the total, the caller's caps and the edge.Limits of `more`;
        over one the call ends RESOURCE_EXHAUSTED naming the limit and telling what to do `instead`."""
        limits = self.limits.of(self.caller()) + list(more)
        refused = self.slots.take(limits)
        if refused:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{refused}; {instead}")
        try:
            yield
        finally:
            self.slots.give(limits)

    def follow(self, app_id: str, build, ended, go_on):
        """Yield statuses until `ended` or until `go_on()` is false. Separated from the gRPC
        side so it can be tested with a fake clock of changes."""
        changed = self.notifier.subscribe(app_id)
        last, sent_at = None, 0.0
        try:
            while True:
                changed.clear()        # before building: a change from now on wakes us again
                status = build()
                if status is None:
                    return
                data = status.SerializeToString(deterministic=True)
                if data != last or time.monotonic() - sent_at >= self.keepalive:
                    yield status
                    last, sent_at = data, time.monotonic()
                if ended(status):
                    return
                time.sleep(self.min_interval)   # coalesce: what changes meanwhile goes in the next one
                if not self._wait(changed, sent_at, go_on):
                    return
        finally:
            self.notifier.unsubscribe(app_id, changed)

    def _wait(self, changed: threading.Event, sent_at: float, go_on) -> bool:
        """Until a change or the keepalive is due; False when the stream must end."""
        while True:
            if not go_on():
                return False
            left = sent_at + self.keepalive - time.monotonic()
            if left <= 0 or changed.wait(min(self.check, left)):
                return go_on()


def _check(alive, context) -> bool:
    """Whether the stream goes on: its client is still there and we still lead (else abort
    the way unary calls do, so the client finds the new leader)."""
    if not context.is_active():
        return False
    verdict = alive()
    if verdict is not None:
        code, details, leader = verdict
        if leader:
            context.set_trailing_metadata(((rpc.LEADER_METADATA, leader),))
        context.abort(code, details)
    return True


def serve(master, request, context, status_of):
    """The WatchApp stream of `request.app_id` on `master`; `status_of(record)` builds a status."""
    def build():
        record = master.table.by_id(request.app_id)
        return None if record is None else status_of(record)

    def ended(status) -> bool:
        superseded = request.attempt and status.app.am_attempt != request.attempt
        return status.app.state in TERMINAL or bool(superseded)

    return master.watches.stream(request.app_id, build, ended, lambda: leadership(master), context)


def leadership(master):
    """None while `master` leads, else (code, details, the leader's address or '') to end a stream with."""
    if master.is_serving():
        return None
    leader = master.election.leader()
    address = leader.address if leader and leader.address != master.address else ""
    return grpc.StatusCode.FAILED_PRECONDITION, f"not the leader; leader is {address or 'unknown'}", address


def going_on(master, context) -> bool:
    """Whether a stream of `master` goes on (see _check): for streams other than WatchApp's."""
    return _check(lambda: leadership(master), context)
