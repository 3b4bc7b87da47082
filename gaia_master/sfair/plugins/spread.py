"""Anti-affinity: at most K instances of an app per node, and per failure-domain value."""
import numpy as np

from gaia_master.sfair.framework import FilterResult


class SpreadPerNode:
    name = "spread-node"

    def applies(self, eq) -> bool:
        return eq.spread is not None and eq.spread.max_per_node is not None

    def room(self, state, eq, rows) -> np.ndarray:
        counts = state.app_counts(eq.app)
        left = eq.spread.max_per_node - (counts if rows is None else counts[rows])
        return np.maximum(left, 0).astype(np.int64)

    def explain(self, state, eq, eligible) -> FilterResult:
        mask = self.room(state, eq, None) > 0
        return FilterResult(self.name, mask, f"already {eq.spread.max_per_node} of {eq.app} per node")


class SpreadPerDomain:
    """Applied while filling (domains are shared by many nodes, so the cap is on a group)."""
    name = "spread-domain"

    def applies(self, eq) -> bool:
        s = eq.spread
        return s is not None and s.domain_key is not None and s.max_per_domain is not None

    def domain_room(self, state, eq) -> tuple:
        """(domain code per node (-1: node lacks the label), room left per domain)."""
        codes, values = state.nodes.label_codes(eq.spread.domain_key)
        counts = state.app_counts(eq.app)
        have = codes >= 0
        used = np.bincount(codes[have], weights=counts[have], minlength=len(values)).astype(np.int64)
        return codes, np.maximum(eq.spread.max_per_domain - used, 0)

    def explain(self, state, eq, eligible) -> FilterResult:
        codes, room = self.domain_room(state, eq)
        mask = (codes >= 0) & (room[np.maximum(codes, 0)] > 0) if room.size else codes >= 0
        return FilterResult(self.name, mask,
                            f"already {eq.spread.max_per_domain} of {eq.app} per {eq.spread.domain_key} "
                            f"(or no {eq.spread.domain_key} label)")
