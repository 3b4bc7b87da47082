"""The AM's scaling: which instances a scale-down removes, and the autoscaler's decisions
(thresholds, bounds, cooldown), with fake nodes and a fake clock; no etcd."""
import pytest

from gaia_common.pb import master_pb2, node_pb2, types_pb2
from gaia_am import scaling
from gaia_am.am import ApplicationMaster

RUNNING = types_pb2.CONTAINER_STATE_RUNNING


def bounds(low=1, high=5, target=50.0, cooldown=10.0):
    return types_pb2.Autoscale(min=low, max=high, metric="cpu", target=target, cooldown_seconds=cooldown)


def app_status(count, remove=(), autoscale=None, cpu_request=200):
    record = types_pb2.AppRecord(app_id="a-1", am_attempt=1)
    record.spec.name, record.spec.instances = "a", count
    record.spec.resources.request.cpu_millis = cpu_request
    record.remove_instances.extend(remove)
    if autoscale is not None:
        record.spec.autoscale.CopyFrom(autoscale)
    status = master_pb2.AppStatus(app=record, epoch=3)
    for i in range(count):
        view = status.instances.add()
        view.allocation.CopyFrom(types_pb2.Allocation(app_id="a-1", instance_id=str(i), node_address="n:1"))
        view.status.CopyFrom(types_pb2.ContainerStatus(container_id=f"a-1.{i}.0", instance_id=str(i), state=RUNNING))
    return status


# ---- scale-down ----

def ids(views):
    return [v.allocation.instance_id for v in views]


def test_scale_down_takes_the_newest_by_number():
    views = list(app_status(12).instances)
    assert ids(scaling.leaving(views, [], 3)) == ["11", "10", "9"]   # 11 > 9 as numbers, not text


def test_scale_down_takes_named_instances_first_then_newest():
    views = list(app_status(5).instances)
    assert sorted(ids(scaling.leaving(views, ["1", "3"], 2))) == ["1", "3"]
    assert ids(scaling.leaving(views, ["1"], 2)) == ["1", "4"]
    assert ids(scaling.leaving(views, ["7"], 1)) == ["4"]   # a name no longer held is ignored


class FakeNodes:
    def __init__(self, usage=None):
        self.stopped, self.started, self.usage = [], [], usage or {}

    def stop(self, address, epoch, cid, remove=True):
        self.stopped.append((cid, remove))

    def start(self, address, epoch, spec):
        self.started.append(spec.container_id)

    def start_later(self, address, epoch, spec, on_error):
        self.start(address, epoch, spec)

    def report(self, address, timeout=3.0):
        report = node_pb2.NodeReport()
        for cid, millis in self.usage.items():
            report.containers.add(container_id=cid, state=RUNNING).usage.cpu_millis = millis
        return report

    def close(self):
        pass


class FakeClient:
    def __init__(self):
        self.calls = []

    def call(self, method, request):
        self.calls.append((method, request))


def test_am_scale_down_stops_and_releases_the_named_instances():
    am = ApplicationMaster(FakeClient(), "a-1", 1)
    am.nodes = FakeNodes()
    status = app_status(4, remove=["0", "2"])
    status.app.spec.instances = 2
    am.reconcile(status)
    assert sorted(cid for cid, _ in am.nodes.stopped) == ["a-1.0.0", "a-1.2.0"]
    method, request = am.client.calls[0]
    assert method == "ReleaseContainers" and sorted(request.instance_ids) == ["0", "2"]


# ---- the decision ----

@pytest.mark.parametrize("instances, measured, percent, wanted", [
    (1, 1, 150, 3),     # 1 x 150 / 50
    (2, 2, 75, 3),      # ceil(2 x 1.5)
    (3, 3, 52, 3),      # within 10% of the target: no change
    (3, 3, 44, 3),
    (3, 3, 40, 3),      # ceil(3 x 0.8) = 3
    (4, 4, 20, 2),      # ceil(4 x 0.4)
    (3, 3, 0, 1),       # idle: down to min
    (2, 2, 400, 5),     # bounded by max
    (3, 2, 0, 1),       # one stopped (not measured) stays; the measured two go to 0... min 1
    (4, 2, 100, 5),     # two not measured kept, the two measured double: 2 + 4 -> max 5
])
def test_desired_count(instances, measured, percent, wanted):
    assert scaling.desired_count(instances, measured, percent, bounds()) == wanted


