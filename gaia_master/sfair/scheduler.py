"""Sfair's cycle: one pure function from a ClusterSnapshot to a Plan.

    plan = Sfair().schedule(snapshot)

Steps, each in its own module: the fair queue picks the next request and how many instances
it may take (order.py); max quotas cap that (pools.py); the request's equivalence class
gives per-node slots and scores, refreshed only where nodes changed (equivalence.py); the
nodes are chosen in one vector pass (placement.py); a gang goes through a statement that
commits all or rolls back (statement.py). What stays pending carries a reason (explain.py).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from gaia_master.sfair.equivalence import EquivalenceCache
from gaia_master.sfair.explain import explain_filters
from gaia_master.sfair.fairshare import entitlement_shares
from gaia_master.sfair.model import ClusterSnapshot, Plan
from gaia_master.sfair.order import FairQueue, Work
from gaia_master.sfair.placement import choose_nodes
from gaia_master.sfair.plugins.fits import Fits
from gaia_master.sfair.plugins.gpu_model import GpuModel
from gaia_master.sfair.plugins.labels import NodeLabels
from gaia_master.sfair.plugins.packing import LeastAllocated, MostAllocated
from gaia_master.sfair.plugins.spread import SpreadPerDomain, SpreadPerNode
from gaia_master.sfair.state import ClusterState
from gaia_master.sfair.statement import Statement


@dataclasses.dataclass
class SfairConfig:
    packing_weight: float = 1.0          # operator multipliers of the 0..1 scores
    spreading_weight: float = 1.0
    # When everything pending fits in what is free (summed over the cluster), the order
    # cannot starve anyone, so each request is placed whole in one step.
    uncontended_fast_path: bool = True
    # Let a pool below its weighted DRF entitlement (water-filled over aggregates) take
    # several instances per step; off: strict one-rival-at-a-time progressive filling.
    entitlement_chunks: bool = True
    entitlement_step: float = 0.5        # fraction of the way to the entitlement per step
    # Stop deciding after this long (None: no limit); what is left stays pending for the next
    # cycle, so one huge backlog cannot hold every request's answer hostage.
    max_cycle_s: float = None


@dataclasses.dataclass
class Plugins:
    static_filters: list
    fits: Fits
    spread_node: SpreadPerNode
    spread_domain: SpreadPerDomain
    scorers: list                        # [(scorer, weight)]

    @classmethod
    def default(cls, config: SfairConfig) -> "Plugins":
        return cls([NodeLabels(), GpuModel()], Fits(), SpreadPerNode(), SpreadPerDomain(),
                   [(MostAllocated(), config.packing_weight), (LeastAllocated(), config.spreading_weight)])


class Sfair:
    def __init__(self, config: SfairConfig = None, plugins: Plugins = None):
        self.config = config or SfairConfig()
        self.plugins = plugins or Plugins.default(self.config)

    def schedule(self, snapshot: ClusterSnapshot) -> Plan:
        return _Cycle(snapshot, self.config, self.plugins).run()


class _Cycle:
    def __init__(self, snapshot, config, plugins):
        self.t0 = time.perf_counter()
        self.config = config
        self.plugins = plugins
        self.state = ClusterState(snapshot)
        p = plugins
        self.cache = EquivalenceCache(self.state, p.static_filters, p.fits, p.spread_node, p.scorers)
        self.chunks: list = []               # the plan's grants, one chunk per step
        self.placed = 0
        self.works = []
        self.steps = 0
        self.out_of_time = False
        pools = self.state.pools
        gangs: dict = {}
        for seq, req in enumerate(snapshot.pending):
            if req.gang_id:
                gang = gangs.get((req.app, req.gang_id))
                if gang is not None:
                    gang.members.append(req)
                    gang.remaining += int(req.count)
                    continue
            pool = pools.index.get(req.pool.strip("/"))
            w = Work(req, pool if pool is not None else -1, int(req.count), seq)
            if req.gang_id:
                w.members = [req]
                gangs[(req.app, req.gang_id)] = w
            if pool is None:
                w.reason = f"no pool {req.pool!r}"
            elif not pools.is_leaf(pool):
                w.reason = f"pool {req.pool!r} has child pools; requests go to leaf pools"
            elif req.count <= 0:
                w.reason, w.remaining = "count must be positive", 0
            self.works.append(w)
        for w in gangs.values():
            if any(m.pool != w.request.pool or m.priority != w.request.priority for m in w.members):
                w.reason = f"gang {w.request.gang_id!r}: its requests disagree on pool or priority"
        self.uncontended = config.uncontended_fast_path and self._demand_fits()

    def _demand_fits(self) -> bool:
        demand = sum((_demand(w) for w in self.works if not w.reason), 0)
        return bool(np.all(demand <= self.state.free.sum(axis=0)))

    def run(self) -> Plan:
        live = [w for w in self.works if not w.reason and w.remaining]
        entitlement = None
        if not self.uncontended and self.config.entitlement_chunks:
            pending = {}
            for w in live:
                pending[w.pool] = pending.get(w.pool, 0) + _demand(w)
            entitlement = entitlement_shares(self.state.pools, pending, self.state.cluster_capacity)
        queue = FairQueue(self.state, live, entitlement, self.config.entitlement_step)
        budget = self.t0 + self.config.max_cycle_s if self.config.max_cycle_s else None
        while True:
            picked = queue.next()
            if picked is None:
                break
            if budget is not None and time.perf_counter() > budget:
                self.out_of_time = True
                break
            work, fair_limit = picked
            t = time.perf_counter()
            active = self._step(work, fair_limit)
            work.spent_s += time.perf_counter() - t
            if not active:
                work.done_at_s = time.perf_counter() - self.t0
            queue.requeue(work, active)
            self.steps += 1
        return self._finish()

    def _step(self, work: Work, fair_limit: int) -> bool:
        """Place one chunk of `work`; True while it may take more in this cycle."""
        if work.members is not None:
            return self._gang_step(work)
        req = work.request
        pools = self.state.pools
        want = work.remaining if (req.gang or self.uncontended) else min(work.remaining, fair_limit)
        room, limit = pools.quota_room(work.pool, req.shape)
        if room < (work.remaining if req.gang else 1):
            work.reason = f"quota: pool {limit[0]!r} max {limit[1]} reached"
            return False
        want = min(want, room)
        if work.eq is None:
            work.eq = self.cache.of(req, pools.gpu_models[work.pool])
        eq = self.cache.refresh(work.eq)
        rows, n = choose_nodes(self.state, eq, want, self.plugins.spread_domain)
        placed = int(n.sum())
        if req.gang:
            stmt = Statement(self.state)
            if placed == want:
                stmt.place(rows, n, req.shape, req.app, work.pool)
                for op in stmt.commit():
                    self._grant(work, op[0], op[1])
                return False
            # nothing of a gang is held: whatever was tentatively placed is rolled back
            stmt.discard()
            work.reason = (f"gang of {req.count}: only {placed} fit; "
                           + explain_filters(self.state, eq, self.plugins))
            return False
        if placed:
            self.state.place(rows, n, req.shape, req.app, work.pool)
            self._grant(work, rows, n)
        if placed < want:
            work.reason = explain_filters(self.state, self.cache.refresh(eq), self.plugins)
            return False
        return work.remaining > 0

    def _gang_step(self, work: Work) -> bool:
        """Every instance of every request of the gang, through one statement: a member
        that does not fit rolls back the members placed before it, in reverse."""
        pools = self.state.pools
        total = _demand(work)
        room, limit = pools.quota_room(work.pool, total)
        if room < 1:
            work.reason = f"quota: pool {limit[0]!r} max {limit[1]} reached"
            return False
        stmt = Statement(self.state)
        for member in work.members:
            eq = self.cache.refresh(self.cache.of(member, pools.gpu_models[work.pool]))
            rows, n = choose_nodes(self.state, eq, member.count, self.plugins.spread_domain)
            placed = int(n.sum())
            if placed < member.count:
                stmt.discard()
                work.reason = (f"gang {member.gang_id!r}: only {placed} of {member.count} of "
                               f"{member.request_id} fit; " + explain_filters(self.state, self.cache.refresh(eq),
                                                                                self.plugins))
                return False
            stmt.place(rows, n, member.shape, member.app, work.pool)
        for (rows, n, *_), member in zip(stmt.commit(), work.members):
            self.chunks.append((member.request_id, member.app, member.first_instance, rows, n))
            k = int(n.sum())
            self.placed += k
            work.granted += k
            work.remaining -= k
        return False

    def _grant(self, work: Work, rows, n) -> None:
        req = work.request
        self.chunks.append((req.request_id, req.app, req.first_instance + work.granted, rows, n))
        k = int(n.sum())
        self.placed += k
        work.granted += k
        work.remaining -= k

    def _finish(self) -> Plan:
        pending = {}
        for w in self.works:
            if w.remaining > 0:
                why = w.reason or ("cycle time budget spent" if self.out_of_time else "not reached in this cycle")
                for req in w.members or [w.request]:
                    left = req.count if w.members else w.remaining
                    pending[req.request_id] = f"{left} of {req.count} pending: {why}"
        stats = {
            "cycle_s": time.perf_counter() - self.t0,
            "placements": self.placed,
            "steps": self.steps,
            "classes": self.cache.classes,
            "full_rebuilds": self.cache.full_rebuilds,
            "row_refreshes": self.cache.row_refreshes,
            "uncontended": self.uncontended,
            "out_of_time": self.out_of_time,
            "request_spent_s": [w.spent_s for w in self.works],
            "request_done_at_s": [w.done_at_s for w in self.works],
        }
        return Plan(self.state.nodes.ids, self.chunks, pending, stats)


def _demand(work: Work) -> "np.ndarray":
    """What the work still asks for in total (every member of a gang)."""
    if work.members is None:
        return work.remaining * work.request.shape
    return sum(m.count * m.shape for m in work.members)
