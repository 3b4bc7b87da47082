"""The plan under construction: grants kept as chunks (node rows and counts per step) and
expanded to one Grant per instance only when read, so the hot loop creates no objects per
instance."""
from __future__ import annotations

import numpy as np

from gaia_master.sfair.model import Grant, Plan


class PlanBuilder:
    def __init__(self, nodes):
        self.nodes = nodes
        self.chunks: list = []               # (request_id, app, first instance, rows, n)
        self.count = 0

    def add(self, request_id: str, app: str, first: int, rows: np.ndarray, n: np.ndarray) -> None:
        self.chunks.append((request_id, app, first, rows, n))
        self.count += int(n.sum())

    def build(self, pending: dict, stats: dict) -> Plan:
        return LazyPlan(self.nodes, self.chunks, pending, stats)


class LazyPlan(Plan):
    def __init__(self, nodes, chunks, pending, stats):
        self._nodes = nodes
        self.chunks = chunks
        self.count = sum(int(n.sum()) for *_, n in chunks)   # placements
        self._grants = None
        self.pending = pending
        self.stats = stats

    @property
    def grants(self) -> list:
        if self._grants is None:
            out = []
            ids = self._nodes.ids
            for request_id, app, first, rows, n in self.chunks:
                instance = first
                for row in np.repeat(rows, n).tolist():
                    out.append(Grant(request_id, app, instance, ids[row]))
                    instance += 1
            self._grants = out
        return self._grants

    @grants.setter
    def grants(self, value) -> None:
        self._grants = value

    def node_counts(self) -> np.ndarray:
        """Instances granted per node row (without expanding)."""
        out = np.zeros(len(self._nodes), dtype=np.int64)
        for _, _, _, rows, n in self.chunks:
            out[rows] += n
        return out
