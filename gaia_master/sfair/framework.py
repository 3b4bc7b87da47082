"""Extension points of Sfair: filters, scorers, and the status values they hand back.

Filters answer for all nodes at once with a boolean mask and say how many nodes they
removed and why; scorers answer with a 0..1 score per node that the framework multiplies by
the operator's weight. Neither raises for a policy outcome: "no node fits" is a result.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np


@dataclasses.dataclass(frozen=True)
class Status:
    ok: bool
    reason: str = ""

    @classmethod
    def success(cls) -> "Status":
        return _SUCCESS

    @classmethod
    def unschedulable(cls, reason: str) -> "Status":
        return cls(False, reason)


_SUCCESS = Status(True)


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


class Scorer(Protocol):
    """0..1 per node for placing one more instance of `eq` there (higher is better),
    evaluated on selected rows only so the cache can refresh a few changed nodes."""
    name: str

    def applies(self, eq) -> bool: ...

    def score(self, state, eq, rows: np.ndarray) -> np.ndarray: ...