def test_desired_count_respects_min_above_the_load():
    assert scaling.desired_count(3, 3, 0, bounds(low=2)) == 2


# ---- the autoscaler: window, cooldown, calls ----

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def autoscaler(usage):
    am = ApplicationMaster(FakeClient(), "a-1", 1)
    clock = Clock()
    scaler = scaling.Autoscaler(am, nodes=FakeNodes(usage), clock=clock)
    return scaler, clock


def run_for(scaler, clock, status, seconds):
    scaler.status = status
    for _ in range(int(seconds)):
        clock.now += 1
        scaler.tick()


def test_load_above_target_scales_up_after_the_cooldown_once():
    scaler, clock = autoscaler({"a-1.0.0": 300})   # 150% of a 200m request
    status = app_status(1, autoscale=bounds(high=3, cooldown=10))
    run_for(scaler, clock, status, 9)
    assert scaler.am.client.calls == []            # a new AM waits out a cooldown first
    run_for(scaler, clock, status, 1)
    (method, request), = scaler.am.client.calls
    assert method == "AutoscaleApp" and request.instances == 3 and request.attempt == 1
    assert "150%" in request.reason
    run_for(scaler, clock, status, 9)              # the master's answer not seen yet: no second change
    assert len(scaler.am.client.calls) == 1


def test_decision_needs_a_full_window_of_the_same_containers():
    scaler, clock = autoscaler({"a-1.0.0": 300})
    status = app_status(1, autoscale=bounds(high=3, cooldown=1))
    clock.now += 100                                # long past any cooldown
    run_for(scaler, clock, status, 2)
    assert scaler.am.client.calls == []             # 2 s of samples < the 3 s window
    scaler._nodes.usage = {"a-1.0.1": 300}           # restarted: a new container starts over
    status.instances[0].status.container_id = "a-1.0.1"
    run_for(scaler, clock, status, 2)
    assert scaler.am.client.calls == []
    run_for(scaler, clock, status, 1)
    assert scaler.am.client.calls[0][1].instances == 3


def test_load_gone_scales_down_to_min():
    scaler, clock = autoscaler({f"a-1.{i}.0": 5 for i in range(3)})
    status = app_status(3, autoscale=bounds(low=1, high=3, cooldown=3))
    run_for(scaler, clock, status, 3)
    assert scaler.am.client.calls[0][1].instances == 1


def test_near_target_makes_no_call():
    scaler, clock = autoscaler({f"a-1.{i}.0": 105 for i in range(2)})   # 52.5% of 200m
    run_for(scaler, clock, app_status(2, autoscale=bounds(cooldown=1)), 20)
    assert scaler.am.client.calls == []


def test_no_decision_while_a_scale_is_under_way_or_a_node_is_silent():
    scaler, clock = autoscaler({"a-1.0.0": 300})
    status = app_status(1, autoscale=bounds(high=3, cooldown=1))
    status.app.spec.instances = 2                   # asked for 2, holds 1: still growing
    run_for(scaler, clock, status, 20)
    assert scaler.am.client.calls == []
    status = app_status(2, autoscale=bounds(high=3, cooldown=1))   # instance 1's usage unknown
    run_for(scaler, clock, status, 20)
    assert scaler.am.client.calls == []


def test_stopped_instances_are_not_measured():
    scaler, clock = autoscaler({"a-1.0.0": 0})
    status = app_status(2, autoscale=bounds(low=1, high=3, cooldown=1))
    status.instances[1].allocation.stopped = True
    run_for(scaler, clock, status, 5)
    assert scaler.am.client.calls[0][1].instances == 1


def test_without_autoscale_or_cpu_request_nothing_is_measured():
    scaler, clock = autoscaler({"a-1.0.0": 300})
    run_for(scaler, clock, app_status(1), 40)
    run_for(scaler, clock, app_status(1, autoscale=bounds(cooldown=1), cpu_request=0), 40)
    assert scaler.am.client.calls == []


def test_observe_starts_the_thread_only_for_autoscaled_apps():
    scaler, _ = autoscaler({})
    scaler.observe(app_status(1))
    assert scaler._thread is None
    scaler.observe(app_status(1, autoscale=bounds()))
    assert scaler._thread is not None
    scaler.stop()
    assert not scaler._thread.is_alive()
