"""The container table's state machine, over a fake driver and a fake publisher."""
import time

import pytest

from gaia_common.pb import types_pb2
from gaia_common.spec import SpecError
from gaia_node.containers import Containers, NotFound
from gaia_node.drivers.base import Capabilities, StartFailed, TaskStatus
from gaia_node.ports import PortAllocator, PortUnavailable
from gaia_node.state import ContainerDirs

S = types_pb2


class FakeDriver:
    name = "process"

    def __init__(self):
        self.tasks = {}          # container id -> TaskStatus
        self.fail_start = None
        self.released = []

    def capabilities(self):
        return Capabilities(True, False, False, "v1", True, True)

    def validate(self, spec):
        if spec.image:
            raise SpecError("spec.image", "no")

    def start(self, spec, env, host_ports, netns=""):
        if self.fail_start:
            raise StartFailed(self.fail_start)
        self.tasks[spec.container_id] = TaskStatus(running=True, pid=100 + len(self.tasks), started_at=1.5)
        self.env = env
        return spec.container_id

    def stop(self, handle, grace):
        self.tasks[handle] = TaskStatus(running=False, pid=self.tasks[handle].pid, exit_code=143, signal=15,
                                        finished_at=time.time(), message="killed by SIGTERM")
        return self.tasks[handle]

    def status(self, handle):
        return self.tasks[handle]

    def release(self, handle):
        self.released.append(handle)

    def handle_state(self, handle):
        return {"container_id": handle}

    def recover(self, saved):
        return saved["container_id"] if saved["container_id"] in self.tasks else None


class FakePublisher:
    def __init__(self):
        self.published = {}
        self.forgotten = []

    def publish(self, spec, status):
        self.published[spec.container_id] = S.ContainerState.Name(status.state)

    def forget(self, spec):
        self.forgotten.append(spec.container_id)


def table(tmp_path, driver=None):
    driver = driver or FakeDriver()
    return Containers(dirs=ContainerDirs(str(tmp_path)), drivers={"process": driver},
                      ports=PortAllocator(20000, 20100, is_free=lambda p, proto: True), publisher=FakePublisher(),
                      node_id="n1", host_ip="10.0.0.1", cluster="c"), driver


def spec(cid="app.0.1", **kw):
    return S.ContainerSpec(container_id=cid, app_id="app", app_name="web", instance_id="0", driver="process",
                           command=["x"], ports=[S.Port(name="http")], **kw)


def test_start_runs_publishes_and_is_idempotent(tmp_path):
    t, driver = table(tmp_path)
    status = t.start(spec())
    assert status.state == S.CONTAINER_STATE_RUNNING and status.pid == 100 and status.node_id == "n1"
    assert driver.env["GAIA_PORT_HTTP"] == str(status.host_ports["http"])
    assert t.publisher.published["app.0.1"] == "CONTAINER_STATE_RUNNING"
    assert t.start(spec()).pid == 100 and len(driver.tasks) == 1


def test_exit_codes_decide_exited_or_failed(tmp_path):
    t, driver = table(tmp_path)
    t.start(spec("a.0.1"))
    t.start(spec("a.1.1"))
    driver.tasks["a.0.1"] = TaskStatus(running=False, pid=100, exit_code=0, finished_at=2.0)
    driver.tasks["a.1.1"] = TaskStatus(running=False, pid=101, exit_code=3, finished_at=2.0, message="exited with code 3")
    t.poll()
    states = {s.container_id: (s.state, s.exit_code) for s in t.statuses()}
    assert states == {"a.0.1": (S.CONTAINER_STATE_EXITED, 0), "a.1.1": (S.CONTAINER_STATE_FAILED, 3)}
    assert sorted(driver.released) == ["a.0.1", "a.1.1"]


def test_stop_is_stopped_not_failed_and_remove_forgets(tmp_path):
    t, _ = table(tmp_path)
    t.start(spec())
    assert t.stop("app.0.1").state == S.CONTAINER_STATE_STOPPED
    assert t.stop("app.0.1").state == S.CONTAINER_STATE_STOPPED    # stopping twice is harmless
    t.stop("app.0.1", remove=True)
    assert t.statuses() == [] and t.publisher.forgotten == ["app.0.1"]
    assert not (tmp_path / "containers" / "app.0.1").exists()
    with pytest.raises(NotFound):
        t.stop("app.0.1")


def test_start_failure_is_a_failed_container(tmp_path):
    t, driver = table(tmp_path)
    driver.fail_start = "no cgroup for you"
    status = t.start(spec())
    assert status.state == S.CONTAINER_STATE_FAILED and status.message == "no cgroup for you"


def test_bad_spec_leaves_nothing_behind(tmp_path):
    t, _ = table(tmp_path)
    with pytest.raises(SpecError):
        t.start(spec(image="busybox"))
    assert t.statuses() == []


def test_recovery_readopts_running_and_keeps_finished(tmp_path):
    t, driver = table(tmp_path)
    t.start(spec("a.0.1"))
    t.start(spec("a.1.1"))
    t.start(spec("a.2.1"))
    t.stop("a.2.1")
    driver.tasks["a.1.1"] = TaskStatus(running=False, pid=101, exit_code=7, finished_at=3.0)  # died while down
    t2, _ = table(tmp_path, driver)
    assert t2.recover() == 1
    got = {s.container_id: (S.ContainerState.Name(s.state), s.pid, s.exit_code) for s in t2.statuses()}
    assert got == {"a.0.1": ("CONTAINER_STATE_RUNNING", 100, 0), "a.1.1": ("CONTAINER_STATE_FAILED", 101, 7),
                   "a.2.1": ("CONTAINER_STATE_STOPPED", 102, 143)}
    assert set(t2.publisher.published) == {"a.0.1", "a.1.1", "a.2.1"}
    held = next(s for s in t2.statuses() if s.container_id == "a.0.1").host_ports["http"]
    with pytest.raises(PortUnavailable):   # the re-adopted container still holds its port
        t2.ports.allocate("new", [S.Port(name="p", container_port=held)])


def test_recovery_without_a_driver_record_is_lost(tmp_path):
    t, driver = table(tmp_path)
    t.start(spec())
    del driver.tasks["app.0.1"]
    t2, _ = table(tmp_path, driver)
    t2.recover()
    assert t2.statuses()[0].state == S.CONTAINER_STATE_LOST


class RecordingHook:
    name = "recording"

    def __init__(self):
        self.calls = []

    def prestart(self, ctx):
        self.calls.append("prestart")

    def poststart(self, ctx):
        self.calls.append("poststart")

    def poststop(self, ctx):
        self.calls.append("poststop")

    def recover(self, ctx):
        self.calls.append("recover")


def test_a_start_that_fails_after_prestart_undoes_the_hooks(tmp_path, monkeypatch):
    from gaia_node.hooks import HookRunner
    containers, driver = table(tmp_path)
    hook = RecordingHook()
    containers.hooks = HookRunner([hook])
    monkeypatch.setattr(containers, "_save", lambda c: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        containers.start(spec())
    assert hook.calls == ["prestart", "poststop"]  # its netns, address and DNAT do not leak
    assert containers.statuses() == []


def test_remove_refuses_to_forget_a_container_that_still_runs(tmp_path):
    containers, driver = table(tmp_path)
    containers.start(spec())
    driver.stop = lambda handle, grace: TaskStatus(running=True, pid=100, started_at=1.5)  # it ignores the kill
    with pytest.raises(StartFailed, match="still stopping"):
        containers.stop("app.0.1", grace=0.1, remove=True)
    assert [s.container_id for s in containers.statuses()] == ["app.0.1"]  # still tracked
