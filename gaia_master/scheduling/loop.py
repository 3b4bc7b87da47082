"""The leader's scheduling loop: snapshot, Sfair, apply; again whenever something changes.

A cycle runs when woken (an ask arrived, an allocation was released, a node joined) or every
`interval` seconds, so a pending request is retried as running containers end. One cycle at
a time; the Sfair instance lives for the leadership term (its reservations carry over).
"""
from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time

from gaia_master.metrics import MasterMetrics
from gaia_master.scheduling import snapshot
from gaia_master.scheduling.applier import CycleApply, PlanApplier
from gaia_master.sfair import Sfair, SfairConfig
from gaia_master.store import NotLeader

log = logging.getLogger(__name__)
FRUITLESS_REST = 4      # after a cycle that placed nothing: rest 4x its time (at most 4 intervals)


@contextlib.contextmanager
def _collector_paused():
    """No cyclic garbage collection while a cycle decides and writes: a cycle creates an
    object or three per grant, which at the default thresholds triggers collections that
    walk the leader's whole heap (a million allocations at C1M scale) several times a cycle,
    for garbage that is nearly all freed by reference counting anyway. Whatever cyclic
    garbage the cycle leaves is collected after it, as usual. (Process-wide: other threads
    collect nothing during a cycle either, at most `max_cycle_s` plus its writes.)"""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Totals:
    """Figures summed over cycles since the last reset (what `gaia bench scheduler` reads)."""

    def __init__(self):
        self.cycles = self.placed = self.granted = self.refused = 0
        self.snapshot_s = self.schedule_s = self.apply_s = 0.0
        self.granting_s = 0.0                # the cycles that granted something, whole
        self.placing_s = 0.0                 # Sfair's time in the cycles that placed something
        self.first_grant_at = self.last_grant_at = None     # perf_counter of the commits
        self.evicted = 0
        self.decisions_s: list = []          # per request: time the scheduler spent deciding it
        self.completions_s: list = []        # per request: cycle start to its decision

    def add(self, last: dict, stats: dict, now: float) -> None:
        self.cycles += 1
        for key in ("placed", "granted", "refused", "evicted", "snapshot_s", "schedule_s", "apply_s"):
            setattr(self, key, getattr(self, key) + last[key])
        if last["placed"]:
            self.placing_s += last["schedule_s"]
        if last["granted"]:
            self.granting_s += last["snapshot_s"] + last["schedule_s"] + last["apply_s"]
            self.first_grant_at = self.first_grant_at or now - last["apply_s"]
            self.last_grant_at = now
        done = stats.get("request_done_at_s", [])
        self.completions_s.extend(last["snapshot_s"] + d for d in done if d > 0)
        self.decisions_s.extend(s for s, d in zip(stats.get("request_spent_s", []), done) if d > 0)
        del self.decisions_s[:-100_000]      # bounded: the newest decisions only
        del self.completions_s[:-100_000]


class SchedulingLoop:
    def __init__(self, master, interval: float = 1.0, config: SfairConfig = None):
        self.m = master
        self.interval = interval
        every = getattr(getattr(master, "cfg", None), "schedule_stream_every", 512)
        self.config = config or SfairConfig(max_cycle_s=2.0, stream_every=every)
        self._wake = threading.Event()
        self._arrays = snapshot.NodeArrays()
        self._requests = snapshot.RequestCache()
        self.applier = PlanApplier(master.table, master.node_view, master.book,
                                   events=getattr(master, "events", None))
        self.last: dict = {}                 # the last cycle's figures (gaia bench, logs)
        self.totals = Totals()
        # the master's /metrics; a loop driven by a test's stand-in master gets a private one
        self.metrics = getattr(master, "metrics", None) or MasterMetrics()

    def wake(self):
        self._wake.set()

    def run(self, is_current):
        """Cycle while `is_current()` (this leadership term) holds."""
        sfair = Sfair(self.config)
        while is_current():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not is_current():
                return
            t0 = time.perf_counter()
            try:
                last = self.cycle(sfair)
            except NotLeader:
                return
            except Exception:
                log.exception("scheduling cycle failed")
                continue
            if last and not (last["placed"] or last["evicted"]):
                self._rest(time.perf_counter() - t0)

    def _rest(self, spent: float) -> None:
        """After a cycle that changed nothing, wakes wait a while: at saturation every reconciler
        pass re-asks for the AMs that do not fit and wakes the loop, and each of those cycles
        would search the whole cluster (preemption included) again, keeping a core busy for
        nothing (an AM's repeated asks do the same). Resting FRUITLESS_REST times as long as
        the cycle took bounds that to a fifth of a core (a third when a 10,000-node search
        hits the cap of FRUITLESS_REST intervals); a wake that comes meanwhile is served
        right after, and time-driven changes (reclaim grace, reservations) are only late
        by the rest."""
        time.sleep(min(FRUITLESS_REST * self.interval, FRUITLESS_REST * spent))

    def _schedule(self, sfair, snap, wanted: dict, version: int) -> tuple:
        """Sfair's plan, its grants written while it decides: (plan, seconds spent writing
        them, the apply to finish). Each part Sfair hands over is re-checked and sent to etcd
        at once, so etcd works on it while Sfair goes on (the table's lock is held from the
        first part until the apply finishes)."""
        stream = CycleApply(wanted, version)
        spent = [0.0]

        def on_chunks(chunks, node_ids, gpu_sets):
            t = time.perf_counter()
            self.applier.part(stream, chunks, node_ids, gpu_sets)
            spent[0] += time.perf_counter() - t

        try:
            plan = sfair.schedule(snap, on_chunks if self.config.stream_every > 0 else None)
        except BaseException:
            with contextlib.suppress(Exception):    # the first failure is the one raised
                self.applier.close(stream, failed=True)
            raise
        return plan, spent[0], stream

    def cycle(self, sfair) -> dict:
        book = self.m.book
        book.cycle_started()
        try:
            t0 = time.perf_counter()
            snap, wanted, version = snapshot.build(self.m.table, self.m.node_view, self.m.pool_table().list(),
                                                   book, self._arrays, time.time(), self.m.drains.nodes,
                                                   self._requests)
            if not snap.pending:
                self.metrics.idle()
                return {}
            t1 = time.perf_counter()
            with _collector_paused():
                plan, streamed_s, stream = self._schedule(sfair, snap, wanted, version)
                t2 = time.perf_counter()
                applied = self.applier.finish(stream, plan)
            t3 = time.perf_counter()
            self.last = {"snapshot_s": t1 - t0, "schedule_s": t2 - t1 - streamed_s, "apply_s": t3 - t2 + streamed_s,
                         "requests": len(snap.pending), "placed": plan.count, "granted": applied.granted,
                         "refused": applied.refused, "evicted": applied.evicted, "pending": len(plan.pending)}
            self.totals.add(self.last, plan.stats, t3)
            self.metrics.cycle(self.last, snap, plan)
            if applied.granted or applied.evicted:
                self.m.reconciler.wake()     # AMs granted a node start, victims stop, on its next pass
            if plan.stats.get("out_of_time"):
                self.wake()                  # the rest of the backlog: next cycle, at once
            return self.last
        finally:
            book.cycle_done()
