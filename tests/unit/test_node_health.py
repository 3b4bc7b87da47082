"""Health checks on the node: the probe state machine (fake clock), the hook/manager over fakes,
the probes themselves against local sockets, partition fencing, and where verdicts lead."""
import http.server
import socket
import threading
import types

import pytest

from gaia_am.containers import container_spec, stop_on_partition
from gaia_common.config import ConfigError, NodeConfig
from gaia_common.pb import types_pb2
from gaia_common.spec import SpecError
from gaia_master.node_view import resolvable
from gaia_node import health, partition
from gaia_node.events import EventLog
from gaia_node.health import HEALTHY, STARTING, UNHEALTHY, HealthChecks, ProbeState
from gaia_node.hooks import TaskContext
from gaia_node.publish import endpoint
from gaia_node.registration import Registration
from gaia_node.validation import validate_container_spec

S = types_pb2


def check(**kw):
    return S.HealthCheck(kind=kw.pop("kind", "tcp"), port=kw.pop("port", "http"), **kw)


# ---- the state machine ----

def test_defaults_apply_to_unset_fields():
    probe = ProbeState(S.HealthCheck(kind="tcp"), now=0.0)
    assert (probe.interval, probe.timeout, probe.threshold) == (2.0, 1.0, 3)
    assert probe.health == STARTING and probe.due(0.0)


def test_starting_until_first_verdict_then_healthy():
    probe = ProbeState(check(interval_seconds=1, failure_threshold=3), now=0.0)
    probe.begin(0.0)
    assert not probe.due(0.5)                        # in flight: never twice at once
    assert probe.record(False) == ""                 # one failure: still starting
    assert probe.health == STARTING and not probe.due(0.9) and probe.due(1.0)
    probe.begin(1.0)
    assert probe.record(True) == HEALTHY


def test_unhealthy_after_threshold_failures_in_a_row_and_back_after_one_success():
    probe = ProbeState(check(interval_seconds=1, failure_threshold=3), now=0.0)
    probe.begin(0.0)
    probe.record(True)
    outcomes = []
    for t, ok in ((1, False), (2, False), (3, True), (4, False), (5, False), (6, False), (7, False)):
        assert probe.due(float(t))
        probe.begin(float(t))
        outcomes.append(probe.record(ok))
    # a success in between resets the count: only the third failure in a row flips it
    assert outcomes == ["", "", "", "", "", UNHEALTHY, ""]
    probe.begin(8.0)
    assert probe.record(True) == HEALTHY


def test_a_service_that_never_comes_up_becomes_unhealthy():
    probe = ProbeState(check(failure_threshold=2), now=0.0)
    for t in (0.0, 2.0):
        probe.begin(t)
        result = probe.record(False)
    assert result == UNHEALTHY


def test_initial_delay_holds_the_first_probe():
    probe = ProbeState(check(initial_delay_seconds=5, interval_seconds=1), now=10.0)
    assert not probe.due(14.9) and probe.due(15.0)
    assert probe.health == STARTING


def test_recovered_state_keeps_its_verdict_and_remaining_delay():
    probe = ProbeState(check(initial_delay_seconds=5), now=10.0, health=HEALTHY, delay=1.0)
    assert probe.health == HEALTHY and not probe.due(10.9) and probe.due(11.0)


# ---- the hook and the manager, over fakes ----

class FakeContainers:
    def __init__(self):
        self.health = {}
        self.running_ids = set()
        self.drivers = {}

    def set_health(self, cid, value):
        if cid not in self.running_ids or self.health.get(cid) == value:
            return False
        self.health[cid] = value
        return True


class Immediate:
    def submit(self, fn, *args):
        fn(*args)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make_checks(results):
    """HealthChecks whose probes answer from `results` (a list of booleans, popped in order)."""
    clock = Clock()
    parts = types.SimpleNamespace(containers=FakeContainers(), events=EventLog())
    checks = HealthChecks(parts, clock=clock, wall=lambda: 1000.0)
    checks._pool = Immediate()
    checks.probe = lambda watched: (results.pop(0), "refused")
    return checks, parts, clock


def ctx_for(cid="web-id.0.1", **check_kw):
    spec = S.ContainerSpec(container_id=cid, app_id="web-id", app_name="web", instance_id="0", driver="process",
                           command=["x"], ports=[S.Port(name="http")], health_check=check(**check_kw))
    status = S.ContainerStatus(container_id=cid, state=S.CONTAINER_STATE_RUNNING, host_ip="127.0.0.1",
                               host_ports={"http": 20001}, health=STARTING, started_at=998.0)
    return TaskContext(spec=spec, status=status, directory="/nonexistent", host_ports={"http": 20001}, env={},
                       pid=4242)


