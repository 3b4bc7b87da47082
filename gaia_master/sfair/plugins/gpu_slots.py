"""GPU slots and GPU packing: the node's GPUs one by one, not their sum.

Fits sees a node's GPU capacity as one total, so two GPUs at 60% used look like 80% free;
gpu-slots counts what fits GPU by GPU (a fraction on one GPU with that much share and memory
free, k whole GPUs on k entirely free ones). gpu-packing scores where that GPU work should
go: fractions onto nodes with a partly used GPU they fill the most (pack before opening a
fresh GPU), whole GPUs onto nodes where the k GPUs are the best linked and their free
neighbourhood the sparsest (a broken pair before an intact one, a busy node before an
empty one). Both read `state.gpus` (a GpuTable, see gpu_topology.py) and build it from
`state.nodes.gpus` when the state has none. Nodes without reported topology: no opinion
from the filter (Fits judges them), score 0.
"""
from __future__ import annotations

import numpy as np

from gaia_master.sfair.framework import FilterResult
from gaia_master.sfair.gpu_topology import (FULL, LEVELS, GpuTable, _fraction_counts, _whole_ok,
                                            whole_gpus)
from gaia_master.sfair.model import DIM_INDEX

SHARE = DIM_INDEX["gpu_share"]
MEMORY = DIM_INDEX["gpu_memory_bytes"]


def gpu_table(state) -> GpuTable:
    table = getattr(state, "gpus", None)
    if table is None:
        per_node = getattr(state.nodes, "gpus", None) or [None] * len(state.nodes)
        table = state.gpus = GpuTable(per_node)
    return table


def _asked(eq) -> tuple:
    return int(eq.shape[SHARE]), int(eq.shape[MEMORY])


def _invalid(share: int) -> str:
    """Why this gpu_share cannot be placed at all ("" when it can): a policy outcome, so the
    filter says it instead of raising."""
    try:
        whole_gpus(share)
    except ValueError as e:
        return str(e)
    return ""


class GpuSlots:
    name = "gpu-slots"

    def applies(self, eq) -> bool:
        return eq.shape[SHARE] > 0

    def room(self, state, eq, rows) -> np.ndarray:
        share, memory = _asked(eq)
        if _invalid(share):
            return np.zeros(len(state.nodes) if rows is None else len(rows), dtype=np.int64)
        return gpu_table(state).instances(share, memory, rows)

    def explain(self, state, eq, eligible) -> FilterResult:
        share, memory = _asked(eq)
        return FilterResult(self.name, self.room(state, eq, None) > 0, _shortage(share, memory))


def _shortage(share: int, memory: int) -> str:
    invalid = _invalid(share)
    if invalid:
        return invalid
    k = whole_gpus(share)
    if k:
        each = f" with {-(-memory // k):,} bytes each" if memory else ""
        return f"fewer than {k} entirely free GPUs{each}"
    return f"no single GPU with {share}% share" + (f" and {memory:,} bytes free" if memory else " free")


class GpuPacking:
    name = "gpu-packing"

    def applies(self, eq) -> bool:
        share = int(eq.shape[SHARE])
        return share > 0 and not _invalid(share)

    def score(self, state, eq, rows) -> np.ndarray:
        table = gpu_table(state)
        share, memory = _asked(eq)
        k = whole_gpus(share)
        score = _link_score(table, rows, k, memory) if k else _fill_score(table, rows, share, memory)
        return np.where(table.has_gpus[rows], score, 0.0)


def _fill_score(table: GpuTable, rows, share: int, memory: int) -> np.ndarray:
    """Share of the chosen GPU once the fraction is on it: a partly used GPU always beats a
    fresh one (used + share > share), and the tightest fit wins, as choose_fraction picks."""
    used, used_memory = table.used_share[rows], table.used_memory[rows]
    fits = _fraction_counts(table.memory[rows], used, used_memory, share, memory) > 0
    partly = (used > 0) | (used_memory > 0)
    fill = np.where(fits, np.where(partly, used, 0) + share, 0)
    return fill.max(axis=1, initial=0) / FULL


def _link_score(table: GpuTable, rows, k: int, memory: int) -> np.ndarray:
    """By the cheapest level at which some free GPU has k free ones around it (the best
    set's link level, on a tree), then by how few free GPUs that GPU has around it at every
    level: taking from a sparse neighbourhood leaves the large well-linked groups whole."""
    ok = _whole_ok(table.memory[rows], table.used_share[rows], table.used_memory[rows], k, memory)
    within = table.free_within(rows, ok)                         # [R, G, L]
    reach = (within >= k) & ok[:, :, None]                       # [R, G, L]
    n_levels = len(LEVELS)
    level = np.where(reach.any(axis=2), reach.argmax(axis=2), n_levels)
    best = level.min(axis=1, initial=n_levels)
    crowd = np.where(level == best[:, None], within.sum(axis=2), np.iinfo(np.int64).max)
    sparse = 1.0 - crowd.min(axis=1, initial=np.iinfo(np.int64).max) / (within.shape[1] * n_levels + 1)
    return np.where(best < n_levels, (n_levels - 1 - best + sparse) / n_levels, 0.0)
