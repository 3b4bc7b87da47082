"""Rolling updates, master side: spec versions, the app's rollout, the version each instance runs.

The master records intent only; the app's AM drives a rollout batch by batch (gaia_am/rollout.py):
  - UpdateApp adds a spec version and starts a rollout to it (of every instance, making it the
    app's current version; or of chosen instances: a canary, the current version stays);
  - RollbackApp makes the previous version current again and rolls every instance to it;
  - SetInstanceVersions (the AM, per batch) changes the version instances must run;
  - ReportRollout (the AM) moves the rollout on: rolling -> done | failed | rolling_back,
    rolling_back -> rolled_back | failed. Versions no instance needs any more are pruned when
    a rollout ends.
Version 0 means 1 everywhere: records and allocations written before versions existed.
"""
import time

from gaia_common import spec as spec_mod
from gaia_common.pb import types_pb2
from gaia_master.app_table import TERMINAL, Conflict, state_name

ROLLING, DONE, FAILED, ROLLING_BACK, ROLLED_BACK = "rolling", "done", "failed", "rolling_back", "rolled_back"
ACTIVE = (ROLLING, ROLLING_BACK)
# what an AM may report, from which state
MOVES = {DONE: (ROLLING,), FAILED: ACTIVE, ROLLING_BACK: (ROLLING,), ROLLED_BACK: (ROLLING_BACK,)}
# An update may not change these: they decide where and how the instances are held, and the
# instances already placed would not follow. (instances is scale's: an update keeps the count.)
FIXED = ("name", "pool", "gang", "kind")
# The app's record keeps every version until a rollout ends: past this, an update is refused
# (INVALID_ARGUMENT) rather than written, so the record stays below etcd's 1.5 MiB request
# limit with room for a rollback (which may swap in a version up to MAX_SPEC_BYTES larger).
MAX_RECORD_BYTES = 1024 * 1024


def version_of(v: int) -> int:
    return v or 1


# ---- users ----

def update_app(table, name: str, spec: types_pb2.AppSpec, instance_ids: list) -> types_pb2.AppRecord:
    """A new version of `name` (validated by the caller) and a rollout to it."""
    with table.lock:
        record = _active(table, name)
        _check_unchanged(record.spec, spec)
        ids = _existing_ids(table, record, instance_ids)
        new = _copy(record)
        spec = _with_count(spec, record.spec.instances)
        current = version_of(record.version)
        version = _version_for(new, spec)
        new.versions[version].CopyFrom(spec)
        if not ids:   # every instance: the new version becomes what new instances run too
            if version != current:
                new.previous_version = current
            new.spec.CopyFrom(spec)
            new.version = version
        _start_rollout(new, version, current, ids)
        _check_record_size(new)
        return table.write_record(new)


def _check_record_size(new: types_pb2.AppRecord):
    size = new.ByteSize()
    if size > MAX_RECORD_BYTES:
        raise spec_mod.SpecError("spec", f"the app would keep {len(new.versions)} versions ({size} bytes, at most "
                                         f"{MAX_RECORD_BYTES}); let the current rollout end or send a smaller spec")


def rollback_app(table, name: str) -> types_pb2.AppRecord:
    """The previous version becomes current again, and every instance rolls to it."""
    with table.lock:
        record = _active(table, name)
        new = _copy(record)
        current, previous = version_of(record.version), record.previous_version
        if not previous or previous == current or previous not in new.versions:
            raise Conflict("not_found", f"application {name!r} has no previous version to roll back to")
        new.spec.CopyFrom(_with_count(new.versions[previous], record.spec.instances))
        new.version, new.previous_version = previous, current
        _start_rollout(new, previous, current, [])
        return table.write_record(new)


# ---- the AM ----

def set_instance_versions(table, record, instance_ids: list, version: int) -> types_pb2.AppRecord:
    """The AM moves a batch: these instances must now run `version` (its keeper restarts them)."""
    with table.lock:
        record = table.by_id(record.app_id)
        new = _copy(record)
        if version_of(version) not in new.versions:
            raise spec_mod.SpecError("version", f"{version} is not a version of {record.spec.name!r} "
                                                f"(known: {sorted(new.versions)})")
        rollout = record.rollout
        target = {ROLLING: rollout.to_version, ROLLING_BACK: rollout.from_version}.get(rollout.state)
        if version_of(version) != target:   # a late call about a rollout a newer update replaced
            raise Conflict("stale", f"no rollout to version {version} in progress "
                                    f"(the rollout is {rollout.state or 'none'}, to version {target})")
        ids = _existing_ids(table, record, instance_ids)
        if not ids:
            raise spec_mod.SpecError("instance_ids", "name at least one instance")
        mine = table.app_allocations(record.app_id)
        changed = []
        for i in ids:
            if version_of(mine[i].version) != version_of(version):
                alloc = types_pb2.Allocation()
                alloc.CopyFrom(mine[i])   # the current one: other fields (charged, stopped) stay
                alloc.version = version_of(version)
                changed.append(alloc)
        if not changed:
            return record
        return table.write_record(new, changed)


