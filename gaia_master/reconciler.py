"""The leader's control loop: every app that should run has a live AM; nothing finished runs.

Each pass compares the application table with what nodes report and acts on the difference:
  - an active app with no AM, or whose AM container died or whose node vanished, gets a new
    AM attempt (up to am_attempts, then the app fails with the reason);
  - a container of an app that is finished, killed or unknown is stopped and removed.
It is level-triggered: after a failover the new leader simply runs the next pass, so running
AMs and containers are adopted, never restarted.
"""
import logging
import os
import sys
import threading
import time

import grpc

from gaia_common import etcd_auth, faults, node_channels, quantity
from gaia_common.daemon import LOG_FORMAT_ENV
from gaia_common.logctx import log_context
from gaia_common.pb import types_pb2
from gaia_common.security.identity import Identity
from gaia_master.app_table import TERMINAL
from gaia_master.node_view import latest_container
from gaia_master.store import NotLeader

log = logging.getLogger(__name__)
DEAD = (types_pb2.CONTAINER_STATE_EXITED, types_pb2.CONTAINER_STATE_FAILED,
        types_pb2.CONTAINER_STATE_LOST, types_pb2.CONTAINER_STATE_STOPPED)
# A placed AM whose node has not reported it for this long is started again (idempotent).
AM_REPORT_GRACE = 10.0
# After a pass, the next waits at least PASS_REST times as long as it took (at most
# MAX_PASS_REST seconds): see Reconciler._rest.
PASS_REST = 4
MAX_PASS_REST = 2.0


