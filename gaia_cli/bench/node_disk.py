"""Disk IO accuracy for `gaia bench node`: how close blkio / io.max holds a process to its limit.

Each limit is measured on a private ext4 filesystem on a loop device (so no other disk traffic
interferes and nothing is left behind): a child process in a throttled cgroup writes, then reads
back, a file with O_DIRECT (v1 blkio does not throttle buffered writes), and times itself.
The cgroup is made and configured by the node's own code (gaia_node.isolation.disk_io).
Needs root and a v1 blkio hierarchy (or v2 with the io controller).
"""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from gaia_node.cgroups import read_pids
from gaia_node.isolation import disk_io

MIB = 1 << 20
DEFAULT_LIMITS_MIB = (2, 5, 10)
SECONDS_PER_RUN = 4.0
CGROUP_ROOT = "/sys/fs/cgroup"

# Times O_DIRECT writes (then reads) of argv[3] bytes to argv[2] in argv[4]-byte blocks from an
# aligned (mmap) buffer; prints {"bytes", "seconds"}. With argv[5] set, first waits until this
# process has left the root of that v1 controller (the node moves it in after it starts).
DIRECT_IO = r"""
import json, mmap, os, sys, time
mode, path, total, block = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
controller = sys.argv[5] if len(sys.argv) > 5 else ""
deadline = time.monotonic() + 10
while controller and time.monotonic() < deadline:
    lines = [l.split(":", 2) for l in open("/proc/self/cgroup").read().splitlines()]
    if any(controller in l[1].split(",") and l[2] != "/" for l in lines):
        break
    time.sleep(0.01)
buf = mmap.mmap(-1, block)
buf.write(b"\xa5" * block)
flags = os.O_DIRECT | (os.O_WRONLY | os.O_CREAT if mode == "write" else os.O_RDONLY)
fd = os.open(path, flags, 0o644)
done, start = 0, time.monotonic()
while done < total:
    n = os.write(fd, buf) if mode == "write" else os.readv(fd, [buf])
    if n <= 0:
        break
    done += n
if mode == "write":
    os.fsync(fd)
seconds = time.monotonic() - start
os.close(fd)
print(json.dumps({"bytes": done, "seconds": seconds}))
"""


def run(argv, timeout=30.0) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout.strip()


@contextlib.contextmanager
def loop_filesystem(size_bytes: int, directory: str = None):
    """An ext4 filesystem (no reserved blocks) on a fresh loop device, mounted; yields
    (mount point, "MAJ:MIN" of the loop device). Unmounted and detached afterwards, even on failure."""
    work = tempfile.mkdtemp(prefix="gaia-loopfs-", dir=directory)
    image, mount = os.path.join(work, "image"), os.path.join(work, "mnt")
    device = None
    os.makedirs(mount)
    try:
        with open(image, "wb") as f:
            f.truncate(size_bytes)
        device = run(["losetup", "--find", "--show", image])
        run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0", device],
            timeout=60)
        run(["mount", "-t", "ext4", device, mount])
        try:
            st = os.stat(device)
            yield mount, f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        finally:
            _unmount(mount)
    finally:
        if device:
            subprocess.run(["losetup", "--detach", device], capture_output=True, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def _unmount(mount: str):
    for _ in range(50):  # processes of a test that just ended may still hold it for a moment
        if subprocess.run(["umount", mount], capture_output=True, timeout=30).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "--lazy", mount], capture_output=True, timeout=30)


def direct_io_command(mode: str, path: str, total: int, block: int = 256 << 10, wait_controller: str = "") -> list:
    argv = [sys.executable, "-c", DIRECT_IO, mode, path, str(total), str(block)]
    return argv + [wait_controller] if wait_controller else argv


def _measure_in_cgroup(procs_file: str, mode: str, path: str, total: int) -> dict:
    def join():
        with open(procs_file, "w") as f:
            f.write(str(os.getpid()))
    out = subprocess.run(direct_io_command(mode, path, total), capture_output=True, text=True,
                         timeout=60, preexec_fn=join, check=True).stdout
    return json.loads(out)


def _why_not() -> str:
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("losetup") or not shutil.which("mkfs.ext4"):
        return "needs losetup and mkfs.ext4"
    if not os.path.isdir(os.path.join(CGROUP_ROOT, "blkio")):
        return f"needs a v1 blkio hierarchy under {CGROUP_ROOT}"
    return ""


def disk_figures(limits_mib=DEFAULT_LIMITS_MIB, seconds: float = SECONDS_PER_RUN) -> dict:
    """{"read": {"5MiB/s": {...}}, "write": {...}}: per limit, the measured rate and its error
    in percent of the limit; {"skipped": why} where the machine cannot run it."""
    why = _why_not()
    if why:
        return {"skipped": why}
    figures = {"read": {}, "write": {}}
    parent = os.path.join(CGROUP_ROOT, "blkio", f"gaia-bench-{uuid.uuid4().hex[:8]}")
    size = int(max(limits_mib) * MIB * seconds * 1.5) + 64 * MIB
    with loop_filesystem(size) as (mount, device):
        try:
            for mib in limits_mib:
                rate = mib * MIB
                total = int(rate * seconds)
                cgroup = os.path.join(parent, f"limit-{mib}")
                disk_io.apply_v1(cgroup, device, rate, rate)
                path = os.path.join(mount, f"data-{mib}")
                for mode in ("write", "read"):
                    got = _measure_in_cgroup(os.path.join(cgroup, "cgroup.procs"), mode, path, total)
                    measured = got["bytes"] / got["seconds"]
                    figures[mode][f"{mib}MiB/s"] = {
                        "limit_bps": rate, "measured_bps": round(measured),
                        "error_pct": round(100.0 * (measured - rate) / rate, 2), "seconds": round(got["seconds"], 2)}
                os.unlink(path)
                disk_io.remove_v1(cgroup)
        finally:
            for leaf in os.listdir(parent) if os.path.isdir(parent) else ():
                if os.path.isdir(os.path.join(parent, leaf)):
                    disk_io.remove_v1(os.path.join(parent, leaf))
            if os.path.isdir(parent) and not read_pids(os.path.join(parent, "cgroup.procs")):
                os.rmdir(parent)
    return figures


if __name__ == "__main__":
    print(json.dumps(disk_figures(), indent=2))
