"""The application table and its allocations: owned by the leader, kept in memory, fenced to etcd.

Only the leader writes apps/ and allocations/, so while it leads its memory is the truth;
a new leader reloads both from etcd before it answers anything. Every change goes to etcd
first (fenced) and into memory only once committed.
"""
import secrets
import threading
import time

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master.scheduling import writer
from gaia_master.scheduling.index import AllocationIndex

TERMINAL = (types_pb2.APP_STATE_SUCCEEDED, types_pb2.APP_STATE_FAILED, types_pb2.APP_STATE_KILLED)


class Conflict(Exception):
    """The change contradicts the table (duplicate name, unknown app...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code   # "exists" | "not_found" | "terminal" | "stale"


class AppTable:
    def __init__(self, keys: Keys, store):
        self.keys = keys
        self.store = store
        self.lock = threading.RLock()
        self.apps = {}          # name -> AppRecord
        self.allocations = {}   # app_id -> {instance_id: Allocation}
        self.by_key = {}        # idempotency key -> app_id
        self.names = {}         # app_id -> name
        self.index = AllocationIndex()   # sums of the allocations, kept current for the scheduler
        # called with an app_id after its record or allocations changed in memory (under this
        # lock: must be quick; WatchApp streams wake on it)
        self.on_change = lambda app_id: None

    # ---- loading ----

    def load(self, etcd):
        apps, allocations = {}, {}
        for value, _ in etcd.get_prefix(self.keys.apps):
            record = types_pb2.AppRecord()
            record.ParseFromString(value)
            apps[record.spec.name] = record
        for value, _ in etcd.get_prefix(self.keys.allocations):
            alloc = types_pb2.Allocation()
            alloc.ParseFromString(value)
            allocations.setdefault(alloc.app_id, {})[alloc.instance_id] = alloc
        for record in apps.values():
            _past_allocations(record, allocations.get(record.app_id, {}))
        with self.lock:
            self.apps, self.allocations = apps, allocations
            self.by_key = {r.idempotency_key: r.app_id for r in apps.values() if r.idempotency_key}
            self.names = {r.app_id: r.spec.name for r in apps.values()}
            self.index.clear()
            for record in apps.values():
                for alloc in allocations.get(record.app_id, {}).values():
                    self.index.add(alloc, record.spec.pool, record.spec.priority)

    # ---- reads ----

    def get(self, name: str) -> types_pb2.AppRecord:
        with self.lock:
            record = self.apps.get(name)
        if record is None:
            raise Conflict("not_found", f"no application named {name!r}")
        return record

    def by_id(self, app_id: str):
        with self.lock:
            return self.apps.get(self.names.get(app_id, ""))

    def records(self) -> list:
        with self.lock:
            return sorted(self.apps.values(), key=lambda r: r.spec.name)

    def app_allocations(self, app_id: str) -> dict:
        with self.lock:
            return dict(self.allocations.get(app_id, {}))

    def allocation(self, app_id: str, instance_id: str):
        """One allocation or None, without copying the app's (a pass over a million
        containers looks each one up)."""
        with self.lock:
            return self.allocations.get(app_id, {}).get(instance_id)

    def all_allocations(self) -> list:
        with self.lock:
            return [a for by_app in self.allocations.values() for a in by_app.values()]

    # ---- changes ----

    def submit(self, spec: types_pb2.AppSpec, idempotency_key: str):
        """Store a new app; returns (record, existed). A seen key returns the app it made."""
        with self.lock:
            if idempotency_key and idempotency_key in self.by_key:
                return self.by_id(self.by_key[idempotency_key]), True
            old = self.apps.get(spec.name)
            if old is not None and old.state not in TERMINAL:
                raise Conflict("exists", f"an application named {spec.name!r} is already {state_name(old.state)}")
            record = types_pb2.AppRecord(
                app_id=f"{spec.name}-{secrets.token_hex(4)}", spec=spec, state=types_pb2.APP_STATE_PENDING,
                created_unix_ms=int(time.time() * 1000), epoch=self.store.election.epoch,
                idempotency_key=idempotency_key, version=1)
            record.versions[1].CopyFrom(spec)   # every version an instance may run, the current one too
            ops = [self.store.put(self.keys.app(spec.name), record)]
            if old is not None:  # a finished app of that name gives way; drop its leftovers
                ops += [self.store.delete(self.keys.allocation(old.app_id, i))
                        for i in self.allocations.get(old.app_id, {})]
                ops.append(self.store.delete_prefix(self.keys.app_events(old.app_id)))  # and its events
            self.store.commit(ops)
            self._forget(old)
            self.apps[spec.name] = record
            self.names[record.app_id] = spec.name
            self.on_change(record.app_id)
            if old is not None:
                self.on_change(old.app_id)
            if idempotency_key:
                self.by_key[idempotency_key] = record.app_id
            return record, False

    def update(self, record: types_pb2.AppRecord, **changes) -> types_pb2.AppRecord:
        """Write a changed copy of `record` (fields in `changes`, spec fields as spec_<name>)."""
        with self.lock:
            new = types_pb2.AppRecord()
            new.CopyFrom(self.get(record.spec.name))
            if new.app_id != record.app_id:
                raise Conflict("stale", f"application {record.spec.name!r} was replaced")
            if "state" in changes and new.state in TERMINAL:  # e.g. an AM's late report after a kill
                raise Conflict("terminal", f"application {record.spec.name!r} is already {state_name(new.state)}")
            for field, value in changes.items():
                if field.startswith("spec_"):
                    setattr(new.spec, field[5:], value)
                else:
                    setattr(new, field, value)
            new.epoch = self.store.election.epoch
            ops = [self.store.put(self.keys.app(new.spec.name), new)]
            if new.state in TERMINAL:  # a finished app holds no resources
                ops += [self.store.delete(self.keys.allocation(new.app_id, i))
                        for i in self.allocations.get(new.app_id, {})]
            self.store.commit_batches(ops)
            if new.state in TERMINAL:
                self._drop_allocations(new)
            self.apps[new.spec.name] = new
            self.on_change(new.app_id)
            return new

    def _running_copy(self, record: types_pb2.AppRecord) -> types_pb2.AppRecord:
        """A copy of the app's current record to change (call under the lock); Conflict when
        the app finished or was replaced since `record` was read."""
        current = self.get(record.spec.name)
        if current.app_id != record.app_id or current.state in TERMINAL:
            raise Conflict("stale", f"application {record.spec.name!r} is not running")
        new = types_pb2.AppRecord()
        new.CopyFrom(current)
        return new

    def allocate(self, record: types_pb2.AppRecord, allocations: list, record_changes: dict = None):
        """Store grants (and optionally an app change) in one fenced transaction."""
        with self.lock:
            new = self._running_copy(record)
            for field, value in (record_changes or {}).items():
                setattr(new, field, value)
            new.epoch = self.store.election.epoch
            epoch = self.store.election.epoch
            for a in allocations:
                a.epoch = epoch
            ops = [self.store.put(self.keys.allocation(a.app_id, a.instance_id), a) for a in allocations]
            ops.append(self.store.put(self.keys.app(new.spec.name), new))
            self.store.commit(ops)
            self._remember(new, allocations)
            return new

    def grant_batch(self, groups: list, max_ops: int, depth: int = writer.DEPTH) -> list:
        """Store many apps' grants in as few fenced transactions as fit `max_ops` each.

        `groups`: (record, allocations, record_changes, vector) per app, already checked by the
        caller (under this lock); `vector` is the allocations' common request as an array
        (None when they differ); `record_changes` None writes the allocations alone (the
        record follows in a later group). A group's allocations and app record share one
        transaction when they fit in one, so a gang is never visible half granted (the caller
        keeps gangs within one); a larger group is split. Transactions may commit in any
        order: an allocation above its record's next_instance is allowed, and `load` moves
        next_instance past it. Returns the records written.

        The transactions go through scheduling/writer.py's pipeline: this thread builds the next
        one while up to `depth` are in etcd's hands, and updates memory as each commits, in
        order; the caller holds the table's lock all along, so nobody else looks in between.
        What committed before a failure stays remembered; the failure is raised."""
        stream = self.grant_stream(depth)
        try:
            stream.send(groups, max_ops)
        finally:
            stream.flush()
        return stream.written

    def grant_stream(self, depth: int = writer.DEPTH) -> "GrantStream":
        """grant_batch over several sends (a scheduling cycle hands its plan over in parts);
        the caller holds the lock from the first send until flush."""
        return GrantStream(self, depth)

    def _transactions(self, groups: list, max_ops: int):
        """(Txn, [(record, its allocations in it, vector, whether the record was written)])
        per transaction; values are serialised here, once, straight into the request."""
        epoch = self.store.election.epoch
        compare = writer.fence(self.store)
        txn, pending = writer.Txn(compare), []
        for record, allocations, changes, vector in groups:
            new = record
            if changes is not None:
                new = types_pb2.AppRecord()
                new.CopyFrom(record)
                for field, value in changes.items():
                    setattr(new, field, value)
                new.epoch = epoch
            if txn.size and txn.size + (changes is not None) + len(allocations) > max_ops:
                yield txn, pending
                txn, pending = writer.Txn(compare), []
            if changes is not None:
                txn.put(self.keys.app(new.spec.name), new.SerializeToString())
            start = 0
            while True:   # a group larger than a transaction is split; each part is remembered
                part = allocations[start:start + max_ops - txn.size]
                self._put_allocations(txn, part, epoch)
                start += len(part)
                if start == len(allocations):
                    break
                yield txn, pending + [(new, part, vector, changes is not None)]
                txn, pending = writer.Txn(compare), []
            pending.append((new, part, vector, changes is not None))
        if txn.size:
            yield txn, pending

    def _put_allocations(self, txn, allocations: list, epoch: int) -> None:
        """Put one app's allocations (a group's are its app's: one key prefix)."""
        prefix = self.keys.app_allocations(allocations[0].app_id) if allocations else ""
        for a in allocations:
            a.epoch = epoch
            txn.put(prefix + a.instance_id, a.SerializeToString())

    def _remember(self, new, allocations, vector=None, record_written: bool = True):
        """Memory follows a committed write: the record, its allocations, the index.
        `vector`: the allocations' common request as an array, when they are new grants."""
        if record_written:
            self.apps[new.spec.name] = new
        by_app = self.allocations.setdefault(new.app_id, {})
        if vector is not None and allocations:
            ids = [a.instance_id for a in allocations]
            if by_app.keys().isdisjoint(ids):        # new grants (a cycle's): the index adds them at once
                by_app.update(zip(ids, allocations))
                self.index.add_granted(allocations, ids, new.spec.pool, new.spec.priority, vector)
                self.on_change(new.app_id)
                return
        for a in allocations:
            old = by_app.get(a.instance_id)
            if old is not None:
                self.index.remove(old, new.spec.pool)
            by_app[a.instance_id] = a
            self.index.add(a, new.spec.pool, new.spec.priority)
        self.on_change(new.app_id)

    def past_allocations(self, app_id: str) -> None:
        """Move the app's next_instance (in memory) past its allocations, when a cycle's record
        write for them may never have happened (call under the lock)."""
        record = self.by_id(app_id)
        if record is None:
            return
        fixed = types_pb2.AppRecord()
        fixed.CopyFrom(record)
        _past_allocations(fixed, self.allocations.get(app_id, {}))
        if fixed.next_instance != record.next_instance:
            self.apps[fixed.spec.name] = fixed

    def replace_allocations(self, record: types_pb2.AppRecord, allocations: list):
        """Store changed allocations of an active app (same instance ids), fenced."""
        with self.lock:
            current = self.by_id(record.app_id)
            if current is None or current.state in TERMINAL:
                raise Conflict("stale", f"application {record.spec.name!r} is not running")
            epoch = self.store.election.epoch
            for a in allocations:
                a.epoch = epoch
            self.store.commit_batches([self.store.put(self.keys.allocation(a.app_id, a.instance_id), a)
                                       for a in allocations])
            self._remember(current, allocations)

    def release(self, app_id: str, instance_ids: list):
        with self.lock:
            mine = self.allocations.get(app_id, {})
            gone = [i for i in dict.fromkeys(instance_ids) if i in mine]   # each once: a repeat is not a second delete
            self.store.commit_batches([self.store.delete(self.keys.allocation(app_id, i)) for i in gone])
            pool = self.by_id(app_id).spec.pool
            for i in gone:
                self.index.remove(mine.pop(i), pool)
            self.on_change(app_id)
            return gone

    def change_instances(self, record, changed=(), released=(), spec_changes=None, remove_instances=None):
        """Rewrite some of an app's allocations (stopped, restart_from), release others and
        change its record (spec fields in `spec_changes`; `remove_instances`: its new list),
        fenced, in one transaction when they fit (per-instance control, scaling by id)."""
        with self.lock:
            new = self._running_copy(record)
            for field, value in (spec_changes or {}).items():
                setattr(new.spec, field, value)
            if remove_instances is not None:
                del new.remove_instances[:]
                new.remove_instances.extend(remove_instances)
            new.epoch = self.store.election.epoch
            mine = self.allocations.get(new.app_id, {})
            gone = [i for i in dict.fromkeys(released) if i in mine]
            ops = [self.store.put(self.keys.allocation(a.app_id, a.instance_id), a) for a in changed]
            ops += [self.store.delete(self.keys.allocation(new.app_id, i)) for i in gone]
            ops.append(self.store.put(self.keys.app(new.spec.name), new))  # last: written once all else is
            self.store.commit_batches(ops)
            for i in gone:
                self.index.remove(mine.pop(i), new.spec.pool)
            self._remember(new, list(changed))
            return new

    def write_record(self, new: types_pb2.AppRecord, allocations: list = ()) -> types_pb2.AppRecord:
        """Store `new`, a changed copy of the app's current record made under this lock (map and
        message fields too: versions, rollout), with changed allocations of that app, fenced; in
        one transaction when they fit, the record last (rollouts)."""
        with self.lock:
            current = self.get(new.spec.name)
            if current.app_id != new.app_id or current.state in TERMINAL:
                raise Conflict("stale", f"application {new.spec.name!r} is not running")
            epoch = self.store.election.epoch
            new.epoch = epoch
            for a in allocations:
                a.epoch = epoch
            ops = [self.store.put(self.keys.allocation(a.app_id, a.instance_id), a) for a in allocations]
            ops.append(self.store.put(self.keys.app(new.spec.name), new))
            self.store.commit_batches(ops)
            self._remember(new, list(allocations))
            return new

    def commit_with(self, new: types_pb2.AppRecord, allocations=(), ops=()) -> types_pb2.AppRecord:
        """Store `new`, a changed copy of the app's current record made under this lock (finished
        apps too: their events), with changed allocations of it and other keys' `ops`, in one
        fenced transaction (events and the charges they bring)."""
        with self.lock:
            current = self.by_id(new.app_id)
            if current is None:
                raise Conflict("stale", f"application {new.spec.name!r} was replaced")
            new.epoch = self.store.election.epoch
            writes = [self.store.put(self.keys.app(new.spec.name), new)]
            writes += [self.store.put(self.keys.allocation(a.app_id, a.instance_id), a) for a in allocations]
            self.store.commit(writes + list(ops))
            self._remember(new, list(allocations))
            return new

    def _forget(self, old):
        if old is not None:
            self._drop_allocations(old)
            self.by_key.pop(old.idempotency_key, None)
            self.names.pop(old.app_id, None)

    def _drop_allocations(self, record):
        for alloc in self.allocations.pop(record.app_id, {}).values():
            self.index.remove(alloc, record.spec.pool)


