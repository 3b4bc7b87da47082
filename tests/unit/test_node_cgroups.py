"""cgroup v1/v2 layouts and limit files: v1 against plain directories, v2 against the\nrule-enforcing model of cgroupfs (tests/fakes/cgroupfs.py). No root needed."""
import errno

import pytest

from gaia_node.cgroups import Limits, MemoryStat, cpu_quota_us, cpu_shares, cpu_weight, detect
from gaia_node.cgroups.v1 import CgroupV1
from gaia_node.cgroups.v2 import CgroupV2
from tests.fakes.cgroupfs import FakeCgroupFS

LIMITS = Limits(memory_request=64 << 20, memory_limit=128 << 20, cpu_request_millis=250, cpu_limit_millis=500)


def read(path):
    with open(path) as f:
        return f.read()


def fake_v2(root):
    root.mkdir(exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def fake_v1(root, controllers=("memory", "cpu", "pids", "blkio")):
    for c in controllers:
        (root / c).mkdir(parents=True)
    return root


def test_cpu_conversions():
    assert cpu_shares(0) == 2 and cpu_shares(1000) == 1024 and cpu_shares(250) == 256
    assert cpu_shares(10**9) == 262144
    assert cpu_weight(0) == 1 and cpu_weight(10**9) == 10000
    assert cpu_weight(1000) == 100  # the kernel's default weight: one core weighs what one task does
    assert (cpu_weight(250), cpu_weight(750)) == (25, 75)  # proportional: 1:3 as in shares
    assert cpu_quota_us(0) is None and cpu_quota_us(500) == 50_000 and cpu_quota_us(1) == 1_000


def test_detect_picks_version(tmp_path):
    assert detect(str(tmp_path / "nothing"), "gaia") is None
    assert detect(str(fake_v2(tmp_path / "v2")), "gaia").version == "v2"
    assert detect(str(fake_v1(tmp_path / "v1")), "gaia").version == "v1"


def test_v2_writes_limits_and_enables_controllers_top_down():
    fs = FakeCgroupFS("/cg")
    cg = CgroupV2("/cg", "gaia-x", fs=fs)
    procs = cg.create("app.0.1", LIMITS)
    leaf = "/cg/gaia-x/app.0.1"
    assert procs == [f"{leaf}/cgroup.procs"]
    assert fs.read("/cg/cgroup.subtree_control").split() == ["cpu", "io", "memory", "pids"]
    assert fs.read("/cg/gaia-x/cgroup.subtree_control").split() == ["cpu", "io", "memory", "pids"]
    assert fs.read(f"{leaf}/memory.min").strip() == fs.read(f"{leaf}/memory.low").strip() == str(64 << 20)
    assert fs.read(f"{leaf}/memory.high").strip() == fs.read(f"{leaf}/memory.max").strip() == str(128 << 20)
    assert fs.read(f"{leaf}/memory.oom.group").strip() == "1"
    assert fs.read(f"{leaf}/cpu.weight").strip() == "25"
    assert fs.read(f"{leaf}/cpu.max").strip() == "50000 100000"
    # the process joins the leaf: allowed, and the parent (which enables controllers) holds none
    fs.write(procs[0], 4242)
    assert cg.pids("app.0.1") == [4242]
    assert fs.read("/cg/gaia-x/cgroup.procs").strip() == ""


def test_v2_nested_parent_enables_every_level():
    fs = FakeCgroupFS("/cg", controllers=("cpu", "memory"))
    CgroupV2("/cg", "gaia.slice/nodes/n1", fs=fs).create("c1", LIMITS)
    for level in ("/cg", "/cg/gaia.slice", "/cg/gaia.slice/nodes", "/cg/gaia.slice/nodes/n1"):
        assert fs.read(f"{level}/cgroup.subtree_control").split() == ["cpu", "memory"]
    assert fs.exists("/cg/gaia.slice/nodes/n1/c1/memory.max") and not fs.exists("/cg/gaia.slice/nodes/n1/c1/io.max")


def test_v2_protection_reaches_the_leaves_through_the_parents():
    fs = FakeCgroupFS("/cg")
    cg = CgroupV2("/cg", "gaia.slice/node", fs=fs)
    fs.mkdir("/cg/gaia.slice")
    fs.write("/cg/cgroup.subtree_control", "+memory")
    fs.write("/cg/gaia.slice/memory.min", 512 << 20)      # someone else's protection up there stays
    cg.create("a", Limits(memory_request=64 << 20))
    cg.create("b", Limits(memory_request=32 << 20, memory_limit=64 << 20))
    assert fs.read("/cg/gaia.slice/node/memory.min").strip() == fs.read("/cg/gaia.slice/node/memory.low").strip() \
        == str(96 << 20)
    assert fs.read("/cg/gaia.slice/memory.min").strip() == str(512 << 20)
    assert fs.read("/cg/gaia.slice/memory.low").strip() == str(96 << 20)   # raised to cover them
    assert cg.remove("a")
    assert fs.read("/cg/gaia.slice/node/memory.min").strip() == str(32 << 20)


def test_v2_the_fake_refuses_the_same_code_in_a_wrong_order():
    """The model is what makes the tests above mean something: out of order, they fail."""
    class LimitsBeforeControllers(CgroupV2):
        def create(self, container_id, limits):
            self._mkdir("/cg/gaia-x")
            self._mkdir(self.path(container_id))
            self._memory(self.path(container_id), limits)   # before any subtree_control write

    class ProcessesInTheParent(CgroupV2):
        def create(self, container_id, limits):
            CgroupV2.create(self, container_id, limits)
            return ["/cg/gaia-x/cgroup.procs"]               # the parent, not the leaf

    with pytest.raises(PermissionError):                      # EACCES: memory.min does not exist yet
        LimitsBeforeControllers("/cg", "gaia-x", fs=FakeCgroupFS("/cg")).create("c1", LIMITS)
    fs = FakeCgroupFS("/cg")
    procs = ProcessesInTheParent("/cg", "gaia-x", fs=fs).create("c1", LIMITS)
    with pytest.raises(OSError) as busy:
        fs.write(procs[0], 1234)
    assert busy.value.errno == errno.EBUSY                    # no internal processes


def test_v2_parent_with_processes_is_refused_clearly():
    fs = FakeCgroupFS("/cg")
    fs.mkdir("/cg/busy")
    fs.write("/cg/busy/cgroup.procs", 77)  # e.g. a slice whose own processes sit in it
    with pytest.raises(OSError, match="holds processes"):
        CgroupV2("/cg", "busy", fs=fs).create("c1", LIMITS)


def test_v2_without_limits_leaves_memory_default_and_no_quota():
    fs = FakeCgroupFS("/cg")
    fs.write("/cg/cgroup.subtree_control", "+cpu +memory +pids")
    CgroupV2("/cg", "gaia-x", fs=fs).create("c1", Limits())
    leaf = "/cg/gaia-x/c1"
    assert fs.read(f"{leaf}/memory.max").strip() == "max" and fs.read(f"{leaf}/memory.min").strip() == "0"
    assert fs.read(f"{leaf}/cpu.max").strip() == "max 100000" and fs.read(f"{leaf}/cpu.weight").strip() == "1"
    assert [w for w in fs.writes if w[0] == "/cg/cgroup.subtree_control"] == [
        ("/cg/cgroup.subtree_control", "+cpu +memory +pids"), ("/cg/cgroup.subtree_control", "+io")]


def test_v2_remove_and_busy():
    fs = FakeCgroupFS("/cg")
    cg = CgroupV2("/cg", "gaia-x", fs=fs)
    cg.create("c1", Limits())
    fs.write("/cg/gaia-x/c1/cgroup.procs", 5)
    assert not cg.remove("c1")                      # EBUSY while a process is in it
    fs.write("/cg/cgroup.procs", 5)                 # it moved away (or ended)
    assert cg.remove("c1") and not fs.exists("/cg/gaia-x/c1")
    assert cg.remove("c1")  # already gone is fine


def test_v2_memory_ceiling_squeezes_page_cache_only():
    fs = FakeCgroupFS("/cg")
    cg = CgroupV2("/cg", "gaia-x", fs=fs)
    cg.create("cache", LIMITS)
    cg.create("anon", LIMITS)
    fs.charge("/cg/gaia-x/cache", anon=20 << 20, file=100 << 20)
    fs.charge("/cg/gaia-x/anon", anon=120 << 20, file=0)
    assert cg.memory_stat("cache") == MemoryStat(usage=120 << 20, file=100 << 20, anon=20 << 20)
    assert cg.memory_ceiling("cache") == 128 << 20
    assert cg.set_memory_ceiling("cache", 64 << 20) and cg.memory_usage("cache") == 64 << 20
    assert not cg.set_memory_ceiling("anon", 64 << 20) and cg.memory_usage("anon") == 120 << 20
    assert cg.memory_ceiling("anon") == 64 << 20    # v2 keeps the new high: the kernel throttles
    assert cg.set_memory_ceiling("anon", None) and cg.memory_ceiling("anon") is None
    fs.set_pressure("/cg/gaia-x/anon", 12.5)
    assert cg.memory_pressure("anon") == 12.5
    fs.add_cpu_time("/cg/gaia-x/anon", 1500)
    assert cg.cpu_usage_ns("anon") == 1_500_000 and cg.oom_kills("anon") == 0


def test_v1_layout_one_dir_per_controller(tmp_path):
    root = fake_v1(tmp_path / "cg")
    cg = CgroupV1(str(root), "/gaia-x/")
    procs = cg.create("app.0.1", LIMITS)
    assert procs == [str(root / c / "gaia-x" / "app.0.1" / "cgroup.procs") for c in ("memory", "cpu", "pids")]
    assert not (root / "blkio" / "gaia-x").exists()
    mem, cpu = root / "memory" / "gaia-x" / "app.0.1", root / "cpu" / "gaia-x" / "app.0.1"
    assert read(mem / "memory.limit_in_bytes") == str(128 << 20)
    assert read(mem / "memory.soft_limit_in_bytes") == str(64 << 20)
    assert read(cpu / "cpu.shares") == "256"
    assert read(cpu / "cpu.cfs_period_us") == "100000" and read(cpu / "cpu.cfs_quota_us") == "50000"


def test_v1_pids_union_and_missing_controllers(tmp_path):
    root = fake_v1(tmp_path / "cg", controllers=("memory",))
    cg = CgroupV1(str(root), "gaia-x")
    procs = cg.create("c1", Limits(cpu_limit_millis=100))
    assert procs == [str(root / "memory" / "gaia-x" / "c1" / "cgroup.procs")]
    with open(procs[0], "w") as f:
        f.write("12\n7\n")
    assert cg.pids("c1") == [7, 12]
    assert cg.pids("other") == []


def test_v1_reads_usage_stat_ceiling_oom_and_cpu(tmp_path):
    root = fake_v1(tmp_path / "cg", controllers=("memory", "cpu", "cpuacct", "pids"))
    cg = CgroupV1(str(root), "gaia-x")
    cg.create("c1", LIMITS)
    mem = root / "memory" / "gaia-x" / "c1"
    (mem / "memory.usage_in_bytes").write_text(f"{90 << 20}\n")
    (mem / "memory.stat").write_text(f"cache 1\nrss 2\ntotal_active_file {30 << 20}\ntotal_inactive_file {20 << 20}\n"
                                     f"total_active_anon {40 << 20}\ntotal_inactive_anon 0\n")
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (root / "cpuacct" / "gaia-x" / "c1" / "cpuacct.usage").write_text("123456789\n")
    assert cg.memory_stat("c1") == MemoryStat(usage=90 << 20, file=50 << 20, anon=40 << 20)
    assert cg.memory_ceiling("c1") == 128 << 20 and cg.oom_kills("c1") == 2 and cg.cpu_usage_ns("c1") == 123456789
    assert cg.set_memory_ceiling("c1", 96 << 20) and cg.memory_ceiling("c1") == 96 << 20
    assert cg.set_memory_ceiling("c1", None) and read(mem / "memory.limit_in_bytes") == "-1"
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712")   # what the kernel reads back
    assert cg.memory_ceiling("c1") is None and cg.memory_pressure("c1") is None
