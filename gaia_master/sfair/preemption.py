"""Preemption and reclaim: which running containers to evict so a still-pending request fits.

Runs after the fair pass, only for the requests it left pending, one instance at a time:
  1. where the instance fits in what is free, it goes there and nothing is evicted;
  2. preemption: lower-priority containers of the request's own leaf pool make room;
  3. reclaim: when the request's pool is below its guarantee (and stays within it with this
     instance) and the request has waited past the grace period, containers of other pools
     that hold more than their own guarantee make room, never taking one below it.

Candidates are in victim order: preemption, lowest priority first, then the newest; reclaim,
the pool furthest above its guarantee first, then the same. On each node the victims are
taken in that order until the instance fits, then any it turns out not to need are spared
(the most protected first). Among nodes, the one whose worst victim is least protected wins,
then the one with the fewest victims, then the one whose victims come first in victim order. The request's labels, GPU model and spread must hold on
that node. A gang evicts only if every instance of it then fits; otherwise its tentative
evictions and placements are undone in reverse. Nothing is evicted unless the instance it
makes room for is placed in the same step.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gaia_master.sfair.explain import preempt_reason, reclaim_reason
from gaia_master.sfair.model import D, Eviction
from gaia_master.sfair.placement import choose_nodes

PREEMPT, RECLAIM = "preempt", "reclaim"
_ONE = np.ones(1, dtype=np.int64)


class PoolRunning:
    """The running containers of one leaf pool as arrays; `alive` clears as they are evicted."""

    def __init__(self, pool: int, path: str, running, node_index: dict):
        kept = [r for r in running if r.node in node_index]
        k = len(kept)
        self.pool, self.path, self.running = pool, path, kept
        self.rows = np.fromiter((node_index[r.node] for r in kept), dtype=np.int64, count=k)
        self.res = np.array([r.resources for r in kept], dtype=np.int64).reshape(k, D)
        self.priority = np.fromiter((r.priority for r in kept), dtype=np.int64, count=k)
        self.started = np.fromiter((r.started_at for r in kept), dtype=np.float64, count=k)
        self.alive = np.ones(k, dtype=bool)

    def in_victim_order(self, below_priority=None) -> np.ndarray:
        """Live containers (of priority < below_priority), lowest priority, then newest first
        (among equal start times, the one listed later: leaders list in grant order)."""
        sel = self.alive if below_priority is None else self.alive & (self.priority < below_priority)
        idx = np.flatnonzero(sel)
        return idx[np.lexsort((-idx, -self.started[idx], self.priority[idx]))]


class RunningSource:
    """Running containers per leaf pool, fetched once per cycle and only for pools that held
    something when the snapshot was taken: the leader lists a pool's containers on demand."""

    def __init__(self, snapshot, state):
        self._running_in = snapshot.running_in
        self._running = snapshot.running
        self._by_pool = None
        self._state = state
        self._cache: dict = {}

    def may_hold_below(self, pool: int, priority: int) -> bool:
        """Whether the pool may hold a container of lower priority (a possible victim),
        known from the leader's index without listing the pool; True when not known."""
        lowest = self._state.summary.pool_lowest_priority
        if lowest is None:
            return True
        found = lowest.get(self._state.pools.paths[pool])
        return found is not None and found < priority

    def has_containers(self, pool: int) -> bool:
        usage = self._state.summary.pool_usage.get(self._state.pools.paths[pool])
        return usage is not None and bool(np.any(np.asarray(usage) > 0))

    def of(self, pool: int) -> PoolRunning:
        got = self._cache.get(pool)
        if got is None:
            path = self._state.pools.paths[pool]
            got = self._cache[pool] = PoolRunning(pool, path, self._fetch(path), self._state.nodes.index)
        return got

    def _fetch(self, path: str) -> list:
        if self._running_in is not None:
            return list(self._running_in(path))
        if self._by_pool is None:
            self._by_pool = {}
            for r in self._running:
                self._by_pool.setdefault(r.pool.strip("/"), []).append(r)
        return self._by_pool.get(path, [])


