"""Sfair's cycle: from a ClusterSnapshot to a Plan, with no side effect beyond the
reservations the Sfair instance carries from one cycle to the next.

    plan = Sfair().schedule(snapshot)

Steps, each in its own module: the fair queue picks the next request and how many instances
it may take (order.py); max quotas cap that (pools.py); the request's equivalence class
gives per-node slots and scores, refreshed only where nodes changed (equivalence.py); the
nodes are chosen in one vector pass (placement.py); a gang goes through a statement that
commits all or rolls back (statement.py). What stays pending carries a reason (explain.py).

Around the fair pass: requests with a reservation are served first and hold capacity on
their nodes for the rest of the cycle (reservation.py); after it, requests still pending may
evict lower-priority containers of their pool or borrowed ones (preemption.py), and those
that starve get reservations for the next cycles. The Sfair instance keeps the reservations,
so the leader should keep one instance for as long as it leads.
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
from gaia_master.sfair.preemption import Evictor
from gaia_master.sfair.reservation import ReservationBook, Reserver
from gaia_master.sfair.plugins.fits import Fits
from gaia_master.sfair.plugins.gpu_model import GpuModel
from gaia_master.sfair.plugins.gpu_slots import GpuPacking, GpuSlots
from gaia_master.sfair.plugins.labels import NodeLabels
from gaia_master.sfair.plugins.packing import LeastAllocated, MostAllocated
from gaia_master.sfair.plugins.spread import SpreadPerDomain, SpreadPerNode
from gaia_master.sfair.state import ClusterState
from gaia_master.sfair.statement import Statement


@dataclasses.dataclass
class SfairConfig:
    packing_weight: float = 1.0          # operator multipliers of the 0..1 scores
    spreading_weight: float = 1.0
    gpu_packing_weight: float = 1.0      # GPU work onto partly used GPUs / the best-linked sets
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
    # Evictions, only for requests the fair pass left pending. Preemption: a request may stop
    # lower-priority containers of its own leaf pool. Reclaim: a pool below its guarantee whose
    # request has waited longer than the grace period takes back, up to its guarantee, what
    # other pools hold above theirs.
    preemption: bool = True
    reclaim: bool = True
    reclaim_grace_s: float = 30.0
    # Reservations: a gang, or a request larger than `large_fraction` of the median node (one
    # instance, in some dimension; or all of them above a whole node), that has waited longer
    # than reserve_after_s gets nodes held for it (at most max_reservations, oldest first).
    large_fraction: float = 0.5
    reserve_after_s: float = 60.0
    max_reservations: int = 4
    # schedule(on_chunks=...) hands the fair pass's grants over about every this many instances
    stream_every: int = 512


@dataclasses.dataclass
class Plugins:
    static_filters: list
    fits: Fits
    spread_node: SpreadPerNode
    spread_domain: SpreadPerDomain
    scorers: list                        # [(scorer, weight)]
    gpu_slots: GpuSlots = None           # count filter per GPU (nodes with topology); None: off

    @classmethod
    def default(cls, config: SfairConfig) -> "Plugins":
        return cls([NodeLabels(), GpuModel()], Fits(), SpreadPerNode(), SpreadPerDomain(),
                   [(MostAllocated(), config.packing_weight), (LeastAllocated(), config.spreading_weight),
                    (GpuPacking(), config.gpu_packing_weight)],
                   GpuSlots())


class Sfair:
    def __init__(self, config: SfairConfig = None, plugins: Plugins = None):
        self.config = config or SfairConfig()
        self.plugins = plugins or Plugins.default(self.config)
        self.reservations = ReservationBook()     # carried from cycle to cycle

    def schedule(self, snapshot: ClusterSnapshot, on_chunks=None) -> Plan:
        """`on_chunks(chunks, node_ids, gpu_sets)`, when given, is handed the fair pass's grants
        about every `config.stream_every` instances while the cycle goes on (the leader writes
        them meanwhile); the plan still lists every chunk, the first `plan.streamed` of them
        handed over already."""
        cycle = _Cycle(snapshot, self.config, self.plugins, self.reservations)
        cycle.on_chunks, cycle.every = on_chunks, self.config.stream_every
        return cycle.run()


class _Cycle:
    def __init__(self, snapshot, config, plugins, book):
        self.t0 = time.perf_counter()
        self.snapshot = snapshot
        self.config = config
        self.plugins = plugins
        self.state = ClusterState(snapshot)
        p = plugins
        self.cache = EquivalenceCache(self.state, p.static_filters, p.fits, p.spread_node, p.scorers,
                                      getattr(p, "gpu_slots", None))
        self.reserver = Reserver(book, self.state, self.cache, plugins, config, snapshot.now)
        self.chunks: list = []               # the plan's grants, one chunk per step
        self.gpu_sets: dict = {}             # (request_id, row) -> [GPU set per instance]
        self.evictions: list = []
        self.placed = 0
        self.works = []
        self.steps = 0
        self.out_of_time = False
        self.uncontended = False
        self.on_chunks, self.every = None, 0
        self.streamed = self.streamed_count = 0      # chunks, instances handed to on_chunks
        self._explained: dict = {}           # (id(class), state version) -> pending reason
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
            w.blocked = "invalid" if w.reason else ""
            self.works.append(w)
        for w in gangs.values():
            if any(m.pool != w.request.pool or m.priority != w.request.priority for m in w.members):
                w.reason = f"gang {w.request.gang_id!r}: its requests disagree on pool or priority"
                w.blocked = "invalid"

    def _demand_fits(self) -> bool:
        demand = _demand_by((w for w in self.works if not w.reason), lambda w: None).get(None, 0)
        return bool(np.all(demand <= self.state.free.sum(axis=0)))

    def run(self) -> Plan:
        self._serve_reservations()
        self.uncontended = self.config.uncontended_fast_path and self._demand_fits()
        self._fair_pass()
        self._evict_pass()
        self.reserver.update(self.works)
        return self._finish()

    def _serve_reservations(self) -> None:
        """Reserved requests go first (they have starved long enough); one that still does
        not fit holds what is free on its nodes, so the fair pass can only backfill."""
        for work in self.reserver.due(self.works):
            self._step(work, work.remaining)
            if work.remaining and not work.blocked:
                self.reserver.hold(work)

    def _evict_pass(self) -> None:
        """Requests still pending may evict (preemption.py): the highest priority, then the
        oldest first, so the most urgent request picks its victims first."""
        if self.out_of_time or not (self.config.preemption or self.config.reclaim):
            return
        waiting = [w for w in self.works if w.remaining > 0 and not w.blocked]
        if not waiting:
            return
        evictor = Evictor(self.snapshot, self.state, self.cache, self.plugins, self.config)
        waiting.sort(key=lambda w: (-w.request.priority, w.request.submitted_at, w.seq))
        budget = self.t0 + self.config.max_cycle_s if self.config.max_cycle_s else None
        for work in waiting:
            if budget is not None and time.perf_counter() > budget:
                self.out_of_time = True
                return
            self.reserver.release(work)
            self._grant_steps(work, evictor.place(work))
            if work.remaining:
                self.reserver.hold(work)

    def _grant_steps(self, work: Work, steps: list) -> None:
        """The evictor's placements become grants (one chunk per instance) and its evictions
        go to the plan next to them."""
        offsets: dict = {}
        step_sets = self._step_gpu_sets(steps)
        for step in steps:
            self.evictions.extend(ev for *_, ev in step.evicted)
            rows, n = np.array([step.row]), np.ones(1, dtype=np.int64)
            member = step.member
            self._keep_gpus(member.request_id, step_sets.get(id(step)))
            if work.members is None:
                self._grant(work, rows, n)
                continue
            k = offsets[member.request_id] = offsets.get(member.request_id, -1) + 1
            self.chunks.append((member.request_id, member.app, member.first_instance + k, rows, n))
            self.placed += 1
            work.granted += 1
            work.remaining -= 1

    def _fair_pass(self) -> None:
        live = [w for w in self.works if not w.reason and w.remaining]
        entitlement = None
        if not self.uncontended and self.config.entitlement_chunks:
            pending = _demand_by(live, lambda w: w.pool)
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
            self._hand_over()

    def _hand_over(self) -> None:
        """Hand what was placed since the last time to `on_chunks`, once `every` instances
        gathered: chunks are only ever appended, and the fair pass evicts nothing."""
        if self.on_chunks is None or self.placed - self.streamed_count < self.every:
            return
        chunks = self.chunks[self.streamed:]
        self.streamed, self.streamed_count = len(self.chunks), self.placed
        self.on_chunks(chunks, self.state.nodes.ids, self.gpu_sets)

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
            work.blocked = "quota"
            return False
        want = min(want, room)
        if work.eq is None:
            work.eq = self.cache.of(req, pools.gpu_models[work.pool])
        eq = self.cache.refresh(work.eq)
        rows, n = choose_nodes(self.state, eq, want, self.plugins.spread_domain)
        placed = _count(n)
        if req.gang:
            stmt = Statement(self.state)
            if placed == want:
                stmt.place(rows, n, req.shape, req.app, work.pool)
                self._keep_gpus(req.request_id, self.state.last_gpu_sets)
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
            self._keep_gpus(req.request_id, self.state.last_gpu_sets)
            self._grant(work, rows, n, placed)
        if placed < want:
            work.reason = self._explain(eq)
            return False
        return work.remaining > 0

    def _explain(self, eq) -> str:
        """Why `eq` found too few nodes. Once the cluster is full, request after request of
        the same class fails with nothing placed in between: the state version is the same,
        so is the answer, and it costs a pass over every node."""
        key = (id(eq), self.state.version)
        why = self._explained.get(key)
        if why is None:
            why = self._explained[key] = explain_filters(self.state, self.cache.refresh(eq), self.plugins)
        return why

    def _gang_step(self, work: Work) -> bool:
        """Every instance of every request of the gang, through one statement: a member
        that does not fit rolls back the members placed before it, in reverse."""
        pools = self.state.pools
        total = _demand(work)
        room, limit = pools.quota_room(work.pool, total)
        if room < 1:
            work.reason = f"quota: pool {limit[0]!r} max {limit[1]} reached"
            work.blocked = "quota"
            return False
        stmt = Statement(self.state)
        member_sets = []
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
            member_sets.append(self.state.last_gpu_sets)
        for (rows, n, *_), member, sets in zip(stmt.commit(), work.members, member_sets):
            self._keep_gpus(member.request_id, sets)
            self.chunks.append((member.request_id, member.app, member.first_instance, rows, n))
            k = int(n.sum())
            self.placed += k
            work.granted += k
            work.remaining -= k
        return False

    def _keep_gpus(self, request_id: str, sets_by_row) -> None:
        """The GPU sets a placement just got (row -> [set per instance]) go to the plan, in
        instance order; a rolled-back placement never gets here. Called before its grant."""
        if self.state.gpus is None or not sets_by_row:
            return
        for row, sets in sets_by_row.items():
            self.gpu_sets.setdefault((request_id, int(row)), []).extend(
                tuple(s) if s is not None else () for s in sets)

    def _step_gpu_sets(self, steps: list) -> dict:
        """id(step) -> {row: [set]} for the evictor's steps (one instance each): the newest
        sets of each (app, row), taken in step order."""
        if self.state.gpus is None or not steps:
            return {}
        per_key: dict = {}
        for step in steps:
            per_key.setdefault((step.member.app, step.row), []).append(step)
        out = {}
        for (app, row), mine in per_key.items():
            sets = self.state.recent_gpu_sets(app, row, len(mine))
            if len(sets) == len(mine):
                for step, chosen in zip(mine, sets):
                    out[id(step)] = {row: [chosen]}
        return out

    def _grant(self, work: Work, rows, n, k: int = None) -> None:
        req = work.request
        self.chunks.append((req.request_id, req.app, req.first_instance + work.granted, rows, n))
        if k is None:
            k = _count(n)
        self.placed += k
        work.granted += k
        work.remaining -= k

    def _finish(self) -> Plan:
        pending = {}
        for w in self.works:
            if w.remaining > 0:
                why = w.reason or ("cycle time budget spent" if self.out_of_time else "not reached in this cycle")
                note = self.reserver.note(w)
                why = f"{why}; {note}" if note else why
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
            "evictions": len(self.evictions),
        }
        plan = Plan(self.state.nodes.ids, self.chunks, pending, stats, self.evictions,
                    self.reserver.book.report())
        plan.gpu_sets = self.gpu_sets
        plan.streamed = self.streamed
        return plan


def _count(n: "np.ndarray") -> int:
    """Instances in a placement; one row (most steps) read directly, as n.sum() costs more."""
    return int(n[0]) if n.size == 1 else int(n.sum())


def _demand(work: Work) -> "np.ndarray":
    return work.demand()


def _demand_by(works, key) -> dict:
    """key(work) -> what those works still ask for in total. Instances are counted per
    (key, shape) and multiplied once: with thousands of single-instance requests, two numpy
    calls per request would cost more than the rest of the cycle's setup."""
    counts: dict = {}
    shapes: dict = {}
    out: dict = {}
    for w in works:
        k = key(w)
        if w.members is not None:            # a gang: members of several shapes
            out[k] = out.get(k, 0) + w.demand()
            continue
        shape = w.request.shape
        group = (k, shape.tobytes())
        counts[group] = counts.get(group, 0) + w.remaining
        shapes.setdefault(group, shape)
    for group, count in counts.items():
        out[group[0]] = out.get(group[0], 0) + count * shapes[group]
    return out
