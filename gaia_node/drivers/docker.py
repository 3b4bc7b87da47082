"""The docker driver: an image run by the node's Docker Engine, through the `docker` SDK.

The engine runs the container; the node manager keeps control of it the way it does for the
process driver:
  cgroups   with the engine's cgroupfs driver the container's cgroup is a child of Gaia's own
            per-container cgroup, <parent>/<container_id>/<docker id>: Gaia makes and limits
            <parent>/<container_id> as for a process (so the node's memory and cpu managers act
            on the same path whatever the driver), and the engine sets the same limits on its
            leaf. With the systemd cgroup driver the engine gets a slice named after the parent.
  network   "none" (the node's network hooks wire a veth into its namespace by pid after start),
            or the host's when spec.host_network.
  restarts  the engine keeps the container when the node manager dies (and, with
            --live-restore, when the engine itself restarts); `recover` finds it again by the
            id the node persisted, else by the name every Gaia container gets.
  logs      kept by the engine (json-file, bounded) while the container exists; when it ends
            they are copied into the container's directory (stdout, stderr, as the process
            driver writes them) and the engine's container is removed, so `gaia logs` works
            after exit and no stopped container piles up in the engine.
"""
import dataclasses
import datetime
import logging
import math
import os
import time
from typing import Optional

from gaia_common.spec import SpecError
from gaia_node import gpu_share, state
from gaia_node.cgroups import Limits
from gaia_node.drivers.base import Capabilities, StartFailed, TaskStatus
from gaia_node.environment import expand_args

log = logging.getLogger("gaia.node.docker")

API_TIMEOUT = 30.0               # one engine call; starts on a loaded machine take seconds
CGROUP_REMOVE_WAIT = 2.0         # for the engine to remove its leaf cgroup
STOP_EXTRA_WAIT = 10.0           # after the engine's own SIGKILL, for the exit to be recorded
NAME_PREFIX = "gaia-"            # the engine's container name: gaia-<container_id>
LABEL_CONTAINER = "io.gaia.container-id"
LABEL_APP = "io.gaia.app"
LABEL_INSTANCE = "io.gaia.instance"
LABEL_PARENT = "io.gaia.cgroup-parent"
# Which node manager owns it: its state directory. Nodes of one host may share a cgroup parent
# (a dev cluster does), so the parent alone must never decide whose container an orphan is.
LABEL_NODE = "io.gaia.node-state"
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}}
LOG_COPY_CHUNK = 64 * 1024


class DriverUnavailable(Exception):
    """The runtime cannot be used on this node (its engine does not answer)."""


@dataclasses.dataclass
class DockerHandle:
    container_id: str             # Gaia's id
    docker_id: str                # the engine's
    pid: int = 0                  # as last seen running: reported while the engine is away
    started_at: float = 0.0


def engine_name(container_id: str) -> str:
    return NAME_PREFIX + container_id


