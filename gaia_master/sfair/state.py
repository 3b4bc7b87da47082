"""The cycle's working copy of the cluster: free capacity, per-app counts, usage by pool and
app, and a log of changed node rows that the equivalence-class caches replay incrementally.

Only `place` / `unplace` and `hold` / `release` mutate it, each pair exact inverses (the
statement and the evictor rely on that to roll back). Evicting a running container is
`unplace` of it: its node, pool and app give back what it held.

Per-app node lists of running containers are resolved lazily, for the apps the cycle
touches: at a million containers, indexing every app's nodes up front would cost more than
the cycle.

GPU sets: where a node reported its GPU topology (Nodes.gpus), placing an instance with a
gpu_share assigns it GPUs in `self.gpus` (a GpuTable, the cycle's working copy) and unplacing
it releases the most recent ones its app got on that row. Sets are kept per (app, row) with
the shape object they were placed with: a rollback passes the same shape back, an eviction
passes a running container's resources, whose GPUs are not known in the cycle (they stay
held; the instances are owed, and a restore of them takes no new GPUs).
"""
from __future__ import annotations

import numpy as np

from gaia_master.sfair.gpu_topology import GpuTable, assign, instances_that_fit, release, whole_gpus
from gaia_master.sfair.model import DIM_INDEX, ClusterSnapshot, RunningSummary
from gaia_master.sfair.pools import PoolTree


_SHARE, _MEMORY = DIM_INDEX["gpu_share"], DIM_INDEX["gpu_memory_bytes"]