def report_rollout(table, record, state: str, message: str) -> types_pb2.AppRecord:
    """The AM's word on the rollout, checked against the allocations where that is possible."""
    with table.lock:
        record = table.by_id(record.app_id)
        rollout = record.rollout
        if state not in MOVES:
            raise spec_mod.SpecError("state", f"{state!r} is not one of {', '.join(MOVES)}")
        if not rollout.state:
            raise Conflict("not_found", f"application {record.spec.name!r} has no rollout")
        if rollout.state == state:
            return record   # a repeated report (a new AM attempt, a retried call)
        if rollout.state not in MOVES[state]:
            raise Conflict("stale", f"the rollout to version {rollout.to_version} is {rollout.state}, "
                                    f"it cannot become {state}")
        _check_claim(table, record, state)
        new = _copy(record)
        new.rollout.state, new.rollout.message = state, message[:1024]
        if state == ROLLING_BACK and not rollout.instance_ids and version_of(new.version) == rollout.to_version:
            # a full update failed: new instances run the old version again
            new.spec.CopyFrom(_with_count(new.versions[rollout.from_version], record.spec.instances))
            new.version = rollout.from_version
        if state not in ACTIVE:
            _prune(new, table.app_allocations(record.app_id).values())
        return table.write_record(new)


def event(record, cause: str) -> types_pb2.AppEvent:
    """The app's event for its rollout as it now stands (for `gaia events`)."""
    r = record.rollout
    which = f" (instances {','.join(r.instance_ids)})" if r.instance_ids else ""
    kind = "rollback" if r.to_version < r.from_version or r.state in (ROLLING_BACK, ROLLED_BACK) else "update"
    message = f"{r.state}: version {r.from_version} -> {r.to_version}{which}" + (f": {r.message}" if r.message else "")
    return types_pb2.AppEvent(kind=kind, cause=cause, message=message)


# ---- helpers ----

def _active(table, name: str):
    record = table.get(name)
    if record.state in TERMINAL:
        raise Conflict("terminal", f"application {name!r} is {state_name(record.state)}")
    return record


def _copy(record) -> types_pb2.AppRecord:
    """A copy to change; versions filled in for records written before versions existed."""
    new = types_pb2.AppRecord()
    new.CopyFrom(record)
    if version_of(new.version) not in new.versions:
        new.versions[version_of(new.version)].CopyFrom(new.spec)
    return new


def _check_unchanged(old: types_pb2.AppSpec, new: types_pb2.AppSpec):
    for field in FIXED:
        if getattr(old, field) != getattr(new, field):
            raise spec_mod.SpecError(field, f"an update may not change it ({getattr(old, field)!r} -> "
                                            f"{getattr(new, field)!r}); submit a new app instead")
    if old.kind != types_pb2.APP_KIND_SERVICE:
        raise spec_mod.SpecError("kind", "rolling updates are for services")
    if old.resources.request != new.resources.request:
        # the instances hold their places at the old request; a resize would need new places
        raise spec_mod.SpecError("resources.request", "an update may not change the request (limits may change)")


def _existing_ids(table, record, instance_ids: list) -> list:
    mine = table.app_allocations(record.app_id)
    unknown = sorted({i for i in instance_ids if i not in mine or i == "am"})
    if unknown:
        raise spec_mod.SpecError("instance_ids", f"no instance {', '.join(unknown)} in {record.spec.name!r}")
    return sorted(set(instance_ids), key=lambda i: (len(i), i))


def _with_count(spec: types_pb2.AppSpec, instances: int) -> types_pb2.AppSpec:
    """`spec` at the app's current instance count (scaling is not an update's business), re-validated:
    the count must fit the new version's autoscale bounds."""
    out = types_pb2.AppSpec()
    out.CopyFrom(spec)
    out.instances = instances
    return spec_mod.validate(out)


def _version_for(record, spec) -> int:
    """The version number of `spec`: an existing identical one is reused (a canary then promoted
    to every instance leaves the canaries alone), else the next."""
    for version, known in sorted(record.versions.items()):
        if _same(known, spec):
            return version
    return max([version_of(record.version), *record.versions]) + 1


def _same(a: types_pb2.AppSpec, b: types_pb2.AppSpec) -> bool:
    a2, b2 = types_pb2.AppSpec(), types_pb2.AppSpec()
    a2.CopyFrom(a)
    b2.CopyFrom(b)
    a2.instances = b2.instances = 0
    return a2 == b2


def _start_rollout(new, to_version: int, from_version: int, ids: list):
    new.rollout.CopyFrom(types_pb2.Rollout(to_version=to_version, from_version=from_version, instance_ids=ids,
                                           state=ROLLING, started_at=time.time()))


def _check_claim(table, record, state: str):
    """done: every instance it moves runs to_version; rolled_back: none does any more. A late
    report about an earlier rollout (superseded by a new update) fails here, ABORTED."""
    rollout = record.rollout
    mine = table.app_allocations(record.app_id)
    ids = [i for i in (rollout.instance_ids or mine) if i in mine and i != "am"]
    at_to = [i for i in ids if version_of(mine[i].version) == rollout.to_version]
    if state == DONE and len(at_to) != len(ids):
        raise Conflict("stale", f"instances {sorted(set(ids) - set(at_to))} are not at version {rollout.to_version}")
    if state == ROLLED_BACK and at_to and rollout.to_version != rollout.from_version:
        raise Conflict("stale", f"instances {at_to} are still at version {rollout.to_version}")


def _prune(new, allocations):
    """Keep the versions something still needs: current, previous, and each instance's."""
    keep = {version_of(new.version), new.previous_version}
    keep |= {version_of(a.version) for a in allocations if a.instance_id != "am"}
    for version in [v for v in new.versions if v not in keep]:
        del new.versions[version]
