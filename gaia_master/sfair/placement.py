"""Choosing nodes for `want` instances of one equivalence class, vectorised.

With a packing score, the sequential greedy (best node, place, rescore, repeat) keeps
choosing the same node until it is full, because placing raises its score; so filling the
best-scored nodes to their slot count in score order is that greedy in one pass. A spreading
score lowers with each placement, so there the fill takes one instance per node per pass.
Per-domain anti-affinity caps a group of nodes and is applied as a grouped running sum.
"""
from __future__ import annotations

import numpy as np


def choose_nodes(state, eq, want: int, spread_domain) -> tuple:
    """(rows, n): distinct node rows and how many instances each gets; sum(n) <= want."""
    slots = eq.slots
    domain = spread_domain.applies(eq)
    if want == 1 and not domain:
        if eq.pick.size == 0:      # no node at all (the last ones just left)
            return _EMPTY, _EMPTY
        best = int(eq.pick.argmax())       # the method: np.argmax's dispatch costs as much
        if eq.pick[best] == -np.inf:
            return _EMPTY, _EMPTY
        return np.array([best]), _ONE.copy()
    if domain:
        codes, room = spread_domain.domain_room(state, eq)
        node_room = np.where(codes >= 0, room[np.maximum(codes, 0)] if room.size else 0, 0)
        slots = np.minimum(slots, node_room)
    cand = np.flatnonzero(slots > 0)
    if cand.size == 0 or want <= 0:
        return _EMPTY, _EMPTY
    if want == 1:
        best = cand[int(np.argmax(eq.score[cand]))]
        return np.array([best]), np.ones(1, dtype=np.int64)
    per_pass = 1 if eq.spread is not None and eq.spread.prefer_spread else None
    if not domain and per_pass is None and cand.size > want:
        # only the `want` best nodes can be used (each takes at least one)
        cand = cand[np.argpartition(-eq.score[cand], want - 1)[:want]]
    order = cand[np.lexsort((cand, -eq.score[cand]))]
    left = slots[order].copy()
    got = np.zeros(order.size, dtype=np.int64)
    need = want
    while need > 0 and left.any():
        take = np.minimum(left, per_pass) if per_pass else left.copy()
        if domain:
            take = _cap_by_group(take, codes[order], room)
            room = room.copy()
            np.subtract.at(room, codes[order], take)
        cum = np.cumsum(take)
        if cum[-1] > need:
            cut = int(np.searchsorted(cum, need))
            take[cut] -= cum[cut] - need
            take[cut + 1:] = 0
        if not take.any():
            break
        got += take
        left -= take
        need -= int(take.sum())
        if per_pass is None:
            break
    used = got > 0
    return order[used], got[used]


def _cap_by_group(take: np.ndarray, group: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Each element keeps what its group still has room for after the elements before it."""
    perm = np.argsort(group, kind="stable")
    t = take[perm]
    g = group[perm]
    cum = np.cumsum(t)
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    base = np.repeat(cum[starts] - t[starts], np.diff(np.r_[starts, g.size]))
    before = cum - t - base
    out = np.empty_like(take)
    out[perm] = np.clip(room[g] - before, 0, t)
    return out


_EMPTY = np.zeros(0, dtype=np.int64)
_ONE = np.ones(1, dtype=np.int64)
