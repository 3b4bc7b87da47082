"""Per-instance control and scaling by id: the master's rules (over a fake fenced store) and
the AM keeper carrying them out (fake nodes); no etcd."""
import time

import pytest

from gaia_common import spec as spec_mod
from gaia_common.keys import Keys
from gaia_common.pb import master_pb2, types_pb2
from gaia_am import control
from gaia_am.am import ApplicationMaster
from gaia_master import instance_ops
from gaia_master.app_table import AppTable, Conflict
from tests.unit.test_app_table import FakeStore

STOP, START = master_pb2.INSTANCE_ACTION_STOP, master_pb2.INSTANCE_ACTION_START
RESTART, DELETE = master_pb2.INSTANCE_ACTION_RESTART, master_pb2.INSTANCE_ACTION_DELETE


@pytest.fixture
def table():
    """App `web` running 4 instances (0-3), gang 2."""
    table = AppTable(Keys("c1"), FakeStore())
    spec = spec_mod.load_yaml("name: web\ninstances: 4\ngang: 2\ncommand: [sleep, '100']\n"
                              "autoscale: {min: 2, max: 6, target: 50}\n")
    record, _ = table.submit(spec, "")
    record = table.update(record, state=types_pb2.APP_STATE_RUNNING)
    table.allocate(record, [types_pb2.Allocation(app_id=record.app_id, instance_id=str(i), node_id="n1")
                            for i in range(4)], {"next_instance": 4})
    table.store.committed.clear()
    return table


def app(table):
    return table.get("web")


def allocs(table):
    return table.app_allocations(app(table).app_id)


def container(table, instance, counter):
    return types_pb2.ContainerStatus(container_id=f"{app(table).app_id}.{instance}.{counter}", instance_id=instance)


def test_stop_and_start_flag_only_the_named_instances(table):
    instance_ops.control(table, "web", STOP, ["1", "3"], [])
    assert [i for i, a in sorted(allocs(table).items()) if a.stopped] == ["1", "3"]
    assert len(table.store.committed) == 1            # one fenced transaction
    instance_ops.control(table, "web", STOP, ["1"], [])
    assert len(table.store.committed) == 1            # already stopped: nothing written
    instance_ops.control(table, "web", START, ["1"], [])
    assert [i for i, a in sorted(allocs(table).items()) if a.stopped] == ["3"]


def test_restart_starts_above_the_newest_container(table):
    containers = [container(table, "2", 0), container(table, "2", 4), container(table, "1", 9)]
    instance_ops.control(table, "web", RESTART, ["2"], containers)
    assert allocs(table)["2"].restart_from == 5
    instance_ops.control(table, "web", RESTART, ["0"], [])     # no container yet
    assert allocs(table)["0"].restart_from == 0 and not allocs(table)["1"].restart_from


def test_restart_runs_a_stopped_instance_again(table):
    instance_ops.control(table, "web", STOP, ["2"], [])
    instance_ops.control(table, "web", RESTART, ["2"], [container(table, "2", 1)])
    assert not allocs(table)["2"].stopped and allocs(table)["2"].restart_from == 2


def test_delete_releases_and_shrinks_in_one_transaction(table):
    record = instance_ops.control(table, "web", DELETE, ["1"], [])
    assert record.spec.instances == 3 and sorted(allocs(table)) == ["0", "2", "3"]
    (ops,) = table.store.committed
    assert ("delete", f"/gaia/c1/allocations/{record.app_id}/1") in ops
    assert ops[-1][1] == "/gaia/c1/apps/web"
    assert table.index.app_held[record.app_id] == 3


def test_delete_below_the_gang_is_refused(table):
    instance_ops.control(table, "web", DELETE, ["0", "1"], [])
    with pytest.raises(spec_mod.SpecError) as e:
        instance_ops.control(table, "web", DELETE, ["2"], [])
    assert e.value.field == "instance_ids" and "gang of 2" in str(e.value)


@pytest.mark.parametrize("ids, words", [(["9"], "no instance 9"), (["am"], "no instance am"),
                                        (["1", "1"], "named twice"), ([], "at least one")])
def test_bad_ids_are_invalid_argument(table, ids, words):
    with pytest.raises(spec_mod.SpecError) as e:
        instance_ops.control(table, "web", STOP, ids, [])
    assert e.value.field == "instance_ids" and words in str(e.value)
    assert table.store.committed == []


def test_control_of_a_finished_app_is_refused(table):
    table.update(app(table), state=types_pb2.APP_STATE_KILLED)
    with pytest.raises(Conflict):
        instance_ops.control(table, "web", STOP, ["0"], [])


def test_scale_by_ids_records_what_the_am_removes_first(table):
    record = instance_ops.scale(table, "web", 2, ["0", "2"])
    assert record.spec.instances == 2 and list(record.remove_instances) == ["0", "2"]
    assert len(allocs(table)) == 4                   # the AM stops and releases them
    record = instance_ops.release(table, record, ["0"])
    assert list(record.remove_instances) == ["2"] and "0" not in allocs(table)


