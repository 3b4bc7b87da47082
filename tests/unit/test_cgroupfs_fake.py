"""The cgroup v2 model is strict: what the kernel refuses, it refuses (with the kernel's errno)."""
import errno

import pytest

from tests.fakes.cgroupfs import FakeCgroupFS


def refused(code, action, *args):
    with pytest.raises(OSError) as caught:
        action(*args)
    assert caught.value.errno == code, caught.value


def test_interface_files_need_the_controller_enabled_in_the_parent():
    fs = FakeCgroupFS("/cg")
    fs.mkdir("/cg/gaia")
    fs.mkdir("/cg/gaia/c1")
    # the wrong order: memory.max before the parents enabled memory
    assert not fs.exists("/cg/gaia/c1/memory.max")
    refused(errno.EACCES, fs.write, "/cg/gaia/c1/memory.max", 1 << 20)
    refused(errno.ENOENT, fs.read, "/cg/gaia/c1/memory.max")
    fs.write("/cg/cgroup.subtree_control", "+memory")
    assert not fs.exists("/cg/gaia/c1/memory.max")       # the parent of c1 is gaia, not the root
    fs.write("/cg/gaia/cgroup.subtree_control", "+memory")
    fs.write("/cg/gaia/c1/memory.max", 1 << 20)
    assert fs.read("/cg/gaia/c1/memory.max") == f"{1 << 20}\n"


def test_a_controller_is_enabled_only_where_offered_top_down():
    fs = FakeCgroupFS("/cg", controllers=("cpu", "memory"))
    fs.mkdir("/cg/gaia")
    assert fs.read("/cg/gaia/cgroup.controllers") == "\n"
    refused(errno.ENOENT, fs.write, "/cg/gaia/cgroup.subtree_control", "+memory")   # root has not enabled it
    refused(errno.ENOENT, fs.write, "/cg/cgroup.subtree_control", "+io")            # not on this machine
    refused(errno.EINVAL, fs.write, "/cg/cgroup.subtree_control", "memory")         # no +/-
    refused(errno.EINVAL, fs.write, "/cg/cgroup.subtree_control", "+bogus")
    refused(errno.EINVAL, fs.write, "/cg/gaia/cgroup.controllers", "memory")        # read-only
    fs.write("/cg/cgroup.subtree_control", "+memory +cpu")
    assert fs.read("/cg/gaia/cgroup.controllers").split() == ["cpu", "memory"]
    fs.write("/cg/gaia/cgroup.subtree_control", "+memory")
    refused(errno.EBUSY, fs.write, "/cg/cgroup.subtree_control", "-memory")         # a child still uses it
    fs.write("/cg/gaia/cgroup.subtree_control", "-memory")
    fs.write("/cg/cgroup.subtree_control", "-memory")
    assert fs.read("/cg/cgroup.subtree_control").split() == ["cpu"]


def test_no_internal_processes():
    fs = FakeCgroupFS("/cg", live_pids={10, 11})
    fs.write("/cg/cgroup.subtree_control", "+memory")
    fs.mkdir("/cg/gaia")
    fs.mkdir("/cg/gaia/c1")
    fs.write("/cg/gaia/cgroup.procs", 10)                   # no controllers enabled below: fine
    refused(errno.EBUSY, fs.write, "/cg/gaia/cgroup.subtree_control", "+memory")
    fs.write("/cg/gaia/c1/cgroup.procs", 10)                # moved to the leaf
    fs.write("/cg/gaia/cgroup.subtree_control", "+memory")
    refused(errno.EBUSY, fs.write, "/cg/gaia/cgroup.procs", 11)
    fs.write("/cg/cgroup.procs", 11)                        # the root is exempt
    refused(errno.ESRCH, fs.write, "/cg/gaia/c1/cgroup.procs", 12)
    refused(errno.EINVAL, fs.write, "/cg/gaia/c1/cgroup.procs", "ten")
    refused(errno.EBUSY, fs.rmdir, "/cg/gaia/c1")           # populated
    refused(errno.EBUSY, fs.rmdir, "/cg/gaia")              # has a child
    refused(errno.EEXIST, fs.mkdir, "/cg/gaia/c1")
    refused(errno.ENOENT, fs.mkdir, "/cg/nowhere/c1")


