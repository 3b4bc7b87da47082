"""Rolling updates, AM side: move the rollout's instances to its version, batch by batch.

Each pass is level-triggered and reads only what the master shows: the Rollout in the app's
record, each instance's Allocation.version (what it must run) and its container's version
(what it runs). So a new AM attempt carries on where the last one stopped, and an instance is
moved once: the keeper restarts an instance only while its container's version differs from
its allocation's, and this module changes an allocation's version only while it differs from
the rollout's target.

A pass (plan()):
  1. a moved instance that failed on the target version fails the gate;
  2. moved instances not yet through the gate (running, and healthy when the version has a
     health check, continuously for health_gate_seconds) are the batch in flight: wait, or fail
     once it has waited gate_timeout_seconds;
  3. nothing in flight and nothing left: the rollout is done (rolled back);
  4. else the next batch: at most max_unavailable instances, counting those already down
     against it (instances that are down anyway go first: moving them costs nothing).
A failed gate reports rolling_back (the master points the rollout back at from_version and
this same loop moves the changed instances back, then reports rolled_back) or, with
update.rollback false or when the rollout itself goes back to an older version, failed.
Going back never fails: instances failing on the old version are the keeper's, as before the
update, and a batch that does not come up within gate_timeout does not hold the others on the
version that failed.
"""
import dataclasses
import logging
import time

import grpc

from gaia_common.client import GaiaError
from gaia_common.node_channels import of_allocation
from gaia_common.pb import master_pb2, types_pb2
from gaia_am.containers import container_spec, counter_of, spec_version

log = logging.getLogger(__name__)
ROLLING, DONE, FAILED, ROLLING_BACK, ROLLED_BACK = "rolling", "done", "failed", "rolling_back", "rolled_back"
S = types_pb2
# A container in one of these, on the target version, failed the gate (EXITED too: a service
# instance that ends on its own is not serving).
ENDED = (S.CONTAINER_STATE_FAILED, S.CONTAINER_STATE_EXITED, S.CONTAINER_STATE_LOST)
DEFAULTS = {"max_unavailable": 1, "health_gate_seconds": 3.0, "gate_timeout_seconds": 60.0}


def version_of(v: int) -> int:
    return v or 1


@dataclasses.dataclass
class Policy:
    max_unavailable: int
    gate: float
    timeout: float
    rolls_back: bool


def policy(record, rollout) -> Policy:
    """How this rollout moves: the update policy of the version it rolls out (0: the default)."""
    update = spec_version(record, rollout.to_version).update
    return Policy(max_unavailable=update.max_unavailable or DEFAULTS["max_unavailable"],
                  gate=update.health_gate_seconds or DEFAULTS["health_gate_seconds"],
                  timeout=update.gate_timeout_seconds or DEFAULTS["gate_timeout_seconds"],
                  # going back to an older version (gaia rollback) has nowhere to fall back to
                  rolls_back=not update.no_rollback and rollout.to_version > rollout.from_version)


@dataclasses.dataclass
class Decision:
    move: list = dataclasses.field(default_factory=list)   # instance ids to move to `version`
    version: int = 0
    report: str = ""       # the rollout state to report, if any
    message: str = ""
    waiting: list = dataclasses.field(default_factory=list)   # the batch in flight


class GateClock:
    """What the AM remembers between passes: since when each container is ready, since when the
    current batch is in flight. Lost with the AM: a new attempt waits the gate again (longer,
    never shorter), except that without a health check a container is ready since it started."""

    def __init__(self):
        self.ready_since = {}    # container_id -> unix time first seen ready
        self.batch_since = None  # unix time the batch in flight was first seen
        self.stalled_since = None  # unix time no batch could start for others being down

    def ready(self, st, checked: bool, ready_now: bool, now: float) -> float:
        """Since when `st` has been ready (None: it is not)."""
        if not ready_now:
            self.ready_since.pop(st.container_id, None)
            return None
        start = st.started_at if not checked and st.started_at else now
        return self.ready_since.setdefault(st.container_id, min(start, now))

    def in_flight(self, now: float) -> float:
        if self.batch_since is None:
            self.batch_since = now
        return now - self.batch_since

    def stalled(self, now: float) -> float:
        if self.stalled_since is None:
            self.stalled_since = now
        return now - self.stalled_since


