"""The pool tree as arrays: weights, guarantees, max quotas and usage of every pool.

Usage of a pool includes everything below it, so a quota or a share anywhere on the path is
one row lookup. Pools named only as parents ("ads" for "ads/ranking") exist with weight 1,
no guarantee and no limit.
"""
from __future__ import annotations

import numpy as np

from gaia_common.resources import DIMENSIONS
from gaia_master.sfair.model import D, UNLIMITED

ROOT = 0


class PoolTree:
    def __init__(self, specs, cluster_capacity: np.ndarray):
        by_path = {s.path.strip("/"): s for s in specs}
        paths, known = [""], {""}
        for path in sorted(by_path):
            parts = path.split("/")
            for depth in range(1, len(parts) + 1):
                prefix = "/".join(parts[:depth])
                if prefix not in known:
                    known.add(prefix)
                    paths.append(prefix)
        self.paths = paths
        self.index = {p: i for i, p in enumerate(paths)}
        n = len(paths)
        self.parent = np.full(n, -1, dtype=np.int64)
        self.children: list = [[] for _ in range(n)]
        self.weight = np.ones(n)
        self.guaranteed = np.zeros((n, D), dtype=np.int64)
        self.max_quota = np.full((n, D), UNLIMITED, dtype=np.int64)
        self.gpu_models: list = [() for _ in range(n)]      # effective: restricted along the path
        self.usage = np.zeros((n, D), dtype=np.int64)
        for i, path in enumerate(paths[1:], start=1):
            parent = self.index[path.rpartition("/")[0]]
            self.parent[i] = parent
            self.children[parent].append(i)
            spec = by_path.get(path)
            own = ()
            if spec is not None:
                self.weight[i] = spec.weight if spec.weight > 0 else 1.0
                if spec.guaranteed is not None:
                    self.guaranteed[i] = spec.guaranteed
                if spec.max_quota is not None:
                    self.max_quota[i] = np.where(np.asarray(spec.max_quota) > 0, spec.max_quota, UNLIMITED)
                own = tuple(spec.gpu_models)
            inherited = self.gpu_models[parent]
            self.gpu_models[i] = (tuple(m for m in own if m in inherited) if own and inherited
                                  else own or inherited)
        self.ancestors = [self._path_to_root(i) for i in range(n)]
        self._weight = self.weight.tolist()
        self.has_guarantee = self.guaranteed.any(axis=1).tolist()
        limited = (self.max_quota < UNLIMITED).any(axis=1)
        self.quota_on_path = [bool(limited[a].any()) for a in self.ancestors]
        self.ancestor_list = [a.tolist() for a in self.ancestors]
        guaranteed = self.guaranteed.any(axis=1)
        self.guarantee_on_path = [bool(guaranteed[a].any()) for a in self.ancestors]
        cap = np.asarray(cluster_capacity, dtype=np.float64)
        self.inv_capacity = np.where(cap > 0, 1.0 / np.where(cap > 0, cap, 1), 0.0)
        self.inv_guaranteed = np.where(self.guaranteed > 0, 1.0 / np.maximum(self.guaranteed, 1), 0.0)
        # kept current by charge(): plain floats so ordering needs no numpy call
        self._share = [0.0] * n
        self._guarantee_ratio = [0.0] * n

    def _path_to_root(self, i: int) -> np.ndarray:
        out = []
        while i >= 0:
            out.append(i)
            i = int(self.parent[i])
        return np.array(out, dtype=np.int64)

    def is_leaf(self, i: int) -> bool:
        return not self.children[i]

    def charge(self, pool: int, amount: np.ndarray) -> None:
        """Add `amount` (negative to give back) to the pool and every ancestor."""
        # Once per step: a fixed handful of numpy calls for the whole path (fancy indexing),
        # not a few per ancestor, since each call costs more than the arithmetic it does.
        anc = self.ancestors[pool]
        rows = self.usage[anc]
        rows += amount
        self.usage[anc] = rows
        path = self.ancestor_list[pool]
        shares = np.maximum.reduce(rows * self.inv_capacity, axis=1).tolist()
        for a, s in zip(path, shares):
            self._share[a] = s
        if self.guarantee_on_path[pool]:
            ratios = np.maximum.reduce(rows * self.inv_guaranteed[anc], axis=1).tolist()
            for a, r in zip(path, ratios):
                self._guarantee_ratio[a] = r

    def dominant_share(self, pool: int) -> float:
        return self._share[pool]

    def key(self, pool: int) -> tuple:
        """Sibling order: pools below their guarantee first (least satisfied first), then by
        dominant share divided by weight (DRF). A guarantee is met once usage reaches it in the
        pool's most-satisfied guaranteed dimension (the dominant-resource reading)."""
        if self.has_guarantee[pool]:
            ratio = self._guarantee_ratio[pool]
            if ratio < 1.0:
                return (0, ratio)
        return (1, self._share[pool] / self._weight[pool])

    def quota_room(self, pool: int, shape: np.ndarray) -> tuple:
        """(instances of `shape` that fit under every max quota on the path, the pool and
        dimension that limit it). The limit is None when nothing on the path binds."""
        if not self.quota_on_path[pool]:
            return 1 << 30, None
        anc = self.ancestors[pool]
        dims = np.flatnonzero(shape)
        if dims.size == 0:
            return 1 << 30, None
        head = self.max_quota[np.ix_(anc, dims)] - self.usage[np.ix_(anc, dims)]
        room = np.maximum(head, 0) // shape[dims]
        flat = int(room.argmin())
        best = int(room.flat[flat])
        if best >= 1 << 30:
            return 1 << 30, None
        a, d = divmod(flat, dims.size)
        return best, (self.paths[int(anc[a])], DIMENSIONS[int(dims[d])])
