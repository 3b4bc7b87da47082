"""Disk IO throttling: device resolution, blkio and io.max files, against fake trees (no root needed)."""
import os
import types

import pytest

from gaia_common.pb import types_pb2
from gaia_common.spec import SpecError
from gaia_node.cgroups import Limits
from gaia_node.cgroups.v1 import CgroupV1
from gaia_node.cgroups.v2 import CgroupV2
from gaia_node.isolation import disk_io
from tests.fakes.cgroupfs import FakeCgroupFS

MIB = 1 << 20


def requirements(read=0, write=0, limit_read=0, limit_write=0):
    return types_pb2.ResourceRequirements(
        request=types_pb2.Resources(disk_read_bps=read, disk_write_bps=write),
        limit=types_pb2.Resources(disk_read_bps=limit_read, disk_write_bps=limit_write))


def test_throttle_is_the_limit_else_the_request():
    assert disk_io.io_rates(requirements(read=1, write=2, limit_read=3, limit_write=4)) == (3, 4)
    assert disk_io.io_rates(requirements(read=1, write=2)) == (1, 2)
    assert disk_io.io_rates(requirements()) == (0, 0)


def test_formats():
    assert disk_io.v2_io_max("7:3", 5 * MIB, 0) == "7:3 rbps=5242880 wbps=max"
    assert disk_io.v2_io_max("8:0", 0, 1000) == "8:0 rbps=max wbps=1000"
    assert disk_io.v1_settings("8:0", 10, 0) == {"blkio.throttle.read_bps_device": "8:0 10",
                                                "blkio.throttle.write_bps_device": "8:0 0"}


def fake_sysfs(root):
    """sda with partition sda1, and a loop device; /sys/dev/block links as the kernel makes them."""
    sda = root / "devices" / "pci0" / "block" / "sda"
    (sda / "sda1").mkdir(parents=True)
    (sda / "dev").write_text("8:0\n")
    (sda / "sda1" / "dev").write_text("8:1\n")
    (sda / "sda1" / "partition").write_text("1\n")
    loop = root / "devices" / "virtual" / "block" / "loop3"
    loop.mkdir(parents=True)
    (loop / "dev").write_text("7:3\n")
    links = root / "dev" / "block"
    links.mkdir(parents=True)
    for number, target in (("8:0", sda), ("8:1", sda / "sda1"), ("7:3", loop)):
        os.symlink(os.path.relpath(target, links), links / number)
    return root


def test_partitions_resolve_to_their_disk(tmp_path):
    sys_root = str(fake_sysfs(tmp_path / "sys"))
    assert disk_io.whole_disk("8:1", sys_root) == "8:0"
    assert disk_io.whole_disk("8:0", sys_root) == "8:0"
    assert disk_io.whole_disk("7:3", sys_root) == "7:3"
    assert disk_io.whole_disk("9:9", sys_root) is None


def test_mount_source_is_the_longest_mount_above_the_path(tmp_path):
    deep = tmp_path / "with space" / "data"
    deep.mkdir(parents=True)
    escaped = str(tmp_path / "with space").replace(" ", "\\040")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        f"40 22 0:45 / {escaped} rw,relatime shared:9 - btrfs /dev/sdb2 rw\n"
        f"41 22 0:46 / {tmp_path}/with rw - tmpfs tmpfs rw\n")
    assert disk_io.mount_source(str(deep), str(mountinfo)) == "/dev/sdb2"
    assert disk_io.mount_source("/etc", str(mountinfo)) == "/dev/vda"


def test_block_device_of_a_real_path_is_a_disk_or_none():
    got = disk_io.block_device("/")
    assert got is None or got.count(":") == 1


def ctx_for(cid, resources, directory):
    return types.SimpleNamespace(spec=types_pb2.ContainerSpec(container_id=cid, resources=resources),
                                 directory=str(directory), state={})


def v2_node(tmp_path, monkeypatch, controllers=("cpu", "io", "memory", "pids"), device="8:0"):
    """A CgroupV2 over the rule-enforcing model of cgroupfs, and the hook on it."""
    fs = FakeCgroupFS(root="/fake/cgroup", controllers=controllers, devices=("8:0",))
    cgroups = CgroupV2("/fake/cgroup", "gaia/node-x", fs=fs)
    monkeypatch.setattr(disk_io, "block_device", lambda path, sys_root="/sys": device)
    return fs, cgroups, disk_io.DiskIOHook(cgroups, str(tmp_path))