@dataclasses.dataclass
class _View:
    """One pass's look at the rollout."""
    back: bool          # rolling back: the target is from_version
    target: int
    pol: Policy
    checked: bool       # the target version has a health check
    views: dict         # instance id -> InstanceView
    ids: list           # the instances the rollout moves
    moved: list         # ... those whose allocation names the target already
    pending: list       # ... the others

    @classmethod
    def of(cls, status, instances):
        rollout = status.app.rollout
        back = rollout.state == ROLLING_BACK
        target = rollout.from_version if back else rollout.to_version
        views = {v.allocation.instance_id: v for v in (status.instances if instances is None else instances)}
        ids = [i for i in (rollout.instance_ids or sorted(views, key=_order)) if i in views]
        moved = [i for i in ids if version_of(views[i].allocation.version) == target]
        done = set(moved)   # sets: a thousand instances must not cost a million comparisons
        return cls(back, target, policy(status.app, rollout), bool(spec_version(status.app, target).health_check.kind),
                   views, ids, moved, [i for i in ids if i not in done])


def plan(status, now: float, clock: GateClock, instances=None) -> Decision:
    """What to do for the app's rollout now (Decision() when there is nothing to do).
    `instances`: the views to consider (default: all; the AM passes those it keeps)."""
    if status.app.rollout.state not in (ROLLING, ROLLING_BACK):
        return Decision()
    r = _View.of(status, instances)
    held, stuck = _in_flight(r, now, clock)
    if held is not None:
        return held
    if not r.pending:
        return Decision(report=ROLLED_BACK if r.back else DONE, message=f"{len(r.ids)} instances on version {r.target}")
    batch = _next_batch(r.views, r.pending, r.pol.max_unavailable, stuck)
    if not batch:   # others are down: wait for them (going back, not past gate_timeout)
        if not r.back or clock.stalled(now) <= r.pol.timeout:
            return Decision()
        batch = _next_batch(r.views, r.pending, r.pol.max_unavailable, stuck=True)
    clock.batch_since = clock.stalled_since = None   # the next batch's gate starts when it is seen moved
    return Decision(move=batch, version=r.target)


def _in_flight(r: _View, now: float, clock: GateClock):
    """(a Decision that holds the rollout here, or None; whether going back is stuck)."""
    failed = [i for i in r.moved if _failed_on(r.views[i], r.target)]
    if failed and not r.back:
        return _fail(r.pol, f"instance {', '.join(failed)} failed on version {r.target}: "
                            f"{_why(r.views[failed[0]].status)}"), False
    # Going back, an instance that fails on the old version is the keeper's (as before the
    # update), not a reason to stay on the version that failed.
    unsettled = [i for i in r.moved if i not in failed
                 and not _through_gate(r.views[i], r.target, r.checked, r.pol.gate, now, clock)]
    if not unsettled:
        clock.batch_since = None
        return None, False
    if clock.in_flight(now) <= r.pol.timeout:
        return Decision(waiting=unsettled), False
    if not r.back:
        return _fail(r.pol, f"instance {', '.join(unsettled)} not through the gate on version "
                            f"{r.target} after {r.pol.timeout:g}s"), False
    return None, True   # going back goes on: the old version is the best there is


def _next_batch(views: dict, pending: list, max_unavailable: int, stuck: bool = False) -> list:
    """`stuck`: going back past an instance that never came up: the budget is not waited for."""
    down = {i for i in views if not _available(views[i])}
    budget = max_unavailable if stuck else max(0, max_unavailable - len(down))
    free = [i for i in pending if i in down]          # down already: moving it costs nothing
    costly = [i for i in pending if i not in down]
    return (free + costly[:budget])[:max_unavailable]


def _available(view) -> bool:
    """Serving: running, and not failing its health check (a stopped instance is not serving
    but it is not the rollout's to count: the user stopped it)."""
    if view.allocation.stopped:
        return True
    st = view.status
    return (view.HasField("status") and st.state == S.CONTAINER_STATE_RUNNING and st.health in ("", "healthy")
            and not view.node_lost)


