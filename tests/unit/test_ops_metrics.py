"""The masters' and nodes' Prometheus metrics: names follow the conventions, the page parses
with a text-format parser, and the counters move with the work reported to them."""
import types

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gaia_common import metrics as common_metrics
from gaia_common.pb import types_pb2
from gaia_master.metrics import MasterMetrics
from gaia_node.metrics import NodeMetrics, end_cause

S = types_pb2
NAMESPACE_UNITS = ("_seconds", "_bytes", "_cores", "_gpus", "_bytes_per_second")


def families(registry) -> dict:
    return {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}


def value(fams: dict, sample: str, **labels) -> float:
    family = fams[sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")]
    found = [s.value for s in family.samples
             if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, f"no sample {sample}{labels}"
    return sum(found)


def fake_master(leading=True):
    records = [S.AppRecord(app_id="a-1", state=S.APP_STATE_RUNNING),
               S.AppRecord(app_id="b-1", state=S.APP_STATE_PENDING)]
    return types.SimpleNamespace(
        election=types.SimpleNamespace(is_leader=lambda: leading, epoch=42),
        node_view=types.SimpleNamespace(node_list=lambda: [object(), object()]),
        is_serving=lambda: leading, table=types.SimpleNamespace(records=lambda: records),
        pools=types.SimpleNamespace(list=lambda: [S.Pool(path="default"), S.Pool(path="batch")]))


def fake_node():
    spec = S.ContainerSpec(container_id="a-1.0.0", app_id="a-1", instance_id="0", driver="process")
    spec.resources.request.cpu_millis, spec.resources.request.memory_bytes = 500, 64 << 20
    running = S.ContainerStatus(container_id="a-1.0.0", state=S.CONTAINER_STATE_RUNNING)
    ended = S.ContainerStatus(container_id="a-1.1.0", state=S.CONTAINER_STATE_FAILED)
    meter = lambda spec, status: S.Resources(memory_bytes=10 << 20, cpu_millis=250)   # noqa: E731
    return types.SimpleNamespace(
        containers=types.SimpleNamespace(statuses=lambda: [running, ended], running=lambda: [(spec, running)]),
        meters=[meter], info=S.NodeInfo(capacity=S.Resources(cpu_millis=4000, memory_bytes=8 << 30)),
        registration=types.SimpleNamespace(unrenewed_for=lambda: 0.5))


@pytest.mark.parametrize("make", [lambda: MasterMetrics(fake_master()), lambda: NodeMetrics(fake_node())])
def test_names_follow_prometheus_conventions(make):
    m = make()
    if isinstance(m, MasterMetrics):   # histograms and labelled counters show samples once used
        m.cycle(CYCLE, SNAP, PLAN)
        m.app_events([S.AppEvent(kind="evict", cause="preempt")])
    fams = families(m.registry)
    assert fams
    for name, family in fams.items():
        assert name.startswith("gaia_"), name
        assert family.documentation, f"{name} has no help text"
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), name
        if family.type == "histogram":
            assert name.endswith("_seconds"), name
        if family.type == "gauge" and "_node_" in name and name.split("_")[2] not in ("containers", "lease"):
            assert name.endswith(NAMESPACE_UNITS), f"{name}: a resource gauge names its unit"


# a cycle as SchedulingLoop.cycle reports it: two requests in two pools, one placed whole
CYCLE = {"snapshot_s": 0.001, "schedule_s": 0.002, "apply_s": 0.003, "requests": 2, "placed": 3,
         "granted": 3, "refused": 1, "evicted": 0, "pending": 1}
SNAP = types.SimpleNamespace(pending=[
    types.SimpleNamespace(request_id="a/1", pool="default", submitted_at=1.0),
    types.SimpleNamespace(request_id="b/1", pool="batch", submitted_at=1.0)])
PLAN = types.SimpleNamespace(chunks=[("a/1", "a", 0, [0], [3])], pending={"b/1": "short of memory"},
                             stats={"request_spent_s": [0.001, 0.002], "request_done_at_s": [0.002, 0.0]})


def test_master_counters_move_with_cycles_and_events():
    m = MasterMetrics(fake_master())
    m.leadership(True)
    m.cycle(CYCLE, SNAP, PLAN)
    m.cycle(CYCLE, SNAP, PLAN)
    m.app_events([S.AppEvent(kind="evict", cause="reclaim", platform=True),
                  S.AppEvent(kind="restart", instance_id="0", platform=False),
                  S.AppEvent(kind="restart", instance_id="1", platform=True),
                  S.AppEvent(kind="am.restart", platform=True)])
    fams = families(m.registry)
    assert value(fams, "gaia_master_scheduling_cycles_total") == 2
    assert value(fams, "gaia_master_placements_total") == 6
    assert value(fams, "gaia_master_grants_refused_total") == 2
    assert value(fams, "gaia_master_scheduling_cycle_duration_seconds_count") == 2
    assert value(fams, "gaia_master_scheduling_phase_duration_seconds_count", phase="apply") == 2
    assert value(fams, "gaia_master_scheduling_decision_duration_seconds_count") == 2   # decided ones only
    assert value(fams, "gaia_master_scheduling_wait_duration_seconds_count") == 2      # a/1, placed whole
    assert value(fams, "gaia_master_pending_requests", pool="batch") == 1
    assert value(fams, "gaia_master_pending_requests", pool="default") == 0, "every pool shows, 0 when none"
    assert value(fams, "gaia_master_evictions_total", kind="reclaim") == 1
    assert value(fams, "gaia_master_instance_restarts_total", cause="user") == 1
    assert value(fams, "gaia_master_instance_restarts_total", cause="platform") == 1
    assert value(fams, "gaia_master_am_restarts_total") == 1
    assert value(fams, "gaia_master_leadership_acquired_total") == 1
    assert value(fams, "gaia_master_is_leader") == 1 and value(fams, "gaia_master_epoch") == 42
    assert value(fams, "gaia_master_apps", state="running") == 1
    assert value(fams, "gaia_master_apps", state="killed") == 0
    m.idle()
    assert value(families(m.registry), "gaia_master_pending_requests", pool="batch") == 0


def test_a_follower_shows_no_cluster_figures():
    fams = families(MasterMetrics(fake_master(leading=False)).registry)
    assert value(fams, "gaia_master_is_leader") == 0 and value(fams, "gaia_master_epoch") == 0
    assert "gaia_master_apps" not in fams


def test_event_kinds_are_bounded():
    m = MasterMetrics()
    m.app_events([S.AppEvent(kind=f"k{i}") for i in range(200)])
    kinds = {s.labels["kind"] for s in families(m.registry)["gaia_master_app_events"].samples}
    assert len(kinds) <= 65 and "other" in kinds


def test_node_counters_and_resources():
    m = NodeMetrics(fake_node())
    m.started(S.ContainerSpec(container_id="a-1.0.0", driver="process"))
    m.started(S.ContainerSpec(container_id="a-1.0.1", driver="process"))
    m.started(S.ContainerSpec(container_id="a-1.am.1", driver="process", is_am=True))
    for kind in ("reclaim.squeeze", "reclaim.kill", "memory.oom", "disk.evict", "partition.stop", "health.unhealthy"):
        m.node_event(kind)
    m.health_check(True)
    m.health_check(False)
    m.ended(S.ContainerStatus(state=S.CONTAINER_STATE_FAILED, exit_code=3), fault=False)
    fams = families(m.registry)
    assert value(fams, "gaia_node_container_starts_total", driver="process") == 3
    assert value(fams, "gaia_node_container_restarts_total") == 1
    assert value(fams, "gaia_node_container_ends_total", cause="failed") == 1
    assert value(fams, "gaia_node_memory_reclaims_total", action="kill") == 1
    assert value(fams, "gaia_node_oom_kills_total") == 1
    assert value(fams, "gaia_node_disk_evictions_total") == 1
    assert value(fams, "gaia_node_partition_stops_total") == 1
    assert value(fams, "gaia_node_health_checks_total", result="fail") == 1
    assert value(fams, "gaia_node_events_total", kind="health.unhealthy") == 1
    assert value(fams, "gaia_node_containers", state="running") == 1
    assert value(fams, "gaia_node_containers", state="failed") == 1
    assert value(fams, "gaia_node_cpu_allocated_cores") == 0.5
    assert value(fams, "gaia_node_cpu_used_cores") == 0.25
    assert value(fams, "gaia_node_cpu_capacity_cores") == 4
    assert value(fams, "gaia_node_memory_allocated_bytes") == 64 << 20
    assert value(fams, "gaia_node_memory_used_bytes") == 10 << 20
    assert value(fams, "gaia_node_lease_unrenewed_seconds") == 0.5


@pytest.mark.parametrize("status, fault, cause", [
    (S.ContainerStatus(state=S.CONTAINER_STATE_EXITED), False, "exited"),
    (S.ContainerStatus(state=S.CONTAINER_STATE_FAILED, exit_code=1), False, "failed"),
    (S.ContainerStatus(state=S.CONTAINER_STATE_FAILED, exit_code=-1), False, "start_failed"),
    (S.ContainerStatus(state=S.CONTAINER_STATE_STOPPED), False, "stopped"),
    (S.ContainerStatus(state=S.CONTAINER_STATE_LOST), False, "lost"),
    (S.ContainerStatus(state=S.CONTAINER_STATE_FAILED, platform_reason="evicted: memory reclaim"), False, "platform"),
    (S.ContainerStatus(state=S.CONTAINER_STATE_FAILED, message="x; OOM-killed by the kernel"), False, "oom"),
    (S.ContainerStatus(state=S.CONTAINER_STATE_FAILED), True, "limit"),
])
def test_end_causes(status, fault, cause):
    assert end_cause(status, fault) == cause


def test_metrics_server_serves_its_own_registry():
    import urllib.request
    first, second = NodeMetrics(), MasterMetrics()
    first.node_event("disk.evict")
    server = common_metrics.serve(first.registry, "127.0.0.1:0", "test")
    try:
        with urllib.request.urlopen(f"http://{server.address}/metrics", timeout=5) as r:
            fams = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
    finally:
        server.close()
    assert value(fams, "gaia_node_disk_evictions_total") == 1
    assert not any(name.startswith("gaia_master_") for name in fams), "only its own registry"
    assert not any(name.startswith("python_") or name.startswith("process_") for name in fams)
    assert second.registry is not first.registry
    assert common_metrics.serve(first.registry, "", "test") is None


@pytest.mark.parametrize("address, expected", [("127.0.0.1:9170", ("127.0.0.1", 9170)), ("[::1]:0", ("::1", 0)),
                                               ("0.0.0.0:0", ("0.0.0.0", 0))])
def test_split_address(address, expected):
    assert common_metrics.split_address(address) == expected


@pytest.mark.parametrize("address", ["9170", ":9170", "host:port", "host:70000"])
def test_split_address_refuses(address):
    with pytest.raises(ValueError):
        common_metrics.split_address(address)
