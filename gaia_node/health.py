"""Health checks: the node probes each running container whose spec has a `health_check`.

One writer per key: the node records the verdict in the container's status
(ContainerStatus.health) and its service entry (ServiceEndpoint.health), and only when it
changes. "starting" until the first verdict (and during `initial_delay_seconds`), "healthy"
after a success, "unhealthy" after `failure_threshold` failures in a row (from "starting"
too: a service that never comes up must not stay "starting" for ever), healthy again after
one success. Resolve and the registry readers skip starting and unhealthy instances; the AM
restarts unhealthy ones.

Wiring (hooks/registry.py): `HealthChecks` is a task hook, so a container is watched from
the moment it runs (and again when it is re-adopted after a node-manager restart) until it
ends; and a node-wide manager, whose tick starts the probes that are due on a small thread
pool. A probe in flight is never started twice, and every probe is bounded by its timeout,
so at most one probe per container waits in the pool.
"""
import concurrent.futures
import dataclasses
import http.client
import logging
import os
import signal
import socket
import subprocess
import threading
import time

from gaia_common.pb import types_pb2
from gaia_node import state
from gaia_node.environment import expand_args

log = logging.getLogger("gaia.node.health")

NAME = "health"
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
DEFAULT_INTERVAL = 2.0
DEFAULT_TIMEOUT = 1.0
DEFAULT_THRESHOLD = 3
TICK = 0.1                  # how often the manager looks for due probes
WORKERS = 16                # probes running at once, node-wide
KINDS = ("tcp", "http", "exec")
# Joins the container's cgroups ($1.. up to "--"), then execs the rest: the probe's cost is
# charged to the container, as the shim does for the container's own command.
JOIN_CGROUPS = 'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'
NSENTER_FLAGS = {"pid": "--pid", "mount": "--mount", "uts": "--uts", "ipc": "--ipc"}


def has_check(spec: types_pb2.ContainerSpec) -> bool:
    return bool(spec.health_check.kind)


def initial_health(spec: types_pb2.ContainerSpec) -> str:
    """What a new container's status says before any probe: "" when it has no check."""
    return STARTING if has_check(spec) else ""


# ---- the verdict, per container (pure: the clock is passed in) ----

class ProbeState:
    def __init__(self, check: types_pb2.HealthCheck, now: float, health: str = STARTING, delay: float = None):
        self.interval = check.interval_seconds if check.interval_seconds > 0 else DEFAULT_INTERVAL
        self.timeout = check.timeout_seconds if check.timeout_seconds > 0 else DEFAULT_TIMEOUT
        self.threshold = check.failure_threshold if check.failure_threshold > 0 else DEFAULT_THRESHOLD
        self.health = health or STARTING
        self.failures = 0
        self.next_at = now + max(0.0, check.initial_delay_seconds if delay is None else delay)
        self.in_flight = False

    def due(self, now: float) -> bool:
        return not self.in_flight and now >= self.next_at

    def begin(self, now: float) -> None:
        self.in_flight = True
        self.next_at = now + self.interval  # interval from start to start: a slow probe does not stretch it

    def record(self, ok: bool) -> str:
        """Take one probe's outcome; return the new health when it changed, else ""."""
        self.in_flight = False
        before = self.health
        if ok:
            self.failures = 0
            self.health = HEALTHY
        else:
            self.failures += 1
            if self.failures >= self.threshold:
                self.health = UNHEALTHY
        return self.health if self.health != before else ""


# ---- probes: each returns (ok, why) and never runs past its timeout (plus a little) ----

def address(status: types_pb2.ContainerStatus, port_name: str):
    """Where a named port answers: the container's own address when it has a network of its
    own (it listens on the host port's number there), else the host's."""
    port = status.host_ports.get(port_name)
    if not port:
        raise LookupError(f"health_check.port {port_name!r} is not one of the container's ports")
    return (status.container_ip or status.host_ip or "127.0.0.1"), port


