"""The AM charges only the user's own failures to retry_times; platform faults are free."""
from gaia_common import spec as spec_mod
from gaia_common.pb import master_pb2, types_pb2
from gaia_am.am import ApplicationMaster


class FakeNodes:
    def __init__(self):
        self.started, self.stopped = [], []

    def start(self, address, epoch, spec):
        self.started.append(spec.container_id)

    def stop(self, address, epoch, cid, remove=True):
        self.stopped.append(cid)


class FakeClient:
    def __init__(self):
        self.reports = []

    def call(self, method, request):
        self.reports.append((method, request))


def app_status(kind, retry_times, container_id, state, platform_reason=""):
    spec = spec_mod.load_yaml(f"name: a\nkind: {kind}\ninstances: 1\nretry_times: {retry_times}\ncommand: ['x']\n")
    status = master_pb2.AppStatus(app=types_pb2.AppRecord(app_id="a-1", spec=spec, am_attempt=1), epoch=5)
    view = status.instances.add()
    view.allocation.CopyFrom(types_pb2.Allocation(app_id="a-1", instance_id="0", node_id="n", node_address="n:1"))
    view.status.CopyFrom(types_pb2.ContainerStatus(container_id=container_id, instance_id="0", state=state,
                                                   exit_code=1, finished_at=1.0, platform_reason=platform_reason))
    return status


def make_am():
    am = ApplicationMaster(FakeClient(), "a-1", 1)
    am.nodes = FakeNodes()
    return am


def test_evictions_are_retried_without_charge():
    am = make_am()
    for n in range(5):  # five evictions in a row, retry_times 1: always restarted
        am.reconcile(app_status("batch", 1, f"a-1.0.{n}", types_pb2.CONTAINER_STATE_FAILED, "evicted: memory reclaim"))
    assert am.nodes.started == [f"a-1.0.{n}" for n in range(1, 6)]
    assert am.client.reports == []


def test_user_failures_exhaust_retry_times():
    am = make_am()
    for n in range(2):
        am.reconcile(app_status("batch", 1, f"a-1.0.{n}", types_pb2.CONTAINER_STATE_FAILED))
    assert am.nodes.started == ["a-1.0.1"]  # one retry, then the app fails
    method, report = am.client.reports[-1]
    assert method == "ReportAppState" and report.state == types_pb2.APP_STATE_FAILED
    assert "failed 2 times" in report.message


def test_mixed_causes_count_only_user_failures():
    am = make_am()
    am.reconcile(app_status("batch", 1, "a-1.0.0", types_pb2.CONTAINER_STATE_FAILED))              # charged 1
    am.reconcile(app_status("batch", 1, "a-1.0.1", types_pb2.CONTAINER_STATE_FAILED, "node lost"))  # free
    am.reconcile(app_status("batch", 1, "a-1.0.2", types_pb2.CONTAINER_STATE_FAILED, "evicted: disk"))  # free
    assert am.nodes.started == ["a-1.0.1", "a-1.0.2", "a-1.0.3"]
    assert am.client.reports == []


def test_repeated_platform_failures_back_off(monkeypatch):
    am = make_am()
    now = 1000.0
    monkeypatch.setattr("gaia_am.am.time.time", lambda: now)
    status = app_status("service", 10, "a-1.0.6", types_pb2.CONTAINER_STATE_FAILED, "setup failed: io.max")
    status.instances[0].status.finished_at = now - 5  # 5 s ago: within the 30 s backoff after 6 restarts
    am.reconcile(status)
    assert am.nodes.started == [] and am.client.reports == []  # waits, uncharged
    status.instances[0].status.finished_at = now - 31
    am.reconcile(status)
    assert am.nodes.started == ["a-1.0.7"]
