"""Extension points of Sfair: filters and scorers, and the verdict a filter hands back.

Filters answer for all nodes at once (a boolean mask, or a count of instances each node
still takes) and their FilterResult says how many nodes they removed and why; scorers answer
with a 0..1 score per node that the framework multiplies by the operator's weight. Nothing
raises for a policy outcome: "no node fits" is a result, carried to the plan's reasons.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Protocol

import numpy as np


@dataclasses.dataclass(frozen=True)
class FilterResult:
    """One filter's verdict over every node: mask[i] is True where node i stays eligible."""
    name: str
    mask: np.ndarray
    reason: str = ""                     # what removed nodes lack, for the pending message

    def removed_from(self, eligible: np.ndarray) -> int:
        """How many of the still-eligible nodes this filter removes."""
        return int(np.count_nonzero(eligible & ~self.mask))


class StaticFilter(Protocol):
    """Depends only on the node's fixed attributes (labels, GPU model): evaluated once per
    equivalence class per cycle."""
    name: str

    def applies(self, eq) -> bool: ...

    def filter(self, nodes, eq) -> FilterResult: ...


class CountFilter(Protocol):
    """Depends on what is free or placed (fits, anti-affinity per node): answers how many
    more instances each node takes (0 = filtered), for selected rows, so an equivalence
    class can refresh only the nodes that changed. `rows` None means every node."""
    name: str

    def applies(self, eq) -> bool: ...

    def room(self, state, eq, rows: Optional[np.ndarray]) -> np.ndarray: ...

    def explain(self, state, eq, eligible: np.ndarray) -> FilterResult: ...


class Scorer(Protocol):
    """0..1 per node for placing one more instance of `eq` there (higher is better),
    evaluated on selected rows only so the cache can refresh a few changed nodes."""
    name: str

    def applies(self, eq) -> bool: ...

    def score(self, state, eq, rows: np.ndarray) -> np.ndarray: ...