def parse_time(text: str) -> float:
    """The engine's RFC 3339 times (nanoseconds, 'Z') as unix seconds; 0 for its zero time."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    head, _, frac = text.rstrip("Z").partition(".")
    zone = ""
    for sign in ("+", "-"):   # an offset instead of Z
        if sign in frac:
            frac, zone = frac.split(sign, 1)[0], sign + frac.split(sign, 1)[1]
    when = datetime.datetime.fromisoformat(head + (zone or "+00:00"))
    return when.timestamp() + (float("0." + frac) if frac else 0.0)


class DockerDriver:
    name = "docker"

    def __init__(self, dirs, cgroups=None, docker_host: str = "", cgroup_parent: str = "gaia",
                 cgroup_root: str = "/sys/fs/cgroup"):
        import docker  # here, so a node without the SDK still runs the process driver
        self.errors = docker.errors
        self.dirs = dirs
        self.cgroups = cgroups
        self.parent = cgroup_parent.strip("/")
        self.cgroup_root = cgroup_root
        try:
            self.client = (docker.DockerClient(base_url=docker_host, timeout=API_TIMEOUT) if docker_host
                           else docker.from_env(timeout=API_TIMEOUT))
            self.api = self.client.api
            info = self.api.info()
        except Exception as e:  # DockerException, connection refused, missing socket...
            raise DriverUnavailable(f"the Docker engine at {docker_host or 'its default address'} "
                                    f"does not answer: {e}") from None
        self.cgroup_driver = info.get("CgroupDriver", "cgroupfs")
        self.cgroup_version = "v" + str(info.get("CgroupVersion") or "1")
        self.live_restore = bool(info.get("LiveRestoreEnabled"))
        # GPUs go through the engine's nvidia device driver where it has one, else as device nodes
        self.nvidia_runtime = "nvidia" in (info.get("Runtimes") or {})
        if not self.live_restore:
            log.warning("the Docker engine runs without --live-restore: restarting it stops every container")
        try:
            self._remove_orphans()
        except Exception:  # a clean-up: never a reason not to run
            log.exception("could not look for orphaned engine containers")

    def _remove_orphans(self):
        """Engine containers of this node (its state-dir label) that the node no longer knows
        (no container directory: it was removed while the engine could not be told)."""
        for found in self.api.containers(all=True, filters={"label": f"{LABEL_NODE}={self.dirs.root}"}):
            container_id = (found.get("Labels") or {}).get(LABEL_CONTAINER, "")
            try:
                known = os.path.isdir(self.dirs.path(container_id))
            except ValueError:
                known = False
            if not known:
                log.warning("removing engine container %s: no Gaia container %r on this node",
                            found["Id"][:12], container_id)
                self._discard(container_id, found["Id"])

    def capabilities(self) -> Capabilities:
        return Capabilities(host_network=True, network_namespaces=True, images=True,
                            cgroups=self.cgroup_version, memory_limits=True, cpu_limits=True)

    def validate(self, spec) -> None:
        if not spec.image:
            raise SpecError("spec.image", "required for the docker driver")
        if spec.namespaces:
            raise SpecError("spec.namespaces", "the docker driver always gives a container its own pid, mount, "
                                               "uts and ipc namespaces; the list is for the process driver")
        for i, device in enumerate(spec.devices):   # the engine's device syntax is host:container:permissions
            if ":" in device:
                raise SpecError(f"spec.devices[{i}]", f"{device!r}: the docker driver cannot pass a path with ':'")

    # ---- start ----

    def start(self, spec, env: dict, host_ports: dict, netns: str = "") -> DockerHandle:
        """Create and start; on any failure nothing is left (no engine container, no cgroup).
        `netns` is not joined: the network hooks wire the container's own namespace by pid."""
        cgroup_parent = self._cgroup_parent(spec)
        docker_id = ""
        try:
            docker_id = self._create(spec, env, cgroup_parent)
            self.api.start(docker_id)
        except self.errors.ImageNotFound:
            self._discard(spec.container_id, docker_id)
            raise StartFailed(f"image {spec.image!r} does not exist on this node's Docker engine") from None
        except self.errors.APIError as e:
            self._discard(spec.container_id, docker_id)
            raise StartFailed(f"the Docker engine refused {spec.image!r}: {e.explanation or e}") from None
        except Exception as e:  # the engine went away mid-start: leave nothing half-made behind
            self._discard(spec.container_id, docker_id)
            raise StartFailed(f"the Docker engine failed to start {spec.image!r}: {e}") from None
        return DockerHandle(spec.container_id, docker_id)

    def _create(self, spec, env: dict, cgroup_parent: str) -> str:
        """The engine's container, not started. Two calls at most on the way to running (create,
        start) keeps the start as quick as the engine's own `docker run`."""
        # The scratch dir (the disk hook's, measured against the disk quota) is mounted at the
        # same path, so $GAIA_SCRATCH means the same inside as on the node.
        scratch = env.get("GAIA_SCRATCH")
        binds = {scratch: {"bind": scratch, "mode": "rw"}} if scratch else {}
        # a GPU container's devices, and its vCUDA library, config, preload and region (gpu_share)
        gpu = gpu_share.docker_options(self.dirs.path(spec.container_id), self.nvidia_runtime)
        binds.update(gpu.pop("binds", {}))
        gpu.update(self._host_access(spec, gpu.pop("devices", [])))
        host_config = self.api.create_host_config(
            network_mode="host" if spec.host_network else "none", cgroup_parent=cgroup_parent,
            log_config=LOG_CONFIG, binds=binds or None, **self._resources(spec), **gpu)
        request = dict(image=spec.image, command=expand_args(spec.command, env) or None,
                       name=engine_name(spec.container_id), environment=env, working_dir=self._workdir(spec),
                       labels=self._labels(spec), host_config=host_config, detach=True, stdin_open=False, tty=False)
        try:
            return self.api.create_container(**request)["Id"]
        except self.errors.APIError as e:
            if e.status_code != 409:
                raise
        # 409: the name is taken by a container the node does not know of (it died mid-start)
        self.api.remove_container(engine_name(spec.container_id), force=True)
        return self.api.create_container(**request)["Id"]

    @staticmethod
    def _host_access(spec, devices: list) -> dict:
        """The spec's volumes (bind mounts: the engine refuses a missing source rather than
        creating it), devices (added to `devices`, the GPUs' if any) and privileged flag; the
        master and the node have checked them against their allow-lists."""
        import docker
        out = {}
        if spec.volumes:
            out["mounts"] = [docker.types.Mount(v.container_path, v.host_path, type="bind", read_only=v.read_only)
                             for v in spec.volumes]
        devices = list(devices) + [f"{d}:{d}:rwm" for d in spec.devices]
        if devices:
            out["devices"] = devices
        if spec.privileged:
            out["privileged"] = True
        return out

    def _cgroup_parent(self, spec) -> str:
        if self.cgroup_driver == "systemd":
            return f"{self.parent.replace('/', '-')}.slice"
        if self.cgroups is not None:
            try:
                self.cgroups.create(spec.container_id, Limits.from_requirements(spec.resources))
            except OSError as e:
                self.cgroups.remove(spec.container_id)
                raise StartFailed(f"cannot set up the {self.cgroups.version} cgroup: {e}") from None
        return f"/{self.parent}/{spec.container_id}"

    @staticmethod
    def _resources(spec) -> dict:
        request, limit = spec.resources.request, spec.resources.limit
        out = {}
        if limit.memory_bytes:
            out["mem_limit"] = limit.memory_bytes
            out["memswap_limit"] = limit.memory_bytes   # no swap beyond the limit
        if request.memory_bytes:
            out["mem_reservation"] = request.memory_bytes
        if request.cpu_millis:
            out["cpu_shares"] = max(2, request.cpu_millis * 1024 // 1000)
        if limit.cpu_millis:
            out["cpu_period"] = 100_000
            out["cpu_quota"] = max(1_000, limit.cpu_millis * 100)
        return out

    @staticmethod
    def _workdir(spec) -> Optional[str]:
        if not spec.workdir:
            return None
        return spec.workdir if spec.workdir.startswith("/") else "/" + spec.workdir

    def _labels(self, spec) -> dict:
        return {LABEL_CONTAINER: spec.container_id, LABEL_APP: spec.app_name, LABEL_INSTANCE: spec.instance_id,
                LABEL_PARENT: self.parent, LABEL_NODE: self.dirs.root}

    def _discard(self, container_id: str, docker_id: str):
        try:
            self.api.remove_container(docker_id or engine_name(container_id), force=True)
        except Exception:  # not created, or the engine is gone: nothing more can be done here
            pass
        self._remove_cgroup(container_id)

    def _remove_cgroup(self, container_id: str):
        """Gaia's cgroup of the container, once the engine's leaf in it is gone (bounded wait)."""
        if self.cgroups is None or self.cgroup_driver == "systemd":
            return
        deadline = time.monotonic() + CGROUP_REMOVE_WAIT
        while not self.cgroups.remove(container_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        # runc made <parent>/<container_id> in every v1 hierarchy (cpuset, devices, freezer...),
        # not only in those Gaia manages, and removes only its own leaf below it.
        try:
            hierarchies = os.listdir(self.cgroup_root)
        except OSError:
            return
        for hierarchy in hierarchies:
            try:
                os.rmdir(os.path.join(self.cgroup_root, hierarchy, self.parent, container_id))
            except OSError:  # absent, not a directory, or still busy: nothing to do or to wait for
                pass

    # ---- status ----

    def status(self, handle: DockerHandle) -> TaskStatus:
        try:
            info = self.api.inspect_container(handle.docker_id)
        except self.errors.NotFound:
            return TaskStatus(running=False, exit_code=-1, finished_at=time.time(), lost=True,
                              message="the Docker engine no longer knows the container")
        except Exception as e:  # the engine restarts (live-restore keeps the container): unchanged
            if not handle.pid:
                raise
            log.debug("engine unreachable for %s: %s", handle.container_id, e)
            return TaskStatus(running=True, pid=handle.pid, started_at=handle.started_at)
        task = self._task_status(info["State"])
        if task.running:
            handle.pid, handle.started_at = task.pid, task.started_at
        return task

    @staticmethod
    def _task_status(st: dict) -> TaskStatus:
        started = parse_time(st.get("StartedAt", ""))
        if st.get("Running") or st.get("Restarting"):
            return TaskStatus(running=True, pid=st.get("Pid") or 0, started_at=started)
        code = st.get("ExitCode", 0)
        if st.get("Status") == "created":   # the node manager died between create and start
            return TaskStatus(running=False, exit_code=-1, finished_at=time.time(),
                              message="created but never started")
        if st.get("Error"):
            message = st["Error"]
        elif st.get("OOMKilled"):
            message = f"killed by the kernel for memory (exit {code})"
        else:
            message = f"exited with code {code}"
        # The engine stamps StartedAt after runc returns, so a process that exits at once can
        # show a FinishedAt a fraction of a millisecond earlier: never report an end before a start.
        finished = parse_time(st.get("FinishedAt", ""))
        return TaskStatus(running=False, started_at=started, exit_code=code,
                          finished_at=max(finished, started) if finished else 0.0, message=message)

    # ---- stop and clean-up ----

    def stop(self, handle: DockerHandle, grace: float) -> TaskStatus:
        """The engine sends SIGTERM, then SIGKILL after `grace` (whole seconds, rounded up)."""
        seconds = max(0, math.ceil(grace))
        try:
            self.api.stop(handle.docker_id, timeout=seconds)
            self.api.wait(handle.docker_id, timeout=seconds + STOP_EXTRA_WAIT)
        except self.errors.NotFound:
            pass
        except Exception as e:  # a timeout: report what the engine says now
            log.warning("container %s did not stop in time: %s", handle.container_id, e)
        return self.status(handle)

    def release(self, handle: DockerHandle) -> None:
        """Keep its output beside the node's record, then let the engine and the cgroup go."""
        try:
            self._copy_logs(handle)
            self.api.remove_container(handle.docker_id, force=True)
        except self.errors.NotFound:
            pass
        except Exception as e:  # the engine is away: its output stays readable there; once the
            # container is removed from the node, the next start of the node removes it from the engine
            log.warning("container %s: could not remove its engine container: %s", handle.container_id, e)
        self._remove_cgroup(handle.container_id)

    def _copy_logs(self, handle: DockerHandle):
        for stream in (state.STDOUT, state.STDERR):
            path = self.dirs.path(handle.container_id, stream)
            if os.path.exists(path):
                continue  # copied before (a release repeated after a restart)
            tmp = path + ".tmp"
            chunks = self.api.logs(handle.docker_id, stdout=stream == state.STDOUT,
                                   stderr=stream == state.STDERR, stream=True, follow=False)
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            os.replace(tmp, path)

    # ---- logs (gaia_node/logs.py reads through these) ----

    def has_engine_logs(self, handle: DockerHandle) -> bool:
        """True while the engine holds the output (the container was not released yet)."""
        return not all(os.path.exists(self.dirs.path(handle.container_id, s)) for s in (state.STDOUT, state.STDERR))

    def engine_logs(self, handle: DockerHandle, stream: str, follow: bool, timestamps: bool = False,
                    since: float = None):
        """An iterator of raw bytes of one stream (stdout | stderr) from the engine."""
        return self.api.logs(handle.docker_id, stdout=stream == state.STDOUT, stderr=stream == state.STDERR,
                             stream=True, follow=follow, timestamps=timestamps, since=since)

    # ---- restart of the node manager ----

    def handle_state(self, handle: DockerHandle) -> dict:
        return dataclasses.asdict(handle)

    def recover(self, saved: dict) -> Optional[DockerHandle]:
        container_id = saved["container_id"]
        for ref in (saved.get("docker_id"), engine_name(container_id)):
            if not ref:
                continue
            try:
                info = self.api.inspect_container(ref)
            except self.errors.NotFound:
                continue
            if (info.get("Config") or {}).get("Labels", {}).get(LABEL_CONTAINER) == container_id:
                return DockerHandle(container_id, info["Id"])
        return None
