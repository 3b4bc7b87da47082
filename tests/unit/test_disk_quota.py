"""Disk capacity: scratch usage walk, the pressure threshold, and the eviction plan (no root needed)."""
import os
import types

import pytest

from gaia_common.config import ConfigError, NodeConfig
from gaia_common.pb import types_pb2
from gaia_node.events import EventLog
from gaia_node.isolation import disk
from gaia_node.isolation.disk import Tenant, allocated_bytes, plan_evictions, pressure_threshold, quota_of

MIB = 1 << 20


def write(path, size):
    with open(path, "wb") as f:
        f.write(b"x" * size)
        f.flush()
        os.fsync(f.fileno())


def test_walk_counts_allocated_blocks_once_per_inode(tmp_path):
    top = tmp_path / "scratch"
    (top / "a" / "b").mkdir(parents=True)
    write(top / "a" / "b" / "one", MIB)
    os.link(top / "a" / "b" / "one", top / "hardlink")
    with open(top / "sparse", "wb") as f:
        f.truncate(64 * MIB)              # a hole holds nothing
    os.symlink("/usr", top / "link")      # never followed
    walked = allocated_bytes(str(top))
    assert walked.complete and MIB <= walked.allocated < MIB + 64 * 1024
    assert allocated_bytes(str(tmp_path / "missing")).allocated == 0


def test_walk_stops_at_its_budget(tmp_path):
    for i in range(20):
        (tmp_path / f"f{i}").write_bytes(b"x")
    walked = allocated_bytes(str(tmp_path), max_entries=5)
    assert not walked.complete and walked.entries == 5


@pytest.mark.parametrize("setting,total,expected", [
    ("10%", 1000, 100), ("0%", 1000, 0), ("2Gi", 0, 2 << 30), (1048576, 0, MIB), ("512Mi", 5, 512 * MIB)])
def test_pressure_threshold(setting, total, expected):
    assert pressure_threshold(setting, total) == expected


@pytest.mark.parametrize("bad", ["lots", "150%", "-5%"])
def test_bad_pressure_threshold_names_the_setting(bad):
    with pytest.raises(ConfigError, match="disk_pressure_free"):
        pressure_threshold(bad, 100)


def test_ceiling_only_when_the_limit_is_above_the_request():
    req = types_pb2.ResourceRequirements
    assert quota_of(req(request=types_pb2.Resources(disk_bytes=5), limit=types_pb2.Resources(disk_bytes=9))) == (5, 9)
    assert quota_of(req(request=types_pb2.Resources(disk_bytes=5), limit=types_pb2.Resources(disk_bytes=5))) == (5, 0)
    assert quota_of(req()) == (0, 0)


TENANTS = [Tenant("within", used=5 * MIB, quota=10 * MIB),
           Tenant("far", used=30 * MIB, quota=10 * MIB),         # 20 over
           Tenant("near", used=14 * MIB, quota=10 * MIB),        # 4 over
           Tenant("mid", used=18 * MIB, quota=8 * MIB)]          # 10 over


def ids(plan):
    return [e.container_id for e in plan]


def test_no_pressure_no_eviction_even_far_over_quota():
    assert plan_evictions(TENANTS, free=100 * MIB, threshold=50 * MIB) == []


def test_pressure_evicts_furthest_over_first_and_stops_once_relieved():
    plan = plan_evictions(TENANTS, free=40 * MIB, threshold=50 * MIB)
    assert ids(plan) == ["far"]                      # frees 30: 70 >= 50
    assert plan[0].reason.startswith("evicted: disk pressure") and plan[0].frees == 30 * MIB
    assert ids(plan_evictions(TENANTS, free=10 * MIB, threshold=50 * MIB)) == ["far", "mid"]


def test_pressure_never_evicts_a_container_within_its_quota():
    assert ids(plan_evictions(TENANTS, free=0, threshold=10**12)) == ["far", "mid", "near"]


def test_equal_overuse_takes_the_lowest_priority_first():
    tenants = [Tenant("high", used=20, quota=10, priority=5), Tenant("low", used=20, quota=10, priority=1)]
    assert ids(plan_evictions(tenants, free=0, threshold=15)) == ["low"]


