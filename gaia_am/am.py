"""The ApplicationMaster's control loop: keep the app's instances as its spec says.

It asks the master for everything (registration, the app's view, grants) and never reads
etcd, so a restarted AM rebuilds its view from the master and adopts running instances.
Each pass is level-triggered: compare the desired instances with what runs and act.
"""
import logging
import math
import time

import grpc

from gaia_common.client import GaiaError
from gaia_common.node_channels import of_allocation
from gaia_common.pb import master_pb2, types_pb2
from gaia_am.containers import Nodes, container_id, container_spec, counter_of
from gaia_am.events import EventReporter
from gaia_am.watch import StatusFeed
from gaia_am.migration import Migrator
from gaia_am import rollout
from gaia_am.rollout import Rollouts
from gaia_am import control, scaling

log = logging.getLogger(__name__)
RUNNING = (types_pb2.CONTAINER_STATE_STARTING, types_pb2.CONTAINER_STATE_RUNNING)
FINISHED = (types_pb2.APP_STATE_SUCCEEDED, types_pb2.APP_STATE_FAILED, types_pb2.APP_STATE_KILLED)
START_GRACE = 5.0          # a start not yet reported is not asked again before this
MAX_BACKOFF = 30.0
TICK = 1.0                 # a pass at least this often without changes: backoffs, gates, autoscaling