def _failed_on(view, target: int) -> bool:
    if not view.HasField("status") or version_of(view.status.version) != target:
        return False
    st = view.status
    if st.platform_reason:   # the platform's fault (eviction, node lost), not the version's
        return False
    return st.state in ENDED or st.health == "unhealthy"


def _through_gate(view, target: int, checked: bool, gate: float, now: float, clock: GateClock) -> bool:
    if view.allocation.stopped:   # kept stopped by the user: it starts on the new version later
        return True
    st = view.status if view.HasField("status") else None
    if st is None or version_of(st.version) != target:
        return False
    ready_now = st.state == S.CONTAINER_STATE_RUNNING and (not checked or st.health == "healthy")
    since = clock.ready(st, checked, ready_now, now)
    return since is not None and now - since >= gate


def _fail(pol: Policy, message: str) -> Decision:
    return Decision(report=ROLLING_BACK if pol.rolls_back else FAILED, message=message)


def _why(st) -> str:
    if st.health == "unhealthy":
        return "health check failing"
    return st.message or f"{S.ContainerState.Name(st.state).replace('CONTAINER_STATE_', '').lower()}" \
                         f" (exit {st.exit_code})"


def _order(instance_id: str):
    return (0, int(instance_id)) if instance_id.isdigit() else (1, instance_id)


def update_instance(am, status, alloc, st):
    """The keeper's restart of a running instance onto its allocation's version, uncharged.

    Stop, start, then remove: an AM killed in between leaves the old container stopped, not
    gone, so the next attempt restarts it with the next counter (never a container id used
    before, and never a second restart for the same update)."""
    new = container_spec(status.app, alloc, counter_of(st.container_id) + 1)
    if new.container_id in am._asked:
        return   # asked already; the node has not reported it yet
    log.info("instance %s: version %d -> %d (%s -> %s)", alloc.instance_id, version_of(st.version),
             version_of(alloc.version), st.container_id, new.container_id)
    try:
        am.nodes.stop(of_allocation(alloc), status.epoch, st.container_id, remove=False)
        am._asked[new.container_id] = time.monotonic()
        am.nodes.start(of_allocation(alloc), status.epoch, new)
    except grpc.RpcError as e:   # the next pass tries again (a stopped one is restarted by the keeper)
        am._asked.pop(new.container_id, None)
        log.warning("could not move %s to version %d: %s", alloc.instance_id, version_of(alloc.version), e.details())
        return
    am.record_event("restart", alloc.instance_id, "update", platform=True,
                    message=f"version {version_of(st.version)} -> {version_of(alloc.version)}")
    try:
        am.nodes.stop(of_allocation(alloc), status.epoch, st.container_id, remove=True)
    except grpc.RpcError as e:   # a stopped container's record left behind; it runs nothing
        log.warning("could not remove %s: %s", st.container_id, e.details())


class Rollouts:
    """The AM's driver of plan(): calls the master with what it decides."""

    def __init__(self, am):
        self.am = am
        self.clock = GateClock()
        self._last = None

    def step(self, status, instances=None):
        if status.app.rollout.state not in (ROLLING, ROLLING_BACK):
            self.clock = GateClock()   # nothing to remember between rollouts
            return
        decision = plan(status, time.time(), self.clock, instances)
        try:
            if decision.move:
                log.info("rollout: moving instances %s to version %d", decision.move, decision.version)
                self.am.client.call("SetInstanceVersions", master_pb2.InstanceVersionsRequest(
                    app_id=self.am.app_id, attempt=self.am.attempt, instance_ids=decision.move,
                    version=decision.version))
            elif decision.report:
                log.info("rollout: %s: %s", decision.report, decision.message)
                self.am.client.call("ReportRollout", master_pb2.RolloutReport(
                    app_id=self.am.app_id, attempt=self.am.attempt, state=decision.report,
                    message=decision.message))
                self.clock.batch_since = None
            elif decision.waiting and decision.waiting != self._last:
                log.info("rollout: waiting for %s to pass the gate", decision.waiting)
            self._last = decision.waiting
        except GaiaError as e:   # e.g. ABORTED: a newer update replaced this rollout; the next pass sees it
            log.warning("rollout: %s", e.message)
