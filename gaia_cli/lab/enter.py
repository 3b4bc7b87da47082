"""`python -m gaia_cli.lab.enter NETNS_PATH COMMAND...`: exec COMMAND as a process of one lab host.

It joins the host's network namespace, then takes a mount namespace of its own with a sysfs
mounted for that network namespace, as `ip netns exec` does: /sys/class/net must show the
host's own links (a node reads its containers' veth counters there). Unlike `ip netns exec`
it keeps the cgroup hierarchies under /sys/fs/cgroup, which a node manager needs.

Mounts made inside (a node's named container namespaces) stay in that mount namespace and go
away with its last process; the host's mounts still reach it (slave propagation).
"""
import ctypes
import os
import sys
import tempfile

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SLAVE = 0x80000
MNT_DETACH = 2
CGROUPS = "/sys/fs/cgroup"

_libc = ctypes.CDLL(None, use_errno=True)


def _call(name: str, *args):
    args = [a.encode() if isinstance(a, str) else a for a in args]
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}{tuple(a for a in args if isinstance(a, bytes))}: {os.strerror(err)}")


def join_netns(path: str):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _call("setns", fd, CLONE_NEWNET)
    finally:
        os.close(fd)


def own_sysfs():
    """A private mount namespace whose /sys belongs to the current network namespace, with the
    cgroup hierarchies moved over from the old /sys."""
    _call("unshare", CLONE_NEWNS)
    _call("mount", None, "/", None, MS_REC | MS_SLAVE, None)  # nothing made here leaks out
    keep = tempfile.mkdtemp(prefix="gaialab-cgroup-")
    try:
        _call("mount", CGROUPS, keep, None, MS_BIND | MS_REC, None)
        _call("umount2", "/sys", MNT_DETACH)
        _call("mount", "sysfs", "/sys", "sysfs", 0, None)
        _call("mount", keep, CGROUPS, None, MS_MOVE, None)
    finally:
        os.rmdir(keep)


def main(argv) -> int:
    if len(argv) < 2:
        print("usage: python -m gaia_cli.lab.enter NETNS_PATH COMMAND...", file=sys.stderr)
        return 2
    join_netns(argv[0])
    own_sysfs()
    os.execvp(argv[1], argv[1:])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
