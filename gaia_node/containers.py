"""The node's containers: start, stop, notice exits, and re-adopt them after a restart.

Each container is a small state machine, STARTING -> RUNNING -> EXITED | FAILED | STOPPED,
persisted in its directory (container.json) before it is published, so a node manager that
dies at any point finds on restart what it had started. Transitions of one container are
serialised by its own lock; different containers never wait for each other.
"""
import dataclasses
import logging
import threading
import time

from google.protobuf import json_format

from gaia_common.logctx import log_context
from gaia_common.pb import types_pb2
from gaia_common.security import tls as tls_mod
from gaia_node import state
from gaia_node.drivers.base import StartFailed, TaskStatus
from gaia_node.environment import build_env
from gaia_node.health import initial_health
from gaia_node.hooks import HookRunner, TaskContext
from gaia_node.metrics import NodeMetrics
from gaia_node.validation import validate_container_spec

log = logging.getLogger("gaia.node.containers")

S = types_pb2
TERMINAL = {S.CONTAINER_STATE_EXITED, S.CONTAINER_STATE_FAILED, S.CONTAINER_STATE_STOPPED,
            S.CONTAINER_STATE_LOST}
DEFAULT_GRACE = 5.0
START_FAILED = -1        # exit_code of a container whose process never started


class NotFound(KeyError):
    pass


@dataclasses.dataclass
class Container:
    spec: types_pb2.ContainerSpec
    status: types_pb2.ContainerStatus
    handle: object = None
    stop_requested: bool = False
    saved_handle: dict = None     # the driver's handle state read back at recovery
    hook_state: dict = dataclasses.field(default_factory=dict)   # persisted for the hooks
    platform_reason: str = ""     # set when the node ends it for the node's sake (eviction)
    fault_reason: str = ""        # set when the node ends it for breaking its own limits
    hooks_done: bool = False      # poststop ran
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)


def about(spec: types_pb2.ContainerSpec):
    """Log lines inside carry the container's app, instance and id."""
    return log_context(app=spec.app_id, instance=spec.instance_id, container=spec.container_id)


def copy(status: types_pb2.ContainerStatus) -> types_pb2.ContainerStatus:
    out = types_pb2.ContainerStatus()
    out.CopyFrom(status)
    return out


