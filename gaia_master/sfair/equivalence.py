"""Equivalence classes: requests with the same shape and constraints share their per-node
vectors for the whole cycle.

Two layers. A *shape class* (shape, label constraints, GPU models, scoring direction) holds
`slots[N]` (instances that fit: free capacity and static filters) and `score[N]` (weighted
scorers). After its first build only the node rows that changed since it last looked (the
state's change log) are recomputed, so placing k identical instances costs a few small row
updates, not k passes. A request whose app spreads (at most K per node) gets an *app class*
on top: the shape class's vectors capped by the app's per-node room, one vector operation,
so a thousand apps of one shape still share one set of fit and score computations.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from gaia_master.sfair.model import GPU_DIMS, PendingRequest, Spread
from gaia_master.sfair.plugins.gpu_slots import GpuPacking


@dataclasses.dataclass(eq=False)
class EqClass:
    key: tuple
    shape: np.ndarray
    dims: np.ndarray                     # dimensions the shape asks for
    constraints: tuple
    gpu_models: tuple                    # effective: request's choice within the pool's allowance
    spread: Optional[Spread]
    app: Optional[str]                   # set only for an app class (per-app counts)
    base: Optional["EqClass"] = None     # an app class's shape class
    static_mask: np.ndarray = None
    static_all: bool = False             # every node passes the static filters (no mask to apply)
    static_results: list = None          # FilterResult per static filter, for explanations
    slots: np.ndarray = None
    score: np.ndarray = None
    pick: np.ndarray = None              # score where a slot is left, -inf elsewhere
    shape_dims: np.ndarray = None        # shape[dims], and the class's columns of 1/capacity
    inv_capacity_dims: np.ndarray = None
    seen: int = -1                       # state version the vectors reflect


class EquivalenceCache:
    def __init__(self, state, static_filters, fits, spread_node, scorers, gpu_slots=None):
        self.state = state
        self.static_filters = static_filters
        self.fits = fits
        self.spread_node = spread_node
        # GPU plugins only where some node reported its GPU topology (state.gpus): a cluster
        # without any pays nothing for them
        topology = getattr(state, "gpus", None) is not None
        self.gpu_slots = gpu_slots if topology else None
        self.scorers = [(s, w) for s, w in scorers if topology or not isinstance(s, GpuPacking)]
        self._classes: dict = {}
        self._static: dict = {}
        self.full_rebuilds = 0
        self.row_refreshes = 0

    @property
    def classes(self) -> int:
        return len(self._classes)

    def of(self, request: PendingRequest, pool_gpu_models: tuple) -> EqClass:
        gpu = _effective_gpu_models(request.gpu_models, pool_gpu_models)
        spread = request.spread
        prefer = Spread(prefer_spread=True) if spread is not None and spread.prefer_spread else None
        base = self._class((request.shape.tobytes(), request.constraints, gpu, prefer, None),
                           request, gpu, prefer, None, None)
        if spread is None or spread == prefer:
            return base
        return self._class((request.shape.tobytes(), request.constraints, gpu, spread, request.app),
                           request, gpu, spread, request.app, base)

    def _class(self, key, request, gpu, spread, app, base) -> EqClass:
        eq = self._classes.get(key)
        if eq is None:
            shape = np.asarray(request.shape, dtype=np.int64)
            eq = EqClass(key, shape, np.flatnonzero(shape), request.constraints, gpu, spread, app, base)
            eq.shape_dims = shape[eq.dims]
            eq.inv_capacity_dims = self.state.inv_capacity[:, eq.dims]
            eq.static_mask, eq.static_results = self._static_mask(eq)
            eq.static_all = bool(eq.static_mask.all())
            self._classes[key] = eq
        return eq

    def refresh(self, eq: EqClass) -> EqClass:
        state = self.state
        if eq.seen == state.version:
            return eq
        if eq.base is None:
            return self._refresh_shape(eq)
        base = self._refresh_shape(eq.base)
        eq.score = base.score
        if not self.spread_node.applies(eq):
            eq.slots, eq.pick, eq.seen = base.slots, base.pick, state.version
            return eq
        rows = self._changed_rows(eq)
        if rows is None:
            eq.slots = np.minimum(base.slots, self.spread_node.room(state, eq, None))
            eq.pick = np.where(eq.slots > 0, base.score, -np.inf)
        else:
            slots = np.minimum(base.slots[rows], self.spread_node.room(state, eq, rows))
            eq.slots[rows] = slots
            eq.pick[rows] = np.where(slots > 0, base.score[rows], -np.inf)
        eq.seen = state.version
        return eq

    def _changed_rows(self, eq: EqClass):
        """Node rows changed since `eq` last looked, or None when a full rebuild is cheaper."""
        state = self.state
        if eq.slots is None or state.version - eq.seen > len(state.nodes) // 8:
            self.full_rebuilds += 1
            return None
        self.row_refreshes += 1
        # duplicates are harmless (each row gets the same values twice) and cheaper to keep
        # than to remove: a refresh is a few rows, and every numpy call costs microseconds
        return np.array(state.changed[eq.seen:], dtype=np.int64)

    def _refresh_shape(self, eq: EqClass) -> EqClass:
        state = self.state
        if eq.seen == state.version:
            return eq
        n = len(state.nodes)
        rows = self._changed_rows(eq)
        if rows is None:
            rows = np.arange(n)
            eq.slots = np.zeros(n, dtype=np.int64)
            eq.score = np.zeros(n)
            eq.pick = np.full(n, -np.inf)
        # This runs once per step of the fair pass, on a few rows: the cost is the number of
        # numpy calls, not their size, so calls that change nothing are skipped.
        slots = self.fits.room(state, eq, rows)
        if self.gpu_slots is not None and self.gpu_slots.applies(eq):
            slots = np.minimum(slots, self.gpu_slots.room(state, eq, rows))
        if not eq.static_all:
            slots = np.where(eq.static_mask[rows], slots, 0)
        eq.slots[rows] = slots
        score = None
        for scorer, weight in self.scorers:
            if weight and scorer.applies(eq):
                part = scorer.score(state, eq, rows)
                if weight != 1:
                    part = weight * part
                score = part if score is None else score + part
        if score is None:
            score = np.zeros(len(rows))
        eq.score[rows] = score
        eq.pick[rows] = np.where(slots > 0, score, -np.inf)
        eq.seen = state.version
        return eq

    def _static_mask(self, eq: EqClass) -> tuple:
        key = (eq.constraints, eq.gpu_models, eq.shape[list(GPU_DIMS)].any())
        hit = self._static.get(key)
        if hit is None:
            nodes = self.state.nodes
            mask = np.ones(len(nodes), dtype=bool)
            results = []
            for f in self.static_filters:
                if f.applies(eq):
                    result = f.filter(nodes, eq)
                    results.append(result)
                    mask &= result.mask
            hit = self._static[key] = (mask, results)
        return hit


def _effective_gpu_models(asked: tuple, allowed: tuple) -> tuple:
    if asked and allowed:
        return tuple(m for m in asked if m in allowed) or ("<none allowed>",)
    return tuple(asked or allowed)