class ApplicationMaster:
    def __init__(self, client, app_id: str, attempt: int, interval: float = TICK):
        self.client = client
        self.app_id = app_id
        self.attempt = attempt
        self.interval = interval
        # every node command carries the attempt (fencing); nodes are dialed by their cluster's names
        self.nodes = Nodes(app_id, attempt, getattr(client, "cluster", ""))
        self._asked = {}    # container_id -> monotonic time we asked a node to start it
        # (instance_id, node_id) -> monotonic time we last asked that node to start one of its
        # containers (per node: an instance moved elsewhere starts there at once)
        self._starting = {}
        # The app's status: the master's WatchApp stream (GetApp polls when it breaks).
        self.feed = StatusFeed(client, app_id, attempt)
        # What the AM did (gaia events), and the user failures charged to retry_times: the
        # count is the master's (Allocation.charged), so a new attempt goes on from it.
        self.events = EventReporter(client, app_id, attempt, on_charged=self.feed.poke)
        self._given_up = set()   # containers whose out-of-retries event is reported
        self._due = math.inf     # unix time a backoff (or gate) ends: the next pass comes no later
        self.migrator = Migrator(self)
        self.rollouts = Rollouts(self)               # drives the app's rolling update, if any
        self.autoscaler = scaling.Autoscaler(self)   # measures only when the spec asks for it

    def run(self):
        status = self.client.call("RegisterAM", master_pb2.RegisterAMRequest(app_id=self.app_id, attempt=self.attempt))
        log.info("AM attempt %d registered for %s", self.attempt, self.app_id)
        self.feed.start(status)
        self.events.start()
        try:
            # level-triggered: every pass works from the newest status, whatever changed
            while not self._over(status):
                self._due = math.inf
                self.reconcile(status)
                status = self.feed.next(max(0.05, min(self.interval, self._due - time.time())))
        finally:
            self.feed.stop()
            self.events.close()   # what is still buffered (a failed instance's event), briefly
        log.info("AM for %s exits: app is %s", self.app_id, types_pb2.AppState.Name(status.app.state))
        self.autoscaler.stop()
        self.nodes.close()

    def _over(self, status) -> bool:
        """The app finished, was replaced by a new submission, or another attempt leads it."""
        app = status.app
        return app.state in FINISHED or app.app_id != self.app_id or app.am_attempt != self.attempt

    def wake_at(self, unix_time: float):
        """Ask for a pass no later than `unix_time` (a backoff or a gate ends then)."""
        self._due = min(self._due, unix_time)

    def reconcile(self, status):
        desired = status.app.spec.instances
        instances = list(status.instances)
        self.autoscaler.observe(status)
        if len(instances) > desired:
            instances = self._scale_down(status, instances, desired)
        self.migrator.observe(instances)
        self.migrator.step(status, instances)
        for view in instances:
            if not view.node_lost:   # its move is the migrator's; a dead node answers nothing
                self._keep(status, view)
        self.rollouts.step(status, instances)   # a rolling update's next batch (gaia_am/rollout.py)
        if len(instances) < desired:
            self._grow(status, desired)
        if status.app.spec.kind == types_pb2.APP_KIND_BATCH:
            self._finish_batch(status, instances, desired)

    # ---- one instance ----

    def _keep(self, status, view):
        if control.keep(self, status, view):   # the user's stop / start / restart (gaia_am/control.py)
            return
        alloc, st = view.allocation, view.status if view.HasField("status") else None
        if st is None:
            if time.monotonic() - self._starting.get((alloc.instance_id, alloc.node_id), -START_GRACE) < START_GRACE:
                return   # a start we asked for is not reported yet (a restart removes the old one first)
            # an AM that starts over between a restart's removal and its start knows only the
            # charges: counters below them are taken (a reused container id could go uncharged)
            return self._start(status, alloc, max(self.migrator.first_counter(alloc), alloc.charged))
        if st.state in RUNNING:
            if (st.version or 1) != (alloc.version or 1):   # the rollout moved it: not charged
                self._update(status, alloc, st)
            elif st.health == "unhealthy":   # its node's health check says so: a user failure
                self._restart_unhealthy(status, alloc, st)
            return
        if st.state == types_pb2.CONTAINER_STATE_EXITED and status.app.spec.kind == types_pb2.APP_KIND_BATCH:
            return  # done
        # Platform faults (evictions, lost nodes: platform_reason set) are retried, never charged.
        user = st.state == types_pb2.CONTAINER_STATE_FAILED and not st.platform_reason
        if user:
            charged = self._charge(alloc, st)
            if charged is None:
                return   # restarted once the master has counted it
            if charged > status.app.spec.retry_times:
                return self._out_of_retries(status, alloc, st, charged)
        # The backoff grows with every restart, whatever its cause: platform faults cost the user
        # no retries, but one that repeats (a setup that always fails) must not spin.
        backoff = min(MAX_BACKOFF, 0.5 * 2 ** counter_of(st.container_id))
        if time.time() - (st.finished_at or 0) < backoff:
            return self.wake_at((st.finished_at or 0) + backoff)
        new = container_id(self.app_id, alloc.instance_id, counter_of(st.container_id) + 1)
        asked = new in self._asked
        self._restart(status, alloc, st)
        if not user and not asked and new in self._asked:   # a charged restart was its charge's event
            self.record_event("restart", alloc.instance_id, st.platform_reason or ended(st), platform=True,
                              message=f"{st.container_id} -> {new}")

    def _update(self, status, alloc, st):
        """Run the version its allocation names (only the rollout changes it, batch by batch)."""
        rollout.update_instance(self, status, alloc, st)

    def _restart_unhealthy(self, status, alloc, st):
        charged = self._charge(alloc, st, "unhealthy")
        if charged is None:
            return
        if charged > status.app.spec.retry_times:
            return self._out_of_retries(status, alloc, st, charged, "unhealthy")   # left running, unresolved
        self._restart(status, alloc, st)

    def _charge(self, alloc, st, cause: str = ""):
        """The instance's user failures counting `st`'s, once the master has stored the charge
        (None until then). The master charges one container once, however often it is told."""
        count = self.events.charge(alloc.instance_id, st.container_id, cause or ended(st), st.message or "failed")
        return None if count is None else max(count, alloc.charged)

    def _out_of_retries(self, status, alloc, st, charged: int, cause: str = ""):
        """A service instance stays failed (its event says why); a batch app fails."""
        cause = cause or ended(st)
        if st.container_id not in self._given_up:
            self._given_up.add(st.container_id)
            self.record_event("failed", alloc.instance_id, cause, platform=False,
                              message=f"failed {charged} times, retry_times is {status.app.spec.retry_times}: "
                                      "not restarted")
        if status.app.spec.kind == types_pb2.APP_KIND_BATCH:
            self._report(types_pb2.APP_STATE_FAILED, f"instance {alloc.instance_id} failed {charged} times ({cause})")

    def _restart(self, status, alloc, st):
        log.info("restarting instance %s (%s, exit %d)", alloc.instance_id,
                 types_pb2.ContainerState.Name(st.state), st.exit_code, extra={"instance": alloc.instance_id})
        try:
            self.nodes.stop(of_allocation(alloc), status.epoch, st.container_id, remove=True)
        except grpc.RpcError as e:
            log.warning("could not remove %s: %s", st.container_id, e.details())
            return
        self._start(status, alloc, counter_of(st.container_id) + 1)

    def _start(self, status, alloc, counter: int):
        spec = container_spec(status.app, alloc, counter)   # its GPUs, if granted any, go to CUDA_VISIBLE_DEVICES
        if time.monotonic() - self._asked.get(spec.container_id, -START_GRACE) < START_GRACE:
            return
        self._asked[spec.container_id] = self._starting[(alloc.instance_id, alloc.node_id)] = time.monotonic()
        fields = {"instance": alloc.instance_id, "container": spec.container_id}   # structured log fields
        log.info("starting instance %s on %s", alloc.instance_id, alloc.node_id, extra=fields)
        self.nodes.start_later(of_allocation(alloc), status.epoch, spec, lambda e: log.warning(
            "node %s did not start %s: %s", alloc.node_id, spec.container_id, e.details(), extra=fields))

    # ---- the set of instances ----

    def _grow(self, status, target: int):
        """Ask for the app's whole target (asking again is idempotent); the master decides in
        its next cycle. Grants come back here or, later, in GetApp."""
        spec = status.app.spec
        request = master_pb2.ContainerRequest(app_id=self.app_id, attempt=self.attempt, target=target,
                                              resources=spec.resources, gang=spec.gang > 0, wait_seconds=1.0)
        grants = self.client.call("RequestContainers", request)
        if grants.pending:
            log.info("%d instances pending: %s", grants.pending, grants.message)
        for alloc in grants.allocations:
            self._start(status, alloc, 0)
        if grants.allocations:
            ids = ",".join(a.instance_id for a in grants.allocations)
            self.record_event("scale", "", "scale up", f"granted instances {ids} (of {target})", platform=True)

    def _scale_down(self, status, instances, desired: int):
        """The instances the user named first, then the newest (gaia_am/scaling.py)."""
        kept = scaling.scale_down(self, status, instances, desired)
        if len(kept) < len(instances):
            ids = ",".join(v.allocation.instance_id for v in instances if v not in kept)
            self.record_event("scale", "", "scale down", f"released instances {ids} (to {desired})", platform=True)
        return kept

    def _finish_batch(self, status, instances, desired: int):
        done = [v for v in instances if v.HasField("status") and v.status.state == types_pb2.CONTAINER_STATE_EXITED]
        if len(done) == desired:
            self._report(types_pb2.APP_STATE_SUCCEEDED, f"all {desired} instances exited 0")

    def record_event(self, kind: str, instance_id: str, cause: str, message: str = "", platform: bool = False):
        """What the AM did, for `gaia events`: best-effort, batched, never waits on the master.
        (A user failure to charge goes through _charge, not here.)"""
        log.info("event %s instance=%s cause=%s platform=%s %s", kind, instance_id, cause, platform, message,
                 extra={"instance": instance_id})
        self.events.report(kind, instance_id, cause, message, platform)

    def _report(self, state, message: str):
        # what led here goes first: once the app is finished the master stops this AM, and
        # its buffered events (the failure that ended it) would be lost
        for _ in range(3):
            if self.events.idle() or not self.events.flush():
                break
        try:
            self.client.call("ReportAppState", master_pb2.AppStateReport(
                app_id=self.app_id, attempt=self.attempt, state=state, message=message))
        except GaiaError as e:
            log.warning("could not report %s: %s", types_pb2.AppState.Name(state), e.message)


def ended(st) -> str:
    """How a container ended, for events: exit 3, could not start, lost, stopped..."""
    if st.state in (types_pb2.CONTAINER_STATE_FAILED, types_pb2.CONTAINER_STATE_EXITED):
        return f"exit {st.exit_code}" if st.exit_code >= 0 else "could not start"
    return types_pb2.ContainerState.Name(st.state).replace("CONTAINER_STATE_", "").lower()