def test_v2_writes_io_max_in_the_containers_cgroup(tmp_path, monkeypatch):
    fs, cgroups, hook = v2_node(tmp_path, monkeypatch)
    cgroups.create("app.0.1", Limits())
    ctx = ctx_for("app.0.1", requirements(write=5 * MIB, limit_write=5 * MIB), tmp_path)
    hook.prestart(ctx)
    assert ctx.state["disk_io"] == {"device": "8:0", "read": 0, "write": 5 * MIB}
    hook.poststart(ctx)
    leaf = "/fake/cgroup/gaia/node-x/app.0.1/io.max"
    assert fs.read(leaf) == "8:0 rbps=max wbps=5242880 riops=max wiops=max\n"
    assert (leaf, "8:0 rbps=max wbps=5242880") in fs.writes
    hook.recover(ctx)   # re-asserting after a node-manager restart changes nothing
    assert fs.read(leaf) == "8:0 rbps=max wbps=5242880 riops=max wiops=max\n"


def test_v2_enables_io_where_a_parent_was_made_without_it(tmp_path, monkeypatch):
    fs, cgroups, hook = v2_node(tmp_path, monkeypatch)
    for level in ("/fake/cgroup/gaia", "/fake/cgroup/gaia/node-x", "/fake/cgroup/gaia/node-x/app.0.1"):
        parent = os.path.dirname(level)
        fs.write(os.path.join(parent, "cgroup.subtree_control"), "+memory")
        fs.mkdir(level)
    assert not fs.exists("/fake/cgroup/gaia/node-x/app.0.1/io.max")
    ctx = ctx_for("app.0.1", requirements(read=MIB, limit_read=2 * MIB), tmp_path)
    hook.prestart(ctx)
    hook.poststart(ctx)
    assert fs.read("/fake/cgroup/gaia/node-x/app.0.1/io.max").startswith("8:0 rbps=2097152 wbps=max")


def test_v2_refuses_an_unknown_device_loudly(tmp_path, monkeypatch):
    fs, cgroups, hook = v2_node(tmp_path, monkeypatch, device="7:3")
    cgroups.create("app.0.1", Limits())
    ctx = ctx_for("app.0.1", requirements(write=MIB), tmp_path)
    hook.prestart(ctx)
    with pytest.raises(OSError):      # the container table then stops the task: "setup failed"
        hook.poststart(ctx)


def test_v2_without_the_io_controller_refuses_the_spec(tmp_path, monkeypatch):
    _, _, hook = v2_node(tmp_path, monkeypatch, controllers=("cpu", "memory", "pids"))
    with pytest.raises(SpecError, match="resources.limit.disk_read.*io controller"):
        hook.prestart(ctx_for("a.0.1", requirements(read=MIB), tmp_path))


def test_no_limits_touch_nothing(tmp_path):
    hook = disk_io.DiskIOHook(None, str(tmp_path))
    ctx = ctx_for("a.0.1", requirements(), tmp_path)
    hook.prestart(ctx)
    hook.poststart(ctx)
    hook.poststop(ctx)
    assert ctx.state == {}


def test_limits_without_cgroups_or_a_block_device_are_refused(tmp_path, monkeypatch):
    with pytest.raises(SpecError, match="no usable cgroups"):
        disk_io.DiskIOHook(None, str(tmp_path)).prestart(ctx_for("a.0.1", requirements(write=MIB), tmp_path))
    (tmp_path / "v1" / "blkio").mkdir(parents=True)
    hook = disk_io.DiskIOHook(CgroupV1(str(tmp_path / "v1"), "gaia-x"), str(tmp_path))
    monkeypatch.setattr(disk_io, "block_device", lambda path, sys_root="/sys": None)
    with pytest.raises(SpecError, match="no block device"):
        hook.prestart(ctx_for("a.0.1", requirements(write=MIB), tmp_path))


def test_v1_writes_throttles_and_joins_the_container(tmp_path, monkeypatch):
    root = tmp_path / "v1"
    for controller in ("memory", "cpu", "pids", "blkio"):
        (root / controller).mkdir(parents=True)
    cgroups = CgroupV1(str(root), "gaia-x")
    monkeypatch.setattr(cgroups, "pids", lambda cid: [4242])
    monkeypatch.setattr(disk_io, "block_device", lambda path, sys_root="/sys": "8:0")
    hook = disk_io.DiskIOHook(cgroups, str(tmp_path))
    ctx = ctx_for("a.0.1", requirements(read=MIB, write=2 * MIB), tmp_path)
    hook.prestart(ctx)
    hook.poststart(ctx)
    leaf = root / "blkio" / "gaia-x" / "a.0.1"
    assert (leaf / "blkio.throttle.read_bps_device").read_text() == f"8:0 {MIB}"
    assert (leaf / "blkio.throttle.write_bps_device").read_text() == f"8:0 {2 * MIB}"
    assert (leaf / "cgroup.procs").read_text() == "4242"
