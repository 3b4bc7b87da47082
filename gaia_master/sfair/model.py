"""Sfair's input and output values: plain dataclasses and numpy arrays, no protobuf, no etcd.

The leader builds a `ClusterSnapshot` from its node view, allocation table, pool store and the
pending AM requests, asks `Sfair.schedule(snapshot)` for a `Plan`, and applies the plan itself.

The mapping from the stored values (done by gaia_master/scheduling/snapshot.py):

  NodeInfo.node_id / .capacity / .labels      -> Nodes.ids / .capacity row / .labels
  capacity minus the sum of Allocation.request -> Nodes.allocated row (what is granted already)
  labels["gaia.io/gpu-model"] (or a NodeInfo field) -> Nodes.gpu_models
  Allocation (app_id, node_id, request) + the app's AppSpec.pool / .priority -> Running
      (instance: the allocation's instance id, named by an Eviction; started_at: when it was
       granted, on the clock of `ClusterSnapshot.now`; newer ones are evicted first)
  At scale: RunningSummary (kept incrementally) as `summary`, and `running_in(pool path)`
      listing one leaf pool's Running values, asked only for pools that can supply victims
  pool records in etcd (path, weight, guaranteed, max, gpu models) -> PoolSpec
  RequestContainers(app_id, count, resources.request, gang, constraints) + AppSpec.pool /
      .priority + AppRecord.next_instance (first_instance) + arrival time -> PendingRequest
      (request_id: unique per outstanding request, e.g. "<app_id>/<request seq>";
       constraints: LabelConstraint(key, op, values) with op in = != in not_in exists
       not_exists; anti-affinity: Spread(max_per_node, domain_key, max_per_domain);
       gang: all `count` instances or none)
  From the proto as it stands (types.proto): AppSpec.gang N -> gang=True, count=N;
  AppSpec.constraints (label, op, values) -> LabelConstraint(label, op, tuple(values)), same
  ops; AppSpec.gpu_model -> gpu_models=(gpu_model,); max_per_node -> Spread.max_per_node;
  spread_by -> Spread.domain_key, with max_per_domain still to be chosen (the proto has no
  K per domain: a field, or ceil(count / number of domains) for an even spread).
  Pool(path, weight, min, max, gpu_models) -> PoolSpec(path, weight, guaranteed=min,
  max_quota=max, gpu_models) (0 in max = no ceiling here too); Pool.max_gpus is not
  modelled yet (a max_quota of gpu_share = 100 x max_gpus is the nearest).
  Only leaf pools take requests; a request naming an unknown or inner pool stays pending
  with that reason. Pool paths have no leading or trailing "/".

The Plan carries grants (one per instance), evictions (each a running container to stop,
with its kind and reason, for a request granted in the same plan), the pending reasons and
the reservations (request id -> node ids held for it).

Resource vectors are int64 arrays over `DIMENSIONS` (gaia_common.resources), in the same
units as the Resources message (millicores, bytes, bits/s, GPU share percent...).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from gaia_common.resources import DIMENSIONS

D = len(DIMENSIONS)
DIM_INDEX = {name: i for i, name in enumerate(DIMENSIONS)}
UNLIMITED = np.int64(2**62)          # a max quota with no limit in that dimension
GPU_DIMS = (DIM_INDEX["gpu_share"], DIM_INDEX["gpu_memory_bytes"])


def vec(values: Optional[Mapping[str, int]] = None, fill: int = 0, **kw) -> np.ndarray:
    """A resource vector from dimension names: vec(cpu_millis=1000, memory_bytes=2**30)."""
    out = np.full(D, fill, dtype=np.int64)
    for name, amount in {**(values or {}), **kw}.items():
        out[DIM_INDEX[name]] = amount
    return out


class Nodes:
    """Every schedulable node as rows of arrays, plus a columnar index of its labels.

    Labels are encoded per key as small integer codes (-1: the node lacks the key), so a
    label filter is one comparison over all nodes at once.
    """

    def __init__(self, ids: Sequence[str], capacity: np.ndarray, allocated: Optional[np.ndarray] = None,
                 labels: Optional[Sequence[Mapping[str, str]]] = None,
                 gpu_models: Optional[Sequence[str]] = None, gpus: Optional[Sequence] = None):
        self.ids = list(ids)
        n = len(self.ids)
        self.capacity = np.asarray(capacity, dtype=np.int64).reshape(n, D)
        self.allocated = (np.zeros((n, D), dtype=np.int64) if allocated is None
                          else np.asarray(allocated, dtype=np.int64).reshape(n, D))
        self.labels = [dict(l) for l in labels] if labels is not None else [{} for _ in range(n)]
        self.gpu_models = list(gpu_models) if gpu_models is not None else [""] * n
        # Optional[NodeGpus] per row (gpu_topology.py): each node's GPUs, their links and what
        # is held on each. None: no node reported GPU topology (the scheduler then pays nothing).
        self.gpus = list(gpus) if gpus is not None else None
        if self.gpus is not None and len(self.gpus) != n:
            raise ValueError(f"{len(self.gpus)} GPU entries for {n} nodes")
        self.index = {node_id: i for i, node_id in enumerate(self.ids)}
        self._codes: dict = {}

    def __len__(self) -> int:
        return len(self.ids)

    def label_codes(self, key: str) -> tuple:
        """(codes[N] int32, value -> code) for one label key, built once and cached."""
        if key not in self._codes:
            values: dict = {}
            codes = np.fromiter((values.setdefault(l[key], len(values)) if key in l else -1
                                 for l in self.labels), dtype=np.int32, count=len(self.ids))
            self._codes[key] = (codes, values)
        return self._codes[key]

    def gpu_model_codes(self) -> tuple:
        key = ("gpu-model",)
        if key not in self._codes:
            values: dict = {}
            codes = np.fromiter((values.setdefault(m, len(values)) if m else -1 for m in self.gpu_models),
                                dtype=np.int32, count=len(self.ids))
            self._codes[key] = (codes, values)
        return self._codes[key]


@dataclasses.dataclass(frozen=True)
class LabelConstraint:
    """A node label test. op: '=', '!=', 'in', 'not_in', 'exists', 'not_exists'.

    '!=' and 'not_in' match nodes that lack the key (as Kubernetes' NotIn does)."""
    key: str
    op: str
    values: tuple = ()


@dataclasses.dataclass(frozen=True)
class Spread:
    """Anti-affinity of an app's instances: at most max_per_node on a node and at most
    max_per_domain per value of the failure-domain label `domain_key` (rack, zone)."""
    max_per_node: Optional[int] = None
    domain_key: Optional[str] = None
    max_per_domain: Optional[int] = None
    prefer_spread: bool = False          # score towards emptier nodes instead of packing


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    path: str                            # "ads/ranking/online"; parents are implied
    weight: float = 1.0
    guaranteed: Optional[np.ndarray] = None   # [D]; None: no guarantee
    max_quota: Optional[np.ndarray] = None    # [D]; None: unlimited (UNLIMITED per dim)
    gpu_models: tuple = ()               # allowed GPU models; () = any


@dataclasses.dataclass(frozen=True)
class Running:
    """A container already granted: it counts towards its pool's and app's share, and it may
    be evicted for a higher-priority request of its pool or a pool reclaiming its guarantee."""
    app: str
    pool: str
    priority: int
    node: str
    resources: np.ndarray
    instance: str = ""                   # the AM's instance id, so an eviction can name it
    started_at: float = 0.0              # newest are evicted first: they lose the least work


@dataclasses.dataclass(frozen=True, eq=False)
class PendingRequest:
    request_id: str                      # unique in the snapshot, e.g. "<app_id>/<seq>"
    app: str
    pool: str
    priority: int
    count: int
    shape: np.ndarray                    # [D] per instance
    gang: bool = False
    constraints: tuple = ()              # LabelConstraint...
    gpu_models: tuple = ()               # acceptable GPU models; () = any the pool allows
    spread: Optional[Spread] = None
    submitted_at: float = 0.0
    first_instance: int = 0              # instance index of the first one granted
    # Requests of one app with the same non-empty gang_id are one gang: every instance of
    # every one of them, or none (e.g. 2 parameter servers + 4 workers of other shapes).
    gang_id: str = ""


@dataclasses.dataclass
class RunningSummary:
    """What the scheduler needs to know about running containers, aggregated. At a million
    containers the leader should keep this up to date as allocations come and go (an
    incremental index) instead of listing every container in each snapshot."""
    pool_usage: dict = dataclasses.field(default_factory=dict)    # leaf pool path -> [D]
    app_usage: dict = dataclasses.field(default_factory=dict)     # app -> [D]
    app_nodes: dict = dataclasses.field(default_factory=dict)     # app -> [node id per instance]
    # leaf pool path -> lowest priority of its containers other than AMs (None: not kept, the
    # eviction pass lists the pool's containers to know)
    pool_lowest_priority: Optional[dict] = None

    def add(self, app: str, pool: str, node_ids: Sequence[str], resources: np.ndarray) -> None:
        """One container of `resources` on each of `node_ids` started (or, with negative
        resources and remove(), ended): keeps the summary current without a rebuild."""
        total = len(node_ids) * np.asarray(resources, dtype=np.int64)
        self.pool_usage[pool] = self.pool_usage.get(pool, 0) + total
        self.app_usage[app] = self.app_usage.get(app, 0) + total
        self.app_nodes.setdefault(app, []).extend(node_ids)

    def remove(self, app: str, pool: str, node_ids: Sequence[str], resources: np.ndarray) -> None:
        total = len(node_ids) * np.asarray(resources, dtype=np.int64)
        self.pool_usage[pool] = self.pool_usage.get(pool, 0) - total
        self.app_usage[app] = self.app_usage.get(app, 0) - total
        held = self.app_nodes.get(app, [])
        for node_id in node_ids:
            held.remove(node_id)

    @classmethod
    def of(cls, running: Sequence[Running]) -> "RunningSummary":
        out = cls()
        for r in running:
            res = np.asarray(r.resources, dtype=np.int64)
            pool = r.pool.strip("/")
            out.pool_usage[pool] = out.pool_usage.get(pool, 0) + res
            out.app_usage[r.app] = out.app_usage.get(r.app, 0) + res
            out.app_nodes.setdefault(r.app, []).append(r.node)
        return out


@dataclasses.dataclass
class ClusterSnapshot:
    nodes: Nodes
    pools: Sequence[PoolSpec]
    running: Sequence[Running] = ()      # either every running container...
    pending: Sequence[PendingRequest] = ()
    summary: Optional[RunningSummary] = None   # ...or their summary (then `running` is ignored)
    now: float = 0.0                     # same clock as submitted_at: grace periods are measured on it
    # The running containers of one leaf pool, asked only for pools that can supply eviction
    # victims, so a leader with a million containers lists none of them up front. None: the
    # candidates are taken from `running`.
    running_in: Optional[Callable[[str], Sequence[Running]]] = None


@dataclasses.dataclass(frozen=True)
class Eviction:
    """A running container the plan stops to make room for `for_request`. Platform-caused:
    the leader releases the allocation and stops the container with `reason`; the AM
    migrates the instance without charging a retry. The grant that uses the room is in the
    same plan."""
    app: str
    instance: str
    node: str
    kind: str                            # "preempt" (same pool, lower priority) or "reclaim"
    reason: str
    for_request: str


@dataclasses.dataclass(frozen=True)
class Grant:
    request_id: str
    app: str
    instance: int
    node: str
    gpus: tuple = ()                     # the node's GPU indices it gets (nodes with topology)


class Plan:
    """A cycle's decisions. Grants are kept as chunks (request, app, first instance, node
    rows, instances per row), one per scheduling step, and expanded into one Grant per
    instance only when `grants` is read, so the hot loop creates no object per instance."""

    def __init__(self, node_ids: Sequence[str], chunks: list, pending: dict, stats: dict,
                 evictions: Optional[list] = None, reservations: Optional[dict] = None):
        self.node_ids = node_ids
        self.chunks = chunks                 # (request_id, app, first_instance, rows[], n[])
        self.pending = pending               # request_id -> why (some of) it was not placed
        self.stats = stats                   # timings and counters
        self.evictions = evictions or []     # Eviction..., to apply before the grants
        self.reservations = reservations or {}   # request_id -> [node id] held for it
        # (request_id, row) -> [GPU index tuple per instance], in instance order, for the
        # instances placed on nodes with GPU topology (what each grant's gpu_indices are)
        self.gpu_sets: dict = {}
        self.count = sum(int(n.sum()) for *_, n in chunks)
        self._grants: Optional[list] = None

    @property
    def grants(self) -> list:
        if self._grants is None:
            out = []
            sets = {key: iter(value) for key, value in self.gpu_sets.items()}
            for request_id, app, first, rows, n in self.chunks:
                for offset, row in enumerate(np.repeat(rows, n).tolist()):
                    chosen = sets.get((request_id, row))
                    gpus = tuple(next(chosen, ())) if chosen is not None else ()
                    out.append(Grant(request_id, app, first + offset, self.node_ids[row], gpus))
            self._grants = out
        return self._grants

    def by_request(self) -> dict:
        out: dict = {}
        for g in self.grants:
            out.setdefault(g.request_id, []).append(g)
        return out

    def node_counts(self) -> np.ndarray:
        """Instances granted per node row, without expanding the grants."""
        out = np.zeros(len(self.node_ids), dtype=np.int64)
        for *_, rows, n in self.chunks:
            out[rows] += n
        return out
