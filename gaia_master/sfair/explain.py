"""Why a request stays pending: each filter's count of nodes removed, in filter order."""
from __future__ import annotations

import numpy as np


def explain_filters(state, eq, plugins) -> str:
    """"labels: 150 removed (labels do not match rack=r1); fits: 9,800 removed (short of
    memory_bytes); 0 of 10,000 nodes left"."""
    n = len(state.nodes)
    eligible = np.ones(n, dtype=bool)
    parts = []
    results = list(eq.static_results)
    results.append(plugins.fits.explain(state, eq, eligible & eq.static_mask))
    gpu_slots = getattr(plugins, "gpu_slots", None)
    if gpu_slots is not None and getattr(state, "gpus", None) is not None and gpu_slots.applies(eq):
        results.append(gpu_slots.explain(state, eq, eligible))
    for extra in (plugins.spread_node, plugins.spread_domain):
        if extra.applies(eq):
            results.append(extra.explain(state, eq, eligible))
    for result in results:
        removed = result.removed_from(eligible)
        eligible &= result.mask
        if removed:
            parts.append(f"{result.name}: {removed:,} removed" + (f" ({result.reason})" if result.reason else ""))
    left = int(eligible.sum())
    parts.append(f"{left:,} of {n:,} nodes left")
    return "; ".join(parts)


def preempt_reason(preemptor, victim, pool: str) -> str:
    """Why a container is stopped, in the words its owner will read."""
    return f"preempted by {preemptor.app} (priority {preemptor.priority} > {victim.priority}) in pool {pool}"


def reclaim_reason(claimant, claimant_pool: str, victim) -> str:
    return (f"reclaimed by pool {claimant_pool} (below its guarantee) for {claimant.app}; "
            f"pool {victim.pool} holds more than its guarantee")


def reservation_note(nodes: int) -> str:
    return f"capacity reserved on {nodes} node{'' if nodes == 1 else 's'}"
