"""The ApplicationMaster's control loop: keep the app's instances as its spec says.

It asks the master for everything (registration, the app's view, grants) and never reads
etcd, so a restarted AM rebuilds its view from the master and adopts running instances.
Each pass is level-triggered: compare the desired instances with what runs and act.
"""
import logging
import time

import grpc

from gaia_common.client import GaiaError
from gaia_common.pb import master_pb2, types_pb2
from gaia_am.containers import Nodes, container_spec, counter_of

log = logging.getLogger(__name__)
RUNNING = (types_pb2.CONTAINER_STATE_STARTING, types_pb2.CONTAINER_STATE_RUNNING)
FINISHED = (types_pb2.APP_STATE_SUCCEEDED, types_pb2.APP_STATE_FAILED, types_pb2.APP_STATE_KILLED)
START_GRACE = 5.0          # a start not yet reported is not asked again before this
MAX_BACKOFF = 30.0


class ApplicationMaster:
    def __init__(self, client, app_id: str, attempt: int, interval: float = 0.5):
        self.client = client
        self.app_id = app_id
        self.attempt = attempt
        self.interval = interval
        self.nodes = Nodes()
        self._asked = {}    # container_id -> monotonic time we asked a node to start it
        # User failures charged to retry_times per instance. Platform faults (evictions, lost
        # nodes: status.platform_reason set) are retried but never charged. An AM that starts
        # over cannot tell past causes apart and starts from the number of restarts so far.
        self._charged = {}
        self._counted = set()  # container ids whose end is already counted

    def run(self):
        status = self.client.call("RegisterAM", master_pb2.RegisterAMRequest(app_id=self.app_id, attempt=self.attempt))
        log.info("AM attempt %d registered for %s", self.attempt, self.app_id)
        name = status.app.spec.name
        while status.app.state not in FINISHED and status.app.am_attempt == self.attempt:
            self.reconcile(status)
            time.sleep(self.interval)
            status = self.client.call("GetApp", master_pb2.GetAppRequest(name=name))
            if status.app.app_id != self.app_id:
                break  # the app was replaced by a new submission
        log.info("AM for %s exits: app is %s", self.app_id, types_pb2.AppState.Name(status.app.state))
        self.nodes.close()

    def reconcile(self, status):
        desired = status.app.spec.instances
        instances = list(status.instances)
        if len(instances) > desired:
            instances = self._scale_down(status, instances, desired)
        for view in instances:
            self._keep(status, view)
        if len(instances) < desired:
            self._grow(status, desired)
        if status.app.spec.kind == types_pb2.APP_KIND_BATCH:
            self._finish_batch(status, instances, desired)

    # ---- one instance ----

    def _keep(self, status, view):
        alloc, st = view.allocation, view.status if view.HasField("status") else None
        if st is None:
            return self._start(status, alloc, 0)
        if st.state in RUNNING:
            return
        if st.state == types_pb2.CONTAINER_STATE_EXITED and status.app.spec.kind == types_pb2.APP_KIND_BATCH:
            return  # done
        charged = self._charge(alloc.instance_id, st)
        if charged > status.app.spec.retry_times:
            if status.app.spec.kind == types_pb2.APP_KIND_BATCH:
                self._report(types_pb2.APP_STATE_FAILED,
                             f"instance {alloc.instance_id} failed {charged} times (exit {st.exit_code})")
            return  # a service instance out of retries stays failed, visible in status
        # The backoff grows with every restart, whatever its cause: platform faults cost the user
        # no retries, but one that repeats (a setup that always fails) must not spin.
        backoff = min(MAX_BACKOFF, 0.5 * 2 ** counter_of(st.container_id))
        if time.time() - (st.finished_at or 0) < backoff:
            return
        self._restart(status, alloc, st)

    def _charge(self, instance_id: str, st) -> int:
        """User failures of this instance so far, counting `st`'s end once."""
        if instance_id not in self._charged:
            self._charged[instance_id] = counter_of(st.container_id)
        if st.container_id not in self._counted:
            self._counted.add(st.container_id)
            if st.state == types_pb2.CONTAINER_STATE_FAILED and not st.platform_reason:
                self._charged[instance_id] += 1
        return self._charged[instance_id]

    def _restart(self, status, alloc, st):
        log.info("restarting instance %s (%s, exit %d)", alloc.instance_id,
                 types_pb2.ContainerState.Name(st.state), st.exit_code)
        try:
            self.nodes.stop(alloc.node_address, status.epoch, st.container_id, remove=True)
        except grpc.RpcError as e:
            log.warning("could not remove %s: %s", st.container_id, e.details())
            return
        self._start(status, alloc, counter_of(st.container_id) + 1)

    def _start(self, status, alloc, counter: int):
        spec = container_spec(status.app, alloc, counter)   # its GPUs, if granted any, go to CUDA_VISIBLE_DEVICES
        if time.monotonic() - self._asked.get(spec.container_id, -START_GRACE) < START_GRACE:
            return
        self._asked[spec.container_id] = time.monotonic()
        try:
            self.nodes.start(alloc.node_address, status.epoch, spec)
        except grpc.RpcError as e:
            log.warning("node %s did not start %s: %s", alloc.node_id, spec.container_id, e.details())

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

    def _scale_down(self, status, instances, desired: int):
        newest_first = sorted(instances, key=lambda v: int(v.allocation.instance_id), reverse=True)
        leaving = newest_first[:len(instances) - desired]
        for view in leaving:
            if view.HasField("status"):
                try:
                    self.nodes.stop(view.allocation.node_address, status.epoch, view.status.container_id)
                except grpc.RpcError as e:
                    log.warning("could not stop %s: %s", view.status.container_id, e.details())
                    return instances
        self.client.call("ReleaseContainers", master_pb2.ReleaseRequest(
            app_id=self.app_id, attempt=self.attempt, instance_ids=[v.allocation.instance_id for v in leaving]))
        gone = {v.allocation.instance_id for v in leaving}
        return [v for v in instances if v.allocation.instance_id not in gone]

    def _finish_batch(self, status, instances, desired: int):
        done = [v for v in instances if v.HasField("status") and v.status.state == types_pb2.CONTAINER_STATE_EXITED]
        if len(done) == desired:
            self._report(types_pb2.APP_STATE_SUCCEEDED, f"all {desired} instances exited 0")

    def _report(self, state, message: str):
        try:
            self.client.call("ReportAppState", master_pb2.AppStateReport(
                app_id=self.app_id, attempt=self.attempt, state=state, message=message))
        except GaiaError as e:
            log.warning("could not report %s: %s", types_pb2.AppState.Name(state), e.message)