def _past_allocations(record: types_pb2.AppRecord, mine: dict) -> None:
    """next_instance above every granted instance: a cycle's allocations may commit without
    the record write that follows them (its transactions commit in any order, and a leader
    can die in between), and an instance id must never be granted twice."""
    numbered = [int(i) for i in mine if i.isdigit()]
    if numbered and max(numbered) >= record.next_instance:
        record.next_instance = max(numbered) + 1


def state_name(state: int) -> str:
    return types_pb2.AppState.Name(state).replace("APP_STATE_", "").lower()


class GrantStream:
    """One pipeline for several batches of grants (AppTable.grant_batch): the transactions of
    one send go out with up to `depth` in flight, left in flight when it returns; memory
    follows each commit, in the order sent. No send waits for another: the caller writes an
    app's record once per stream (with its last allocations or after them), so no two
    transactions in flight carry the same key."""

    def __init__(self, table: AppTable, depth: int):
        self.table = table
        self.written: list = []
        self.pipeline = writer.Pipeline(writer.transport(table.store), table.store.election, depth)

    def send(self, groups: list, max_ops: int) -> None:
        for txn, done in self.table._transactions(groups, max_ops):
            self.pipeline.send(txn, lambda done=done: self._committed(done))

    def flush(self) -> None:
        self.pipeline.flush()

    def _committed(self, done: list) -> None:
        for new, allocations, vector, record_written in done:
            self.table._remember(new, allocations, vector, record_written)
            if record_written:
                self.written.append(new)
