"""Who goes next: hierarchical DRF over the pool tree, priority bands and DRF between apps.

Every internal pool keeps a heap of its children that still have work, keyed by
`PoolTree.key` (below-guarantee first, then dominant share / weight). A leaf pool keeps one
heap per priority band (highest band first), keyed by each app's dominant share. Keys only
grow within a cycle (placements add usage; a rolled-back gang restores it), so a stored key
is a lower bound: a popped entry whose fresh key is larger than the next one is pushed back
(lazy re-evaluation) instead of re-sorting anything.

`next()` also says how many instances the chosen request may take before some rival at any
level of the path would become the fairer pick; the scheduler grants at most that many at
once, which is progressive filling in chunks rather than one instance at a time. A pool still
below its entitlement for the cycle (fairshare.py) may take up to that entitlement at once,
since fairness would give it that much anyway.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import math


from gaia_master.sfair.pools import ROOT


@dataclasses.dataclass(eq=False)
class Work:
    """A pending request's progress within the cycle."""
    request: object
    pool: int
    remaining: int
    seq: int
    reason: str = ""
    granted: int = 0
    spent_s: float = 0.0
    members: list = None                 # a multi-request gang: all its requests
    eq: object = None                    # its equivalence class, once looked up
    increment: float = None              # one instance's dominant share, once computed
    done_at_s: float = 0.0
    # "invalid" (malformed) or "quota" (a max quota binds): evicting or reserving nodes
    # cannot help such a request, so neither is tried for it.
    blocked: str = ""

    def demand(self):
        """What the work still asks for in total (every member of a gang)."""
        if self.members is None:
            return self.remaining * self.request.shape
        return sum(m.count * m.shape for m in self.members)


class FairQueue:
    def __init__(self, state, works, entitlement: list = None, entitlement_step: float = 0.5):
        self.state = state
        self.pools = state.pools
        self.entitlement = entitlement       # target dominant share per pool (fairshare.py)
        self.entitlement_step = entitlement_step
        self._seq = itertools.count()
        self._bands: dict = {}               # leaf pool -> {priority: heap of (share, seq, work)}
        self._heaps: dict = {}               # internal pool -> heap of (key, seq, child)
        for w in works:
            bands = self._bands.setdefault(w.pool, {})
            heapq.heappush(bands.setdefault(w.request.priority, []), (0.0, w.seq, w))
        active = set()
        for leaf in self._bands:
            active.update(int(a) for a in self.pools.ancestors[leaf] if a != ROOT)
        for pool in sorted(active):
            parent = int(self.pools.parent[pool])
            self._heaps.setdefault(parent, []).append((self.pools.key(pool), next(self._seq), pool))
        for heap in self._heaps.values():
            heapq.heapify(heap)
        self._path: list = []
        self._increments: dict = {}          # shape bytes -> one instance's dominant share

    def next(self):
        """(work, max instances before the order would change) or None when nothing is left."""
        self._path = []
        node = ROOT
        gaps = []
        while node not in self._bands:
            heap = self._heaps.get(node)
            if not heap:
                return None
            key, child = self._pop_fresh(heap, self.pools.key)
            self._path.append((node, child))
            gaps.append((child, key, heap[0][0] if heap else None))
            node = child
        band = self._bands[node]
        top = max(band)
        heap = band[top]
        share, work = self._pop_fresh(heap, lambda w: self.state.app_share(w.request.app))
        inc = self._increment(work)
        limit = math.inf
        if heap:
            limit = (heap[0][0] - share) / inc if inc > 0 else math.inf
        for pool, key, rival in gaps:
            gap = self._pool_gap(pool, key, rival, work, inc) if rival is not None else math.inf
            if self.entitlement is not None and inc > 0:
                # Below its entitlement a pool may take part of the way to it at once
                # (never past it: a rival's higher key may itself be an overshoot). Taking a
                # fraction per step, not all, keeps pools advancing together, so when
                # fragmentation or anti-affinity leaves less room than the aggregate
                # arithmetic promised, the shortfall is shared instead of hitting whoever
                # came last. At the entitlement, strict progressive filling resumes.
                entitled = (self.entitlement[pool] - self.pools.dominant_share(pool)) / inc
                if entitled == math.inf:
                    entitled = work.remaining
                if entitled >= 1:
                    gap = math.ceil(entitled * self.entitlement_step)
            limit = min(limit, gap)
        return work, (max(1, int(limit)) if limit != math.inf else 1 << 30)

    def requeue(self, work: Work, active: bool) -> None:
        """After a step: put the work back if it still wants more, then its pools."""
        leaf = work.pool
        band = self._bands[leaf]
        prio = work.request.priority
        if active:
            heapq.heappush(band[prio], (self.state.app_share(work.request.app), next(self._seq), work))
        if not band[prio]:
            del band[prio]
        has_work = bool(band)
        for parent, child in reversed(self._path):
            if has_work:
                heapq.heappush(self._heaps[parent], (self.pools.key(child), next(self._seq), child))
            has_work = bool(self._heaps[parent])
        self._path = []

    def _pop_fresh(self, heap, fresh_key):
        while True:
            stored, _, item = heapq.heappop(heap)
            key = fresh_key(item)
            if key > stored and heap and key > heap[0][0]:
                heapq.heappush(heap, (key, next(self._seq), item))
                continue
            return key, item

    def _increment(self, work: Work) -> float:
        """Upper bound on one instance's addition to a dominant share."""
        if work.increment is None:
            # by shape: thousands of single-instance requests share a few shapes, and each
            # would otherwise pay two numpy calls in its only step
            shape = work.request.shape
            key = shape.tobytes()
            inc = self._increments.get(key)
            if inc is None:
                inc = self._increments[key] = float((shape * self.pools.inv_capacity).max())
            work.increment = inc
        return work.increment

    def _pool_gap(self, pool: int, key: tuple, rival: tuple, work: Work, inc: float) -> float:
        """Instances `pool` may take before `rival` (a sibling's key) would come first."""
        tier, value = key
        if rival[0] < tier:
            return 0.0
        if tier == 0:
            step = float((work.request.shape * self.pools.inv_guaranteed[pool]).max())
            target = 1.0 if rival[0] == 1 else rival[1]
            return (target - value) / step if step > 0 else math.inf
        return (rival[1] - value) * self.pools.weight[pool] / inc if inc > 0 else math.inf
