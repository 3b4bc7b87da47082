"""The process driver: a host command under the shim (gaia_node/shim.py), in its own cgroups.

A task with host_network shares the host's network; any other joins the network namespace
the node's network hook made for it (`netns`, passed to the shim in launch.json). The shim
also creates the extra namespaces a spec asks for (pid, mount, uts, ipc). Both need root.
The driver creates and configures the cgroups itself (so a bad limit fails the start call
at once); the shim only puts the child into them before exec.
"""
import dataclasses
import os
import select
import signal
import subprocess
import sys
import time
from typing import Optional

from gaia_common.spec import SpecError
from gaia_node import gpu_share, procs, state
from gaia_node.cgroups import Limits
from gaia_node.drivers.base import Capabilities, StartFailed, TaskStatus
from gaia_node.environment import expand_args

EXTRA_NAMESPACES = ("pid", "mount", "uts", "ipc")
SHIM_REPORT_TIMEOUT = 10.0     # python start-up of the shim, on a loaded machine
KILL_WAIT = 5.0                # after SIGKILL, for the shim to record the exit
CGROUP_REMOVE_WAIT = 2.0
POLL = 0.02
# The shim runs as `python -m gaia_node.shim`: make this checkout importable for it.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class ProcessHandle:
    container_id: str           # everything else is read from the shim's state.json


