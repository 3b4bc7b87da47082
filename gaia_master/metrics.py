"""The master's Prometheus metrics (README "Metrics"), on a registry of its own.

Counters and histograms move where the work is done: the scheduling loop (`cycle`), the
event log (`app_events`, every event stored: the master's own and its AMs'), the election
callbacks. What describes the present (leadership, apps by state, pending requests) is read
when scraped. The cluster's figures come from the leader only: a follower's application
table is not kept current, so it shows none rather than stale ones.
"""
import collections
import time

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from gaia_common.metrics import new_registry
from gaia_common.pb import types_pb2

# A cycle takes milliseconds, up to Sfair's max_cycle_s (2 s); a request may wait minutes.
CYCLE_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5)
WAIT_BUCKETS = (.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900)
MAX_KINDS = 64           # event kinds counted by name; past that (a misbehaving AM) "other"
EVICTION_KINDS = ("preempt", "reclaim")


def _state_name(value: int) -> str:
    return types_pb2.AppState.Name(value).replace("APP_STATE_", "").lower()


class MasterMetrics:
    def __init__(self, master=None):
        self.registry = r = new_registry()
        self.cycles = Counter("gaia_master_scheduling_cycles", "Scheduling cycles run with requests pending.",
                              registry=r)
        self.cycle_seconds = Histogram("gaia_master_scheduling_cycle_duration_seconds",
                                       "A scheduling cycle, snapshot to grants written.", buckets=CYCLE_BUCKETS,
                                       registry=r)
        self.phase_seconds = Histogram("gaia_master_scheduling_phase_duration_seconds",
                                       "A scheduling cycle's phases: snapshot, schedule (Sfair), apply (etcd).",
                                       ["phase"], buckets=CYCLE_BUCKETS, registry=r)
        self.decision_seconds = Histogram("gaia_master_scheduling_decision_duration_seconds",
                                          "Time Sfair spent deciding one request.", buckets=CYCLE_BUCKETS,
                                          registry=r)
        self.wait_seconds = Histogram("gaia_master_scheduling_wait_duration_seconds",
                                      "From a request's ask to its grant.", buckets=WAIT_BUCKETS, registry=r)
        self.placements = Counter("gaia_master_placements", "Containers (instances and AMs) granted a node.",
                                  registry=r)
        self.refused = Counter("gaia_master_grants_refused",
                               "Grants dropped by the re-check at apply time (retried next cycle).", registry=r)
        self.evictions = Counter("gaia_master_evictions", "Running instances evicted to make room, by kind.",
                                 ["kind"], registry=r)
        self.events = Counter("gaia_master_app_events", "Application events stored, by kind and platform cause.",
                              ["kind", "platform"], registry=r)
        self.restarts = Counter("gaia_master_instance_restarts",
                                "Instance restarts the AMs reported, by cause: user (charged) or platform.",
                                ["cause"], registry=r)
        self.am_restarts = Counter("gaia_master_am_restarts", "ApplicationMaster attempts after the first.",
                                   registry=r)
        self.elected = Counter("gaia_master_leadership_acquired", "Times this replica became the leader.",
                               registry=r)
        self.deposed = Counter("gaia_master_leadership_lost", "Times this replica stopped leading.", registry=r)
        self.pending: dict = {}          # pool -> requests pending after the last cycle
        self._kinds: set = set()
        if master is not None:
            r.register(_Present(master, self))

    # ---- what the scheduling loop reports ----

    def cycle(self, last: dict, snap, plan) -> None:
        """One cycle that had requests (SchedulingLoop.cycle: `last` is its figures)."""
        self.cycles.inc()
        for phase in ("snapshot", "schedule", "apply"):
            self.phase_seconds.labels(phase).observe(last[f"{phase}_s"])
        self.cycle_seconds.observe(last["snapshot_s"] + last["schedule_s"] + last["apply_s"])
        self.placements.inc(last["granted"])
        self.refused.inc(last["refused"])
        stats = plan.stats
        for spent, done in zip(stats.get("request_spent_s", []), stats.get("request_done_at_s", [])):
            if done > 0:
                self.decision_seconds.observe(spent)
        self._requests(snap.pending, plan)

    def _requests(self, requests: list, plan) -> None:
        """Pending per pool; ask-to-grant waits of the requests placed whole."""
        placed = {chunk[0] for chunk in plan.chunks}.difference(plan.pending)
        pending, now = collections.Counter(), time.time()
        for r in requests:
            if r.request_id in plan.pending:
                pending[r.pool] += 1
            elif r.request_id in placed and r.submitted_at:
                self.wait_seconds.observe(max(0.0, now - r.submitted_at))
        self.pending = dict(pending)

    def idle(self) -> None:
        """A cycle found nothing pending."""
        self.pending = {}

    # ---- events, leadership ----

    def app_events(self, events) -> None:
        for e in events:
            if e.kind not in self._kinds and len(self._kinds) < MAX_KINDS:
                self._kinds.add(e.kind)
            self.events.labels(e.kind if e.kind in self._kinds else "other", str(e.platform).lower()).inc()
            if e.kind == "evict":
                self.evictions.labels(e.cause if e.cause in EVICTION_KINDS else "other").inc()
            elif e.kind == "restart":
                self.restarts.labels("platform" if e.platform else "user").inc()
            elif e.kind == "am.restart":
                self.am_restarts.inc()

    def leadership(self, leading: bool) -> None:
        (self.elected if leading else self.deposed).inc()
        self.pending = {}


class _Present:
    """Gauges read at scrape time from the master itself."""

    def __init__(self, master, metrics: MasterMetrics):
        self.m = master
        self.metrics = metrics

    def collect(self):
        leading = self.m.election.is_leader()
        yield _gauge("gaia_master_is_leader", "1 while this replica leads, else 0.", int(leading))
        yield _gauge("gaia_master_epoch", "The leader's epoch (fencing token) while leading, else 0.",
                     self.m.election.epoch if leading else 0)
        yield _gauge("gaia_master_nodes", "Live nodes this replica sees.", len(self.m.node_view.node_list()))
        if not self.m.is_serving():
            return
        apps = GaugeMetricFamily("gaia_master_apps", "Applications by state (leader only).", labels=["state"])
        counts = collections.Counter(r.state for r in self.m.table.records())
        for value in types_pb2.AppState.values():
            if value:
                apps.add_metric([_state_name(value)], counts.get(value, 0))
        yield apps
        pending = GaugeMetricFamily("gaia_master_pending_requests",
                                    "Requests not (wholly) placed by the last cycle, per pool (leader only).",
                                    labels=["pool"])
        counts = {p.path: 0 for p in self.m.pools.list()}   # every pool, so none vanishes at 0
        counts.update(self.metrics.pending)
        for pool, n in sorted(counts.items()):
            pending.add_metric([pool], n)
        yield pending


def _gauge(name: str, doc: str, value) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
