"""Per-instance control and scaling by id: the leader's side of ControlInstances, ScaleApp
(with instance ids) and AutoscaleApp, and what ReleaseContainers does to remove_instances.

The master only records intent in the app's allocations and record; the AM acts on it
(stops, restarts, removes containers). Every check reads the table under its lock and writes
before letting go of it, so an instance the AM releases meanwhile is never written back.
"""
from gaia_common import spec as spec_mod
from gaia_common.pb import master_pb2, types_pb2
from gaia_master.app_table import TERMINAL, Conflict, state_name
from gaia_master.node_view import instance_order, latest_container, start_counter

# One call's ids must fit in one fenced transaction (etcd allows ~120 ops; the record is one).
MAX_IDS = 100
ACTIONS = {master_pb2.INSTANCE_ACTION_STOP: "stop", master_pb2.INSTANCE_ACTION_START: "start",
           master_pb2.INSTANCE_ACTION_RESTART: "restart", master_pb2.INSTANCE_ACTION_DELETE: "delete"}


def control(table, name: str, action: int, instance_ids, containers) -> types_pb2.AppRecord:
    """Stop, start, restart or delete instances of app `name`. `containers`: the app's
    container statuses (a restart starts above the newest one's counter)."""
    if action not in ACTIONS:
        raise spec_mod.SpecError("action", "must be stop, start, restart or delete")
    ids = _distinct(instance_ids)
    if not ids:
        raise spec_mod.SpecError("instance_ids", "name at least one instance")
    with table.lock:
        record = _active(table, name)
        held = _held(table, record)
        _check_known(record, held, ids)
        if action == master_pb2.INSTANCE_ACTION_DELETE:
            return _delete(table, record, ids)
        changed = [a for a in (_changed(held[i], action, containers) for i in ids) if a is not None]
        return table.change_instances(record, changed=changed) if changed else record


def scale(table, name: str, instances: int, instance_ids=(), app_id: str = "") -> types_pb2.AppRecord:
    """Set the app's instance count; with ids, the instances a scale-down removes first.
    `app_id`: only that submission of `name` (an AM's call)."""
    if not 0 <= instances <= spec_mod.MAX_INSTANCES:
        raise spec_mod.SpecError("instances", f"must be between 0 and {spec_mod.MAX_INSTANCES}")
    ids = _distinct(instance_ids)
    with table.lock:
        record = _active(table, name)
        if app_id and record.app_id != app_id:
            raise Conflict("stale", f"application {name!r} was replaced")
        if instances < record.spec.gang:
            raise spec_mod.SpecError("instances", f"{instances} is below the app's gang of {record.spec.gang}")
        held = _held(table, record)
        if ids:
            _check_known(record, held, ids)
            if len(ids) != len(held) - instances:
                raise spec_mod.SpecError("instance_ids", f"{len(ids)} given, but scaling the {len(held)} instances "
                                                         f"held to {instances} removes {max(0, len(held) - instances)}")
            remove = ids
        else:  # earlier choices still stand while a scale-down is left to do
            remove = [i for i in record.remove_instances if i in held] if instances < len(held) else []
        return table.change_instances(record, spec_changes={"instances": instances}, remove_instances=remove)


def autoscale(table, record, instances: int) -> types_pb2.AppRecord:
    """The AM's autoscaler sets the count, within the spec's autoscale bounds."""
    if not record.spec.HasField("autoscale"):
        raise spec_mod.SpecError("autoscale", f"application {record.spec.name!r} has no autoscale settings")
    bounds = record.spec.autoscale
    if not bounds.min <= instances <= bounds.max:
        raise spec_mod.SpecError("instances", f"{instances} is outside the app's autoscale bounds "
                                              f"[{bounds.min}, {bounds.max}]")
    return scale(table, record.spec.name, instances, app_id=record.app_id)


def release(table, record, instance_ids) -> types_pb2.AppRecord:
    """The AM released these instances: they leave remove_instances in the same write."""
    with table.lock:
        record = table.by_id(record.app_id) or record
        ids = set(instance_ids)
        left = [i for i in record.remove_instances if i not in ids]
        if record.state in TERMINAL or len(left) == len(record.remove_instances):
            table.release(record.app_id, list(instance_ids))
            return table.by_id(record.app_id)
        return table.change_instances(record, released=list(instance_ids), remove_instances=left)


def control_events(action: int, instance_ids) -> list:
    """The user's request, for `gaia events` (what the AM then did is its own events)."""
    return [types_pb2.AppEvent(kind=f"instance.{ACTIONS[action]}", instance_id=str(i), cause="user")
            for i in instance_ids]


def scale_event(before: int, record, cause: str, reason: str = "") -> types_pb2.AppEvent:
    removing = f", removing {', '.join(record.remove_instances)} first" if record.remove_instances else ""
    message = f"{before} -> {record.spec.instances} instances{removing}" + (f": {reason}" if reason else "")
    return types_pb2.AppEvent(kind="scale", cause=cause, message=message)


# ---- helpers ----

def _delete(table, record, ids: list) -> types_pb2.AppRecord:
    """Release the instances and shrink the app by as many, in one transaction: the AM never
    sees the app one short and grows it back."""
    left = max(0, record.spec.instances - len(ids))
    if left < record.spec.gang:
        raise spec_mod.SpecError("instance_ids", f"deleting {len(ids)} leaves {left} instances, "
                                                 f"below the app's gang of {record.spec.gang}")
    remove = [i for i in record.remove_instances if i not in ids]
    return table.change_instances(record, released=ids, spec_changes={"instances": left}, remove_instances=remove)


def _changed(alloc, action: int, containers):
    """A copy of `alloc` with the action applied, or None when it already is so."""
    new = types_pb2.Allocation()
    new.CopyFrom(alloc)
    if action == master_pb2.INSTANCE_ACTION_STOP:
        new.stopped = True
    elif action == master_pb2.INSTANCE_ACTION_START:
        new.stopped = False
    else:  # restart: a container counted below restart_from is replaced; a stopped one runs again
        latest = latest_container(containers, alloc.instance_id)
        newest = start_counter(latest.container_id) if latest is not None else -1
        new.stopped = False
        new.restart_from = max(alloc.restart_from, newest + 1)
    return None if new == alloc else new


def _active(table, name: str):
    record = table.get(name)
    if record.state in TERMINAL:
        raise Conflict("terminal", f"application {name!r} is {state_name(record.state)}")
    return record


def _held(table, record) -> dict:
    return {i: a for i, a in table.app_allocations(record.app_id).items() if i != "am"}


def _check_known(record, held: dict, ids: list):
    unknown = [i for i in ids if i not in held]
    if unknown:
        known = ", ".join(sorted(held, key=instance_order)) or "none"
        raise spec_mod.SpecError("instance_ids", f"application {record.spec.name!r} has no instance "
                                                 f"{', '.join(unknown)} (it has {known})")


def _distinct(instance_ids) -> list:
    ids = [str(i) for i in instance_ids]
    if len(set(ids)) != len(ids):
        raise spec_mod.SpecError("instance_ids", "an instance is named twice")
    if len(ids) > MAX_IDS:
        raise spec_mod.SpecError("instance_ids", f"at most {MAX_IDS} at once")
    return ids
