"""Moving instances off lost and drained nodes: the AM's half of a migration.

The master tells the AM, in each instance's view, that its node is lost (lease gone) or
draining. The AM asks the master to re-place those instances (same instance ids); the master
answers through the app's status. A lost node's instances simply start on their new nodes. A
drained node's instance keeps running on the old node until its new copy runs (and passes its
health check, if it has one); only then is the old copy stopped and the old place released.
Moves are the platform's doing: never charged to retry_times, bounded by migrate_times.
"""
import concurrent.futures
import logging
import time

import grpc

from gaia_common.client import GaiaError
from gaia_common.node_channels import moving_from
from gaia_common.pb import master_pb2, types_pb2
from gaia_am.containers import counter_of, stop_on_partition

log = logging.getLogger(__name__)
UP = (types_pb2.CONTAINER_STATE_RUNNING,)
# An instance that stops itself when its node is cut off (on_partition: stop) is replaced only
# this long after its node was seen lost: the node fences at its lease TTL (partition_grace),
# and stopping takes up to gaia_node/partition.py's STOP_GRACE. A crashed node waits too.
FENCE_WAIT = 3.5
NOT_READY = ("starting", "unhealthy")
ENDED = (types_pb2.CONTAINER_STATE_EXITED, types_pb2.CONTAINER_STATE_FAILED, types_pb2.CONTAINER_STATE_STOPPED)


