"""Which of a node's GPUs an instance gets, chosen from the node's PCIe / NVLink tree.

Pure functions over one node's GPUs (numpy, no etcd), testable on their own; the gpu-slots
filter and gpu-packing scorer (plugins/gpu_slots.py) answer for all nodes through GpuTable.

Topology, as nodes report it: each GPU has `index`, `model`, `memory_bytes` and `link_path`,
its ancestors from the root as "LEVEL:id" joined by "/", e.g. "SYS:0/PHB:1/PXB:0/PIX:1"
(ids need only be unique among siblings). Levels are NVML's, cheapest first: NV (an NVLink
group; "NV4" and the like count the same), PIX (one PCIe switch), PXB (several switches),
PHB (one host bridge), NODE (one NUMA node), SYS (across sockets). Two GPUs cost the cheapest
level they share, which on a well-formed path is their deepest common ancestor; GPUs that
share nothing cost as much as SYS.

Request shapes (gpu_share is percent of one GPU): a multiple of 100 asks for k = share // 100
whole GPUs, entirely free ones with at least ceil(memory / k) bytes each; 1..99 is a fraction
that shares one GPU, where both the share and the memory must fit; anything else is invalid.

API
  Gpu(index, model, memory_bytes, link_path)
  NodeGpus(gpus, used_share=None, used_memory=None)    .cost [G, G] int8, .free, .copy()
  whole_gpus(share) -> int             k for whole GPUs, 0 for a fraction; ValueError otherwise
  choose_whole(node, k, memory=0) -> tuple[int, ...] | None   device indices, sorted
  choose_fraction(node, share, memory=0) -> int | None        device index
  instances_that_fit(node, share, memory=0) -> int
  assign(node, share, memory, count) -> list[tuple[int, ...]]  marks them used, in order
  hold(node, share, memory, sets)      marks sets already granted as used (from allocations)
  release(node, share, memory, sets)   the exact inverse of assign / hold
  GpuTable(per_node)   every node's GPUs as padded [N, G] arrays: the cycle's working copy

Wiring, on the scheduler's side:
  * Nodes.gpus: list[Optional[NodeGpus]] aligned with Nodes.ids (None: the node reported no
    GPU topology). Used share / memory per GPU come from the granted allocations: hold(node,
    share, memory, [allocation's GPU indices]) for each, so an Allocation (and Running, for
    evictions to release) must carry its GPU indices.
  * ClusterState: `self.gpus = GpuTable(nodes.gpus)` (it copies: the snapshot stays as is).
    The gpu-slots plugin builds that itself on a state that lacks it.
  * Where an instance with gpu_share > 0 is placed on row r (ClusterState._apply): for a
    node with topology, `sets = assign(state.gpus.node(r), share, memory, n)`, kept with the
    placement (the grant carries its GPU indices to the node); unplace calls
    `release(state.gpus.node(r), share, memory, sets)`. Rows are logged as changed already,
    so the equivalence caches re-ask the filter there.
  * Register GpuSlots as a count filter (slots = min with Fits, and in explain_filters after
    fits) and GpuPacking as a scorer with an operator weight.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Optional, Sequence

import numpy as np

LEVELS = ("NV", "PIX", "PXB", "PHB", "NODE", "SYS")     # cheapest first
LEVEL_COST = {name: i + 1 for i, name in enumerate(LEVELS)}
LEVEL_COSTS = np.arange(1, len(LEVELS) + 1)
COST_FAR = LEVEL_COST["SYS"]                            # also: no common ancestor
FULL = 100                                              # gpu_share of one whole GPU
MANY = np.int64(1 << 30)                                # "no opinion" for a filter
EXACT_LIMIT = 20_000        # combinations enumerated exactly (C(16, 8) = 12,870 fits)


@dataclasses.dataclass(frozen=True)
class Gpu:
    index: int                      # device index on the node (what the container is given)
    model: str
    memory_bytes: int
    link_path: str = ""             # "SYS:0/PHB:1/PXB:0/PIX:1"


def _level(token: str) -> int:
    name = token.split(":", 1)[0].strip().upper()
    if name.startswith("NV") and name[2:].isdigit():
        return LEVEL_COST["NV"]
    if name not in LEVEL_COST:
        raise ValueError(f"unknown GPU link level {token!r} (known: {', '.join(LEVELS)})")
    return LEVEL_COST[name]


@functools.lru_cache(maxsize=256)
def link_costs(paths: tuple) -> np.ndarray:
    """[G, G] cost of the cheapest level each pair shares (0 on the diagonal). Cached and
    read-only: a fleet has few distinct topologies, so 10,000 nodes share a handful."""
    ancestors = []
    for path in paths:
        tokens = [t for t in path.split("/") if t]
        # an ancestor is its whole prefix, so ids need only be unique among siblings
        ancestors.append({tuple(tokens[:i + 1]): _level(t) for i, t in enumerate(tokens)})
    g = len(paths)
    cost = np.full((g, g), COST_FAR, dtype=np.int8)
    for a, b in itertools.combinations(range(g), 2):
        shared = ancestors[a].keys() & ancestors[b].keys()
        if shared:
            cost[a, b] = cost[b, a] = min(ancestors[a][s] for s in shared)
    np.fill_diagonal(cost, 0)
    cost.flags.writeable = False
    return cost


class NodeGpus:
    """One node's GPUs and what is used on each: used_share[g] in 0..100 and used_memory[g]
    in bytes, aligned with `gpus`. Numpy int64 arrays are kept as given, not copied (so a
    GpuTable can hand out views of its rows); copy() gives an independent one."""

    def __init__(self, gpus: Sequence[Gpu], used_share=None, used_memory=None):
        self.gpus = tuple(gpus)
        g = len(self.gpus)
        self.index = np.array([x.index for x in self.gpus], dtype=np.int64)
        self.position = {int(i): p for p, i in enumerate(self.index)}
        if len(self.position) != g:
            raise ValueError(f"duplicate GPU index in {self.index.tolist()}")
        self.memory = np.array([x.memory_bytes for x in self.gpus], dtype=np.int64)
        self.cost = link_costs(tuple(x.link_path for x in self.gpus))
        self.used_share = _used(used_share, g)
        self.used_memory = _used(used_memory, g)

    def __len__(self) -> int:
        return len(self.gpus)

    @property
    def free(self) -> np.ndarray:
        """GPUs nobody holds any part of: the only ones a whole-GPU request takes."""
        return (self.used_share == 0) & (self.used_memory == 0)

    def copy(self) -> "NodeGpus":
        return NodeGpus(self.gpus, self.used_share.copy(), self.used_memory.copy())


def _used(values, g: int) -> np.ndarray:
    out = np.zeros(g, dtype=np.int64) if values is None else np.asarray(values, dtype=np.int64)
    if out.shape != (g,):
        raise ValueError(f"expected {g} used values, got shape {out.shape}")
    return out


def whole_gpus(share: int) -> int:
    """k for a request of k whole GPUs, 0 for a fraction of one; ValueError otherwise."""
    share = int(share)
    if share >= FULL and share % FULL == 0:
        return share // FULL
    if 0 < share < FULL:
        return 0
    raise ValueError(f"gpu_share {share} is neither whole GPUs (a multiple of 100) nor a fraction (1..99)")


# ---- per-GPU answers over arrays of any leading shape ([G] for a node, [N, G] for a table) ----

def _whole_ok(memory_cap, used_share, used_memory, k: int, memory: int) -> np.ndarray:
    per_gpu = -(-int(memory) // k)
    return (used_share == 0) & (used_memory == 0) & (memory_cap >= per_gpu)


def _fraction_counts(memory_cap, used_share, used_memory, share: int, memory: int) -> np.ndarray:
    by_share = (FULL - used_share) // share
    if memory <= 0:
        return np.maximum(by_share, 0)
    return np.maximum(np.minimum(by_share, (memory_cap - used_memory) // memory), 0)


def _instances(memory_cap, used_share, used_memory, share: int, memory: int) -> np.ndarray:
    k = whole_gpus(share)
    if k:
        return _whole_ok(memory_cap, used_share, used_memory, k, memory).sum(axis=-1) // k
    return _fraction_counts(memory_cap, used_share, used_memory, share, memory).sum(axis=-1)


def instances_that_fit(node: NodeGpus, share: int, memory: int = 0) -> int:
    """Instances of this shape the node's GPUs take: free GPUs // k for whole GPUs (whatever
    their links), the sum over GPUs of what fits on each for a fraction."""
    return int(_instances(node.memory, node.used_share, node.used_memory, share, memory))


# ---- choosing ----

def _crowd(node: NodeGpus) -> np.ndarray:
    """[G, L]: entirely free GPUs within each level of each GPU (itself included when free).
    Taking GPUs where this is small keeps the remaining free ones together."""
    return ((node.cost[:, :, None] <= LEVEL_COSTS) & node.free[None, :, None]).sum(axis=1)


def _best_set(node: NodeGpus, sets: np.ndarray) -> np.ndarray:
    """The best row of sets [M, k] (GPU positions): lowest maximum pair cost, then sum, then
    the least crowded (closest level first), then the lowest device indices. Narrowed key by
    key, so the fine keys are computed on the few sets still tied."""
    pair = node.cost[sets[:, :, None], sets[:, None, :]]
    worst = pair.max(axis=(1, 2))
    tied = worst == worst.min()
    sets, pair = sets[tied], pair[tied]
    total = pair.sum(axis=(1, 2), dtype=np.int64)
    sets = sets[total == total.min()]
    crowd = _crowd(node)[sets].sum(axis=1)
    ids = np.sort(node.index[sets], axis=1)
    keys = ([ids[:, j] for j in reversed(range(sets.shape[1]))]
            + [crowd[:, level] for level in reversed(range(len(LEVELS)))])    # lexsort: last key first
    return sets[np.lexsort(keys)[0]]


def _candidate_sets(node: NodeGpus, ok: np.ndarray, k: int) -> np.ndarray:
    m = math.comb(ok.size, k)
    if m <= EXACT_LIMIT:
        flat = itertools.chain.from_iterable(itertools.combinations(ok.tolist(), k))
        return np.fromiter(flat, dtype=np.intp, count=m * k).reshape(m, k)
    # Too many to enumerate: each candidate with its k-1 nearest (then least crowded), which
    # on a tree is the cheapest subtree holding k free GPUs around it.
    crowd = _crowd(node)
    keys = [node.index[ok]] + [crowd[ok, level] for level in reversed(range(len(LEVELS)))]
    return np.array([ok[np.lexsort(keys + [node.cost[seed, ok]])[:k]] for seed in ok], dtype=np.intp)


def choose_whole(node: NodeGpus, k: int, memory: int = 0) -> Optional[tuple]:
    """k entirely free GPUs (each with ceil(memory / k) bytes) that talk the cheapest,
    as sorted device indices; None when fewer than k are free. Exact up to EXACT_LIMIT
    combinations (any 16-GPU node), nearest-neighbour sets beyond."""
    if k < 1:
        raise ValueError(f"whole-GPU request of {k} GPUs")
    ok = np.flatnonzero(_whole_ok(node.memory, node.used_share, node.used_memory, k, memory))
    if ok.size < k:
        return None
    best = _best_set(node, _candidate_sets(node, ok, k))
    return tuple(sorted(node.index[best].tolist()))


def choose_fraction(node: NodeGpus, share: int, memory: int = 0) -> Optional[int]:
    """The GPU for a fraction: the partly used one with the least room that still fits it
    (share left, then memory left), else a fresh one in the most fragmented subtree, so
    whole GPUs and well-linked free groups stay free for whole-GPU requests."""
    if whole_gpus(share):
        raise ValueError(f"gpu_share {share} asks for whole GPUs: use choose_whole")
    fits = _fraction_counts(node.memory, node.used_share, node.used_memory, share, memory) > 0
    partly = np.flatnonzero(fits & ~node.free)
    if partly.size:
        share_left = FULL - node.used_share[partly]
        memory_left = node.memory[partly] - node.used_memory[partly]
        best = partly[np.lexsort((node.index[partly], memory_left, share_left))[0]]
    else:
        fresh = np.flatnonzero(fits)
        if not fresh.size:
            return None
        best = _best_set(node, fresh[:, None])[0]
    return int(node.index[best])


# ---- holding ----

def _hold(node: NodeGpus, indices: tuple, share: int, memory: int, sign: int) -> None:
    pos = [node.position[i] for i in indices]
    if whole_gpus(share):
        # a whole GPU is its holder's, memory included; in place: the arrays may be views
        node.used_share[pos] = FULL if sign > 0 else 0
        node.used_memory[pos] = node.memory[pos] if sign > 0 else 0
    else:
        node.used_share[pos] += sign * share
        node.used_memory[pos] += sign * memory


def assign(node: NodeGpus, share: int, memory: int, count: int) -> list:
    """GPU index sets for `count` instances, chosen one after the other and marked used.
    ValueError (with nothing held) when fewer fit: the filter said they would."""
    k = whole_gpus(share)
    out: list = []
    for _ in range(count):
        if k:
            chosen = choose_whole(node, k, memory)
        else:
            one = choose_fraction(node, share, memory)
            chosen = None if one is None else (one,)
        if chosen is None:
            release(node, share, memory, out)
            raise ValueError(f"only {len(out)} of {count} instances of gpu_share {share} "
                             f"(memory {memory}) fit on these GPUs")
        _hold(node, chosen, share, memory, +1)
        out.append(chosen)
    return out


def hold(node: NodeGpus, share: int, memory: int, sets: Sequence[tuple]) -> None:
    """Mark GPU sets already granted as used (building a node's NodeGpus from its running
    allocations: each one's GPU indices, gpu_share and gpu_memory_bytes)."""
    for chosen in sets:
        _hold(node, tuple(chosen), share, memory, +1)


def release(node: NodeGpus, share: int, memory: int, sets: Sequence[tuple]) -> None:
    """Undo assign or hold (or end those instances, evictions included): sets as given."""
    for chosen in reversed(list(sets)):
        _hold(node, tuple(chosen), share, memory, -1)


class GpuTable:
    """Every node's GPUs as padded [N, G] arrays, so a filter or scorer answers for all nodes
    in a few vector operations. It is the cycle's working copy (the NodeGpus it is built
    from are left as they are); node(row) hands out a NodeGpus whose used arrays are views of
    that row, so assign / release through it are seen here. Padding is a full, memoryless GPU,
    so it never fits. Links are kept per distinct topology (a fleet has a handful):
    topology[row] (-1: none reported) indexes `near`, each [G, G * L] with near[h, g * L + l]
    = 1 where GPUs g and h are linked at level l or cheaper, so "free GPUs within each level
    of each GPU" is one matrix product per topology."""

    def __init__(self, per_node: Sequence[Optional[NodeGpus]]):
        self._source = list(per_node)
        self._views: dict = {}
        n = len(self._source)
        width = max((len(ng) for ng in self._source if ng is not None), default=0)
        self.has_gpus = np.array([ng is not None for ng in self._source], dtype=bool)
        self.memory = np.zeros((n, width), dtype=np.int64)
        self.used_share = np.full((n, width), FULL, dtype=np.int64)
        self.used_memory = np.zeros((n, width), dtype=np.int64)
        self.topology = np.full(n, -1, dtype=np.int32)
        self.near: list = []
        known: dict = {}
        for row, ng in enumerate(self._source):
            if ng is not None:
                g = len(ng)
                self.memory[row, :g] = ng.memory
                self.used_share[row, :g] = ng.used_share
                self.used_memory[row, :g] = ng.used_memory
                self.topology[row] = known.get(id(ng.cost), -1)
                if self.topology[row] < 0:       # link_costs shares one array per topology
                    self.topology[row] = known[id(ng.cost)] = len(self.near)
                    self.near.append(_near(ng.cost, width))

    def __len__(self) -> int:
        return len(self._source)

    def node(self, row: int) -> Optional[NodeGpus]:
        view = self._views.get(row)
        if view is None and self._source[row] is not None:
            g = len(self._source[row])
            view = NodeGpus(self._source[row].gpus, self.used_share[row, :g], self.used_memory[row, :g])
            self._views[row] = view
        return view

    def instances(self, share: int, memory: int, rows: Optional[np.ndarray] = None) -> np.ndarray:
        """instances_that_fit for each row (every node when rows is None); MANY where the node
        reported no topology, leaving the aggregate Fits filter to judge it."""
        sel = slice(None) if rows is None else rows
        counts = _instances(self.memory[sel], self.used_share[sel], self.used_memory[sel], share, memory)
        return np.where(self.has_gpus[sel], counts, MANY).astype(np.int64)

    def free_within(self, rows: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """[R, G, L]: GPUs marked in ok [R, G] within each level of each GPU of each row."""
        out = np.zeros((len(rows), ok.shape[1], len(LEVELS)), dtype=np.int64)
        topology = self.topology[rows]
        for t in np.unique(topology[topology >= 0]):
            sel = topology == t
            out[sel] = (ok[sel].astype(np.float32) @ self.near[t]).reshape(-1, ok.shape[1], len(LEVELS))
        return out


def _near(cost: np.ndarray, width: int) -> np.ndarray:
    padded = np.full((width, width), COST_FAR + 1, dtype=np.int8)     # padding links to nothing
    padded[:len(cost), :len(cost)] = cost
    return (padded.T[:, :, None] <= LEVEL_COSTS).reshape(width, width * len(LEVELS)).astype(np.float32)