def test_tick_probes_on_schedule_and_publishes_changes_only():
    checks, parts, clock = make_checks([True, True, False, False])
    ctx = ctx_for(interval_seconds=1, failure_threshold=2)
    parts.containers.running_ids.add(ctx.spec.container_id)
    checks.poststart(ctx)
    assert checks.watching() == [ctx.spec.container_id]
    checks.tick()                                    # t=100: healthy
    assert parts.containers.health == {ctx.spec.container_id: HEALTHY}
    clock.now = 100.5
    checks.tick()                                    # not due yet: nothing popped
    clock.now = 101.0
    checks.tick()                                    # healthy again: no write
    clock.now = 102.0
    checks.tick()
    assert parts.containers.health[ctx.spec.container_id] == HEALTHY
    clock.now = 103.0
    checks.tick()
    assert parts.containers.health[ctx.spec.container_id] == UNHEALTHY
    assert [e.kind for e in parts.events.recent()] == ["health.unhealthy"]


def test_poststop_stops_probing():
    checks, parts, clock = make_checks([])
    ctx = ctx_for()
    checks.poststart(ctx)
    checks.poststop(ctx)
    checks.tick()                                    # would pop from an empty list if it probed
    assert checks.watching() == []


def test_no_check_no_watch():
    checks, _, _ = make_checks([])
    ctx = ctx_for()
    ctx.spec.ClearField("health_check")
    checks.poststart(ctx)
    assert checks.watching() == [] and health.initial_health(ctx.spec) == ""


def test_recover_resumes_with_the_saved_verdict():
    checks, parts, clock = make_checks([False])
    ctx = ctx_for(initial_delay_seconds=10)      # started at wall 998, now 1000: 8 s of delay left
    ctx.status.health = HEALTHY
    parts.containers.running_ids.add(ctx.spec.container_id)
    checks.recover(ctx)
    checks.tick()
    assert parts.containers.health == {}         # still within the delay
    clock.now += 8.0
    checks.tick()                                # one failure out of three: still healthy, no write
    assert parts.containers.health == {}


# ---- the probes themselves ----

@pytest.fixture
def http_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tcp_and_http_probes(http_server):
    assert health.probe_tcp("127.0.0.1", http_server, 1.0)[0]
    ok, why = health.probe_tcp("127.0.0.1", closed_port(), 1.0)
    assert not ok and "refused" in why.lower()
    assert health.probe_http("127.0.0.1", http_server, "/ok", 1.0)[0]
    ok, why = health.probe_http("127.0.0.1", http_server, "/bad", 1.0)
    assert not ok and "503" in why


def test_address_prefers_the_containers_own_network():
    status = S.ContainerStatus(host_ip="10.0.0.5", host_ports={"http": 20001})
    assert health.address(status, "http") == ("10.0.0.5", 20001)
    status.container_ip = "10.213.0.9"
    assert health.address(status, "http") == ("10.213.0.9", 20001)
    with pytest.raises(LookupError, match="health_check.port"):
        health.address(status, "admin")


def test_exec_probe_is_bounded(tmp_path):
    assert health.run_bounded(["true"], {"PATH": "/usr/bin:/bin"}, str(tmp_path), 2.0) == (True, "")
    assert not health.run_bounded(["false"], {"PATH": "/usr/bin:/bin"}, str(tmp_path), 2.0)[0]
    ok, why = health.run_bounded(["sleep", "10"], {"PATH": "/usr/bin:/bin"}, str(tmp_path), 0.3)
    assert not ok and "timed out" in why


def test_exec_argv_enters_the_containers_cgroups_and_namespaces():
    plain = health.process_exec_argv(["test", "-f", "x"], {"cwd": "/w"}, 42)
    assert plain == ["test", "-f", "x"]
    full = health.process_exec_argv(["test"], {"cwd": "/w", "netns": "/run/netns/n", "namespaces": ["pid", "mount"],
                                               "cgroup_procs": ["/cg/a/cgroup.procs"]}, 42)
    assert full[:5] == ["sh", "-c", health.JOIN_CGROUPS, "sh", "/cg/a/cgroup.procs"]
    assert full[5:] == ["--", "nsenter", "--target=42", "--pid", "--mount", "--net", "--wd=/w", "--", "test"]


# ---- validation, publication, resolution ----

def spec_with(check_msg):
    return S.ContainerSpec(container_id="a.0.1", app_id="a", app_name="a", instance_id="0", driver="process",
                           command=["x"], ports=[S.Port(name="http")], health_check=check_msg)


