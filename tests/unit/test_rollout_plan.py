"""The AM's rollout planner (gaia_am/rollout.py) and the keeper's version reconciling, without etcd."""
import pytest

from gaia_common import spec as spec_mod
from gaia_common.pb import master_pb2, types_pb2
from gaia_am import rollout as ro
from gaia_am.am import ApplicationMaster
from gaia_am.containers import container_spec

S = types_pb2
NOW = 10_000.0
RUNNING, FAILED = S.CONTAINER_STATE_RUNNING, S.CONTAINER_STATE_FAILED


def app_status(n=4, to=2, frm=1, state="rolling", ids=(), update="", check=False, current=None):
    """An app of n instances on version `frm`, rolling to `to`; every container runs since long ago."""
    text = "name: web\ninstances: %d\ncommand: ['v1']\nports: [http]\n" % n
    old = spec_mod.load_yaml(text)
    extra = ("update: {%s}\n" % update if update else "") + \
            ("health_check: {kind: tcp, port: http}\n" if check else "")
    new = spec_mod.load_yaml(text.replace("v1", "v2") + extra)
    record = S.AppRecord(app_id="web-1", spec=new, version=current or to, am_attempt=1)
    record.versions[frm].CopyFrom(old)
    record.versions[to].CopyFrom(new)
    record.rollout.CopyFrom(S.Rollout(to_version=to, from_version=frm, state=state, instance_ids=list(ids)))
    status = master_pb2.AppStatus(app=record, epoch=3)
    for i in range(n):
        view = status.instances.add()
        view.allocation.CopyFrom(S.Allocation(app_id="web-1", instance_id=str(i), node_id="n", node_address="n:1",
                                              version=frm))
        run(view, frm, health="healthy" if check else "")
    return status


def run(view, version, state=RUNNING, started=NOW - 1000, health="", counter=0, **more):
    view.status.CopyFrom(S.ContainerStatus(container_id=f"web-1.{view.allocation.instance_id}.{counter}",
                                           instance_id=view.allocation.instance_id, state=state, version=version,
                                           started_at=started, health=health, **more))


def move(status, ids, version):
    for v in status.instances:
        if v.allocation.instance_id in ids:
            v.allocation.version = version


def plan(status, now=NOW, clock=None):
    return ro.plan(status, now, clock or ro.GateClock())


# ---- batches ----

def test_first_batch_is_max_unavailable_instances_in_id_order():
    d = plan(app_status(update="max_unavailable: 2"))
    assert (d.move, d.version, d.report) == (["0", "1"], 2, "")


def test_instances_already_down_count_against_the_budget_and_go_first():
    status = app_status(update="max_unavailable: 2")
    run(status.instances[3], 1, state=FAILED)
    assert plan(status).move == ["3", "0"]   # 3 is down anyway: one more may go down


def test_no_batch_while_too_many_are_down_elsewhere():
    status = app_status(ids=["0"])            # a canary of instance 0; instance 2 is down
    run(status.instances[2], 1, state=FAILED)
    assert plan(status).move == [] and plan(status).report == ""


def test_a_moved_instance_not_yet_restarted_is_in_flight():
    status = app_status(update="max_unavailable: 2")
    move(status, ["0", "1"], 2)               # the keeper has not restarted them yet
    d = plan(status)
    assert d.move == [] and d.waiting == ["0", "1"] and d.report == ""


# ---- the gate ----

def test_the_gate_holds_the_next_batch_until_running_long_enough():
    status = app_status(update="health_gate: 3")
    move(status, ["0"], 2)
    run(status.instances[0], 2, started=NOW - 1, counter=1)
    assert plan(status).waiting == ["0"]
    run(status.instances[0], 2, started=NOW - 4, counter=1)
    assert plan(status).move == ["1"]


def test_with_a_health_check_the_gate_counts_from_healthy():
    status = app_status(update="health_gate: 3", check=True)
    move(status, ["0"], 2)
    clock = ro.GateClock()
    run(status.instances[0], 2, started=NOW - 100, health="starting", counter=1)
    assert plan(status, NOW, clock).waiting == ["0"]
    run(status.instances[0], 2, started=NOW - 100, health="healthy", counter=1)
    assert plan(status, NOW + 1, clock).waiting == ["0"]      # healthy since NOW + 1
    assert plan(status, NOW + 3.5, clock).waiting == ["0"]
    assert plan(status, NOW + 4.5, clock).move == ["1"]


