"""cgroup v1/v2 layouts and limit files, against fake trees (no root needed)."""
import os

from gaia_node.cgroups import Limits, cpu_quota_us, cpu_shares, cpu_weight, detect
from gaia_node.cgroups.v1 import CgroupV1
from gaia_node.cgroups.v2 import CgroupV2

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
    assert cpu_weight(1000) == 39  # runc's mapping of 1024 shares
    assert cpu_quota_us(0) is None and cpu_quota_us(500) == 50_000 and cpu_quota_us(1) == 1_000


def test_detect_picks_version(tmp_path):
    assert detect(str(tmp_path / "nothing"), "gaia") is None
    assert detect(str(fake_v2(tmp_path / "v2")), "gaia").version == "v2"
    assert detect(str(fake_v1(tmp_path / "v1")), "gaia").version == "v1"


def test_v2_writes_limits_and_enables_controllers(tmp_path):
    root = fake_v2(tmp_path / "cg")
    cg = CgroupV2(str(root), "gaia-x")
    procs = cg.create("app.0.1", LIMITS)
    leaf = root / "gaia-x" / "app.0.1"
    assert procs == [str(leaf / "cgroup.procs")]
    assert read(root / "cgroup.subtree_control") == "+cpu +memory +pids"
    assert read(root / "gaia-x" / "cgroup.subtree_control") == "+cpu +memory +pids"
    assert read(leaf / "memory.low") == str(64 << 20)
    assert read(leaf / "memory.high") == read(leaf / "memory.max") == str(128 << 20)
    assert read(leaf / "cpu.weight") == str(cpu_weight(250))
    assert read(leaf / "cpu.max") == "50000 100000"


def test_v2_without_limits_leaves_memory_default_and_no_quota(tmp_path):
    root = fake_v2(tmp_path / "cg")
    (root / "cgroup.subtree_control").write_text("cpu memory pids")
    CgroupV2(str(root), "gaia-x").create("c1", Limits())
    leaf = root / "gaia-x" / "c1"
    assert not (leaf / "memory.max").exists() and not (leaf / "memory.low").exists()
    assert read(leaf / "cpu.max") == "max 100000"
    assert read(root / "cgroup.subtree_control") == "cpu memory pids"  # nothing re-enabled


def test_v2_remove(tmp_path):
    root = fake_v2(tmp_path / "cg")
    cg = CgroupV2(str(root), "gaia-x")
    cg.create("c1", Limits())
    for name in os.listdir(root / "gaia-x" / "c1"):  # a real cgroupfs rmdir ignores these files
        os.unlink(root / "gaia-x" / "c1" / name)
    assert cg.remove("c1") and not (root / "gaia-x" / "c1").exists()
    assert cg.remove("c1")  # already gone is fine


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
