"""The monitor of one container's process: `python -m gaia_node.shim <container_dir>`.

Like containerd's shim it detaches from the node manager (new session, then a fork whose
parent exits at once), so containers outlive node-manager restarts and upgrades. It starts
the command from launch.json in its own process group, inside the container's cgroups,
records the child's pid, identity and real start time, waits for it, and records how it ended; all in
state.json, which only the shim writes. The node manager reads that file and signals the
child's process group itself.

Namespaces: launch.json may name a network namespace to join ("netns", a path the node's
network hook made) and extra namespaces to create ("namespaces": pid, mount, uts, ipc). The
shim enters the network, uts and ipc ones itself before it starts the command, so a failure
is recorded with its reason; a new pid namespace takes effect for its child, which is that
namespace's first process; the mount namespace is made by the child (between fork and exec)
with a /proc of its own pid namespace, so the shim keeps the host's /proc to watch it.
As a pid namespace's init, the child ignores signals it has no handler for: a stop that
SIGTERMs it escalates to SIGKILL after the grace period.

Only the standard library, and the node starts it with `python -S`: the shim is on every
container's start path, and site-packages and psutil would triple its start-up (ctypes, for
setns/unshare on Python 3.11, is loaded only when a namespace is asked for). When started with
a readiness fd, the shim writes one byte to it once state.json holds the child's pid (or why
it could not start), so the node waits for that instead of polling the file.
"""
import _signal as signal  # the C module: `signal` would import enum, ~7 ms on every start
import os
import sys
import time

from gaia_node import procs, state

# Exit code recorded when the command cannot be executed at all (as a shell reports it).
CANNOT_EXECUTE = 127


def main(argv) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m gaia_node.shim <container_dir> [ready_fd]", file=sys.stderr)
        return 2
    directory = argv[1]
    ready_fd = int(argv[2]) if len(argv) == 3 else -1
    launch = state.read_json(os.path.join(directory, state.LAUNCH))
    if launch is None:
        print(f"{directory}: no readable {state.LAUNCH}", file=sys.stderr)
        return 2
    if os.fork() > 0:
        os._exit(0)  # the node manager reaps this parent at once; the monitor is re-parented
    Monitor(directory, launch, ready_fd).run()
    return 0