class Reconciler:
    def __init__(self, master, interval: float = 0.25):
        self.m = master
        self.interval = interval
        self._wake = threading.Event()
        self._placed_at = {}   # container_id -> monotonic time we asked a node to start it
        self._announced = {}   # app_id -> the AM attempt whose restart event is recorded

    def wake(self):
        self._wake.set()

    def run(self, is_current):
        """Loop while `is_current()` (this leadership term) holds."""
        while is_current():
            started = time.perf_counter()
            try:
                self.pass_once()
            except NotLeader:
                return
            except Exception:
                if not is_current():
                    return   # the master is stopping (its channels are closed): nothing to say
                log.exception("reconcile pass failed")
            self._rest(time.perf_counter() - started)
            self._wake.wait(self.interval)
            self._wake.clear()

    @staticmethod
    def _rest(spent: float) -> None:
        """A pass reads every app and every container, and the scheduler wakes it after every
        grant: with tens of thousands of apps, back-to-back passes would keep a core busy and
        take the GIL from the scheduling loop (measured while a bench submitted 38,000 apps:
        passes used 1.5 s of CPU during a 2.4 s scheduling cycle). Resting 4x the pass bounds
        it to a fifth of a core; with few apps the rest is a few milliseconds and a wake is
        served as soon as before. A deposed leader's passes end after the rest (at most
        MAX_PASS_REST): its writes are fenced meanwhile."""
        time.sleep(min(MAX_PASS_REST, PASS_REST * spent))

    def pass_once(self):
        for record in self.m.table.records():
            if record.state not in TERMINAL:
                with log_context(app=record.app_id, instance="am"):
                    self._ensure_am(record)
        self._collect_garbage()

    # ---- AMs ----

    def _ensure_am(self, record):
        am = self.m.table.app_allocations(record.app_id).get("am")
        if am is None:
            return self._place_am(record, "first attempt" if record.am_attempt == 0 else "AM allocation lost")
        if self.m.node_view.node(am.node_id) is None:
            return self._place_am(record, f"AM node {am.node_id} lost")
        container_id = am_container_id(record.app_id, am.attempt)
        status = latest_container(self.m.node_view.app_containers(record.app_id), "am")
        if status is not None and status.container_id == container_id:
            self._placed_at.pop(container_id, None)  # reported: no need to remember asking
            if status.state in DEAD:
                ended = status.message or types_pb2.ContainerState.Name(status.state)
                self._place_am(record, f"AM attempt {am.attempt} ended: {ended}")
            return
        if time.monotonic() - self._placed_at.get(container_id, 0) > AM_REPORT_GRACE:
            self._start_am(record, am)  # not reported (yet): asking again is idempotent

    def _place_am(self, record, why: str):
        limit = record.spec.am_attempts or self.m.cfg.am_attempts
        if record.am_attempt >= limit:
            log.warning("app %s: giving up after %d AM attempts (%s)", record.app_id, record.am_attempt, why)
            message = f"ApplicationMaster failed {record.am_attempt} times; last: {why}"
            self.m.table.update(record, state=types_pb2.APP_STATE_FAILED, message=message)
            self.m.events.record(record.app_id, [types_pb2.AppEvent(
                kind="failed", cause=why, message=message, am_attempt=record.am_attempt)])
            return
        if record.am_attempt and self._announced.get(record.app_id) != record.am_attempt:
            # once per attempt: this runs on every pass until the new AM is placed
            self._announced[record.app_id] = record.am_attempt
            self.m.events.record(record.app_id, [types_pb2.AppEvent(
                kind="am.restart", cause=why, am_attempt=record.am_attempt + 1, platform=why.endswith(" lost"),
                message=f"AM attempt {record.am_attempt + 1} of {limit}")])
        # Sfair places it (in the app's pool, ahead of every user band); the next pass after
        # the grant starts it. Asking again while it waits is harmless.
        self.m.book.ask_am(record.app_id, record.am_attempt + 1, why, am_resources(self.m.cfg.am_resources))
        self.m.scheduling.wake()

    def _start_am(self, record, alloc):
        spec = self.am_spec(record, alloc.attempt)
        self._placed_at[spec.container_id] = time.monotonic()
        log.info("starting AM attempt %d on %s", alloc.attempt, alloc.node_id, extra={"container": spec.container_id})
        try:
            self.m.nodes.start(node_channels.of_allocation(alloc), spec)
        except grpc.RpcError as e:
            log.warning("app %s: node %s did not start the AM: %s", record.app_id, alloc.node_id, e.details())

    def am_spec(self, record, attempt: int) -> types_pb2.ContainerSpec:
        cfg = self.m.cfg
        python = cfg.python or sys.executable
        spec = types_pb2.ContainerSpec(
            container_id=am_container_id(record.app_id, attempt), app_id=record.app_id,
            app_name=record.spec.name, instance_id="am", driver="process", host_network=True,
            cluster=cfg.cluster, is_am=True, private=record.spec.private,
            command=[python, "-m", "gaia_cli", "am", "--app-id", record.app_id, "--attempt", str(attempt)])
        spec.env["GAIA_ETCD_ENDPOINTS"] = ",".join(cfg.etcd)
        spec.env["GAIA_MASTERS"] = self.m.address
        spec.env.update(etcd_auth.am_env(self.m.etcd, self.m.keys))   # etcd RBAC: may read masters/
        spec.env[LOG_FORMAT_ENV] = cfg.log_format     # the AM logs the way its master does
        if os.environ.get(faults.AM_FAULTS_ENV):         # tests arm faults in the AMs through their master
            spec.env[faults.ENV] = os.environ[faults.AM_FAULTS_ENV]
        spec.resources.request.CopyFrom(am_resources(cfg.am_resources))
        spec.resources.limit.CopyFrom(spec.resources.request)
        if self.m.ca is not None:   # TLS: the AM's own certificate, bound to its app and attempt
            spec.tls.CopyFrom(am_certificate(self.m.ca, cfg.cluster, record.app_id, attempt))
        return spec

    # ---- garbage ----

    def _collect_garbage(self):
        """Stop what nothing grants any more: containers of finished apps, and instances whose
        allocation was released (scaled down, preempted, reclaimed)."""
        active = {r.app_id for r in self.m.table.records() if r.state not in TERMINAL}
        for status in self.m.node_view.all_containers():
            if status.app_id in active and self._granted(status):
                continue
            node = self.m.node_view.node(status.node_id)
            if node is None:
                continue  # its node is gone; the keys go with the node's lease
            try:
                self.m.nodes.stop(node, status.container_id, remove=True, grace=2.0)
            except grpc.RpcError as e:
                log.warning("could not stop %s on %s: %s", status.container_id, node.node_id, e.details(),
                            extra={"app": status.app_id, "instance": status.instance_id})


    def _granted(self, status) -> bool:
        if status.instance_id == "am":
            return True   # AM attempts are the AM logic's business above
        alloc = self.m.table.allocation(status.app_id, status.instance_id)
        # while it moves off a draining node, the old copy is the AM's to stop
        return alloc is not None and status.node_id in (alloc.node_id, alloc.from_node_id)


def am_certificate(ca, cluster: str, app_id: str, attempt: int) -> types_pb2.TlsBundle:
    """A new key and certificate for AM `attempt` of `app_id` (sent to its node, never stored)."""
    cert_pem, key_pem = ca.issue(Identity.am(cluster, app_id, attempt))
    return types_pb2.TlsBundle(ca_pem=ca.cert_pem, cert_pem=cert_pem, key_pem=key_pem)


def am_container_id(app_id: str, attempt: int) -> str:
    return f"{app_id}.am.{attempt}"


def am_resources(values: dict) -> types_pb2.Resources:
    return types_pb2.Resources(cpu_millis=quantity.cpu_millis(values.get("cpu", "100m")),
                               memory_bytes=quantity.byte_count(values.get("memory", "128Mi")))
