"""An application's events: what its AM and the master did to it (restarts, moves, failures).

The leader stores them under events/<app_id>/<seq:020d>, seq from AppRecord.next_event, in one
fenced transaction with the record (so seqs are never reused, even across failovers). At most
MAX_KEPT are kept per app: each write deletes those that fell out, by one range delete. They
go with the app's record when a new submission of the same name replaces it (AppTable.submit).

Retry counting: a `restart` event with platform=false is a user failure; the same write
increments that instance's Allocation.charged. Such an event's message starts with the
container id ("<app_id>.<instance>.<counter>: ..."), and the leader remembers the last
container it charged per instance (events/<app_id>/charged/<instance_id>), so a report
repeated by a restarted AM, or by a retry whose answer was lost, is not charged twice.
"""
import logging
import queue
import threading
import time

from gaia_common import etcd as etcd_mod, spec as spec_mod
from gaia_common.pb import types_pb2
from gaia_master.app_table import Conflict
from gaia_master.store import NotLeader

log = logging.getLogger(__name__)
MAX_KEPT = 1000          # per app
LATEST = 10              # what GetApp shows
DEFAULT_LIMIT = 100      # ListEvents without a limit
PER_TXN = 30             # each event may bring an allocation and a marker: 3 ops + record + trim
MAX_PER_REPORT = 200
MAX_TEXT = 1024
QUEUE_SIZE = 10_000      # the master's own events waiting to be written


def is_charge(event) -> bool:
    """A restart the user's program caused: charged to its instance's retry_times."""
    return event.kind == "restart" and not event.platform and event.instance_id not in ("", "am")


def container_of(event, app_id: str) -> str:
    """The container id a charged restart names at the start of its message, or ''."""
    head = event.message.split(":", 1)[0].strip()
    return head if head.startswith(f"{app_id}.{event.instance_id}.") else ""


