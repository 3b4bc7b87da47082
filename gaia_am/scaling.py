"""Scaling an app's set of instances: which ones a scale-down removes, and autoscaling.

Scale-down removes the instances the user named (AppRecord.remove_instances, from `gaia scale
--instances`) first, then the newest. The autoscaler (spec.autoscale) measures the cpu its
instances use against their request, on their nodes, and asks the master for the count that
brings that back to the target; the master checks the bounds, the AM then grows or shrinks.
"""
import collections
import logging
import math
import threading
import time

import grpc

from gaia_common.client import GaiaError
from gaia_common.node_channels import of_allocation
from gaia_common.pb import master_pb2, types_pb2

log = logging.getLogger(__name__)
SAMPLE_EVERY = 1.0       # seconds; the node's cpu meter itself reads over >= 1 s
WINDOW = 3.0             # seconds of samples averaged before a decision
TOLERANCE = 0.1          # within 10% of the target: no change (measurements are noisy)
DEFAULT_COOLDOWN = 30.0


# ---- scale-down ----

def leaving(instances: list, remove_ids, count: int) -> list:
    """The `count` instances a scale-down removes: those named first, then the newest."""
    named = set(remove_ids)
    order = sorted(instances, key=lambda v: (v.allocation.instance_id not in named,
                                             -_number(v.allocation.instance_id)))
    return order[:max(0, count)]


def scale_down(am, status, instances: list, desired: int) -> list:
    """Stop and release what is over `desired`; returns the instances that stay."""
    going = leaving(instances, status.app.remove_instances, len(instances) - desired)
    for view in going:
        if view.HasField("status"):
            try:
                am.nodes.stop(of_allocation(view.allocation), status.epoch, view.status.container_id)
            except grpc.RpcError as e:
                log.warning("could not stop %s: %s", view.status.container_id, e.details())
                return instances   # released only once stopped: retried next pass
    am.client.call("ReleaseContainers", master_pb2.ReleaseRequest(
        app_id=am.app_id, attempt=am.attempt, instance_ids=[v.allocation.instance_id for v in going]))
    gone = {v.allocation.instance_id for v in going}
    return [v for v in instances if v.allocation.instance_id not in gone]


def _number(instance_id: str) -> int:
    return int(instance_id) if instance_id.isdigit() else -1


# ---- autoscaling ----

def desired_count(instances: int, measured: int, used_percent: float, settings) -> int:
    """The instance count that brings cpu use back to the target, within [min, max].

    `measured` of the `instances` ran and averaged `used_percent` of their request; the
    others (stopped, starting) are left as they are. Within TOLERANCE of the target: no change."""
    wanted = instances
    ratio = used_percent / settings.target
    if measured and abs(ratio - 1) > TOLERANCE:
        wanted = instances - measured + math.ceil(measured * ratio)
    return max(settings.min, min(settings.max, wanted))


def usable(settings) -> bool:
    return settings.metric in ("", "cpu") and settings.target > 0 and 0 <= settings.min <= settings.max


class Window:
    """The last samples of the instances' mean cpu use, of the same set of containers only: a
    change of the set (scaled, restarted) starts over, so new instances are measured first.
    Each sample is the node's rate since its previous reading (about SAMPLE_EVERY)."""

    def __init__(self):
        self.samples = collections.deque(maxlen=max(1, round(WINDOW / SAMPLE_EVERY)))
        self.containers = None

    def add(self, containers: frozenset, percent: float):
        if containers != self.containers:
            self.samples.clear()
            self.containers = containers
        self.samples.append(percent)

    def average(self):
        """The mean over a full window, or None while it is not full yet."""
        if len(self.samples) < self.samples.maxlen:
            return None
        return sum(self.samples) / len(self.samples)

    def clear(self):
        self.samples.clear()
        self.containers = None


class Autoscaler:
    """Runs beside the AM's loop (which may wait on the master's watch for seconds): every
    SAMPLE_EVERY it measures the instances of the latest status the loop has seen."""

    def __init__(self, am, nodes=None, clock=time.monotonic):
        self.am = am
        self._nodes = nodes              # default: the AM's own (safe to share between threads)
        self.clock = clock
        self.window = Window()
        self.last_change = clock()       # a new AM waits a cooldown first: it knows no earlier change
        self.status = None
        self._thread = None
        self._stopped = threading.Event()

    def observe(self, status):
        """The AM loop's latest view; starts measuring once the app asks for autoscaling."""
        self.status = status
        if self._thread is None and status.app.spec.HasField("autoscale"):
            self._thread = threading.Thread(target=self._run, name="autoscaler", daemon=True)
            self._thread.start()

    def stop(self):
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self):
        while not self._stopped.wait(SAMPLE_EVERY):
            try:
                self.tick()
            except Exception:   # measuring must never take the AM down
                log.exception("autoscaler tick failed")

    def tick(self):
        status = self.status
        spec = status.app.spec
        if not spec.HasField("autoscale") or not usable(spec.autoscale) or not spec.resources.request.cpu_millis:
            return self.window.clear()
        if len(status.instances) != spec.instances:
            return self.window.clear()   # a scale is under way: measure once it is done
        usage = self.measure(status)
        if not usage:
            return self.window.clear()
        now = self.clock()
        percent = 100.0 * sum(usage.values()) / len(usage) / spec.resources.request.cpu_millis
        self.window.add(frozenset(usage), percent)
        average = self.window.average()
        if average is not None and now - self.last_change >= (spec.autoscale.cooldown_seconds or DEFAULT_COOLDOWN):
            self.decide(status, len(usage), average, now)

    def decide(self, status, measured: int, average: float, now: float):
        spec = status.app.spec
        wanted = desired_count(spec.instances, measured, average, spec.autoscale)
        if wanted == spec.instances:
            return
        reason = f"cpu {average:.0f}% of request over {measured} instances, target {spec.autoscale.target:g}%"
        log.info("autoscaling %s from %d to %d: %s", spec.name, spec.instances, wanted, reason)
        self.last_change = now   # a refused call waits a cooldown too: it must not repeat every second
        self.window.clear()
        try:
            self.am.client.call("AutoscaleApp", master_pb2.AutoscaleRequest(
                app_id=self.am.app_id, attempt=self.am.attempt, instances=wanted, reason=reason))
        except GaiaError as e:
            log.warning("autoscale to %d refused: %s", wanted, e.message)

    def measure(self, status) -> dict:
        """container id -> cpu millicores used, of every running instance not stopped; empty
        when a node does not answer (no decision on half a picture)."""
        running = {v.status.container_id: of_allocation(v.allocation) for v in status.instances
                   if not v.allocation.stopped and v.status.state == types_pb2.CONTAINER_STATE_RUNNING}
        usage = {}
        for node in set(running.values()):
            try:
                report = (self._nodes or self.am.nodes).report(node)
            except grpc.RpcError as e:
                log.warning("node %s did not report usage: %s", node.node_id, e.details())
                return {}
            usage.update({c.container_id: c.usage.cpu_millis for c in report.containers if c.container_id in running})
        return usage if len(usage) == len(running) else {}