class Containers:
    def __init__(self, *, dirs, drivers: dict, ports, publisher, node_id: str, host_ip: str, cluster: str,
                 hooks: HookRunner = None, configured=None, metrics: NodeMetrics = None):
        self.hooks = hooks or HookRunner([])
        self.metrics = metrics or NodeMetrics()
        # Drivers the node is configured with; one missing from `drivers` is away for now (its
        # engine restarting): its containers wait in _waiting instead of being declared lost.
        self.configured = set(configured or drivers)
        self._waiting = []
        self.dirs = dirs
        self.drivers = drivers
        self.ports = ports
        self.publisher = publisher
        self.node_id = node_id
        self.host_ip = host_ip
        self.cluster = cluster
        self._items = {}
        self._lock = threading.Lock()

    def statuses(self) -> list:
        with self._lock:
            items = list(self._items.values())
        return [copy(c.status) for c in items]

    def running(self) -> list:
        """(spec, status) of every running container, for the node's resource managers."""
        with self._lock:
            items = list(self._items.values())
        return [(c.spec, copy(c.status)) for c in items if c.status.state == S.CONTAINER_STATE_RUNNING]

    def _context(self, container: Container, env: dict = None) -> TaskContext:
        return TaskContext(spec=container.spec, status=container.status,
                           directory=self.dirs.path(container.spec.container_id),
                           host_ports=dict(container.status.host_ports), env=env or {},
                           pid=container.status.pid, state=container.hook_state)

    def get(self, container_id: str) -> Container:
        """The container (spec, status, driver handle), for readers such as Node.Logs."""
        return self._get(container_id)

    def _get(self, container_id: str) -> Container:
        with self._lock:
            container = self._items.get(container_id)
        if container is None:
            raise NotFound(f"no container {container_id!r} on node {self.node_id}")
        return container

    # ---- start ----

    def start(self, spec: types_pb2.ContainerSpec) -> types_pb2.ContainerStatus:
        """Start `spec`, or return the status of the container already started with its id."""
        with about(spec):
            return self._start(spec)

    def _start(self, spec: types_pb2.ContainerSpec) -> types_pb2.ContainerStatus:
        validate_container_spec(spec, self.drivers)
        with self._lock:
            existing = self._items.get(spec.container_id)
            if existing is not None:
                return copy(existing.status)
            container = Container(spec=spec, status=self._new_status(spec))
            self._items[spec.container_id] = container
        with container.lock:
            try:
                self._launch(container, self.ports.allocate(spec.container_id, spec.ports))
            except Exception:
                if container.handle is None:  # nothing runs: leave no trace, the caller may retry
                    if not container.hooks_done:
                        container.hooks_done = True
                        self.hooks.poststop(self._context(container))  # what prestart set up
                    self._drop(container)
                raise
            return copy(container.status)

    def _new_status(self, spec) -> types_pb2.ContainerStatus:
        return types_pb2.ContainerStatus(
            container_id=spec.container_id, app_id=spec.app_id, app_name=spec.app_name,
            instance_id=spec.instance_id, node_id=self.node_id, host_ip=self.host_ip,
            state=S.CONTAINER_STATE_STARTING, version=spec.version, health=initial_health(spec))

    def _launch(self, container: Container, host_ports: dict):
        spec, driver = container.spec, self.drivers[container.spec.driver]
        container.status.host_ports.update(host_ports)
        if not driver.capabilities().cgroups and (spec.resources.limit.memory_bytes or spec.resources.limit.cpu_millis):
            container.status.message = "resource limits not enforced: this node has no usable cgroups"
        env = build_env(spec, cluster=self.cluster, node_id=self.node_id, host_ip=self.host_ip,
                        host_ports=host_ports)
        self.dirs.create(spec.container_id)
        if spec.HasField("tls"):   # an AM's certificate: into its own 0600 files, out of the spec
            env[tls_mod.ENV_DIR] = tls_mod.write_bundle(self.dirs.path(spec.container_id, "tls"), spec.tls)
            spec.ClearField("tls")  # so no record, status or answer ever carries the key
        ctx = self._context(container, env)
        self.hooks.prestart(ctx)  # raises (after undoing itself) when a hook refuses the spec
        self._save(container)  # before the process exists: a restart then still knows of it
        try:
            container.handle = driver.start(spec, ctx.env, host_ports, netns=ctx.netns)
        except (StartFailed, OSError) as e:
            log.warning("container %s could not start: %s", spec.container_id, e)
            self._finish(container, TaskStatus(running=False, exit_code=START_FAILED,
                                               finished_at=time.time(), message=str(e)))
            return
        self.metrics.started(spec)
        task = driver.status(container.handle)
        if task.running:
            ctx.pid = task.pid
            try:
                self.hooks.poststart(ctx)
            except Exception as e:  # e.g. its network could not be wired: it must not run half set up
                log.warning("container %s: post-start setup failed: %s", spec.container_id, e)
                container.platform_reason = f"setup failed: {e}"
                task = driver.stop(container.handle, 1.0)
        self._observe(container, task, force=True)
        if container.status.state == S.CONTAINER_STATE_RUNNING:
            log.info("container %s started (driver %s, pid %d)", spec.container_id, spec.driver, container.status.pid)

    # ---- eviction (the node's own decision) ----

    def evict(self, container_id: str, reason: str, grace: float = 0.0,
              platform: bool = True) -> types_pb2.ContainerStatus:
        """End a container on the node's own decision; it becomes FAILED.

        platform=True (memory reclaim, disk pressure): the node's sake, so `platform_reason` is
        set and the AM retries it without charging the user's retry_times. platform=False (it
        broke its own hard limit): the user's fault, `message` says why, and it is charged.
        """
        container = self._get(container_id)
        with container.lock, about(container.spec):
            if container.status.state not in TERMINAL and container.handle is not None:
                if platform:
                    container.platform_reason = reason
                else:
                    container.fault_reason = reason
                self._save(container)
                driver = self.drivers[container.spec.driver]
                self._observe(container, driver.stop(container.handle, grace))
            return copy(container.status)

    # ---- health (the verdicts of gaia_node/health.py) ----

    def set_health(self, container_id: str, health: str) -> bool:
        """Record a running container's health; saved and published only when it changed."""
        try:
            container = self._get(container_id)
        except NotFound:
            return False
        with container.lock:
            status = container.status
            if status.state != S.CONTAINER_STATE_RUNNING or status.health == health:
                return False
            status.health = health
            self._save(container)
            self.publisher.publish(container.spec, status)
        return True

    # ---- stop ----

    def stop(self, container_id: str, grace: float = 0.0, remove: bool = False) -> types_pb2.ContainerStatus:
        container = self._get(container_id)
        with container.lock, about(container.spec):
            if container.status.state not in TERMINAL and container.handle is not None:
                container.stop_requested = True
                self._save(container)
                driver = self.drivers[container.spec.driver]
                self._observe(container, driver.stop(container.handle, grace if grace > 0 else DEFAULT_GRACE))
            if remove:
                if container.status.state not in TERMINAL:
                    # forgetting it now would leave it running untracked, its network and ports held
                    raise StartFailed(f"container {container_id} is still stopping; ask again")
                self._remove(container)
            return copy(container.status)

    def _remove(self, container: Container):
        self.publisher.forget(container.spec)
        self._drop(container)

    def _drop(self, container: Container):
        cid = container.spec.container_id
        self.ports.release(cid)
        self.dirs.remove(cid)
        with self._lock:
            self._items.pop(cid, None)

    # ---- state changes ----

    def poll(self) -> None:
        """One pass of the status loop: notice containers that ended."""
        with self._lock:
            items = list(self._items.values())
        for container in items:
            if container.status.state in TERMINAL or container.handle is None:
                continue
            if not container.lock.acquire(blocking=False):
                continue  # a start or stop is at work on it and will record the outcome
            try:
                if container.status.state not in TERMINAL:
                    with about(container.spec):
                        self._observe(container, self.drivers[container.spec.driver].status(container.handle))
            except Exception:  # e.g. its engine is away: the others must still be watched
                log.exception("could not read the status of %s", container.spec.container_id)
            finally:
                container.lock.release()

    def _observe(self, container: Container, task: TaskStatus, force: bool = False):
        if not task.running:
            self._finish(container, task)
            return
        status = container.status
        before = status.SerializeToString()
        status.state = S.CONTAINER_STATE_RUNNING
        status.pid, status.started_at = task.pid, task.started_at
        if force or status.SerializeToString() != before:
            self._save(container)
            self.publisher.publish(container.spec, status)

    def _finish(self, container: Container, task: TaskStatus):
        status = container.status
        if container.platform_reason or container.fault_reason:
            status.state = S.CONTAINER_STATE_FAILED
            status.platform_reason = container.platform_reason
        elif container.stop_requested:
            status.state = S.CONTAINER_STATE_STOPPED
        elif task.lost:
            status.state = S.CONTAINER_STATE_LOST
        elif task.exit_code == 0 and not task.signal:
            status.state = S.CONTAINER_STATE_EXITED
        else:
            status.state = S.CONTAINER_STATE_FAILED
        status.pid = task.pid or status.pid
        status.started_at = task.started_at or status.started_at
        status.exit_code, status.finished_at, status.message = task.exit_code, task.finished_at, task.message
        if container.fault_reason:
            status.message = container.fault_reason
        if not container.hooks_done:
            container.hooks_done = True
            self.hooks.poststop(self._context(container))
        if container.handle is not None:
            self.drivers[container.spec.driver].release(container.handle)
        self.ports.release(container.spec.container_id)  # last: its DNAT entries are gone now
        self._save(container)
        self.publisher.publish(container.spec, status)
        self.metrics.ended(status, bool(container.fault_reason))
        log.info("container %s %s: %s", container.spec.container_id,
                 S.ContainerState.Name(status.state), status.message)

    # ---- persistence and recovery ----

    def _save(self, container: Container):
        driver = self.drivers.get(container.spec.driver)
        doc = {"spec": json_format.MessageToDict(container.spec, preserving_proto_field_name=True),
               "status": json_format.MessageToDict(container.status, preserving_proto_field_name=True),
               "handle": driver.handle_state(container.handle) if container.handle is not None and driver else None,
               "stop_requested": container.stop_requested, "hooks": container.hook_state,
               "platform_reason": container.platform_reason, "fault_reason": container.fault_reason,
               "hooks_done": container.hooks_done}
        state.write_json_atomic(self.dirs.path(container.spec.container_id, state.RECORD), doc)

    def recover(self) -> int:
        """Re-adopt every container in the state dir, signalling none; return how many run."""
        running = 0
        for cid in self.dirs.ids():
            try:
                container = self._load(cid)
                if container is None:
                    continue
                with about(container.spec):
                    self._readopt(container)
            except Exception:  # one bad record must not keep the node (and every container) down
                log.exception("could not re-adopt container %s; leaving it alone", cid)
                continue
            with self._lock:
                self._items[cid] = container
            self.publisher.publish(container.spec, container.status)  # the new lease has none of our keys
            running += container.status.state == S.CONTAINER_STATE_RUNNING
        return running

    def _load(self, cid: str):
        doc = state.read_json(self.dirs.path(cid, state.RECORD))
        if not doc:
            log.warning("container dir %s has no readable %s; leaving it alone", cid, state.RECORD)
            return None
        # ignore_unknown_fields: a record written by a newer version survives a rollback
        container = Container(spec=json_format.ParseDict(doc["spec"], types_pb2.ContainerSpec(),
                                                         ignore_unknown_fields=True),
                              status=json_format.ParseDict(doc["status"], types_pb2.ContainerStatus(),
                                                           ignore_unknown_fields=True),
                              stop_requested=bool(doc.get("stop_requested")),
                              hook_state=doc.get("hooks") or {}, platform_reason=doc.get("platform_reason", ""),
                              fault_reason=doc.get("fault_reason", ""),
                              hooks_done=bool(doc.get("hooks_done")))
        container.status.node_id = self.node_id
        container.saved_handle = doc.get("handle") or {"container_id": cid}
        return container

    def readopt_waiting(self) -> int:
        """Re-adopt the containers whose driver has come back; return how many."""
        ready = [c for c in self._waiting if c.spec.driver in self.drivers]
        for container in ready:
            self._waiting.remove(container)
            with container.lock:
                container.status.message = ""
                self._readopt(container)
            self.publisher.publish(container.spec, container.status)
        return len(ready)

    def _readopt(self, container: Container):
        if container.status.state in TERMINAL:
            return
        driver = self.drivers.get(container.spec.driver)
        if driver is None and container.spec.driver in self.configured:
            # Its runtime is away (say, a Docker engine restarting): the container may well run
            # on. Declaring it lost would tear down its network and make the AM start another.
            container.status.message = (f"the {container.spec.driver} driver is unavailable: "
                                        "state unknown until it answers")
            self._waiting.append(container)
            return
        handle = driver.recover(container.saved_handle) if driver else None
        if handle is None:
            why = "driver not enabled" if driver is None else "nothing recorded"
            self._finish(container, TaskStatus(running=False, lost=True, exit_code=START_FAILED,
                                               finished_at=time.time(),
                                               message=f"lost across a node-manager restart ({why})"))
            return
        container.handle = handle
        self.ports.hold(container.spec.container_id, dict(container.status.host_ports))
        task = driver.status(handle)
        if task.running:
            ctx = self._context(container)
            ctx.pid = task.pid
            self.hooks.recover(ctx)
        self._observe(container, task, force=True)
