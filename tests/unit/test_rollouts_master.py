"""The master's side of rolling updates (gaia_master/rollouts.py), over a fake fenced store."""
import pytest

from gaia_common import spec as spec_mod
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master import rollouts
from gaia_master.app_table import AppTable, Conflict
from tests.unit.test_app_table import FakeStore

S = types_pb2


def spec(command="v1", **more):
    text = f"name: web\ninstances: 3\ncommand: ['{command}']\nresources: {{request: {{cpu: 100m}}}}\n"
    text += "".join(f"{k}: {v}\n" for k, v in more.items())
    return spec_mod.load_yaml(text)


@pytest.fixture
def table():
    t = AppTable(Keys("c1"), FakeStore())
    record, _ = t.submit(spec(), "")
    allocs = [S.Allocation(app_id=record.app_id, instance_id=str(i), node_id="n", version=1) for i in range(3)]
    t.allocate(record, allocs, {"state": S.APP_STATE_RUNNING, "next_instance": 3})
    return t


def versions(table):
    return {i: a.version for i, a in table.app_allocations(table.get("web").app_id).items()}


def test_submit_writes_version_1():
    t = AppTable(Keys("c1"), FakeStore())
    record, _ = t.submit(spec(), "")
    assert record.version == 1 and list(record.versions) == [1] and record.versions[1] == record.spec


def test_full_update_makes_the_new_version_current_and_starts_a_rollout(table):
    record = rollouts.update_app(table, "web", spec("v2", instances=7), [])
    assert (record.version, record.previous_version) == (2, 1)
    assert list(record.spec.command) == ["v2"] and record.spec.instances == 3   # the count stays scale's
    assert sorted(record.versions) == [1, 2]
    r = record.rollout
    assert (r.to_version, r.from_version, r.state, list(r.instance_ids)) == (2, 1, "rolling", [])
    assert versions(table) == {"0": 1, "1": 1, "2": 1}   # the AM moves them, batch by batch


def test_canary_keeps_the_current_version(table):
    record = rollouts.update_app(table, "web", spec("v2"), ["2", "0"])
    assert record.version == 1 and list(record.spec.command) == ["v1"]
    assert list(record.versions[2].command) == ["v2"]
    assert list(record.rollout.instance_ids) == ["0", "2"] and record.rollout.to_version == 2


def test_promoting_a_canary_reuses_its_version(table):
    rollouts.update_app(table, "web", spec("v2"), ["1"])
    record = rollouts.update_app(table, "web", spec("v2"), [])
    assert record.version == 2 and record.previous_version == 1 and sorted(record.versions) == [1, 2]


@pytest.mark.parametrize("new, field", [
    (dict(name="other"), "name"), (dict(pool="ads"), "pool"), (dict(gang=2), "gang"),
    (dict(kind="batch"), "kind"),
])
def test_fixed_fields_may_not_change(table, new, field):
    text = "instances: 3\ncommand: ['v2']\nresources: {request: {cpu: 100m}}\n"
    doc = {"name": "web", **new}
    s = spec_mod.load_yaml(text + "".join(f"{k}: {v}\n" for k, v in doc.items()))
    with pytest.raises(spec_mod.SpecError) as e:
        rollouts.update_app(table, "web", s, [])
    assert e.value.field == field


def test_the_request_may_not_change(table):
    s = spec_mod.load_yaml("name: web\ninstances: 3\ncommand: ['v2']\nresources: {request: {cpu: 200m}}\n")
    with pytest.raises(spec_mod.SpecError) as e:
        rollouts.update_app(table, "web", s, [])
    assert e.value.field == "resources.request"


def test_unknown_instances_are_named(table):
    with pytest.raises(spec_mod.SpecError) as e:
        rollouts.update_app(table, "web", spec("v2"), ["1", "9"])
    assert e.value.field == "instance_ids" and "9" in e.value.problem


def test_a_finished_app_is_not_updated(table):
    table.update(table.get("web"), state=S.APP_STATE_KILLED)
    with pytest.raises(Conflict) as e:
        rollouts.update_app(table, "web", spec("v2"), [])
    assert e.value.code == "terminal"