def test_over_the_ceiling_is_evicted_without_pressure_and_counts_as_relief():
    tenants = TENANTS + [Tenant("capped", used=12 * MIB, quota=2 * MIB, ceiling=6 * MIB)]
    plan = plan_evictions(tenants, free=100 * MIB, threshold=50 * MIB)
    assert ids(plan) == ["capped"] and plan[0].reason.startswith("evicted: disk limit exceeded")
    assert ids(plan_evictions(tenants, free=30 * MIB, threshold=50 * MIB)) == ["capped", "far"]


class FakeContainers:
    """Containers.running() and evict() as the manager sees them."""

    def __init__(self, dirs, specs):
        self.dirs, self.specs, self.evicted = dirs, specs, []

    def running(self):
        return [(s, types_pb2.ContainerStatus(container_id=s.container_id)) for s in self.specs
                if s.container_id not in dict(self.evicted)]

    def evict(self, cid, reason, platform=True):
        self.evicted.append((cid, reason))
        if platform:
            return types_pb2.ContainerStatus(container_id=cid, platform_reason=reason)
        return types_pb2.ContainerStatus(container_id=cid, message=reason)


def spec(cid, request, limit=0):
    return types_pb2.ContainerSpec(container_id=cid, resources=types_pb2.ResourceRequirements(
        request=types_pb2.Resources(disk_bytes=request), limit=types_pb2.Resources(disk_bytes=limit or request)))


def test_manager_evicts_records_and_deletes_scratch(tmp_path, monkeypatch):
    cfg = NodeConfig(state_dir=str(tmp_path), disk_pressure_free="1Gi", disk_check_interval=0.1)
    usage = disk.ScratchUsage(disk.state.ContainerDirs(cfg.state_dir), cfg.disk_check_interval)
    specs = [spec("hog.0.1", MIB), spec("tidy.0.1", 8 * MIB)]
    for s, size in ((specs[0], 3 * MIB), (specs[1], 2 * MIB)):
        scratch = tmp_path / "containers" / s.container_id / "work"
        scratch.mkdir(parents=True)
        write(scratch / "data", size)
    containers, events = FakeContainers(usage.dirs, specs), EventLog()
    monkeypatch.setattr(disk, "filesystem_space", lambda path: (100 * MIB, 10 << 30))   # pressed: 100Mi < 1Gi
    pressure = disk.DiskPressure(cfg, containers, events, usage)
    assert ids(pressure.check()) == ["hog.0.1"] and ids(pressure.check()) == []
    assert not (tmp_path / "containers" / "hog.0.1" / "work").exists()
    assert (tmp_path / "containers" / "tidy.0.1" / "work" / "data").exists()
    kinds = [(e.kind, e.container_id) for e in events.recent()]
    assert kinds == [("disk.pressure", ""), ("disk.evict", "hog.0.1")]   # one pressure event per episode
    assert "disk pressure" in events.recent()[1].message


def test_meter_reports_scratch_usage_and_hook_exports_it(tmp_path):
    cfg = NodeConfig(state_dir=str(tmp_path), disk_check_interval=60)
    parts = types.SimpleNamespace(cfg=cfg)
    ctx = types.SimpleNamespace(directory=str(tmp_path / "containers" / "c.0.1"), env={}, spec=spec("c.0.1", 0))
    disk.hook(parts).prestart(ctx)
    assert ctx.env["GAIA_SCRATCH"] == str(tmp_path / "containers" / "c.0.1" / "work")
    write(os.path.join(ctx.env["GAIA_SCRATCH"], "f"), 2 * MIB)
    assert disk.meter(parts)(ctx.spec, None).disk_bytes >= 2 * MIB


def test_capacity_is_free_space_plus_what_containers_hold_less_the_reserve(tmp_path, monkeypatch):
    monkeypatch.setattr(disk, "filesystem_space", lambda path: (100 * MIB, 1000 * MIB))
    (tmp_path / "containers" / "c" / "work").mkdir(parents=True)
    write(tmp_path / "containers" / "c" / "work" / "f", 4 * MIB)
    held = disk.scratch_capacity(str(tmp_path)) - 100 * MIB      # a restarted node offers the same
    assert 4 * MIB <= held < 5 * MIB
    assert disk.scratch_capacity(str(tmp_path), "10%") == 100 * MIB + held - 100 * MIB
    assert disk.scratch_capacity(str(tmp_path / "not" / "yet"), "200Mi") == 0