class Migrator:
    def __init__(self, am):
        self.am = am
        self._counters = {}     # instance_id -> highest container counter seen
        self._given_up = set()  # instances past migrate_times, reported once
        self._lost_since = {}   # instance_id -> when its node was first seen lost

    def observe(self, instances) -> None:
        """Remember each instance's newest counter: a moved instance starts above it, so its new
        container's key never collides with the old copy's (a node may come back)."""
        for view in instances:
            for st in (view.status, view.from_status):
                if st.container_id:
                    iid = view.allocation.instance_id
                    self._counters[iid] = max(self._counters.get(iid, 0), counter_of(st.container_id))

    def first_counter(self, alloc) -> int:
        """The counter to start an instance that has no container on its node."""
        base = alloc.restart_from
        if alloc.migrations:
            base = max(base, self._counters.get(alloc.instance_id, -1) + 1, alloc.migrations)
        return base

    def step(self, status, instances) -> None:
        spec = status.app.spec
        # a drain move whose new node died is sent too: the master puts it back on the old node
        lost = self._fenced([v for v in instances if v.node_lost], spec)
        draining = [v for v in instances if v.node_draining and not v.node_lost
                    and not v.allocation.from_node_id and not _ended(v)]
        self._ask(status, self._movable(status, lost, fail=True), keep_old=False, cause="node lost")
        self._ask(status, self._movable(status, draining, fail=False), keep_old=True, cause="node drained")
        done = [v for v in instances if v.allocation.from_node_id and not v.node_lost
                and (v.allocation.stopped or self._new_copy_ready(v, spec))]
        if done:
            self._finish(status, done)

    def _fenced(self, lost: list, spec) -> list:
        """The lost instances that may be replaced now: at once, unless they fence themselves
        (then once their node has had time to stop them: never two copies)."""
        now = time.time()
        seen = {v.allocation.instance_id for v in lost}
        self._lost_since = {i: t for i, t in self._lost_since.items() if i in seen}
        if not stop_on_partition(spec):
            return lost
        for i in seen:
            self._lost_since.setdefault(i, now)
        ready = [v for v in lost if now - self._lost_since[v.allocation.instance_id] >= FENCE_WAIT]
        if len(ready) < len(lost):
            self.am.wake_at(min(self._lost_since[i] for i in seen) + FENCE_WAIT)
        return ready

    def _movable(self, status, views, fail: bool) -> list:
        """Ids that may move once more. One at migrate_times stays: a lost node's instance is
        failed (a batch app with it), a draining node's keeps running there (an event says so)."""
        spec, out = status.app.spec, []
        for view in views:
            alloc = view.allocation
            if alloc.migrations < spec.migrate_times or alloc.from_node_id:
                out.append(alloc.instance_id)
            elif alloc.instance_id not in self._given_up:
                self._given_up.add(alloc.instance_id)
                self._give_up(status, alloc, fail)
        return out

    def _ask(self, status, ids, keep_old: bool, cause: str) -> None:
        if not ids:
            return
        request = master_pb2.MoveRequest(app_id=self.am.app_id, attempt=self.am.attempt, instance_ids=ids,
                                         keep_old=keep_old, cause=cause, wait_seconds=1.0)
        try:
            grants = self.am.client.call("MoveInstances", request)
        except GaiaError as e:
            log.warning("could not move %s (%s): %s", ",".join(ids), cause, e.message)
            return
        for alloc in grants.allocations:
            log.info("instance %s moves to %s (%s, move %d)", alloc.instance_id, alloc.node_id, cause,
                     alloc.migrations)
            self.am.record_event("migrate", alloc.instance_id, cause, f"to {alloc.node_id}", platform=True)
        if grants.pending:
            log.info("%d instances wait for a new node: %s", grants.pending, grants.message)

    @staticmethod
    def _new_copy_ready(view, spec) -> bool:
        st = view.status
        if not st.container_id or st.state not in UP:
            return False
        return not (spec.HasField("health_check") and st.health in NOT_READY)

    def _finish(self, status, views: list) -> None:
        """Stop the old copies (all at once: each may take its stop grace), then release the
        old places in one call. A user-stopped instance has no new copy to wait for."""
        stopping = [v for v in views if v.from_status.container_id and v.from_status.state in
                    (types_pb2.CONTAINER_STATE_STARTING, types_pb2.CONTAINER_STATE_RUNNING)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(16, len(stopping)))) as pool:
            stopped = list(pool.map(lambda v: self._stop_old(status, v), stopping))
        failed = {v.allocation.instance_id for v, ok in zip(stopping, stopped) if not ok}
        ids = [v.allocation.instance_id for v in views if v.allocation.instance_id not in failed]
        if not ids:
            return
        try:
            self.am.client.call("FinishMoves", master_pb2.ReleaseRequest(
                app_id=self.am.app_id, attempt=self.am.attempt, instance_ids=ids))
        except GaiaError as e:
            log.warning("could not finish moving %s: %s", ",".join(ids), e.message)
            return
        log.info("instances %s left their drained nodes", ",".join(ids))

    def _stop_old(self, status, view) -> bool:
        alloc, old = view.allocation, view.from_status
        try:
            self.am.nodes.stop(moving_from(alloc), status.epoch, old.container_id, remove=True)
            return True
        except grpc.RpcError as e:
            log.warning("could not stop %s on %s: %s", old.container_id, alloc.from_node_id, e.details())
            return False

    def _give_up(self, status, alloc, fail: bool) -> None:
        limit = status.app.spec.migrate_times
        if not fail:
            self.am.record_event("migrate", alloc.instance_id, "migrate_times reached",
                                 f"stays on draining node {alloc.node_id}: moved {alloc.migrations} times "
                                 f"(migrate_times {limit})", platform=True)
            return
        why = f"instance {alloc.instance_id} lost its node and was moved {alloc.migrations} times " \
              f"(migrate_times {limit})"
        log.warning(why)
        self.am.record_event("failed", alloc.instance_id, "migrate_times reached", why, platform=True)
        if status.app.spec.kind == types_pb2.APP_KIND_BATCH:
            self.am._report(types_pb2.APP_STATE_FAILED, why)


def _ended(view) -> bool:
    """Not worth moving: it exited (a batch instance's work is done) or failed for good, or
    the user stopped it; it would only be started again elsewhere."""
    return view.status.state in ENDED