@dataclasses.dataclass(eq=False)
class Candidates:
    """The victims one instance may take, in victim order."""
    kind: str
    groups: list                         # PoolRunning of each candidate's pool
    group: np.ndarray                    # index into groups, per candidate
    local: np.ndarray                    # index within its group
    rows: np.ndarray
    res: np.ndarray                      # [k, D]
    tier: np.ndarray                     # lower goes first; a node costs its highest tier

    @classmethod
    def of(cls, kind: str, groups: list, orders: list, tiers: list) -> "Candidates":
        local = np.concatenate(orders)
        group = np.repeat(np.arange(len(groups)), [o.size for o in orders])
        rows = np.concatenate([g.rows[o] for g, o in zip(groups, orders)])
        res = np.concatenate([g.res[o] for g, o in zip(groups, orders)]).reshape(-1, D)
        return cls(kind, groups, group, local, rows, res, np.concatenate(tiers))

    def __len__(self) -> int:
        return int(self.local.size)


class BorrowerGuard:
    """Reclaim takes only what a borrower holds above its guarantee: neither the borrower nor
    a guaranteed ancestor of it (other than those it shares with the claimant, whose usage
    the move leaves unchanged) may drop below its guarantee."""

    def __init__(self, pools, claimant: int):
        self.pools = pools
        self._shared = set(pools.ancestor_list[claimant])
        self._guarded: dict = {}

    def guarded(self, leaf: int) -> list:
        """[(ancestor, its guaranteed dimensions)] that evicting from `leaf` must respect."""
        out = self._guarded.get(leaf)
        if out is None:
            pools = self.pools
            out = self._guarded[leaf] = [(a, np.flatnonzero(pools.guaranteed[a] > 0))
                                         for a in pools.ancestor_list[leaf]
                                         if a not in self._shared and pools.has_guarantee[a]]
        return out

    def headroom(self, a: int, dims: np.ndarray) -> np.ndarray:
        return self.pools.usage[a, dims] - self.pools.guaranteed[a, dims]

    def each_fits(self, cands: Candidates) -> np.ndarray:
        """Candidates whose eviction alone keeps every guarantee."""
        ok = np.ones(len(cands), dtype=bool)
        for g, group in enumerate(cands.groups):
            mine = cands.group == g
            for a, dims in self.guarded(group.pool):
                ok[mine] &= np.all(cands.res[mine][:, dims] <= self.headroom(a, dims), axis=1)
        return ok

    def allows(self, spent: dict, cands: Candidates, p: int) -> bool:
        """Whether candidate p may go on top of what `spent` records, and if so record it."""
        guarded = self.guarded(cands.groups[cands.group[p]].pool)
        res = cands.res[p]
        for a, dims in guarded:
            if np.any(spent.get(a, 0) + res[dims] > self.headroom(a, dims)):
                return False
        for a, dims in guarded:
            spent[a] = spent.get(a, 0) + res[dims]
        return True


def best_victims(free: np.ndarray, shape: np.ndarray, dims: np.ndarray, cands: Candidates,
                 eligible: np.ndarray, guard: BorrowerGuard = None):
    """(node row, candidate positions to evict) for one instance of `shape`, or None."""
    ok = eligible[cands.rows]
    if guard is not None:
        ok &= guard.each_fits(cands)
    pos = np.flatnonzero(ok)
    if pos.size == 0:
        return None
    for row, on_node in _nodes_by_cost(free, shape, dims, cands, pos):
        taken = _take(free[row], shape, dims, cands, on_node, guard)
        if taken is not None:
            return row, _spare(free[row], shape, dims, cands, taken)
    return None


def _nodes_by_cost(free, shape, dims, cands, pos):
    """(row, candidate positions there in victim order) for each node where taking its
    victims in order makes room, cheapest first: (highest tier taken, victims taken, the
    last victim's place in victim order, so the newest go first among equals).
    One vector pass: a running sum of freed capacity per node against what it lacks."""
    rows = cands.rows[pos]
    order = np.argsort(rows, kind="stable")          # stable: victim order within a node
    pos, rows = pos[order], rows[order]
    res = cands.res[pos][:, dims]
    short = shape[dims][None, :] - free[rows][:, dims]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    sizes = np.diff(np.r_[starts, rows.size])
    cum = np.cumsum(res, axis=0)
    freed = cum - np.repeat(cum[starts] - res[starts], sizes, axis=0)
    enough = np.flatnonzero(np.all(freed >= short, axis=1))
    node_of = np.repeat(np.arange(starts.size), sizes)
    nodes, first = np.unique(node_of[enough], return_index=True)
    first = enough[first]
    taken = first - starts[nodes] + 1
    for k in np.lexsort((pos[first], taken, cands.tier[pos[first]])).tolist():
        s = int(starts[nodes[k]])
        yield int(rows[s]), pos[s:s + int(sizes[nodes[k]])].tolist()