class AnyDriver:
    def validate(self, spec):
        pass


@pytest.mark.parametrize("bad,field", [
    (S.HealthCheck(kind="grpc"), "spec.health_check.kind"),
    (S.HealthCheck(kind="tcp", port="admin"), "spec.health_check.port"),
    (S.HealthCheck(kind="exec"), "spec.health_check.command"),
    (S.HealthCheck(kind="http", port="http", interval_seconds=-1), "spec.health_check.interval_seconds"),
])
def test_validation_names_the_field(bad, field):
    with pytest.raises(SpecError) as e:
        validate_container_spec(spec_with(bad), {"process": AnyDriver()})
    assert e.value.field == field


def test_endpoint_carries_health_and_resolve_skips_unready():
    spec = spec_with(S.HealthCheck(kind="tcp", port="http"))
    status = S.ContainerStatus(host_ip="h", health=STARTING, state=S.CONTAINER_STATE_RUNNING)
    assert endpoint(spec, status).health == STARTING
    assert [resolvable(S.ServiceEndpoint(health=h)) for h in ("", HEALTHY, STARTING, UNHEALTHY)] == \
        [True, True, False, False]


def test_am_maps_on_partition_and_health_check():
    spec = S.AppSpec(name="web", kind=S.APP_KIND_SERVICE, health_check=S.HealthCheck(kind="tcp", port="http"))
    assert not stop_on_partition(spec)
    assert stop_on_partition(S.AppSpec(kind=S.APP_KIND_BATCH))
    assert stop_on_partition(S.AppSpec(kind=S.APP_KIND_SERVICE, gang=2))
    assert not stop_on_partition(S.AppSpec(kind=S.APP_KIND_BATCH, on_partition="keep"))
    assert stop_on_partition(S.AppSpec(kind=S.APP_KIND_SERVICE, on_partition="stop"))
    record = S.AppRecord(app_id="web-id", spec=spec)
    out = container_spec(record, "0", 1)
    assert out.health_check.kind == "tcp" and not out.stop_on_partition
    assert not container_spec(S.AppRecord(app_id="b", spec=S.AppSpec(name="b")), "0", 1).HasField("health_check")


# ---- partition fencing ----

class FakeRegistration:
    def __init__(self, overdue):
        self.overdue = overdue

    def unrenewed_for(self):
        return self.overdue


class FencedContainers:
    def __init__(self, specs):
        self.specs = specs
        self.evicted = []

    def running(self):
        return [(s, S.ContainerStatus()) for s in self.specs if s.container_id not in self.evicted]

    def evict(self, cid, reason, grace=0.0, platform=True):
        assert platform and reason.startswith("partition")
        self.evicted.append(cid)


def test_fence_waits_for_the_grace_then_stops_only_what_asked():
    specs = [S.ContainerSpec(container_id="g.0.1", stop_on_partition=True),
             S.ContainerSpec(container_id="s.0.1", stop_on_partition=False)]
    containers, events, registration = FencedContainers(specs), EventLog(), FakeRegistration(5.9)
    fence = partition.PartitionFence(6.0, registration, containers, events)
    assert fence.check() == [] and containers.evicted == []
    registration.overdue = 6.1
    assert fence.check() == ["g.0.1"] and containers.evicted == ["g.0.1"]
    assert [(e.kind, e.container_id) for e in events.recent()] == [("partition.stop", "g.0.1")]
    assert fence.check() == []                       # stopped once


def test_grace_defaults_to_the_lease_ttl():
    assert partition.grace_seconds(NodeConfig(lease_ttl=3)) == 3.0
    assert partition.grace_seconds(NodeConfig(lease_ttl=3, partition_grace=1.5)) == 1.5


class DeadEtcd:
    """Every call fails as an unreachable etcd does."""

    def __getattr__(self, name):
        from etcd3 import exceptions

        def fail(*args, **kwargs):
            raise exceptions.ConnectionFailedError()
        return fail


def test_registration_counts_time_without_renewal_and_stops_writing_inline():
    registration = Registration(DeadEtcd(), ttl=3)
    registration.lease_id = 1                        # as if registered before etcd went away
    registration._renew()
    assert not registration.reachable and registration.unrenewed_for() >= 0
    registration.set("k", b"v")                      # queued for the keepalive, not tried inline
    assert "k" in registration._to_put


def test_a_grace_longer_than_the_lease_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match="partition_grace"):
        partition.grace_seconds(NodeConfig(lease_ttl=3, partition_grace=5))
