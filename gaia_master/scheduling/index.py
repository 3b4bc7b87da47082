"""What is granted, summed where the scheduler needs it, kept current as grants come and go.

The application table calls `add` and `remove` for every allocation it stores or drops, so a
scheduling cycle never walks the allocations (a million of them at C1M scale): it reads each
node's allocated vector, each pool's and app's usage, and, only for the apps it places, how
many instances each node holds. Victims for preemption are listed per pool on demand.
"""
from __future__ import annotations

import collections
from typing import Iterator, Mapping

import numpy as np

from gaia_common.pb import types_pb2
from gaia_common.resources import DIMENSIONS
from gaia_master.sfair.model import Running, RunningSummary

D = len(DIMENSIONS)
_GPU_SHARE = DIMENSIONS.index("gpu_share")


def as_vector(r: types_pb2.Resources) -> np.ndarray:
    return np.array([getattr(r, d) for d in DIMENSIONS], dtype=np.int64)


class AllocationIndex:
    """Not thread-safe by itself: the application table mutates it under its lock, and the
    scheduler copies what it needs under the same lock."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.node_allocated: dict = {}       # node_id -> int64[D]
        self.node_count: collections.Counter = collections.Counter()
        self.pool_usage: dict = {}           # pool path -> int64[D]
        self.app_usage: dict = {}            # app_id -> int64[D]
        self.app_nodes: dict = {}            # app_id -> Counter(node_id -> instances)
        self.app_held: collections.Counter = collections.Counter()   # app_id -> instances (not the AM)
        # pool -> {(app_id, instance_id): (Allocation, priority, its request as a vector)}: the
        # vector is kept (shared by an app's grants) so that listing a pool's containers for
        # preemption converts no protobuf
        self.by_pool: dict = {}
        # pool -> Counter(priority -> containers other than AMs): whether a pool holds any
        # possible victim below a priority, without listing its containers
        self.pool_priorities: dict = {}
        # node_id -> {(app_id, instance_id): (gpu_share, gpu_memory_bytes, GPU indices)} for the
        # allocations granted specific GPUs: what is used on each GPU of a node
        self.node_gpus: dict = {}
        self.version = 0                     # bumped on every change: a plan knows if it is stale

    def add(self, alloc: types_pb2.Allocation, pool: str, priority: int) -> None:
        vector = as_vector(alloc.request)
        self._apply(alloc, pool, vector, +1)
        self.by_pool.setdefault(pool, {})[(alloc.app_id, alloc.instance_id)] = (alloc, priority, vector)
        if not alloc.is_am:
            self._count_priority(pool, priority, 1)

    def add_granted(self, allocs: list, ids: list, pool: str, priority: int, vector: np.ndarray) -> None:
        """New allocations of one app and one shape (a cycle's grants; `ids` their instance
        ids): summed per node first, so a thousand grants cost a few array additions, not a
        thousand."""
        if len(allocs) == 1:
            return self._add_one(allocs[0], ids[0], pool, priority, vector)
        nodes = [a.node_id for a in allocs]
        per_node = collections.Counter(nodes)
        for node_id, k in per_node.items():
            self.node_allocated[node_id] = self.node_allocated.get(node_id, 0) + k * vector
        self.node_count.update(per_node)
        app_id = allocs[0].app_id
        total = len(allocs) * vector
        self.pool_usage[pool] = self.pool_usage.get(pool, 0) + total
        self.app_usage[app_id] = self.app_usage.get(app_id, 0) + total
        ams = [a.is_am for a in allocs]
        instances = collections.Counter(n for n, am in zip(nodes, ams) if not am) if any(ams) else per_node
        self.app_nodes.setdefault(app_id, collections.Counter()).update(instances)
        self.app_held[app_id] += sum(instances.values())
        self._count_priority(pool, priority, sum(instances.values()))
        held = (priority, vector)
        self.by_pool.setdefault(pool, {}).update(((app_id, i), (a, *held)) for i, a in zip(ids, allocs))
        if vector[_GPU_SHARE] > 0:
            for a in allocs:
                if a.gpu_indices:
                    self._gpus(a, +1)
        self.version += 1

    def _add_one(self, alloc, instance_id: str, pool: str, priority: int, vector: np.ndarray) -> None:
        """add_granted of a single allocation (an AM, a single-instance app): what the
        general path does, without its per-node Counters, which cost more than the sums."""
        node_id, app_id = alloc.node_id, alloc.app_id
        self.node_allocated[node_id] = self.node_allocated.get(node_id, 0) + vector
        self.node_count[node_id] += 1
        self.pool_usage[pool] = self.pool_usage.get(pool, 0) + vector
        self.app_usage[app_id] = self.app_usage.get(app_id, 0) + vector
        nodes = self.app_nodes.setdefault(app_id, collections.Counter())
        if not alloc.is_am:
            nodes[node_id] += 1
            self.app_held[app_id] += 1
            self._count_priority(pool, priority, 1)
        self.by_pool.setdefault(pool, {})[(app_id, instance_id)] = (alloc, priority, vector)
        if vector[_GPU_SHARE] > 0 and alloc.gpu_indices:
            self._gpus(alloc, +1)
        self.version += 1

    def remove(self, alloc: types_pb2.Allocation, pool: str) -> None:
        self._apply(alloc, pool, as_vector(alloc.request), -1)
        held = self.by_pool.get(pool, {}).pop((alloc.app_id, alloc.instance_id), None)
        if held is not None and not alloc.is_am:
            self._count_priority(pool, held[1], -1)

    def _count_priority(self, pool: str, priority: int, n: int) -> None:
        counts = self.pool_priorities.setdefault(pool, collections.Counter())
        counts[priority] += n
        if counts[priority] <= 0:
            del counts[priority]

    def _apply(self, alloc, pool, vector, sign) -> None:
        delta = sign * vector
        for table, key in ((self.node_allocated, alloc.node_id), (self.pool_usage, pool),
                           (self.app_usage, alloc.app_id)):
            table[key] = table.get(key, 0) + delta
        self.node_count[alloc.node_id] += sign
        if alloc.from_node_id:   # moving off a draining node: both places are held meanwhile
            self.node_allocated[alloc.from_node_id] = self.node_allocated.get(alloc.from_node_id, 0) + delta
            self.node_count[alloc.from_node_id] += sign
        if alloc.gpu_indices:
            self._gpus(alloc, sign)
        if not alloc.is_am:  # the AM takes no slot of the app's spread (max_per_node, per domain)
            nodes = self.app_nodes.setdefault(alloc.app_id, collections.Counter())
            nodes[alloc.node_id] += sign
            if nodes[alloc.node_id] <= 0:
                del nodes[alloc.node_id]
            self.app_held[alloc.app_id] += sign
        self.version += 1

    def _gpus(self, alloc, sign) -> None:
        key = (alloc.app_id, alloc.instance_id)
        if sign > 0:
            held = (int(alloc.request.gpu_share), int(alloc.request.gpu_memory_bytes),
                    tuple(int(i) for i in alloc.gpu_indices))
            self.node_gpus.setdefault(alloc.node_id, {})[key] = held
            return
        mine = self.node_gpus.get(alloc.node_id)
        if mine is not None:
            mine.pop(key, None)
            if not mine:
                del self.node_gpus[alloc.node_id]

    # ---- reads (call under the table's lock) ----

    def gpu_holdings(self, node_id: str) -> list:
        """[(gpu_share, gpu_memory_bytes, GPU indices)] of the allocations on the node."""
        return list(self.node_gpus.get(node_id, {}).values())

    def allocated(self, node_ids) -> np.ndarray:
        zero = np.zeros(D, dtype=np.int64)
        return np.array([self.node_allocated.get(n, zero) for n in node_ids], dtype=np.int64).reshape(-1, D)

    def summary(self, apps) -> RunningSummary:
        """A copy of the sums, and of the per-node instance counts of `apps` (the apps the
        cycle places; not every app's). Copied now, not read later: a cycle's own grants
        reach the index while it still decides (they are written in parts)."""
        counts = {app: dict(self.app_nodes[app]) for app in apps if app in self.app_nodes}
        lowest = {pool: min(c) for pool, c in self.pool_priorities.items() if c}
        return RunningSummary(pool_usage=dict(self.pool_usage), app_usage=dict(self.app_usage),
                              app_nodes=_LazyAppNodes(counts), pool_lowest_priority=lowest)

    def running_in(self, pool: str) -> list:
        """The containers of one pool as Sfair's Running values (preemption's candidates).
        Instance numbers grow with every grant, so they order instances newest last."""
        out = []
        for (app_id, instance_id), (alloc, priority, vector) in list(self.by_pool.get(pool, {}).items()):
            if alloc.is_am:
                continue  # an AM is never a victim: evicting it would stop the whole app
            order = int(instance_id) if instance_id.isdigit() else 0
            out.append(Running(app_id, pool, priority, alloc.node_id, vector, instance_id, float(order)))
        return out


class _LazyAppNodes(Mapping):
    """app_id -> [node_id per instance], expanded per app when the scheduler first asks."""

    def __init__(self, counts: dict):
        self._counts = counts

    def __getitem__(self, app_id: str) -> list:
        return [n for n, k in self._counts[app_id].items() for _ in range(k)]

    def __iter__(self) -> Iterator:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)
