"""What the AM did, reported to the master as the app's events (`gaia events APP`), and the
user failures it charges to retry_times.

Plain events (a platform restart, a move, a scale, a failed instance) are best-effort: a
thread of their own sends them in batches, so reconciling never waits on the master, and the
buffer is bounded (when full, the oldest go first).

A charge is a `restart` event with platform=false: the master counts it in the instance's
Allocation.charged in the same write. The AM restarts such an instance only once the master
has the charge, so the count survives the AM: a new attempt goes on from the persisted value.
Its message starts with the container id ("<container_id>: ..."); the master charges one
container once, so an AM that reports again a failure its predecessor reported (it cannot
know) or a retried report whose answer was lost costs the user nothing.
"""
import collections
import logging
import threading
import time

import grpc

from gaia_common.client import GaiaError
from gaia_common.pb import master_pb2, types_pb2

log = logging.getLogger(__name__)
MAX_BUFFER = 500       # plain events waiting; charges are never dropped (one per failed instance)
BATCH = 30             # what the master writes in one transaction
RETRY_PAUSE = 1.0      # after the master could not be reached
UNKNOWN = -1           # a charge the master refused: its count is estimated
TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.FAILED_PRECONDITION,
             grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED)


class EventReporter:
    def __init__(self, client, app_id: str, attempt: int, on_charged=None):
        self.client = client
        self.app_id = app_id
        self.attempt = attempt
        self.on_charged = on_charged or (lambda: None)   # wakes the AM's loop: it may restart now
        self.dropped = 0
        self._cond = threading.Condition()
        self._plain = collections.deque()
        self._charges = collections.OrderedDict()   # container_id -> its restart event, unsent
        self._charged = {}                          # container_id -> the instance's count once stored
        self._closing = False
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name="am-events", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 3.0):
        """Send what is left, for up to `timeout` seconds (the AM is exiting)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- what the AM reports ----

    def report(self, kind: str, instance_id: str = "", cause: str = "", message: str = "", platform: bool = True):
        """A plain event, best-effort."""
        event = types_pb2.AppEvent(at=time.time(), kind=kind, instance_id=instance_id, cause=cause,
                                   message=message, platform=platform, am_attempt=self.attempt)
        with self._cond:
            if len(self._plain) >= MAX_BUFFER:
                self._plain.popleft()
                self.dropped += 1
            self._plain.append(event)
            self._cond.notify()

    def charge(self, instance_id: str, container_id: str, cause: str, message: str = ""):
        """The instance's charged count including this container's failure, once the master has
        stored it; None until then (the charge is sent once, in the background)."""
        with self._cond:
            if container_id in self._charged:
                return self._charged[container_id]
            if container_id not in self._charges:
                self._charges[container_id] = types_pb2.AppEvent(
                    at=time.time(), kind="restart", instance_id=instance_id, cause=cause, platform=False,
                    message=f"{container_id}: {message or cause}", am_attempt=self.attempt)
                self._cond.notify()
        return None

    def idle(self) -> bool:
        """Nothing is waiting to be sent."""
        with self._cond:
            return not (self._plain or self._charges)

    # ---- sending ----

    def _run(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._plain or self._charges or self._closing)
                if self._closing and not (self._plain or self._charges):
                    return
            if not self.flush() and not self._closing:
                time.sleep(RETRY_PAUSE)

    def flush(self) -> bool:
        """Send one batch of what is waiting (the thread's work; tests call it). False when the
        master could not be reached (the batch waits for the next try)."""
        with self._cond:
            charges = list(self._charges.items())[:BATCH]
            plain = [self._plain.popleft() for _ in range(min(len(self._plain), BATCH - len(charges)))]
        if not charges and not plain:
            return True
        events = sorted([e for _, e in charges] + plain, key=lambda e: e.at)
        try:
            status = self.client.call("RecordEvents", master_pb2.EventsReport(
                app_id=self.app_id, attempt=self.attempt, events=events))
        except GaiaError as e:
            return self._failed(e, charges, plain)
        self._stored(charges, status)
        return True

    def _stored(self, charges, status):
        counts = {v.allocation.instance_id: v.allocation.charged for v in status.instances}
        with self._cond:
            for cid, event in charges:
                self._charges.pop(cid, None)
                self._charged[cid] = counts.get(event.instance_id, UNKNOWN)
        if charges:
            self.on_charged()

    def _failed(self, error: GaiaError, charges, plain) -> bool:
        if error.code in TRANSIENT:   # no master for a while: keep them (charges stay queued)
            with self._cond:
                for event in reversed(plain):
                    if len(self._plain) < MAX_BUFFER:
                        self._plain.appendleft(event)
            return False
        # refused for good (attempt superseded, app gone): nothing to wait for any more
        log.warning("events of %s not recorded: %s", self.app_id, error.message)
        with self._cond:
            for cid, _ in charges:
                self._charges.pop(cid, None)
                self._charged[cid] = UNKNOWN
        if charges:
            self.on_charged()
        return True
