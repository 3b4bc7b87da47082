"""Each pool's weighted DRF entitlement for this cycle, by hierarchical water-filling.

Demand of a pool = what it holds + what it asks for (capped by its max quota), summed up the
tree. From the root down, each parent's entitlement is split among its children: every child
gets at least its guarantee (or its demand, if smaller), then a common level s raises each
child towards its demand in proportion to its weight (dominant share = s x weight), until the
parent's entitlement runs out in some dimension.

This is arithmetic over aggregates: it ignores how resources are split into nodes and which
nodes a constraint allows. The fair queue uses it only to size chunks: a pool below its
entitlement may take several instances at once, because fairness would give them to it
anyway; past its entitlement it falls back to one-rival-at-a-time progressive filling.
"""
from __future__ import annotations

import numpy as np

from gaia_master.sfair.pools import ROOT


def entitlement_shares(pools, pending_by_pool: dict, cluster_capacity: np.ndarray) -> list:
    """Target dominant share of every pool (index -> float; inf where nothing binds)."""
    n = len(pools.paths)
    own = np.zeros((n, cluster_capacity.size))
    for pool, amount in pending_by_pool.items():
        own[pool] += amount
    demand = np.zeros_like(own)
    for p in range(n - 1, 0, -1):          # parents precede children in `paths`
        mine = own[p] + (sum(demand[c] for c in pools.children[p]) if pools.children[p]
                         else pools.usage[p])
        demand[p] = np.minimum(mine, pools.max_quota[p])
    inv_cap = pools.inv_capacity
    alloc = np.zeros_like(own)
    alloc[ROOT] = cluster_capacity
    for p in range(n):
        kids = pools.children[p]
        if kids:
            alloc[kids] = water_fill(demand[kids], pools.weight[kids], pools.guaranteed[kids], alloc[p], inv_cap)
    share = (alloc * inv_cap).max(axis=1)
    full = np.all(alloc >= demand - 1e-6, axis=1)          # demand met: no fairness bound
    return [float("inf") if f else s for f, s in zip(full.tolist(), share.tolist())]


def water_fill(demand: np.ndarray, weight: np.ndarray, guaranteed: np.ndarray, capacity: np.ndarray,
               inv_cap: np.ndarray, iterations: int = 48) -> np.ndarray:
    """Split `capacity` among rows of `demand` (see the module doc). Returns the allocations."""
    demand_share = (demand * inv_cap).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(guaranteed > 0, demand / np.where(guaranteed > 0, guaranteed, 1), 0).max(axis=1)
        floor = np.where(guaranteed.any(axis=1), np.minimum(1.0, 1.0 / np.maximum(need, 1e-12)), 0.0)

    def fractions(level: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(demand_share > 0, level * weight / demand_share, 1.0)
        return np.clip(np.maximum(f, floor), 0.0, 1.0)

    def fits(f: np.ndarray) -> bool:
        return bool(np.all(f @ demand <= capacity * (1 + 1e-9) + 1e-6))

    if fits(np.ones(len(demand))):
        return demand.copy()
    if not fits(fractions(0.0)):               # even the guarantees overcommit: scale them down
        total = floor @ demand
        scale = np.min(np.where(total > 0, capacity / np.where(total > 0, total, 1), np.inf))
        if not np.isfinite(scale):             # no guarantees and nothing to share (no nodes yet)
            return np.zeros_like(demand)
        return (floor * scale)[:, None] * demand
    lo, hi = 0.0, float(np.max(np.where(weight > 0, demand_share / weight, 0))) + 1e-12
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if fits(fractions(mid)):
            lo = mid
        else:
            hi = mid
    return fractions(lo)[:, None] * demand
