"""Disk IO: blkio throttle (cgroup v1) / io.max (v2) on the block device under a container's scratch.

The throttle is the limit (resources.limit.disk_read_bps / disk_write_bps), which the spec fills
from the request when unset. blk-throttle is a cap with no notion of borrowing, so disk IO is
not elastic: a container asking for 5 MiB/s gets at most 5 MiB/s, even on an idle disk.

Throttles act on block IO the container's processes submit themselves. On v1 that excludes
buffered writes (the kernel's writeback flushes them, charged to the root cgroup); reads, direct
writes and (on v2, where writeback is charged to its owner) buffered writes are throttled.

The device is the whole disk holding the state dir's filesystem: the kernel refuses throttles on
partitions, so /dev/sda1 resolves to /dev/sda; loop, dm and md devices are throttled themselves.

On v1 the node's cgroups package does not join containers to blkio, so this hook makes
<root>/blkio/<parent>/<container_id> itself and moves the container's processes in at
poststart (the task runs unthrottled for the few milliseconds before that). On v2 the task
is already in its cgroup; the hook enables the io controller down to it and writes io.max.
"""
import logging
import os
import signal
import time

from gaia_common.spec import SpecError
from gaia_node.cgroups import HostFS, read_pids, rmdir, write

log = logging.getLogger("gaia.node.disk_io")

JOIN_PASSES = 5             # processes forked while we move others in are caught by the next pass
REMOVE_WAIT = 1.0
POLL = 0.02


def io_rates(resources) -> tuple:
    """(read, write) bytes per second to enforce; 0 = unthrottled."""
    return (resources.limit.disk_read_bps or resources.request.disk_read_bps,
            resources.limit.disk_write_bps or resources.request.disk_write_bps)


# ---- which device ----

def block_device(path: str, sys_root: str = "/sys", mountinfo: str = "/proc/self/mountinfo"):
    """"MAJ:MIN" of the whole disk that holds the filesystem of `path`, or None (tmpfs, overlay...)."""
    dev = os.stat(path).st_dev
    number = f"{os.major(dev)}:{os.minor(dev)}"
    if os.major(dev) == 0:  # anonymous device (btrfs, overlay, tmpfs): ask the mount table
        source = mount_source(path, mountinfo)
        try:
            st = os.stat(source) if source else None
        except OSError:
            st = None
        if st is None or not (st.st_mode & 0o170000 == 0o060000):  # not a block device
            return None
        number = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return whole_disk(number, sys_root)


def whole_disk(number: str, sys_root: str = "/sys"):
    """The disk a partition belongs to (from sysfs); the device itself when it is no partition."""
    node = os.path.join(sys_root, "dev", "block", number)
    if not os.path.exists(node):
        return None
    if not os.path.exists(os.path.join(node, "partition")):
        return number
    parent = os.path.dirname(os.path.realpath(node))
    with open(os.path.join(parent, "dev")) as f:
        return f.read().strip()


def mount_source(path: str, mountinfo: str = "/proc/self/mountinfo"):
    """The source (e.g. /dev/sda2) of the mount holding `path`: the longest mount point above it."""
    target = os.path.realpath(path)
    best, source = "", None
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 2:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, source = point, tail[1]
    return source


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


# ---- what to write ----

def v1_settings(device: str, read: int, write_bps: int) -> dict:
    """blkio files and values; a rate of 0 removes the device's rule."""
    return {"blkio.throttle.read_bps_device": f"{device} {read}",
            "blkio.throttle.write_bps_device": f"{device} {write_bps}"}


def v2_io_max(device: str, read: int, write_bps: int) -> str:
    """One io.max line; "max" is the kernel's word for unlimited."""
    return f"{device} rbps={read or 'max'} wbps={write_bps or 'max'}"


# ---- the hook ----

