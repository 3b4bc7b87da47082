"""Reservations against starvation (Volcano's job-level reservation).

A gang, or a large request, that has waited past `reserve_after_s` and still does not fit
would otherwise wait forever behind a stream of small requests: each container that ends
frees a little, and a small request takes it before the large one ever sees a whole node.
Such a request gets nodes reserved: those where it would fit soonest (a node's capacity must
hold it once its running containers end; among those, the most of what it needs already
free). From then on, at the start of each cycle the reserved request is served first; what it
still cannot use of what is free on its nodes, up to what it needs there, is held: the other
requests of the cycle may use only the rest (backfill). Capacity freed on reserved nodes so
accumulates for it across cycles until it fits.

Reservations live in the Sfair instance between cycles, keyed by request id (a gang of several
requests: its first one's), at most `max_reservations` at once, the oldest requests first. One
is dropped when its request is granted, disappears from the snapshot, or becomes blocked by a
max quota (no reservation helps there). Per-domain spread is not modelled when nodes are
chosen; it still holds when the request is placed.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gaia_master.sfair.explain import reservation_note


@dataclasses.dataclass
class Reservation:
    key: str                             # request id (a multi-request gang: its first request's)
    members: tuple                       # every request id it is for, for the plan's report
    submitted_at: float
    nodes: list                          # node ids
    need: np.ndarray                     # [len(nodes), D]: what it needs on each node
    demand: np.ndarray                   # [D]: what was pending when the nodes were chosen


class ReservationBook:
    """The reservations one Sfair instance keeps from cycle to cycle."""

    def __init__(self):
        self.entries: dict = {}

    def oldest_first(self) -> list:
        return sorted(self.entries.values(), key=lambda r: (r.submitted_at, r.key))

    def drop(self, key: str) -> None:
        self.entries.pop(key, None)

    def report(self) -> dict:
        """request id -> reserved node ids, for the plan."""
        return {rid: list(r.nodes) for r in self.entries.values() for rid in r.members}


class Reserver:
    """One cycle's side of the reservations: serves and holds for the existing ones, then
    reserves for requests still starving when the cycle ends."""

    def __init__(self, book: ReservationBook, state, cache, plugins, config, now: float):
        self.book, self.state, self.cache, self.plugins, self.config = book, state, cache, plugins, config
        self.now = now
        self._holds: dict = {}               # key -> (rows, amounts) held this cycle
        self._median = None

    # ---- before the fair pass ----
    def due(self, works: list):
        """The work of each reservation still wanted, oldest first; the caller serves it,
        then calls `hold` if it is still pending."""
        if not self.book.entries:
            return
        by_key = {w.request.request_id: w for w in works}
        for res in self.book.oldest_first():
            work = by_key.get(res.key)
            if work is None or work.blocked or not work.remaining or not self._still_valid(res, work):
                self.book.drop(res.key)
                continue
            yield work

    def _still_valid(self, res: Reservation, work) -> bool:
        """Its nodes are still there and its demand is what they were chosen for; otherwise
        they are chosen again (the hold starts over)."""
        index = self.state.nodes.index
        if all(n in index for n in res.nodes) and np.array_equal(res.demand, work.demand()):
            return True
        fresh = self._reserve(work, exclude=res.key)
        if fresh is None:
            return False
        self.book.entries[res.key] = fresh
        return True

    def hold(self, work) -> None:
        """Hold what is free on its nodes, up to what it needs there."""
        res = self.book.entries.get(work.request.request_id)
        if res is None:
            return
        rows = np.array([self.state.nodes.index[n] for n in res.nodes], dtype=np.int64)
        amounts = np.clip(np.minimum(self.state.free[rows], res.need), 0, None)
        self.state.hold(rows, amounts)
        self._holds[res.key] = (rows, amounts)

    def release(self, work) -> None:
        """Give the work its own held capacity back (before it tries to evict)."""
        held = self._holds.pop(work.request.request_id, None)
        if held is not None:
            self.state.release(*held)

    # ---- after the cycle ----
    def update(self, works: list) -> None:
        """Drop the reservations of requests granted; reserve for the oldest starving ones."""
        waiting = [w for w in works if w.remaining]
        by_key = {w.request.request_id: w for w in waiting}
        for key in list(self.book.entries):
            w = by_key.get(key)
            if w is None or w.blocked:
                self.book.drop(key)
        starving = [w for w in waiting if w.request.request_id not in self.book.entries and self._starving(w)]
        wanted = [by_key[k] for k in self.book.entries] + starving
        wanted.sort(key=lambda w: (w.request.submitted_at, w.seq))
        keep = wanted[:max(0, self.config.max_reservations)]
        for w in wanted[len(keep):]:
            self.book.drop(w.request.request_id)
        for w in keep:
            if w.request.request_id not in self.book.entries:
                res = self._reserve(w)
                if res is not None:
                    self.book.entries[res.key] = res

    def note(self, work) -> str:
        """The pending reason's mention of the reservation, or ""."""
        res = self.book.entries.get(work.request.request_id)
        return reservation_note(len(res.nodes)) if res is not None else ""

    def _starving(self, work) -> bool:
        # a request the cycle never tried (out of time) has no reason yet: it may still fit
        if work.blocked or not work.remaining or not work.reason:
            return False
        if self.now - work.request.submitted_at <= self.config.reserve_after_s:
            return False
        req = work.request
        return work.members is not None or req.gang or self._large(req.shape, work.remaining)

    def _large(self, shape: np.ndarray, count: int) -> bool:
        """One instance above large_fraction of the median node in some dimension, or all
        of them together above a whole median node."""
        if self._median is None:
            self._median = median_capacity(self.state.capacity)
        dims = shape > 0
        median = self._median[dims]
        return bool(np.any(shape[dims] > self.config.large_fraction * median)
                    or np.any(count * shape[dims] > median))

    def _reserve(self, work, exclude: str = None):
        taken = np.zeros(len(self.state.nodes), dtype=bool)
        index = self.state.nodes.index
        for key, other in self.book.entries.items():
            if key != exclude and key != work.request.request_id:
                taken[[index[n] for n in other.nodes if n in index]] = True
        chosen = choose_reserved_nodes(self.state, self.cache, self.plugins, work, taken)
        if chosen is None:
            return None
        rows, need = chosen
        members = tuple(m.request_id for m in work.members or [work.request])
        return Reservation(work.request.request_id, members, work.request.submitted_at,
                           [self.state.nodes.ids[r] for r in rows.tolist()], need, work.demand())