def test_set_instance_versions_keeps_other_allocation_fields(table):
    record = table.get("web")
    mine = table.app_allocations(record.app_id)
    changed = S.Allocation()
    changed.CopyFrom(mine["1"])
    changed.charged, changed.stopped = 2, True
    table.write_record(rollouts._copy(record), [changed])
    rollouts.update_app(table, "web", spec("v2"), [])
    rollouts.set_instance_versions(table, record, ["1"], 2)
    alloc = table.app_allocations(record.app_id)["1"]
    assert (alloc.version, alloc.charged, alloc.stopped) == (2, 2, True)
    with pytest.raises(spec_mod.SpecError) as e:
        rollouts.set_instance_versions(table, record, ["1"], 5)
    assert e.value.field == "version"


def test_done_is_refused_until_every_instance_is_moved(table):
    record = rollouts.update_app(table, "web", spec("v2"), [])
    rollouts.set_instance_versions(table, record, ["0", "1"], 2)
    with pytest.raises(Conflict) as e:
        rollouts.report_rollout(table, record, "done", "")
    assert e.value.code == "stale"
    rollouts.set_instance_versions(table, record, ["2"], 2)
    record = rollouts.report_rollout(table, record, "done", "all on 2")
    assert record.rollout.state == "done" and sorted(record.versions) == [1, 2]   # 1 kept: previous
    assert rollouts.report_rollout(table, record, "done", "again").rollout.message == "all on 2"


def test_rolling_back_a_full_update_restores_the_old_spec_then_prunes(table):
    record = rollouts.update_app(table, "web", spec("v2"), [])
    rollouts.set_instance_versions(table, record, ["0"], 2)
    record = rollouts.report_rollout(table, record, "rolling_back", "instance 0 failed")
    assert (record.version, list(record.spec.command), record.rollout.state) == (1, ["v1"], "rolling_back")
    with pytest.raises(Conflict):
        rollouts.report_rollout(table, record, "rolled_back", "")   # 0 still on 2
    rollouts.set_instance_versions(table, record, ["0"], 1)
    record = rollouts.report_rollout(table, record, "rolled_back", "back on 1")
    assert record.rollout.state == "rolled_back" and sorted(record.versions) == [1]


def test_reports_follow_the_states(table):
    record = rollouts.update_app(table, "web", spec("v2"), [])
    with pytest.raises(Conflict):
        rollouts.report_rollout(table, record, "rolled_back", "")
    with pytest.raises(spec_mod.SpecError):
        rollouts.report_rollout(table, record, "paused", "")
    assert rollouts.report_rollout(table, record, "failed", "no").rollout.state == "failed"
    with pytest.raises(Conflict):
        rollouts.report_rollout(table, record, "done", "")


def test_rollback_goes_to_the_previous_version(table):
    record = rollouts.update_app(table, "web", spec("v2"), [])
    rollouts.set_instance_versions(table, record, ["0", "1", "2"], 2)
    rollouts.report_rollout(table, record, "done", "")
    record = rollouts.rollback_app(table, "web")
    assert (record.version, record.previous_version, list(record.spec.command)) == (1, 2, ["v1"])
    assert (record.rollout.to_version, record.rollout.from_version, record.rollout.state) == (1, 2, "rolling")


def test_rollback_without_a_previous_version_is_refused(table):
    with pytest.raises(Conflict) as e:
        rollouts.rollback_app(table, "web")
    assert e.value.code == "not_found"


def test_records_from_before_versions_count_as_version_1(table):
    record = table.get("web")
    old = S.AppRecord()
    old.CopyFrom(record)
    old.version = 0
    old.versions.clear()
    table.apps["web"] = old
    record = rollouts.update_app(table, "web", spec("v2"), [])
    assert (record.version, record.previous_version, sorted(record.versions)) == (2, 1, [1, 2])


def test_set_instance_versions_follows_the_rollout_in_progress(table):
    record = rollouts.update_app(table, "web", spec("v2"), [])
    rollouts.update_app(table, "web", spec("v3"), [])          # replaces the rollout to 2
    with pytest.raises(Conflict) as e:
        rollouts.set_instance_versions(table, record, ["0"], 2)   # a late batch of the old rollout
    assert e.value.code == "stale"
    assert rollouts.set_instance_versions(table, record, ["0"], 3) is not None
    assert versions(table)["0"] == 3


def test_events_say_what_the_rollout_does(table):
    record = rollouts.update_app(table, "web", spec("v2"), ["1"])
    e = rollouts.event(record, "user")
    assert (e.kind, e.cause, e.message) == ("update", "user", "rolling: version 1 -> 2 (instances 1)")