def test_gate_timeout_rolls_back():
    status = app_status(update="health_gate: 1, gate_timeout: 10", check=True)
    move(status, ["0"], 2)
    run(status.instances[0], 2, health="starting", counter=1)
    clock = ro.GateClock()
    assert plan(status, NOW, clock).waiting == ["0"]
    d = plan(status, NOW + 11, clock)
    assert d.report == "rolling_back" and "not through the gate" in d.message


def test_a_failing_batch_instance_rolls_back_at_once():
    status = app_status()
    move(status, ["0"], 2)
    run(status.instances[0], 2, state=FAILED, counter=1, exit_code=1)
    d = plan(status)
    assert d.report == "rolling_back" and "instance 0 failed on version 2" in d.message and "exit 1" in d.message


def test_an_unhealthy_batch_instance_fails_the_gate():
    status = app_status(check=True)
    move(status, ["0"], 2)
    run(status.instances[0], 2, health="unhealthy", counter=1)
    assert plan(status).report == "rolling_back"


def test_platform_faults_do_not_fail_the_gate():
    status = app_status()
    move(status, ["0"], 2)
    run(status.instances[0], 2, state=FAILED, counter=1, platform_reason="evicted: memory reclaim")
    d = plan(status)
    assert d.report == "" and d.waiting == ["0"]


def test_without_rollback_a_failed_gate_fails_the_rollout():
    status = app_status(update="rollback: false")
    move(status, ["0"], 2)
    run(status.instances[0], 2, state=FAILED, counter=1)
    assert plan(status).report == "failed"


def test_going_back_to_an_older_version_does_not_roll_back_on_failure():
    status = app_status(to=1, frm=2)    # `gaia rollback`: from 2 back to 1
    for v in status.instances:
        v.allocation.version = 2
        run(v, 2)
    move(status, ["0"], 1)
    run(status.instances[0], 1, state=FAILED, counter=1)
    assert plan(status).report == "failed"


# ---- the end, and going back ----

def test_all_through_the_gate_is_done():
    status = app_status()
    move(status, ["0", "1", "2", "3"], 2)
    for v in status.instances:
        run(v, 2, counter=1)
    d = plan(status)
    assert d.report == "done" and d.move == []


def test_rolling_back_moves_the_changed_instances_back_then_reports():
    status = app_status(state="rolling_back", update="max_unavailable: 1", current=1)
    move(status, ["0", "1"], 2)
    for v in status.instances[:2]:
        run(v, 2, counter=1)
    assert (plan(status).move, plan(status).version) == (["0"], 1)
    move(status, ["0", "1"], 1)
    for v in status.instances[:2]:
        run(v, 1, counter=2)
    assert plan(status).report == "rolled_back"


def test_going_back_goes_on_past_an_instance_failing_on_the_old_version():
    status = app_status(state="rolling_back", current=1)
    move(status, ["0"], 2)
    run(status.instances[0], 2, counter=1)
    run(status.instances[1], 1, state=FAILED, counter=0)    # fails on the old version: the keeper's
    clock = ro.GateClock()
    assert plan(status, NOW, clock) == ro.Decision()        # it is down: max_unavailable is used up
    d = plan(status, NOW + 61, clock)                        # ... but not for longer than gate_timeout
    assert (d.move, d.version, d.report) == (["0"], 1, "")


def test_going_back_does_not_wait_forever_for_a_batch_that_never_comes_up():
    status = app_status(state="rolling_back", update="max_unavailable: 1, gate_timeout: 10", current=1)
    move(status, ["0", "1"], 2)
    run(status.instances[1], 2, counter=1)
    move(status, ["0"], 1)
    run(status.instances[0], 1, state=S.CONTAINER_STATE_STARTING, counter=2)   # never gets running
    clock = ro.GateClock()
    assert plan(status, NOW, clock).waiting == ["0"]
    d = plan(status, NOW + 11, clock)
    assert (d.move, d.report) == (["1"], "")      # not held on the version that failed