@pytest.mark.parametrize("instances, ids, words", [(2, ["0"], "removes 2"), (3, ["0", "1"], "removes 1"),
                                                   (4, ["0"], "removes 0"), (2, ["0", "7"], "no instance 7")])
def test_scale_ids_must_exist_and_match_the_shrink(table, instances, ids, words):
    with pytest.raises(spec_mod.SpecError) as e:
        instance_ops.scale(table, "web", instances, ids)
    assert e.value.field == "instance_ids" and words in str(e.value)


def test_scale_without_ids_drops_choices_once_nothing_is_left_to_remove(table):
    instance_ops.scale(table, "web", 3, ["1"])
    assert list(instance_ops.scale(table, "web", 2).remove_instances) == ["1"]   # still shrinking
    assert list(instance_ops.scale(table, "web", 5).remove_instances) == []


def test_autoscale_is_bounded_by_the_spec(table):
    assert instance_ops.autoscale(table, app(table), 6).spec.instances == 6
    with pytest.raises(spec_mod.SpecError) as e:
        instance_ops.autoscale(table, app(table), 1)
    assert e.value.field == "instances" and "[2, 6]" in str(e.value)
    plain = types_pb2.AppRecord()
    plain.CopyFrom(app(table))
    plain.spec.ClearField("autoscale")
    with pytest.raises(spec_mod.SpecError):
        instance_ops.autoscale(table, plain, 3)


# ---- the AM keeper ----

class FakeNodes:
    def __init__(self):
        self.started, self.stopped = [], []

    def start(self, address, epoch, spec):
        self.started.append(spec.container_id)

    def start_later(self, address, epoch, spec, on_error):
        self.start(address, epoch, spec)

    def stop(self, address, epoch, cid, remove=True):
        self.stopped.append((cid, remove))


class FakeClient:
    def __init__(self):
        self.calls = []

    def call(self, method, request):
        self.calls.append((method, request))


def am_status(state, counter=0, stopped=False, restart_from=0, finished_at=0.0):
    spec = spec_mod.load_yaml("name: a\ninstances: 1\nretry_times: 0\ncommand: ['x']\n")
    status = master_pb2.AppStatus(app=types_pb2.AppRecord(app_id="a-1", spec=spec, am_attempt=1), epoch=5)
    view = status.instances.add()
    view.allocation.CopyFrom(types_pb2.Allocation(app_id="a-1", instance_id="0", node_id="n", node_address="n:1",
                                                  stopped=stopped, restart_from=restart_from))
    view.status.CopyFrom(types_pb2.ContainerStatus(container_id=f"a-1.0.{counter}", instance_id="0", state=state,
                                                   finished_at=finished_at))
    return status


def make_am():
    am = ApplicationMaster(FakeClient(), "a-1", 1)
    am.nodes = FakeNodes()
    return am


def test_stopped_instance_is_stopped_kept_and_not_restarted():
    am = make_am()
    am.reconcile(am_status(types_pb2.CONTAINER_STATE_RUNNING, stopped=True))
    assert am.nodes.stopped == [("a-1.0.0", False)]     # its status stays: shown as stopped
    am.reconcile(am_status(types_pb2.CONTAINER_STATE_STOPPED, stopped=True))
    am.reconcile(am_status(types_pb2.CONTAINER_STATE_FAILED, stopped=True))
    assert am.nodes.started == [] and len(am.nodes.stopped) == 1 and am.client.calls == []


def test_started_again_at_once_and_uncharged():
    am = make_am()   # retry_times 0 and a stop just now: a charged restart would wait or fail
    am.reconcile(am_status(types_pb2.CONTAINER_STATE_STOPPED, counter=3, finished_at=time.time()))
    assert am.nodes.stopped == [("a-1.0.3", True)] and am.nodes.started == ["a-1.0.4"]


def test_restart_from_replaces_a_running_container_with_that_counter():
    am = make_am()
    am.reconcile(am_status(types_pb2.CONTAINER_STATE_RUNNING, counter=2, restart_from=3))
    assert am.nodes.stopped == [("a-1.0.2", True)] and am.nodes.started == ["a-1.0.3"]
    am.reconcile(am_status(types_pb2.CONTAINER_STATE_RUNNING, counter=2, restart_from=3))
    assert am.nodes.started == ["a-1.0.3"]            # asked already; the node has not reported it
    am.reconcile(am_status(types_pb2.CONTAINER_STATE_RUNNING, counter=3, restart_from=3))
    assert am.nodes.started == ["a-1.0.3"] and len(am.nodes.stopped) == 1


def test_keep_leaves_ordinary_instances_to_the_keeper():
    am = make_am()
    status = am_status(types_pb2.CONTAINER_STATE_RUNNING)
    assert control.keep(am, status, status.instances[0]) is False