class ProcessDriver:
    name = "process"

    def __init__(self, dirs, cgroups=None):
        self.dirs = dirs
        self.cgroups = cgroups

    def capabilities(self) -> Capabilities:
        enforced = self.cgroups is not None
        root = os.geteuid() == 0
        return Capabilities(host_network=True, network_namespaces=root, images=False,
                            cgroups=self.cgroups.version if enforced else "",
                            memory_limits=enforced, cpu_limits=enforced,
                            namespaces=EXTRA_NAMESPACES if root else ())

    def validate(self, spec) -> None:
        if spec.image:
            raise SpecError("spec.image", "the process driver runs host commands, not images (use driver docker)")
        if not spec.command:
            raise SpecError("spec.command", "required for the process driver")
        capabilities = self.capabilities()
        # A network of its own is the network hook's call: it runs such a container in the
        # host's network where it cannot make one, unless the spec asks for bandwidth.
        for i, name in enumerate(spec.namespaces):
            if name not in EXTRA_NAMESPACES:
                raise SpecError(f"spec.namespaces[{i}]", f"{name!r} is not one of {', '.join(EXTRA_NAMESPACES)} "
                                                         "(the network follows host_network)")
            if name not in capabilities.namespaces:
                raise SpecError(f"spec.namespaces[{i}]", f"this node cannot create a {name} namespace "
                                                         "(the node manager is not root)")
        self._validate_host_access(spec, "mount" in capabilities.namespaces)

    @staticmethod
    def _validate_host_access(spec, root: bool) -> None:
        """What the process driver can honour of volumes, devices and privileged, refused with
        the reason rather than ignored. A task runs on the node's own filesystem: a volume is a
        bind mount over an existing path, in a mount namespace of the task's own (root only).
        Devices are the node's own, reachable as the node manager's user can reach them (the
        node checked they exist). A privileged task runs with the node manager's full rights
        (root): no capability is dropped for any task, so only a root node manager can give them."""
        for i, volume in enumerate(spec.volumes):
            where = f"spec.volumes[{i}]"
            if not root:
                raise SpecError(where, "needs a mount namespace of its own: this node manager is not root")
            if not os.path.exists(volume.container_path):
                raise SpecError(f"{where}.container_path", f"{volume.container_path!r} does not exist on this node: "
                                                           "the process driver binds over an existing path of the "
                                                           "node's filesystem (use the docker driver for new ones)")
            if os.path.isdir(volume.host_path) != os.path.isdir(volume.container_path):
                raise SpecError(f"{where}.container_path", "a directory binds over a directory, a file over a file")
        if spec.privileged and not root:
            raise SpecError("spec.privileged", "this node manager is not root: it cannot run a privileged task")

    # ---- start ----

    def start(self, spec, env: dict, host_ports: dict, netns: str = "") -> ProcessHandle:
        directory = self.dirs.create(spec.container_id)
        cwd = os.path.join(directory, spec.workdir or state.WORKDIR)  # an absolute workdir wins
        os.makedirs(cwd, exist_ok=True)
        handle = ProcessHandle(spec.container_id)
        launch = {"command": expand_args(spec.command, env), "env": env, "cwd": cwd,
                  "cgroup_procs": self._make_cgroups(spec), "netns": netns, "namespaces": list(spec.namespaces)}
        if spec.volumes:   # bound by the shim's child, inside a mount namespace of its own
            launch["namespaces"] = sorted(set(launch["namespaces"]) | {"mount"})
            launch.setdefault("binds", []).extend({"source": v.host_path, "target": v.container_path,
                                                   "read_only": v.read_only} for v in spec.volumes)
        gpu_share.extend_launch(launch, directory, launch["namespaces"])   # devices cgroup, vCUDA preload
        try:
            state.write_json_atomic(os.path.join(directory, state.LAUNCH), launch)
            self._wait_for_report(handle, self._spawn_shim(directory))
        except BaseException:  # whatever failed, no shim may run on and no cgroup stay behind
            self._abandon(handle)
            raise
        return handle

    def _make_cgroups(self, spec) -> list:
        if self.cgroups is None:
            return []
        try:
            return self.cgroups.create(spec.container_id, Limits.from_requirements(spec.resources))
        except OSError as e:
            self.cgroups.remove(spec.container_id)
            raise StartFailed(f"cannot set up the {self.cgroups.version} cgroup: {e}") from None

    @staticmethod
    def _spawn_shim(directory: str) -> int:
        """Start the shim; return the read end of its readiness pipe."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        ready_r, ready_w = os.pipe()
        try:
            with open(os.path.join(directory, "shim.log"), "ab") as log:
                # -S: the shim needs only the standard library and this package (on PYTHONPATH)
                first = subprocess.Popen([sys.executable, "-S", "-m", "gaia_node.shim", directory, str(ready_w)],
                                         cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         close_fds=True, pass_fds=(ready_w,), start_new_session=True)
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        try:
            code = first.wait(SHIM_REPORT_TIMEOUT)  # the first shim process only forks and exits
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
            code = -9
        if code != 0:
            os.close(ready_r)
            raise StartFailed(f"the shim failed to start (exit {code}); see {directory}/shim.log")
        return ready_r

    def _wait_for_report(self, handle: ProcessHandle, ready_fd: int):
        """Wait for the shim's readiness byte (or its end of the pipe closing), then read state.json."""
        path = self.dirs.path(handle.container_id, state.SHIM_STATE)
        try:
            waiter = select.poll()  # not select(): it refuses fds >= 1024, and a busy node has more
            waiter.register(ready_fd, select.POLLIN | select.POLLHUP)
            waiter.poll(SHIM_REPORT_TIMEOUT * 1000)
        finally:
            os.close(ready_fd)
        record = state.read_json(path) or {}
        if not (record.get("pid") or "finished_at" in record):
            raise StartFailed(f"the shim did not report a pid within {SHIM_REPORT_TIMEOUT:g}s")

    # ---- status ----

    def status(self, handle: ProcessHandle) -> TaskStatus:
        record = self._record(handle)
        if record is None:
            return TaskStatus(running=False, exit_code=-1, lost=True, message="the shim recorded nothing")
        if "finished_at" in record:
            return self._finished(record)
        if procs.alive(record.get("child")) or procs.alive(record.get("shim")):
            # A live shim with a dead child is about to record the exit.
            return TaskStatus(running=True, pid=record.get("pid", 0), started_at=record.get("started_at", 0))
        record = self._record(handle) or record  # it may have recorded the exit just now
        if "finished_at" in record:
            return self._finished(record)
        return TaskStatus(running=False, pid=record.get("pid", 0), started_at=record.get("started_at", 0),
                          exit_code=-1, finished_at=time.time(), lost=True,
                          message="the shim is gone without recording an exit")

    def _record(self, handle: ProcessHandle) -> Optional[dict]:
        return state.read_json(self.dirs.path(handle.container_id, state.SHIM_STATE))

    @staticmethod
    def _finished(record: dict) -> TaskStatus:
        signum = record.get("signal", 0)
        if record.get("error"):
            message = record["error"]
        elif signum:
            message = f"killed by {signal.Signals(signum).name}"
        else:
            message = f"exited with code {record.get('exit_code', 0)}"
        return TaskStatus(running=False, pid=record.get("pid", 0), started_at=record.get("started_at", 0.0),
                          exit_code=record.get("exit_code", 0), signal=signum,
                          finished_at=record["finished_at"], message=message)

    # ---- stop and clean-up ----

    def stop(self, handle: ProcessHandle, grace: float) -> TaskStatus:
        if not self.status(handle).running:
            return self.status(handle)
        self._signal(handle, signal.SIGTERM)
        if not self._wait_gone(handle, grace):
            self._signal(handle, signal.SIGKILL)
            self._wait_gone(handle, KILL_WAIT)
        return self.status(handle)

    def _signal(self, handle: ProcessHandle, signum: int):
        """The child's process group, and anything of the container that left it (its cgroup)."""
        record = self._record(handle) or {}
        group = record["pid"] if procs.alive(record.get("child")) else None
        if group:
            try:
                os.killpg(group, signum)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in (self.cgroups.pids(handle.container_id) if self.cgroups else ()):
            try:
                if os.getpgid(pid) != group:  # the group got it already: one signal each
                    os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _wait_gone(self, handle: ProcessHandle, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.status(handle).running:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)
        return True

    def _abandon(self, handle: ProcessHandle):
        """A shim that never reported must not start the command later."""
        record = self._record(handle) or {}
        if procs.alive(record.get("shim")):
            os.kill(record["shim"]["pid"], signal.SIGKILL)
        self._signal(handle, signal.SIGKILL)
        self.release(handle)

    def release(self, handle: ProcessHandle) -> None:
        if self.cgroups is None:
            return
        deadline = time.monotonic() + CGROUP_REMOVE_WAIT
        while not self.cgroups.remove(handle.container_id) and time.monotonic() < deadline:
            for pid in self.cgroups.pids(handle.container_id):  # strays the task left behind
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(POLL)

    # ---- restart of the node manager ----

    def handle_state(self, handle: ProcessHandle) -> dict:
        return dataclasses.asdict(handle)

    def recover(self, saved: dict) -> Optional[ProcessHandle]:
        handle = ProcessHandle(saved["container_id"])
        return handle if self._record(handle) is not None else None
