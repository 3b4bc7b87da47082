"""Node labels: =, !=, in, not_in, exists, not_exists, one vector comparison per constraint."""
import numpy as np

from gaia_master.sfair.framework import FilterResult

OPS = ("=", "!=", "in", "not_in", "exists", "not_exists")
DRIVER_LABEL = "gaia.io/driver."     # the leader's label for "offers this driver"


class NodeLabels:
    name = "labels"

    def applies(self, eq) -> bool:
        return bool(eq.constraints)

    def filter(self, nodes, eq) -> FilterResult:
        mask = np.ones(len(nodes), dtype=bool)
        failing, drivers = [], []
        for c in eq.constraints:
            match = _match(nodes, c)
            if not match.all():
                (drivers if _is_driver(c) else failing).append(c)
            mask &= match
        reasons = [f"no {c.key[len(DRIVER_LABEL):]} driver" for c in drivers]
        if failing:
            reasons.append("labels do not match " + ", ".join(_describe(c) for c in failing))
        return FilterResult(self.name, mask, "; ".join(reasons))


def _match(nodes, c) -> np.ndarray:
    codes, values = nodes.label_codes(c.key)
    wanted = [values[v] for v in c.values if v in values]
    if c.op == "exists":
        return codes >= 0
    if c.op == "not_exists":
        return codes < 0
    if c.op in ("=", "in"):
        return np.isin(codes, wanted) if wanted else np.zeros(len(codes), dtype=bool)
    if c.op in ("!=", "not_in"):
        return ~np.isin(codes, wanted) if wanted else np.ones(len(codes), dtype=bool)
    # an unknown operator matches nothing: the request stays pending with this reason
    return np.zeros(len(codes), dtype=bool)


def _is_driver(c) -> bool:
    return c.key.startswith(DRIVER_LABEL) and c.op == "exists"


def _describe(c) -> str:
    if c.op in ("exists", "not_exists"):
        return f"{c.key} {c.op}"
    return f"{c.key} {c.op} {','.join(c.values)}"
