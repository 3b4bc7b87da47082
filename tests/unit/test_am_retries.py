"""The AM charges only the user's own failures to retry_times; platform faults are free.

The count is the master's (Allocation.charged): the AM reports a user failure as a restart
event and restarts the instance once the master has counted it. FakeMaster counts like the
real one (one charge per container id), so an AM that starts over does not charge again.
"""
from gaia_common import spec as spec_mod
from gaia_common.pb import master_pb2, types_pb2
from gaia_am.am import ApplicationMaster


class FakeNodes:
    def __init__(self):
        self.started, self.stopped = [], []

    def start(self, address, epoch, spec):
        self.started.append(spec.container_id)

    def start_later(self, address, epoch, spec, on_error):
        self.start(address, epoch, spec)

    def stop(self, address, epoch, cid, remove=True):
        self.stopped.append(cid)


class FakeMaster:
    """RecordEvents charges restarts with platform=false once per container id."""

    def __init__(self):
        self.charged = 0
        self.last_charged = ""
        self.events, self.reports = [], []

    def call(self, method, request):
        if method == "RecordEvents":
            for e in request.events:
                cid = e.message.split(":")[0]
                if e.kind == "restart" and not e.platform:
                    if cid == self.last_charged:
                        continue
                    self.charged, self.last_charged = self.charged + 1, cid
                self.events.append(e)
            status = master_pb2.AppStatus()
            status.instances.add().allocation.CopyFrom(types_pb2.Allocation(instance_id="0", charged=self.charged))
            return status
        self.reports.append((method, request))
        return master_pb2.AppStatus()


def app_status(master, kind, retry_times, container_id, state, platform_reason="", health=""):
    spec = spec_mod.load_yaml(f"name: a\nkind: {kind}\ninstances: 1\nretry_times: {retry_times}\ncommand: ['x']\n")
    status = master_pb2.AppStatus(app=types_pb2.AppRecord(app_id="a-1", spec=spec, am_attempt=1), epoch=5)
    view = status.instances.add()
    view.allocation.CopyFrom(types_pb2.Allocation(app_id="a-1", instance_id="0", node_id="n", node_address="n:1",
                                                  charged=master.charged))
    view.status.CopyFrom(types_pb2.ContainerStatus(container_id=container_id, instance_id="0", state=state,
                                                   exit_code=1, finished_at=1.0, platform_reason=platform_reason,
                                                   health=health))
    return status


def make_am(master=None):
    am = ApplicationMaster(master or FakeMaster(), "a-1", 1)
    am.nodes = FakeNodes()
    return am


def fail(am, kind, retry_times, counter, state=types_pb2.CONTAINER_STATE_FAILED, platform_reason=""):
    """One failed container seen by the AM: a pass, the events sent, and a pass again."""
    master = am.client
    am.reconcile(app_status(master, kind, retry_times, f"a-1.0.{counter}", state, platform_reason))
    am.events.flush()
    am.reconcile(app_status(master, kind, retry_times, f"a-1.0.{counter}", state, platform_reason))
    am.events.flush()


def test_evictions_are_retried_without_charge():
    am = make_am()
    for n in range(5):  # five evictions in a row, retry_times 1: always restarted
        fail(am, "batch", 1, n, platform_reason="evicted: memory reclaim")
    assert am.nodes.started == [f"a-1.0.{n}" for n in range(1, 6)]
    assert am.client.charged == 0 and am.client.reports == []
    assert [(e.kind, e.platform, e.cause) for e in am.client.events] == [("restart", True, "evicted: memory reclaim")] * 5