def probe_tcp(host: str, port: int, timeout: float):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as e:
        return False, f"tcp {host}:{port}: {e}"


def probe_http(host: str, port: int, path: str, timeout: float):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path or "/", headers={"User-Agent": "gaia-health-check"})
        code = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        return False, f"http GET {host}:{port}{path or '/'}: {e or type(e).__name__}"
    finally:
        conn.close()
    return (200 <= code < 400), f"http GET {host}:{port}{path or '/'}: status {code}"


def run_bounded(argv: list, env: dict, cwd: str, timeout: float):
    """Run argv in a session of its own; kill the whole group when it overruns."""
    try:
        proc = subprocess.Popen(argv, env=env, cwd=cwd or None, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        return False, f"exec {argv[0]!r}: {e}"
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        return False, f"exec timed out after {timeout:g}s"
    if proc.returncode == 0:
        return True, ""
    said = err.decode(errors="replace").strip()[-200:]
    return False, f"exec exited {proc.returncode}" + (f": {said}" if said else "")


def _kill_group(pgid: int):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def process_exec_argv(command: list, launch: dict, pid: int) -> list:
    """The exec check's command as the process driver runs the container's own: in its cgroups,
    and inside its namespaces (nsenter, by its pid) when it has any."""
    argv = list(command)
    entered = [NSENTER_FLAGS[n] for n in launch.get("namespaces") or () if n in NSENTER_FLAGS]
    if launch.get("netns"):
        entered.append("--net")
    if entered:
        argv = ["nsenter", f"--target={pid}", *entered, f"--wd={launch.get('cwd') or '/'}", "--", *argv]
    cgroups = list(launch.get("cgroup_procs") or ())
    if cgroups:
        argv = ["sh", "-c", JOIN_CGROUPS, "sh", *cgroups, "--", *argv]
    return argv


def probe_process_exec(command: list, directory: str, pid: int, timeout: float):
    launch = state.read_json(os.path.join(directory, state.LAUNCH))
    if launch is None:
        return False, f"exec: no readable {state.LAUNCH} for the container"
    env = launch.get("env") or {}
    argv = process_exec_argv(expand_args(command, env), launch, pid)
    return run_bounded(argv, env, launch.get("cwd"), timeout)


def probe_docker_exec(driver, handle, command: list, timeout: float):
    """`docker exec`, detached, polled until it ends; killed by its host pid when it overruns."""
    api = driver.api
    try:
        exec_id = api.exec_create(handle.docker_id, list(command), stdout=False, stderr=False)["Id"]
        api.exec_start(exec_id, detach=True)
        deadline = time.monotonic() + timeout
        while True:
            info = api.exec_inspect(exec_id)
            code = info.get("ExitCode")
            if not info.get("Running") and code is not None:  # None: not started yet
                return code == 0, ("" if code == 0 else f"exec exited {code}")
            if time.monotonic() >= deadline:
                _kill_pid(info.get("Pid"))
                return False, f"exec timed out after {timeout:g}s"
            time.sleep(0.05)
    except Exception as e:  # the engine refused or went away: a failed probe, not a crashed node
        return False, f"docker exec: {e}"


def _kill_pid(pid):
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---- the hook and the manager ----

@dataclasses.dataclass
class Watched:
    spec: types_pb2.ContainerSpec
    status: types_pb2.ContainerStatus   # a copy: addresses and ports as the container runs
    directory: str
    pid: int
    probe: ProbeState


class HealthChecks:
    """Task hook (poststart/recover: watch; poststop: forget) and node-wide manager (tick)."""
    name = NAME

    def __init__(self, parts, clock=time.monotonic, wall=time.time):
        self.parts = parts          # .containers is set after the hooks are built
        self.clock, self.wall = clock, wall
        self._watched = {}          # container id -> Watched
        self._lock = threading.Lock()
        self._pool = None

    # ---- hook ----

    def prestart(self, ctx) -> None:
        pass

    def poststart(self, ctx) -> None:
        self._watch(ctx, ctx.spec.health_check.initial_delay_seconds)

    def recover(self, ctx) -> None:
        """A re-adopted container keeps the verdict it had; only what is left of its initial
        delay (counted from its own start) still applies."""
        delay = ctx.spec.health_check.initial_delay_seconds
        if ctx.status.started_at:
            delay = max(0.0, ctx.status.started_at + delay - self.wall())
        self._watch(ctx, delay, health=ctx.status.health)

    def poststop(self, ctx) -> None:
        with self._lock:
            self._watched.pop(ctx.spec.container_id, None)

    def _watch(self, ctx, delay: float, health: str = STARTING):
        if not has_check(ctx.spec):
            return
        status = types_pb2.ContainerStatus()
        status.CopyFrom(ctx.status)
        status.host_ports.update(ctx.host_ports)
        probe = ProbeState(ctx.spec.health_check, self.clock(), health=health, delay=delay)
        with self._lock:
            self._watched[ctx.spec.container_id] = Watched(ctx.spec, status, ctx.directory, ctx.pid, probe)

    def watching(self) -> list:
        with self._lock:
            return sorted(self._watched)

    # ---- manager ----

    def tick(self) -> None:
        """Start every due probe on the pool."""
        now = self.clock()
        with self._lock:
            due = [w for w in self._watched.values() if w.probe.due(now)]
            for watched in due:
                watched.probe.begin(now)
        for watched in due:
            self._executor().submit(self._run, watched)

    def _executor(self):
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="gaia-node-health")
        return self._pool

    def _run(self, watched: Watched):
        try:
            ok, why = self.probe(watched)
        except Exception as e:  # a bug in one probe must not leave it "in flight" for ever
            log.exception("health probe of %s failed", watched.spec.container_id)
            ok, why = False, f"probe error: {e}"
        metrics = getattr(self.parts, "metrics", None)   # tests' stand-in parts have none
        if metrics is not None:
            metrics.health_check(ok)
        with self._lock:
            changed = watched.probe.record(ok)
            current = self._watched.get(watched.spec.container_id) is watched
        if changed and current:
            self._publish(watched, changed, why)

    def _publish(self, watched: Watched, health: str, why: str):
        cid = watched.spec.container_id
        if not self.parts.containers.set_health(cid, health):
            return  # it ended meanwhile: its final status says so
        if health == UNHEALTHY:
            self.parts.events.record("health.unhealthy", cid, why)
        log.info("container %s is %s%s", cid, health, f": {why}" if why and health != HEALTHY else "")

    def probe(self, watched: Watched):
        check, timeout = watched.spec.health_check, watched.probe.timeout
        if check.kind in ("tcp", "http"):
            try:
                host, port = address(watched.status, check.port)
            except LookupError as e:  # refused at start by validation; a record from before it
                return False, e.args[0]
            if check.kind == "tcp":
                return probe_tcp(host, port, timeout)
            return probe_http(host, port, check.path, timeout)
        if check.kind == "exec":
            return self._exec(watched, timeout)
        return False, f"health_check.kind {check.kind!r} is not one of {', '.join(KINDS)}"

    def _exec(self, watched: Watched, timeout: float):
        check = watched.spec.health_check
        if watched.spec.driver == "docker":
            containers = self.parts.containers
            try:
                container = containers.get(watched.spec.container_id)
            except KeyError:  # containers.NotFound: it ended meanwhile
                return False, "exec: the container is gone"
            driver = containers.drivers.get("docker")
            if driver is None or container.handle is None:
                return False, "exec: the docker driver is unavailable"
            return probe_docker_exec(driver, container.handle, check.command, timeout)
        return probe_process_exec(check.command, watched.directory, watched.pid, timeout)


def hook(parts) -> HealthChecks:
    parts.health = HealthChecks(parts)
    return parts.health


def manager(parts) -> tuple:
    checks = parts.health or hook(parts)  # the hook's own instance: it knows what runs
    return NAME, TICK, checks.tick