class DiskIOHook:
    name = "disk_io"

    def __init__(self, cgroups, state_dir: str, sys_root: str = "/sys"):
        self.cgroups = cgroups
        self.state_dir = state_dir
        self.sys_root = sys_root

    def prestart(self, ctx) -> None:
        read, write_bps = io_rates(ctx.spec.resources)
        if not (read or write_bps):
            return
        field = "resources.limit.disk_read" if read else "resources.limit.disk_write"
        why = self._unenforceable()
        if why:
            raise SpecError(field, f"disk IO limits cannot be enforced on this node: {why}")
        device = block_device(ctx.directory, self.sys_root)
        if device is None:
            raise SpecError(field, f"disk IO limits cannot be enforced on this node: its state dir "
                                   f"{self.state_dir} is on no block device (tmpfs, overlay?)")
        ctx.state[self.name] = {"device": device, "read": read, "write": write_bps}

    def _unenforceable(self) -> str:
        if self.cgroups is None:
            return "it has no usable cgroups"
        if self.cgroups.version == "v1":
            if not os.path.isdir(os.path.join(self.cgroups.root, "blkio")):
                return f"no blkio controller under {self.cgroups.root}"
        elif "io" not in _words(self._fs(), os.path.join(self.cgroups.root, "cgroup.controllers")):
            return f"the io controller is not available in {self.cgroups.root}"
        return ""

    def poststart(self, ctx) -> None:
        settings = ctx.state.get(self.name)
        if not settings:
            return
        if self.cgroups.version == "v1":
            self._apply_v1(ctx.spec.container_id, settings)
        else:
            self._apply_v2(ctx.spec.container_id, settings)

    recover = poststart      # the files survive a node-manager restart; writing them again is harmless

    def poststop(self, ctx) -> None:
        if not ctx.state.get(self.name) or self.cgroups.version != "v1":
            return  # on v2 the cgroup is the cgroups package's and goes with it
        remove_v1(self.cgroups.path("blkio", ctx.spec.container_id))

    def _apply_v1(self, container_id: str, settings: dict):
        path = self.cgroups.path("blkio", container_id)
        apply_v1(path, settings["device"], settings["read"], settings["write"])
        join_v1(path, lambda: self.cgroups.pids(container_id))

    def _apply_v2(self, container_id: str, settings: dict):
        fs = self._fs()
        enable_io_v2(fs, self.cgroups.root, self.cgroups.parent)
        apply_v2(fs, self.cgroups.path(container_id), settings["device"], settings["read"], settings["write"])

    def _fs(self):
        """The v2 implementation's file operations (a model of cgroupfs in tests), else the host's."""
        return getattr(self.cgroups, "fs", None) or HostFS


def apply_v1(path: str, device: str, read: int, write_bps: int) -> None:
    os.makedirs(path, exist_ok=True)
    for name, value in v1_settings(device, read, write_bps).items():
        write(os.path.join(path, name), value)


def join_v1(path: str, container_pids) -> None:
    """Move every process of the container into the blkio cgroup at `path`."""
    procs = os.path.join(path, "cgroup.procs")
    for _ in range(JOIN_PASSES):
        missing = set(container_pids()) - set(read_pids(procs))
        if not missing:
            return
        for pid in sorted(missing):
            try:
                write(procs, pid)
            except ProcessLookupError:  # exited meanwhile
                pass
    log.warning("processes kept appearing outside %s; the newest may run unthrottled", path)


def remove_v1(path: str) -> None:
    """Remove the blkio cgroup; processes still in it have outlived their task: kill them."""
    deadline = time.monotonic() + REMOVE_WAIT
    while not rmdir(path):
        if time.monotonic() > deadline:
            log.warning("could not remove %s: processes remain", path)
            return
        for pid in read_pids(os.path.join(path, "cgroup.procs")):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(POLL)



def enable_io_v2(fs, root: str, parent: str) -> None:
    """"+io" in cgroup.subtree_control from the root down to Gaia's parent, where it is missing
    (the cgroups package enables it when it makes the parent; this covers a parent made before)."""
    level = root
    for part in [""] + [p for p in parent.strip("/").split("/") if p]:
        level = os.path.join(level, part) if part else level
        control = os.path.join(level, "cgroup.subtree_control")
        if "io" not in _words(fs, control):
            fs.write(control, "+io")


def apply_v2(fs, path: str, device: str, read: int, write_bps: int) -> None:
    fs.write(os.path.join(path, "io.max"), v2_io_max(device, read, write_bps))


def _words(fs, path: str) -> set:
    try:
        return set(fs.read(path).split())
    except FileNotFoundError:
        return set()


def hook(parts) -> DiskIOHook:
    return DiskIOHook(parts.cgroups, parts.cfg.state_dir)
