"""A node manager whose state dir is a small ext4 filesystem on a loop device the test creates,
so disk pressure is real and bounded and disk IO goes through a block device of our own."""
import contextlib
import os
import shutil
import signal
import uuid

import pytest

from gaia_cli.bench.node_disk import loop_filesystem
from gaia_common.config import NodeConfig
from tests.integration.node_harness import CGROUP_ROOT, NodeHarness, _rmdir, wait_for

MIB = 1 << 20
CAN_LOOP = (os.geteuid() == 0 and bool(shutil.which("losetup")) and bool(shutil.which("mkfs.ext4"))
            and os.path.exists("/dev/loop-control"))
HAS_BLKIO = os.path.isdir(os.path.join(CGROUP_ROOT, "blkio")) and not os.path.exists(
    os.path.join(CGROUP_ROOT, "cgroup.controllers"))
needs_loop = pytest.mark.skipif(not CAN_LOOP, reason="needs root, losetup and mkfs.ext4")


@contextlib.contextmanager
def loop_node(etcd_server, etcd, cluster_name, size=96 * MIB, **settings):
    """Yields (harness, mount point, loop "MAJ:MIN"); everything is undone afterwards."""
    tag = uuid.uuid4().hex[:8]
    with loop_filesystem(size) as (mount, device):
        cfg = NodeConfig(cluster=cluster_name, etcd=[etcd_server.endpoint], id=f"node-{tag}",
                         state_dir=os.path.join(mount, "node"), cgroup_parent=f"gaia-test-{tag}", lease_ttl=2,
                         cgroup_root=CGROUP_ROOT, **settings)
        harness = NodeHarness(cfg, etcd)
        try:
            yield harness.start(), mount, device
        finally:
            harness.clean_up()
            remove_blkio(cfg.cgroup_parent)


def remove_blkio(parent: str):
    """The blkio cgroups the disk IO hook made (the harness knows only the cgroups package's)."""
    top = os.path.join(CGROUP_ROOT, "blkio", parent)
    if not os.path.isdir(top):
        return
    for leaf in [os.path.join(top, n) for n in os.listdir(top) if os.path.isdir(os.path.join(top, n))]:
        def gone(path=leaf):
            for pid in open(os.path.join(path, "cgroup.procs")).read().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return _rmdir(path)
        wait_for(gone, what=f"rmdir {leaf}")
    os.rmdir(top)


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_to(mount: str, name: str, free_target: int):
    """Write a file in the mount's root until about `free_target` bytes are free."""
    size = free_bytes(mount) - free_target
    assert size > 0, f"only {free_bytes(mount)} bytes free already"
    chunk = b"\0" * MIB
    with open(os.path.join(mount, name), "wb") as f:
        for _ in range(size // MIB):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
