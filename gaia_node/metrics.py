"""The node manager's Prometheus metrics (README "Metrics"), on a registry of its own.

Counters move where things happen: the container table (starts, ends by cause), the node's
event log (memory reclaim, OOM kills, disk evictions, partition stops), the health checks.
Resources and containers by state are read when scraped, the way Node.Status reads them.
"""
import collections

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from gaia_common import resources
from gaia_common.metrics import new_registry
from gaia_common.pb import types_pb2
from gaia_node import usage

# Resources dimension -> (name stem, unit, factor to that unit): gaia_node_<stem>_<what>_<unit>
DIMENSIONS = {
    "cpu_millis": ("cpu", "cores", 1e-3),                   # cores = cpu-seconds per second
    "memory_bytes": ("memory", "bytes", 1),
    "disk_bytes": ("disk", "bytes", 1),
    "net_in_bps": ("network_receive", "bytes_per_second", 1 / 8),
    "net_out_bps": ("network_transmit", "bytes_per_second", 1 / 8),
    "disk_read_bps": ("disk_read", "bytes_per_second", 1),
    "disk_write_bps": ("disk_write", "bytes_per_second", 1),
    "gpu_share": ("gpu_compute", "gpus", 1e-2),             # gpu_share is 100 per whole GPU
    "gpu_memory_bytes": ("gpu_memory", "bytes", 1),
}
RECLAIMS = {"reclaim.squeeze": "squeeze", "reclaim.kill": "kill", "reclaim.restore": "restore"}
MAX_KINDS = 64           # event kinds counted by name; past that "other"
START_FAILED = -1        # containers.START_FAILED (not imported: containers imports us)


def end_cause(status: types_pb2.ContainerStatus, fault: bool) -> str:
    """Why a container ended, in a word fit for a label; `fault`: the node ended it for
    breaking its own limit (e.g. its disk quota)."""
    S = types_pb2
    if "OOM-killed" in status.message:
        return "oom"
    if status.platform_reason:
        return "platform"        # the node's sake: memory reclaim, disk pressure, partition, setup
    if fault:
        return "limit"
    if status.state == S.CONTAINER_STATE_FAILED and status.exit_code == START_FAILED:
        return "start_failed"
    return {S.CONTAINER_STATE_EXITED: "exited", S.CONTAINER_STATE_STOPPED: "stopped",
            S.CONTAINER_STATE_LOST: "lost"}.get(status.state, "failed")


def _counter_of(container_id: str) -> int:
    tail = container_id.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class NodeMetrics:
    def __init__(self, manager=None):
        self.registry = r = new_registry()
        self.starts = Counter("gaia_node_container_starts", "Containers started, by driver.", ["driver"], registry=r)
        self.restarts = Counter("gaia_node_container_restarts",
                                "Starts of an instance's later containers (<app>.<instance>.<n>, n > 0), "
                                "or an AM's later attempts.", registry=r)
        self.ends = Counter("gaia_node_container_ends", "Containers that ended, by cause.", ["cause"], registry=r)
        self.events = Counter("gaia_node_events", "The node's own events (`gaia node show`), by kind.", ["kind"],
                              registry=r)
        self.reclaims = Counter("gaia_node_memory_reclaims", "Elastic memory reclaim actions on borrowers.",
                                ["action"], registry=r)
        self.oom_kills = Counter("gaia_node_oom_kills", "Containers the kernel OOM-killed.", registry=r)
        self.disk_evictions = Counter("gaia_node_disk_evictions", "Containers evicted for disk pressure.",
                                      registry=r)
        self.partition_stops = Counter("gaia_node_partition_stops",
                                       "Containers stopped because the node was cut off from etcd.", registry=r)
        self.health_checks = Counter("gaia_node_health_checks", "Health probes run, by result.", ["result"],
                                     registry=r)
        self._kinds: set = set()
        if manager is not None:
            r.register(_Present(manager))

    # ---- what the container table, event log and health checks report ----

    def started(self, spec) -> None:
        self.starts.labels(spec.driver or "process").inc()
        if _counter_of(spec.container_id) > (1 if spec.is_am else 0):   # AM attempts count from 1
            self.restarts.inc()

    def ended(self, status, fault: bool) -> None:
        self.ends.labels(end_cause(status, fault)).inc()

    def node_event(self, kind: str) -> None:
        if kind not in self._kinds and len(self._kinds) < MAX_KINDS:
            self._kinds.add(kind)
        self.events.labels(kind if kind in self._kinds else "other").inc()
        if kind in RECLAIMS:
            self.reclaims.labels(RECLAIMS[kind]).inc()
        elif kind == "memory.oom":
            self.oom_kills.inc()
        elif kind == "disk.evict":
            self.disk_evictions.inc()
        elif kind == "partition.stop":
            self.partition_stops.inc()

    def health_check(self, ok: bool) -> None:
        self.health_checks.labels("pass" if ok else "fail").inc()


class _Present:
    """Gauges read at scrape time from the node manager: resources and containers."""

    def __init__(self, manager):
        self.m = manager

    def collect(self):
        containers = getattr(self.m, "containers", None)
        if containers is None:
            return                     # still starting
        yield self._states(containers.statuses())
        running = containers.running()
        allocated = resources.total(spec.resources.request for spec, _ in running)
        used = resources.total(usage.measure(self.m.meters, spec, status) for spec, status in running)
        yield from _resources("capacity", "What the node offers", self.m.info.capacity)
        yield from _resources("allocated", "What the running containers requested", allocated)
        yield from _resources("used", "What the running containers use now", used)
        registration = getattr(self.m, "registration", None)
        if registration is not None:
            yield GaugeMetricFamily("gaia_node_lease_unrenewed_seconds",
                                    "Seconds since the node's etcd lease was last renewed.",
                                    value=registration.unrenewed_for())

    @staticmethod
    def _states(statuses: list) -> GaugeMetricFamily:
        family = GaugeMetricFamily("gaia_node_containers", "Containers the node knows, by state.", labels=["state"])
        counts = collections.Counter(s.state for s in statuses)
        for value in types_pb2.ContainerState.values():
            if value:
                name = types_pb2.ContainerState.Name(value).replace("CONTAINER_STATE_", "").lower()
                family.add_metric([name], counts.get(value, 0))
        return family


def _resources(what: str, doc: str, amount: types_pb2.Resources):
    for dimension, (stem, unit, factor) in DIMENSIONS.items():
        yield GaugeMetricFamily(f"gaia_node_{stem}_{what}_{unit}", f"{doc}: {dimension} in {unit}.",
                                value=getattr(amount, dimension) * factor)