class Monitor:
    def __init__(self, directory: str, launch: dict, ready_fd: int = -1):
        self.directory = directory
        self.launch = launch
        self.ready_fd = ready_fd
        self.child = 0        # the command's pid
        self.exited = False   # reaped: its pid may belong to someone else now
        self.record = {"shim": procs.identity(os.getpid())}

    def save(self, **changes):
        self.record.update(changes)
        state.write_json_atomic(os.path.join(self.directory, state.SHIM_STATE), self.record)

    def run(self):
        self.save()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        try:
            self.child = self._spawn()
        except (OSError, ValueError) as e:
            command = self.launch["command"][0] if self.launch.get("command") else ""
            self.save(exit_code=CANNOT_EXECUTE, finished_at=time.time(),
                      error=f"could not start {command!r}: {e}")
            self._ready()
            return
        # Both read before waiting: the child cannot be reaped, so its pid is still its own.
        self.save(pid=self.child, child=procs.identity(self.child),
                  started_at=procs.start_time(self.child))
        self._ready()
        _, status = os.waitpid(self.child, 0)  # retried across the signals we forward (PEP 475)
        self.exited = True
        returncode = os.waitstatus_to_exitcode(status)
        if returncode < 0:  # killed by a signal: report it the way shells do
            self.save(exit_code=128 - returncode, signal=-returncode, finished_at=time.time())
        else:
            self.save(exit_code=returncode, signal=0, finished_at=time.time())

    def _ready(self):
        """Tell the waiting node manager that state.json now says how the start went."""
        if self.ready_fd >= 0:
            try:
                os.write(self.ready_fd, b".")
                os.close(self.ready_fd)
            except OSError:
                pass  # the node manager stopped waiting; it reads state.json later
            self.ready_fd = -1

    def _spawn(self) -> int:
        """Fork and exec the command; return its pid, or raise OSError saying why it could not
        start. (Plain fork/exec rather than subprocess, which costs ~7 ms to import.)"""
        command = self.launch["command"]
        if not command:
            raise ValueError("empty command")
        extra = set(self.launch.get("namespaces") or ())
        # The mount namespace is the child's alone: the shim keeps the host's /proc to watch it.
        enter_namespaces(self.launch.get("netns") or "", extra - {"mount"})
        out = os.open(os.path.join(self.directory, state.STDOUT), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        err = os.open(os.path.join(self.directory, state.STDERR), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        report_r, report_w = os.pipe()  # close-on-exec: it reads empty once the exec succeeded
        pid = os.fork()
        if pid == 0:
            self._child(command, extra, out, err, report_w)  # never returns
        os.close(report_w)
        os.close(out)
        os.close(err)
        with os.fdopen(report_r, "rb") as report:
            failure = report.read()
        if failure:
            os.waitpid(pid, 0)
            raise OSError(failure.decode(errors="replace"))
        return pid

    def _child(self, command, extra, out: int, err: int, report_w: int):
        """In the forked child: its own session, its cgroups, its files, then exec."""
        try:
            os.setsid()
            for path in self.launch.get("cgroup_procs") or ():  # the command starts inside its limits
                with open(path, "w") as f:
                    f.write(str(os.getpid()))
            if "mount" in extra:
                enter_mount_namespace(mount_proc="pid" in extra)
                bind_mounts(self.launch.get("binds") or ())   # only ever inside its own namespace
            devnull = os.open(os.devnull, os.O_RDONLY)
            for fd, target in ((devnull, 0), (out, 1), (err, 2)):
                os.dup2(fd, target)
            os.closerange(3, report_w)           # nothing of the shim's leaks into the container
            os.closerange(report_w + 1, 65536)
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            os.chdir(self.launch["cwd"])
            os.execvpe(command[0], command, self.launch["env"])
        except BaseException as e:  # noqa: B036 - report anything, the child must not return
            try:
                os.write(report_w, str(e).encode() or type(e).__name__.encode())
            finally:
                os._exit(CANNOT_EXECUTE)

    def _forward(self, signum, _frame):
        """A signal to the shim is meant for the container: pass it to the child's group."""
        if self.child and not self.exited:
            try:
                os.killpg(self.child, signum)
            except ProcessLookupError:
                pass


# ---- namespaces (linux/sched.h, linux/mount.h) ----

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
NAMESPACE_FLAGS = {"mount": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "pid": CLONE_NEWPID}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 0x1, 0x2, 0x4, 0x8, 0x20, 0x1000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
_libc = None


def _libc_call(name: str, *args) -> int:
    global _libc
    if _libc is None:
        import ctypes  # only here: most containers ask for no namespace
        _libc = ctypes.CDLL(None, use_errno=True)
    result = getattr(_libc, name)(*args)
    if result != 0:
        import ctypes
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return result


def enter_namespaces(netns: str, extra: set) -> None:
    """Join the network namespace at `netns` (if any), then unshare the `extra` ones. A new
    pid namespace takes effect for the shim's child, not the shim."""
    unknown = extra - set(NAMESPACE_FLAGS)
    if unknown:
        raise ValueError(f"unknown namespaces {sorted(unknown)}")
    if netns:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _libc_call("setns", fd, CLONE_NEWNET)
        except OSError as e:
            raise OSError(e.errno, f"cannot join network namespace {netns}: {e.strerror}") from None
        finally:
            os.close(fd)
    flags = 0
    for name in extra:
        flags |= NAMESPACE_FLAGS[name]
    if flags:
        _libc_call("unshare", flags)


def enter_mount_namespace(mount_proc: bool) -> None:
    """In the child: a mount namespace of its own whose mounts stay inside, with a /proc of
    its own pid namespace when it has one (it is then that namespace's first process)."""
    _libc_call("unshare", CLONE_NEWNS)
    _libc_call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    if mount_proc:
        _libc_call("mount", b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)


def bind_mounts(binds) -> None:
    """In the child's own mount namespace: each {source, target, read_only} bound over its
    target (which must exist), e.g. the vCUDA preload file over /etc/ld.so.preload."""
    for bind in binds:
        source, target = bind["source"].encode(), bind["target"].encode()
        try:
            _libc_call("mount", source, target, None, MS_BIND, None)
            if bind.get("read_only"):
                _libc_call("mount", b"none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
        except OSError as e:
            raise OSError(e.errno, f"cannot bind {bind['source']} over {bind['target']}: {e.strerror}") from None


if __name__ == "__main__":
    sys.exit(main(sys.argv))