def test_a_canary_moves_only_its_instances():
    status = app_status(ids=["1", "3"], update="max_unavailable: 2", current=1)
    assert plan(status).move == ["1", "3"]
    move(status, ["1", "3"], 2)
    run(status.instances[1], 2, counter=1)
    run(status.instances[3], 2, counter=1)
    assert plan(status).report == "done"


def test_a_new_am_attempt_touches_nothing_already_moved():
    """Restartable: instances whose container runs their allocation's version are left alone."""
    status = app_status(update="max_unavailable: 2")
    move(status, ["0", "1"], 2)
    run(status.instances[0], 2, counter=1)
    run(status.instances[1], 2, counter=1)
    d = plan(status, clock=ro.GateClock())    # a fresh AM: nothing remembered
    assert d.move == ["2", "3"]               # no process started (long ago) needs the gate again


def test_nothing_to_do_without_an_active_rollout():
    for state in ("", "done", "failed", "rolled_back"):
        assert plan(app_status(state=state)) == ro.Decision()


# ---- the keeper and container specs ----

class FakeNodes:
    def __init__(self):
        self.started, self.stopped = [], []

    def start(self, address, epoch, spec):
        self.started.append(spec)

    def start_later(self, address, epoch, spec, on_error):
        self.started.append(spec)

    def stop(self, address, epoch, cid, remove=True):
        self.stopped.append((cid, remove))


class FakeClient:
    def __init__(self):
        self.calls = []

    def call(self, method, request):
        self.calls.append((method, request))
        return master_pb2.AppStatus()


def make_am():
    am = ApplicationMaster(FakeClient(), "web-1", 1)
    am.nodes = FakeNodes()
    return am


def test_container_spec_follows_the_allocations_version():
    status = app_status(current=1)
    alloc = status.instances[0].allocation
    assert list(container_spec(status.app, alloc, 0).command) == ["v1"]
    alloc.version = 2
    spec = container_spec(status.app, alloc, 1)
    assert list(spec.command) == ["v2"] and spec.version == 2


def test_container_spec_of_a_record_without_versions_is_version_1():
    status = app_status()
    record = S.AppRecord(app_id="web-1", spec=status.app.versions[1])
    spec = container_spec(record, S.Allocation(instance_id="0"), 0)
    assert spec.version == 1 and list(spec.command) == ["v1"]


def test_keeper_restarts_an_instance_on_another_version_uncharged():
    am = make_am()
    status = app_status(state="done")
    move(status, ["2"], 2)
    am.reconcile(status)
    # stopped, the new one started, then the old one removed
    assert am.nodes.stopped == [("web-1.2.0", False), ("web-1.2.0", True)]
    assert [(s.container_id, s.version, list(s.command)) for s in am.nodes.started] == [("web-1.2.1", 2, ["v2"])]
    assert not am.events._charges      # nothing charged to retry_times
    am.reconcile(status)               # not yet reported: not asked again
    assert len(am.nodes.started) == 1


def test_an_am_killed_between_stop_and_start_leaves_the_next_counter():
    """The old container is stopped, not removed, until the new one is asked for: a new attempt
    sees it and starts the next counter, on the new version."""
    am = make_am()
    status = app_status(state="rolling")
    move(status, ["0"], 2)
    run(status.instances[0], 1, state=S.CONTAINER_STATE_STOPPED)
    am._keep(status, status.instances[0])
    assert [(s.container_id, s.version) for s in am.nodes.started] == [("web-1.0.1", 2)]


def test_keeper_takes_version_0_for_1():
    am = make_am()
    status = app_status(state="done")
    for v in status.instances:
        v.allocation.version = 0
        v.status.version = 0 if v.allocation.instance_id == "0" else 1
    am.reconcile(status)
    assert am.nodes.started == [] and am.nodes.stopped == []


@pytest.mark.parametrize("decision, method", [
    (ro.Decision(move=["0"], version=2), "SetInstanceVersions"),
    (ro.Decision(report="done", message="ok"), "ReportRollout"),
])
def test_driver_calls_the_master(monkeypatch, decision, method):
    am = make_am()
    monkeypatch.setattr(ro, "plan", lambda *a: decision)
    am.rollouts.step(app_status())
    assert [m for m, _ in am.client.calls] == [method]