class ClusterState:
    def __init__(self, snapshot: ClusterSnapshot):
        nodes = snapshot.nodes
        self.nodes = nodes
        self.capacity = nodes.capacity
        self.inv_capacity = np.where(self.capacity > 0, 1.0 / np.maximum(self.capacity, 1), 0.0)
        self.free = nodes.capacity - nodes.allocated
        self.cluster_capacity = nodes.capacity.sum(axis=0)
        self.pools = PoolTree(snapshot.pools, self.cluster_capacity)
        self.app_usage: dict = {}
        self._app_share: dict = {}
        self._app_nodes: dict = {}           # app -> rows placed this cycle before its counts were built
        self._app_counts: dict = {}          # app -> int32[N], built when a spread needs it
        self.changed: list = []              # node rows touched in this cycle, in order
        per_node = getattr(nodes, "gpus", None)
        has_topology = per_node is not None and any(g is not None for g in per_node)
        self.gpus = GpuTable(per_node) if has_topology else None
        self._gpu_held: dict = {}            # (app, row) -> [[shape, [set or None per instance]]]
        self._gpu_owed: dict = {}            # (app, row) -> instances unplaced with GPUs unknown
        self.last_gpu_sets: dict = {}        # row -> [set or None per instance] of the last place
        summary = snapshot.summary or RunningSummary.of(snapshot.running)
        self.summary = summary               # as it was before the cycle: which pools hold containers
        for path, usage in summary.pool_usage.items():
            pool = self.pools.index.get(path)
            if pool is not None:
                self.pools.charge(pool, np.asarray(usage, dtype=np.int64))
        self.app_usage.update((app, np.asarray(u, dtype=np.int64)) for app, u in summary.app_usage.items())

    @property
    def version(self) -> int:
        return len(self.changed)

    def app_share(self, app: str) -> float:
        share = self._app_share.get(app)
        if share is None:
            usage = self.app_usage.get(app)
            share = 0.0 if usage is None else float((usage * self.pools.inv_capacity).max())
            self._app_share[app] = share
        return share

    def app_counts(self, app: str) -> np.ndarray:
        """Instances of `app` per node (running plus granted in this cycle)."""
        counts = self._app_counts.get(app)
        if counts is None:
            rows = self._running_rows(app) + self._app_nodes.pop(app, [])
            n = len(self.nodes)
            counts = (np.bincount(np.asarray(rows, dtype=np.int64), minlength=n).astype(np.int32) if rows
                      else np.zeros(n, dtype=np.int32))
            self._app_counts[app] = counts
        return counts

    def recent_gpu_sets(self, app: str, row: int, count: int) -> list:
        """The GPU sets of the last `count` instances of `app` placed on `row` (and still
        placed), oldest first; [] where the row has no topology or nothing was assigned."""
        out: list = []
        for _, sets in reversed(self._gpu_held.get((app, row), [])):
            if len(out) >= count:
                break
            out[:0] = sets[max(0, len(sets) - (count - len(out))):]
        return out

    def _apply_gpus(self, rows, n, shape, app, sign) -> None:
        share, memory = int(shape[_SHARE]), int(shape[_MEMORY])
        try:
            whole_gpus(share)
        except ValueError:
            return                           # the gpu-slots filter placed it on no GPU node
        has = self.gpus.has_gpus
        for row, k in zip(rows.tolist(), n.tolist()):
            if k <= 0 or not has[row]:
                continue
            node = self.gpus.node(row)
            key = (app, row)
            if sign > 0:
                owed = self._gpu_owed.get(key, 0)
                if owed:                     # a restored victim: its GPUs never left
                    back = min(owed, k)
                    self._gpu_owed[key] = owed - back
                    k -= back
                    if not k:
                        continue
                # the gpu-slots count said these fit; never raise mid-cycle if they do not
                sets = assign(node, share, memory, min(k, instances_that_fit(node, share, memory)))
                sets = sets + [None] * (k - len(sets))
                self._gpu_held.setdefault(key, []).append([shape, sets])
                self.last_gpu_sets[row] = list(sets)
                continue
            stack = self._gpu_held.get(key)
            while k and stack and stack[-1][0] is shape:
                sets = stack[-1][1]
                take = min(k, len(sets))
                gone = sets[len(sets) - take:]
                del sets[len(sets) - take:]
                release(node, share, memory, [s for s in gone if s is not None])
                k -= take
                if not sets:
                    stack.pop()
            if stack is not None and not stack:
                del self._gpu_held[key]
            if k:                            # a running container evicted: GPUs unknown
                self._gpu_owed[key] = self._gpu_owed.get(key, 0) + k

    def _running_rows(self, app: str) -> list:
        node_ids = self.summary.app_nodes.get(app)
        if not node_ids:
            return []
        index = self.nodes.index
        return [index[n] for n in node_ids if n in index]

    def hold(self, rows: np.ndarray, amounts: np.ndarray) -> None:
        """Keep amounts[i] of node rows[i] from the requests of this cycle (a reservation)."""
        self.free[rows] -= amounts
        self.changed.extend(rows.tolist())

    def release(self, rows: np.ndarray, amounts: np.ndarray) -> None:
        self.free[rows] += amounts
        self.changed.extend(rows.tolist())

    def place(self, rows: np.ndarray, n: np.ndarray, shape: np.ndarray, app: str, pool: int) -> None:
        """n[i] instances of `shape` on node rows[i] (rows distinct)."""
        self._apply(rows, n, shape, app, pool, +1)

    def unplace(self, rows: np.ndarray, n: np.ndarray, shape: np.ndarray, app: str, pool: int) -> None:
        self._apply(rows, n, shape, app, pool, -1)

    def _apply(self, rows, n, shape, app, pool, sign) -> None:
        # One row is the common case (single instances, one step each): plain ints and one
        # row operation, since at that size each numpy call costs more than its work.
        one = rows.size == 1
        if one:
            row, k = int(rows[0]), int(n[0])
            total = (sign * k) * shape
            self.free[row] -= total
        else:
            self.free[rows] -= sign * n[:, None] * shape[None, :]
            total = sign * int(n.sum()) * shape
        self.pools.charge(pool, total)
        usage = self.app_usage.get(app)
        # `total` is a fresh array that nothing mutates, so a new app may keep it as is
        self.app_usage[app] = total if usage is None else usage + total
        self._app_share.pop(app, None)
        counts = self._app_counts.get(app)
        if counts is None and sign < 0:
            counts = self.app_counts(app)    # includes what is being undone; subtracted below
        if counts is not None:
            counts[rows] += sign * n.astype(np.int32)
        elif one:
            self._app_nodes.setdefault(app, []).extend([row] * k)
        else:
            self._app_nodes.setdefault(app, []).extend(np.repeat(rows, n).tolist())
        if self.gpus is not None:
            if sign > 0:
                self.last_gpu_sets = {}
            if shape[_SHARE] > 0:
                self._apply_gpus(rows, n, shape, app, sign)
        if one:
            self.changed.append(row)
        else:
            self.changed.extend(rows.tolist())