def test_a_user_failure_is_restarted_only_once_the_master_counted_it():
    am = make_am()
    status = app_status(am.client, "service", 3, "a-1.0.0", types_pb2.CONTAINER_STATE_FAILED)
    am.reconcile(status)
    assert am.nodes.started == []          # the charge is on its way
    am.reconcile(status)
    am.events.flush()
    assert am.client.charged == 1          # sent once
    am.reconcile(status)
    assert am.nodes.started == ["a-1.0.1"]
    restart = am.client.events[0]
    assert (restart.kind, restart.platform, restart.cause, restart.instance_id) == ("restart", False, "exit 1", "0")
    assert restart.message.startswith("a-1.0.0: ")


def test_user_failures_exhaust_retry_times():
    am = make_am()
    for n in range(2):
        fail(am, "batch", 1, n)
    assert am.nodes.started == ["a-1.0.1"]  # one retry, then the app fails
    method, report = am.client.reports[-1]
    assert method == "ReportAppState" and report.state == types_pb2.APP_STATE_FAILED
    assert "instance 0 failed 2 times (exit 1)" in report.message
    assert [e.kind for e in am.client.events] == ["restart", "restart", "failed"]


def test_a_service_instance_out_of_retries_stays_failed_with_its_reason():
    am = make_am()
    for n in range(3):
        fail(am, "service", 2, n)
    fail(am, "service", 2, 2)             # seen again: nothing more
    assert am.nodes.started == ["a-1.0.1", "a-1.0.2"]
    assert am.client.reports == []        # the app goes on
    failed = [e for e in am.client.events if e.kind == "failed"]
    assert len(failed) == 1 and "failed 3 times, retry_times is 2" in failed[0].message


def test_a_restarted_am_goes_on_from_the_persisted_count():
    master = FakeMaster()
    first = make_am(master)
    fail(first, "batch", 2, 0)
    fail(first, "batch", 2, 1)
    assert master.charged == 2
    # the AM dies after its charge of container 2 was stored, before it restarted it
    status = app_status(master, "batch", 2, "a-1.0.2", types_pb2.CONTAINER_STATE_FAILED)
    first.reconcile(status)
    first.events.flush()
    assert master.charged == 3
    second = make_am(master)             # the next attempt reports container 2 again
    fail(second, "batch", 2, 2)
    assert master.charged == 3           # not charged twice
    method, report = master.reports[-1]
    assert report.state == types_pb2.APP_STATE_FAILED and "failed 3 times" in report.message


def test_mixed_causes_count_only_user_failures():
    am = make_am()
    fail(am, "batch", 1, 0)                                    # charged 1
    fail(am, "batch", 1, 1, platform_reason="node lost")       # free
    fail(am, "batch", 1, 2, platform_reason="evicted: disk")   # free
    assert am.nodes.started == ["a-1.0.1", "a-1.0.2", "a-1.0.3"]
    assert am.client.reports == [] and am.client.charged == 1


def test_an_unhealthy_instance_is_restarted_and_charged():
    am = make_am()
    status = app_status(am.client, "service", 2, "a-1.0.0", types_pb2.CONTAINER_STATE_RUNNING, health="unhealthy")
    am.reconcile(status)
    am.events.flush()
    am.reconcile(status)
    assert am.client.charged == 1 and am.client.events[0].cause == "unhealthy"
    assert am.nodes.stopped == ["a-1.0.0"] and am.nodes.started == ["a-1.0.1"]


def test_repeated_platform_failures_back_off(monkeypatch):
    am = make_am()
    now = 1000.0
    monkeypatch.setattr("gaia_am.am.time.time", lambda: now)
    status = app_status(am.client, "service", 10, "a-1.0.6", types_pb2.CONTAINER_STATE_FAILED, "setup failed: io.max")
    status.instances[0].status.finished_at = now - 5  # 5 s ago: within the 30 s backoff after 6 restarts
    am.reconcile(status)
    assert am.nodes.started == [] and am.client.reports == []  # waits, uncharged
    assert am._due == now + 25                                  # and asks for a pass when it ends
    status.instances[0].status.finished_at = now - 31
    am.reconcile(status)
    assert am.nodes.started == ["a-1.0.7"]