def test_value_formats():
    fs = FakeCgroupFS("/cg")
    fs.write("/cg/cgroup.subtree_control", "+memory +cpu +io +pids")
    fs.mkdir("/cg/c")
    for good in ("max", "1048576", "64M", "1G"):
        fs.write("/cg/c/memory.max", good)
    fs.write("/cg/c/memory.high", 1000)
    assert fs.read("/cg/c/memory.high") == "0\n"            # kept in whole pages
    for bad in ("-1", "lots", "1.5G", ""):
        refused(errno.EINVAL, fs.write, "/cg/c/memory.max", bad)
    fs.write("/cg/c/cpu.weight", 10_000)
    refused(errno.ERANGE, fs.write, "/cg/c/cpu.weight", 0)
    refused(errno.ERANGE, fs.write, "/cg/c/cpu.weight", 10_001)
    refused(errno.EINVAL, fs.write, "/cg/c/cpu.weight", "heavy")
    fs.write("/cg/c/cpu.max", "50000 100000")
    fs.write("/cg/c/cpu.max", "max")
    assert fs.read("/cg/c/cpu.max") == "max 100000\n"
    for bad in ("max max", "500 100000", "50000 100", "50000 2000000", "1 2 3", "half"):
        refused(errno.EINVAL, fs.write, "/cg/c/cpu.max", bad)
    fs.write("/cg/c/io.max", "8:0 rbps=1048576 wbps=max")
    assert fs.read("/cg/c/io.max") == "8:0 rbps=1048576 wbps=max riops=max wiops=max\n"
    refused(errno.ENODEV, fs.write, "/cg/c/io.max", "9:9 rbps=1")
    refused(errno.EINVAL, fs.write, "/cg/c/io.max", "8:0 speed=1")
    refused(errno.EINVAL, fs.write, "/cg/c/io.max", "sda rbps=1")
    refused(errno.EINVAL, fs.write, "/cg/c/memory.current", 5)   # read-only
    refused(errno.EINVAL, fs.write, "/cg/c/pids.max", "-3")


def test_disabling_a_controller_drops_its_files_and_values():
    fs = FakeCgroupFS("/cg")
    fs.write("/cg/cgroup.subtree_control", "+memory")
    fs.mkdir("/cg/c")
    fs.write("/cg/c/memory.max", "64M")
    fs.write("/cg/cgroup.subtree_control", "-memory")
    assert not fs.exists("/cg/c/memory.max")
    fs.write("/cg/cgroup.subtree_control", "+memory")
    assert fs.read("/cg/c/memory.max") == "max\n"


def test_memory_model_reclaims_cache_and_oom_kills_at_max():
    fs = FakeCgroupFS("/cg")
    fs.write("/cg/cgroup.subtree_control", "+memory")
    fs.mkdir("/cg/c")
    fs.write("/cg/c/cgroup.procs", 9)
    fs.charge("/cg/c", anon=50 << 20, file=30 << 20)
    fs.write("/cg/c/memory.high", 60 << 20)                 # reclaims cache before returning
    assert fs.read("/cg/c/memory.current") == f"{60 << 20}\n"
    refused(errno.EAGAIN, fs.write, "/cg/c/memory.reclaim", 20 << 20)   # only 10Mi of cache left
    fs.write("/cg/c/memory.max", 40 << 20)                  # below its anonymous memory: OOM
    assert "oom_kill 1" in fs.read("/cg/c/memory.events") and fs.read("/cg/c/cgroup.procs") == "\n"