def median_capacity(capacity: np.ndarray) -> np.ndarray:
    """Per dimension, the median over the nodes that have it at all (a GPU request is
    measured against GPU nodes, not against a cluster mostly without GPUs)."""
    out = np.zeros(capacity.shape[1], dtype=np.float64)
    for d in range(capacity.shape[1]):
        have = capacity[:, d][capacity[:, d] > 0]
        if have.size:
            out[d] = float(np.median(have))
    return out


def choose_reserved_nodes(state, cache, plugins, work, taken: np.ndarray):
    """(rows, need per row) where the work's instances would fit soonest, or None when the
    nodes it may use cannot hold it even empty."""
    planned = np.zeros_like(state.capacity)
    gpu_models = state.pools.gpu_models[work.pool]
    for member in work.members or [work.request]:
        count = member.count if work.members else work.remaining
        eq = cache.refresh(cache.of(member, gpu_models))
        if not _plan_member(state, plugins, eq, count, planned, taken):
            return None
    rows = np.flatnonzero(planned.any(axis=1))
    return rows, planned[rows]


def _plan_member(state, plugins, eq, count: int, planned: np.ndarray, taken: np.ndarray) -> bool:
    """Add `count` instances of the class to `planned`: nodes in order of how many
    instances' worth is free there already, each up to what its capacity holds."""
    dims = eq.dims
    if dims.size == 0:
        return True
    whole = ((state.capacity - planned)[:, dims] // eq.shape_dims).min(axis=1)
    slots = np.where(eq.static_mask & ~taken, np.maximum(whole, 0), 0)
    if plugins.spread_node.applies(eq):
        slots = np.minimum(slots, plugins.spread_node.room(state, eq, None))
    cand = np.flatnonzero(slots > 0)
    if int(slots[cand].sum()) < count:
        return False
    free_now = ((state.free - planned)[cand][:, dims] / eq.shape_dims).min(axis=1)
    order = cand[np.lexsort((cand, -free_now))]
    cum = np.cumsum(slots[order])
    last = int(np.searchsorted(cum, count))
    take = slots[order[:last + 1]].copy()
    take[-1] -= int(cum[last]) - count
    planned[order[:last + 1]] += take[:, None] * eq.shape[None, :]
    return True