def _take(free_row, shape, dims, cands, on_node: list, guard):
    """Victims in order until the instance fits, skipping any a guarantee protects."""
    short = shape[dims] - free_row[dims]
    freed = np.zeros(dims.size, dtype=np.int64)
    taken, spent = [], {}
    for p in on_node:
        if guard is not None and not guard.allows(spent, cands, p):
            continue
        taken.append(p)
        freed += cands.res[p, dims]
        if np.all(freed >= short):
            return taken
    return None


def _spare(free_row, shape, dims, cands, taken: list) -> list:
    """Drop the victims the instance does not need, the most protected first."""
    short = shape[dims] - free_row[dims]
    freed = cands.res[taken][:, dims].sum(axis=0)
    keep = list(taken)
    for p in reversed(taken):
        if np.all(freed - cands.res[p, dims] >= short):
            keep.remove(p)
            freed = freed - cands.res[p, dims]
    return keep


@dataclasses.dataclass
class Step:
    """One instance placed by the evictor, and what it evicted for it."""
    member: object                       # the PendingRequest (a gang member)
    pool: int
    row: int
    evicted: list                        # (PoolRunning, index in it, Eviction)


class Evictor:
    """The cycle's eviction pass over the requests the fair pass left pending."""

    def __init__(self, snapshot, state, cache, plugins, config):
        self.state, self.cache, self.plugins, self.config = state, cache, plugins, config
        self.now = snapshot.now
        self.source = RunningSource(snapshot, state)
        self._leaves = None                  # leaf pools that held containers at the snapshot

    def place(self, work) -> list:
        """Steps for as many instances of `work` as evictions let in (a gang: all or none).
        The state already reflects them."""
        if not self._could_evict(work):
            return []
        whole = work.members is not None or work.request.gang
        done: list = []
        for member in work.members or [work.request]:
            for _ in range(member.count if work.members else work.remaining):
                step = self._one(work, member)
                if step is None:
                    if whole:
                        self._undo(done)
                        return []
                    return done
                done.append(step)
        return done

    def _could_evict(self, work) -> bool:
        """Cheap test before any node is looked at: most pending requests have no victim."""
        if self.config.preemption and self._preempt_candidates(work) is not None:
            return True
        return (self.config.reclaim and self._may_reclaim(work, work.request)
                and bool(self._borrowers(work.pool)))

    def _one(self, work, member):
        """One instance: where it fits in what is free, else by evicting; None when neither
        (the room one eviction leaves is used before anyone else is evicted)."""
        state, pools = self.state, self.state.pools
        eq = self.cache.refresh(self.cache.of(member, pools.gpu_models[work.pool]))
        if pools.quota_room(work.pool, member.shape)[0] >= 1:
            rows, _ = choose_nodes(state, eq, 1, self.plugins.spread_domain)
            if rows.size:
                return self._put(work, member, int(rows[0]), [])
        eligible = None
        for cands, guard in self._candidates(work, member):
            eligible = self._eligible(eq) if eligible is None else eligible
            pick = best_victims(state.free, member.shape, eq.dims, cands, eligible, guard)
            if pick is None:
                continue
            row, chosen = pick
            evicted = [self._evict(work, member, cands, p) for p in chosen]
            if self._fits(eq, row) and pools.quota_room(work.pool, member.shape)[0] >= 1:
                return self._put(work, member, row, evicted)
            self._restore(evicted)       # never evict without placing what it was for
            return None
        return None

    def _candidates(self, work, member):
        """Candidate sets to try in turn: preemption, then reclaim from the top borrowing
        pool, the top two, four... (a node found among the first k pools beats any that needs
        a victim from a later one, so fewer pools are asked for their containers)."""
        if self.config.preemption:
            cands = self._preempt_candidates(work)
            if cands is not None:
                yield cands, None
        if not (self.config.reclaim and self._may_reclaim(work, member)):
            return
        borrowers = self._borrowers(work.pool)
        guard = BorrowerGuard(self.state.pools, work.pool)
        k = 1
        while borrowers:
            cands = self._reclaim_candidates(borrowers[:k])
            if cands is not None:
                yield cands, guard
            if k >= len(borrowers):
                return
            k *= 2

    def _preempt_candidates(self, work):
        if not self.source.has_containers(work.pool) or not self.source.may_hold_below(work.pool, work.request.priority):
            return None
        group = self.source.of(work.pool)
        order = group.in_victim_order(below_priority=work.request.priority)
        if not order.size:
            return None
        return Candidates.of(PREEMPT, [group], [order], [group.priority[order]])

    def _may_reclaim(self, work, member) -> bool:
        """Below its guarantee, past the grace period, and still within the guarantee with
        one more instance: reclaim stops at the guarantee."""
        pools = self.state.pools
        if not pools.has_guarantee[work.pool]:
            return False
        if self.now - work.request.submitted_at <= self.config.reclaim_grace_s:
            return False
        guaranteed = pools.guaranteed[work.pool]
        dims = guaranteed > 0
        return bool(np.all((pools.usage[work.pool] + member.shape)[dims] <= guaranteed[dims]))

    def _borrowers(self, claimant: int) -> list:
        """Leaf pools other than the claimant holding more than their guarantee, the furthest
        above it (largest borrowed dominant share) first. Recomputed per instance: as one
        pool gives back, another may become the furthest above."""
        pools = self.state.pools
        leaves = self._leaves_with_containers()
        leaves = leaves[leaves != claimant]
        over = np.maximum(pools.usage[leaves] - pools.guaranteed[leaves], 0)
        share = (over * pools.inv_capacity).max(axis=1) if leaves.size else np.zeros(0)
        keep = share > 0
        return leaves[keep][np.lexsort((leaves[keep], -share[keep]))].tolist()

    def _leaves_with_containers(self) -> np.ndarray:
        if self._leaves is None:
            pools = self.state.pools
            found = (pools.index.get(path) for path in self.state.summary.pool_usage)
            self._leaves = np.array(sorted(p for p in found if p is not None and pools.is_leaf(p)
                                           and self.source.has_containers(p)), dtype=np.int64)
        return self._leaves

    def _reclaim_candidates(self, borrowers: list):
        groups = [self.source.of(p) for p in borrowers]
        orders = [g.in_victim_order() for g in groups]
        if not any(o.size for o in orders):
            return None
        lowest = min(int(g.priority[o].min()) for g, o in zip(groups, orders) if o.size)
        span = max(int(g.priority[o].max()) for g, o in zip(groups, orders) if o.size) - lowest + 1
        tiers = [i * span + (g.priority[o] - lowest) for i, (g, o) in enumerate(zip(groups, orders))]
        return Candidates.of(RECLAIM, groups, orders, tiers)

    def _eligible(self, eq) -> np.ndarray:
        """Nodes where the request's static filters and spread allow one more instance."""
        state, spread_node, spread_domain = self.state, self.plugins.spread_node, self.plugins.spread_domain
        ok = eq.static_mask.copy()
        if spread_node.applies(eq):
            ok &= spread_node.room(state, eq, None) > 0
        if spread_domain.applies(eq):
            ok &= self._domain_ok(eq)
        return ok

    def _domain_ok(self, eq) -> np.ndarray:
        codes, room = self.plugins.spread_domain.domain_room(self.state, eq)
        return (codes >= 0) & (room[np.maximum(codes, 0)] > 0) if room.size else codes >= 0

    def _fits(self, eq, row: int) -> bool:
        """Asked of every count filter again after the evictions, through the class's slots."""
        eq = self.cache.refresh(eq)
        if eq.slots[row] <= 0:
            return False
        return not self.plugins.spread_domain.applies(eq) or bool(self._domain_ok(eq)[row])

    def _evict(self, work, member, cands: Candidates, p: int) -> tuple:
        group = cands.groups[cands.group[p]]
        i = int(cands.local[p])
        victim = group.running[i]
        self.state.unplace(group.rows[i:i + 1], _ONE, group.res[i], victim.app, group.pool)
        group.alive[i] = False
        if cands.kind == PREEMPT:
            reason = preempt_reason(work.request, victim, group.path)
        else:
            reason = reclaim_reason(work.request, self.state.pools.paths[work.pool], victim)
        return group, i, Eviction(victim.app, victim.instance, victim.node, cands.kind, reason,
                                  member.request_id)

    def _restore(self, evicted: list) -> None:
        for group, i, _ in reversed(evicted):
            self.state.place(group.rows[i:i + 1], _ONE, group.res[i], group.running[i].app, group.pool)
            group.alive[i] = True

    def _put(self, work, member, row: int, evicted: list) -> Step:
        self.state.place(np.array([row]), _ONE, member.shape, member.app, work.pool)
        return Step(member, work.pool, row, evicted)

    def _undo(self, steps: list) -> None:
        """A gang that did not fit whole: every tentative step, in reverse."""
        for step in reversed(steps):
            self.state.unplace(np.array([step.row]), _ONE, step.member.shape, step.member.app, step.pool)
            self._restore(step.evicted)