class EventLog:
    def __init__(self, keys, store, table, etcd):
        self.keys = keys
        self.store = store
        self.table = table
        self.etcd = etcd
        self._lock = threading.Lock()     # one writer of events and charge markers at a time
        self._queue = queue.Queue(QUEUE_SIZE)
        self._thread = None
        self._thread_lock = threading.Lock()
        self.on_stored = lambda events: None   # told each batch once written (the metrics)

    # ---- writing ----

    def append(self, app_id: str, events, attempt: int = 0) -> types_pb2.AppRecord:
        """Store `events` of `app_id` (an AM's report when `attempt`), charging user restarts.
        Returns the app's record as written. Raises Conflict (app gone), NotLeader."""
        if len(events) > MAX_PER_REPORT:
            raise spec_mod.SpecError("events", f"at most {MAX_PER_REPORT} per report")
        clean = [_clean(e, attempt) for e in events]
        record = self.table.by_id(app_id)
        with self._lock:
            for i in range(0, len(clean), PER_TXN):
                record = self._write(app_id, clean[i:i + PER_TXN])
        if record is None:
            raise Conflict("not_found", f"no application with id {app_id!r}")
        return record

    def record(self, app_id: str, events):
        """The master's own events (AM restarts, evictions...): queued, written by a thread of
        their own, so any thread may call this, holding any lock. Best-effort: a full queue or
        a lost leadership drops them (logged)."""
        try:
            self._queue.put_nowait((app_id, list(events)))
        except queue.Full:
            log.warning("event queue full: dropped %d events of %s", len(events), app_id)
            return
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="events", daemon=True)
                self._thread.start()

    def _drain(self):
        while True:
            app_id, events = self._queue.get()
            if not self.store.election.is_leader():
                continue  # a follower writes nothing; the new leader records its own
            try:
                self.append(app_id, events)
            except (Conflict, NotLeader) as e:
                log.info("events of %s not recorded: %s", app_id, e)
            except Exception:
                log.exception("events of %s not recorded", app_id)

    def _write(self, app_id: str, events: list):
        markers = self._markers(app_id, events)
        with self.table.lock:
            current = self.table.by_id(app_id)
            if current is None:
                raise Conflict("not_found", f"no application with id {app_id!r}")
            new = types_pb2.AppRecord()
            new.CopyFrom(current)
            charged, ops, repeats = self._charges(new, events, markers)
            kept = [e for i, e in enumerate(events) if i not in repeats]
            if not kept:
                return current   # every one was a repeat of what is stored
            for e in kept:
                e.seq = new.next_event
                new.next_event += 1
                ops.append(self.store.put(self.keys.event(app_id, e.seq), e))
            cutoff = new.next_event - MAX_KEPT
            if cutoff > 0:
                ops.append(self.store.delete_range(self.keys.app_events(app_id), self.keys.event(app_id, cutoff)))
            record = self.table.commit_with(new, charged, ops)
        self.on_stored(kept)
        return record

    def _markers(self, app_id: str, events: list) -> dict:
        """instance_id -> the container last charged to it, for the instances charged here.
        Read outside the table's lock (self._lock keeps them current: only we write them)."""
        out = {}
        for instance_id in {e.instance_id for e in events if is_charge(e)}:
            value, _ = etcd_mod.retry(lambda: self.etcd.get(self.keys.charged(app_id, instance_id)))
            if value is not None:
                marker = types_pb2.AppEvent()
                marker.ParseFromString(value)
                out[instance_id] = marker.message
        return out

    def _charges(self, record, events: list, markers: dict):
        """(changed allocations, marker ops, indexes of repeats) for the user restarts among
        `events`; a repeat of the last container charged is neither charged nor stored again."""
        allocations, repeats = {}, set()
        mine = self.table.allocations.get(record.app_id, {})
        for n, e in enumerate(events):
            if not is_charge(e):
                continue
            cid = container_of(e, record.app_id)
            if cid and markers.get(e.instance_id) == cid:
                repeats.add(n)
                continue
            alloc = allocations.get(e.instance_id)
            if alloc is None and e.instance_id in mine:
                alloc = allocations[e.instance_id] = types_pb2.Allocation()
                alloc.CopyFrom(mine[e.instance_id])
            if alloc is None:
                continue   # released meanwhile: nothing to charge
            alloc.charged += 1
            e.message += f"; charged {alloc.charged}, retry_times {record.spec.retry_times}"
            if cid:
                markers[e.instance_id] = cid
        ops = [self.store.put(self.keys.charged(record.app_id, i),
                              types_pb2.AppEvent(instance_id=i, message=markers[i]))
               for i in allocations if i in markers]
        return list(allocations.values()), ops, repeats

    # ---- reading ----

    def recent(self, app_id: str) -> list:
        """GetApp's latest few; none when etcd does not answer (the status matters more)."""
        try:
            return self.latest(app_id, LATEST)
        except etcd_mod.TRANSIENT as e:
            log.warning("events of %s not read: %s", app_id, type(e).__name__)
            return []

    def latest(self, app_id: str, limit: int = DEFAULT_LIMIT, instance_id: str = "") -> list:
        """The newest `limit` events of the app (of one instance), oldest first."""
        prefix = self.keys.app_events(app_id)
        # ':' follows '9': the range holds the seqs and not the charge markers
        response = etcd_mod.retry(lambda: self.etcd.get_range_response(
            prefix, prefix + ":", sort_order="descend", limit=0 if instance_id else limit))
        out = []
        for kv in response.kvs:
            event = types_pb2.AppEvent()
            event.ParseFromString(kv.value)
            if not instance_id or event.instance_id == instance_id:
                out.append(event)
                if len(out) == limit:
                    break
        return out[::-1]


def _clean(event, attempt: int) -> types_pb2.AppEvent:
    """A copy fit to store: texts bounded, time and AM attempt filled in."""
    if not event.kind:
        raise spec_mod.SpecError("events.kind", "is required")
    out = types_pb2.AppEvent()
    out.CopyFrom(event)
    out.kind = out.kind[:64]
    out.instance_id = out.instance_id[:64]
    out.cause = out.cause[:MAX_TEXT]
    out.message = out.message[:MAX_TEXT]
    out.at = out.at or time.time()
    out.am_attempt = attempt or out.am_attempt
    out.seq = 0
    return out
