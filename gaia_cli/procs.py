"""Finding and stopping the processes of a local cluster, without ever touching anyone else's.

A process is named by its pid and its start time (psutil's create_time), so a pid the kernel
has since given to another program is never signalled. A zombie counts as gone.
"""
import contextlib
import json
import os
import pathlib
import signal
import time

import psutil

from gaia_cli.errors import CliError

CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")


def start_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def find(pid: int, started: float):
    """The live psutil.Process for (pid, started), or None when it is gone or the pid was reused.

    `started` 0 (the process was gone before its start time could be read) is always gone.
    """
    if not started:
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) > 0.01:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def alive(procs) -> list:
    """Those of `procs` (psutil.Process) still running, by the identity each was found with."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def family(leader: psutil.Process) -> list:
    """`leader`, its descendants, and every process still in its process group."""
    found = {leader.pid: leader}
    try:
        for child in leader.children(recursive=True):
            found[child.pid] = child
    except psutil.Error:
        pass
    found.update({p.pid: p for p in group_members(leader.pid, leader.create_time())})
    return list(found.values())


def group_members(pgid: int, not_before: float) -> list:
    """Processes in process group `pgid` started no earlier than its leader (`not_before`)."""
    members = []
    for p in psutil.process_iter(["create_time"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["create_time"] >= not_before - 0.01:
                members.append(p)
        except (OSError, psutil.Error):
            pass
    return members


def with_env(name: str, value: str) -> list:
    """Processes whose environment has `name`=`value` (those this user may read)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(name) == value:
                found.append(p)
        except (OSError, psutil.Error):
            pass
    return found


def cgroup_dirs(parent: str, root: pathlib.Path = CGROUP_ROOT) -> list:
    """`parent`'s directory in every hierarchy: v2 (root/parent) and v1 (root/<controller>/parent)."""
    candidates = [root / parent]
    try:
        candidates += [d / parent for d in root.iterdir() if d.is_dir() and not d.is_symlink()]
    except OSError:
        pass
    return [d for d in candidates if (d / "cgroup.procs").exists()]


def cgroup_processes(parent: str, root: pathlib.Path = CGROUP_ROOT) -> list:
    """Every process in `parent` or any cgroup below it, in any hierarchy."""
    found = {}
    for top in cgroup_dirs(parent, root):
        for dirpath, _, files in os.walk(top):
            if "cgroup.procs" not in files:
                continue
            try:
                pids = pathlib.Path(dirpath, "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in map(int, pids):
                try:
                    found[pid] = psutil.Process(pid)
                except psutil.Error:
                    pass
    return list(found.values())


def remove_cgroups(parent: str, root: pathlib.Path = CGROUP_ROOT, wait: float = 2.0) -> list:
    """rmdir `parent`'s cgroups, deepest first; return those still there after `wait` seconds.

    A process just killed stays in its cgroup until it is reaped, so an rmdir right after a
    SIGKILL may find the cgroup busy for a moment.
    """
    deadline = time.monotonic() + wait
    while True:
        left = []
        for top in cgroup_dirs(parent, root):
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(dirpath)
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(dirpath)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _protected() -> set:
    """This process and its ancestors: never signalled, whatever a cgroup or group says."""
    me = psutil.Process()
    return {me.pid} | {p.pid for p in me.parents()}


def signal_all(procs, sig):
    for p in procs:
        try:
            p.send_signal(sig)  # psutil checks the process is still the one it found
        except psutil.Error:
            pass


def stop(procs, grace: float = 5.0) -> list:
    """SIGTERM `procs`, SIGKILL what is left after `grace` seconds; return what survives even that."""
    keep_out = _protected()
    # One signal per process: a second SIGTERM can land inside a daemon's own handler.
    procs = list({p.pid: p for p in procs if p.pid not in keep_out}.values())
    signal_all(alive(procs), signal.SIGTERM)
    left = wait_gone(procs, grace)
    signal_all(left, signal.SIGKILL)
    return wait_gone(left, 5.0)


def wait_gone(procs, timeout: float) -> list:
    """Those of `procs` still running after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    left = alive(procs)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = alive(left)
    return left


# ---- what `gaia dev` and `gaia lab` share: their state file, logs, an uninterruptible stop ----

def log_tail(path, lines: int = 15) -> str:
    """The last lines of a daemon's log, indented, for an error message ("" if unreadable)."""
    try:
        text = pathlib.Path(path).read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("    " + line for line in text)


def read_state(path: pathlib.Path, hint: str = "") -> dict:
    """The JSON state file of a local cluster, {} when there is none."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise CliError(f"{path}: unreadable ({e}){hint}") from None


def write_state(path: pathlib.Path, state: dict) -> None:
    """Atomically: a crash mid-write never leaves half a state file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


@contextlib.contextmanager
def sigint_ignored():
    """A second Ctrl-C must not strand half of a teardown."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
