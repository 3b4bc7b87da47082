"""The referee of `gaia bench scheduler`: reads the grants back from etcd and checks them.

It shares no code with the scheduler (nothing from gaia_master): every rule is derived again
here from the specs as documented (proto/types.proto, README), so that a bug in Sfair cannot
vouch for itself. Only the stored records are trusted: NodeInfo, AppRecord, Allocation, Pool.

Checked, for the allocations on registered nodes of apps in the app table:
  1. no node over its capacity in any dimension (AM allocations count like any other);
  2. every constraint of the app's spec holds on the node of each non-AM allocation, and so
     does its gpu_model and, for allocations that request a GPU, the pool's gpu_models;
  3. anti-affinity: max_per_node, and spread_by with max_per_domain;
  4. no pool over its max (or max_gpus) in any dimension, each pool capping its whole subtree;
  5. DRF: each leaf pool's dominant share, and with `demand` its weighted fair share by
     hierarchical progressive filling (see `fair_allotments`).
A violation is attached to every allocation involved in it (all of the allocations on an
over-full node, all those of a pool over its max...): which of them was the one too many is
not written anywhere, so none of them counts as accepted.

Allocations on nodes that have left (their lease expired) hold nothing real: they are only
counted (`on_departed_nodes`), like those of apps no longer in the app table (`unknown_app`).
Apps belong in leaf pools: the grants of an app in an inner pool count towards maxima, but
the DRF table has rows for leaf pools only.

An app's gpu_model binds all of its instances, as the spec table says ("only nodes whose GPUs
are this model"), whether or not they request a GPU; a pool's gpu_models bind the instances
that request a GPU ("GPU models its apps may use").
"""
from __future__ import annotations

import dataclasses
import math
import operator
from collections import defaultdict
from typing import Optional

import numpy as np

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_common.resources import DIMENSIONS, as_tuple

GPU_MODEL_LABEL = "gaia.io/gpu-model"
DEFAULT_POOL = "default"
GPU_DIMS = ("gpu_share", "gpu_memory_bytes")
DRF_MIN_TOLERANCE = 0.02
PAGE = 5000          # keys per range read: 200,000 allocations would pass gRPC's 4 MiB limit
SHOWN = 20           # violations and pools format_report prints


# ---- what was granted ----

@dataclasses.dataclass
class Grants:
    """One consistent view of a cluster's grants, as stored in etcd."""
    cluster: str = ""
    revision: int = 0
    nodes: dict = dataclasses.field(default_factory=dict)        # node_id -> NodeInfo
    apps: dict = dataclasses.field(default_factory=dict)         # app_id -> AppRecord
    allocations: list = dataclasses.field(default_factory=list)  # [Allocation]
    pools: dict = dataclasses.field(default_factory=dict)        # path -> Pool (stored ones)


def read_grants(etcd, cluster: str) -> Grants:
    """Nodes, apps, allocations and pools, all read at the revision of the first read."""
    keys = Keys(cluster)
    nodes, revision = _read_prefix(etcd, keys.nodes, types_pb2.NodeInfo, None)
    apps, _ = _read_prefix(etcd, keys.apps, types_pb2.AppRecord, revision)
    allocations, _ = _read_prefix(etcd, keys.allocations, types_pb2.Allocation, revision)
    pools, _ = _read_prefix(etcd, keys.pools, types_pb2.Pool, revision)
    return Grants(cluster=cluster, revision=revision,
                  nodes={n.node_id: n for n in nodes},
                  apps={a.app_id: a for a in apps},
                  allocations=allocations,
                  pools={p.path: p for p in pools})


def _read_prefix(etcd, prefix: str, cls, revision: Optional[int]) -> tuple:
    """(decoded values, revision read at), page by page at one revision."""
    start = prefix.encode()
    end = _prefix_end(start)
    out = []
    while True:
        response = etcd.get_range_response(start, end, limit=PAGE, revision=revision)
        revision = revision or response.header.revision
        for kv in response.kvs:
            message = cls()
            message.ParseFromString(kv.value)
            out.append(message)
        if not response.more or not response.kvs:
            return out, revision
        start = response.kvs[-1].key + b"\0"    # the next key after the last one read


def _prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    s = bytearray(prefix)
    while s and s[-1] == 0xFF:
        s.pop()
    s[-1] += 1
    return bytes(s)


# ---- the report ----

@dataclasses.dataclass
class PoolShare:
    """One leaf pool's row of the DRF table. Shares are of the whole cluster's capacity."""
    path: str
    weight: float
    dominant_share: float              # max over dimensions of usage / cluster capacity
    fair_share: Optional[float]        # None without demand
    deviation: Optional[float]         # dominant_share - fair_share
    tolerance: float                   # max(0.02, dominant share of its largest container)
    within: Optional[bool]             # |deviation| <= tolerance; None without demand


@dataclasses.dataclass
class Report:
    cluster: str = ""
    revision: int = 0
    allocations: int = 0               # all allocations read
    checked: int = 0                   # those on registered nodes, of known apps
    placements: int = 0                # checked non-AM allocations
    accepted: int = 0                  # placements with no violation attached
    on_departed_nodes: int = 0
    unknown_app: int = 0               # allocations whose app_id is not in the app table
    nodes: int = 0
    apps: int = 0
    pools: int = 0                     # pools in the tree (stored, implied, `default`)
    violations: list = dataclasses.field(default_factory=list)   # [str]
    drf: list = dataclasses.field(default_factory=list)          # [PoolShare], leaf pools

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def drf_ok(self) -> bool:
        """Every leaf pool within tolerance of its fair share (True when none was computed)."""
        return all(row.within is not False for row in self.drf)


# ---- vectors: tuples over DIMENSIONS ----

ZERO = (0,) * len(DIMENSIONS)
_GPU_INDEX = tuple(DIMENSIONS.index(d) for d in GPU_DIMS)


def vector(resources) -> tuple:
    """A Resources message or a {dimension: amount} dict as a tuple over DIMENSIONS."""
    if isinstance(resources, types_pb2.Resources):
        return as_tuple(resources)
    unknown = set(resources) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown resource dimensions {sorted(unknown)}")
    return tuple(int(resources.get(d, 0)) for d in DIMENSIONS)


def _plus(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def _over(used: tuple, cap: tuple) -> list:
    """Dimensions in which `used` passes a ceiling `cap` (None in a dimension: no ceiling)."""
    return [(d, u, c) for d, u, c in zip(DIMENSIONS, used, cap) if c is not None and u > c]


def dominant_share(v: tuple, capacity: tuple) -> float:
    """Max over dimensions of v / capacity; dimensions the cluster lacks are left out."""
    return max((x / c for x, c in zip(v, capacity) if c > 0), default=0.0)


# ---- checking ----

class _App:
    """An app's placement rules, read once from its spec (protobuf fields are slow to read
    200,000 times)."""

    def __init__(self, record: types_pb2.AppRecord):
        spec = record.spec
        self.name = spec.name
        self.pool = spec.pool or DEFAULT_POOL
        self.instances = spec.instances
        self.constraints = [(c.label, c.op, list(c.values)) for c in spec.constraints]
        self.gpu_model = spec.gpu_model
        self.max_per_node = spec.max_per_node
        self.spread_by = spec.spread_by
        self.max_per_domain = getattr(spec, "max_per_domain", 0)   # newer field: may not be generated yet


class _Node:
    def __init__(self, info: types_pb2.NodeInfo):
        self.node_id = info.node_id
        self.labels = dict(info.labels)
        self.capacity = as_tuple(info.capacity)


class _Placed:
    """One checked allocation with what it is checked against."""
    __slots__ = ("index", "key", "is_am", "node", "app", "request")

    def __init__(self, index: int, alloc, node: _Node, app: _App):
        self.index = index                      # its row in `requests` arrays
        self.key = (alloc.app_id, alloc.instance_id)
        self.is_am = alloc.is_am
        self.node = node
        self.app = app
        self.request = _REQUEST(alloc.request)

    @property
    def name(self) -> str:
        return f"app {self.app.name} instance {self.key[1]} on node {self.node.node_id}"


_REQUEST = operator.attrgetter(*DIMENSIONS)    # Resources -> tuple, faster than as_tuple


class _Findings:
    """Violations, and the allocations each one is attached to."""

    def __init__(self):
        self.messages = []
        self.flagged = set()     # (app_id, instance_id)

    def add(self, message: str, placed):
        self.messages.append(message)
        self.flagged.update(p.key for p in placed)


def check(grants: Grants, demand: Optional[dict] = None) -> Report:
    """Check `grants` (see the module doc). `demand`: leaf pool path -> Resources or dict,
    all that pool would hold if nothing competed (running plus pending); a pool's demand is
    never taken below what it holds."""
    report = Report(cluster=grants.cluster, revision=grants.revision, allocations=len(grants.allocations),
                    nodes=len(grants.nodes), apps=len(grants.apps))
    nodes = {node_id: _Node(info) for node_id, info in grants.nodes.items()}
    placed = _placements(grants, nodes, report)
    requests = np.array([p.request for p in placed], dtype=np.int64).reshape(-1, len(DIMENSIONS))
    tree = _PoolTree(grants, placed, requests, demand or {})
    findings = _Findings()
    _check_capacity(nodes, placed, requests, findings)
    _check_constraints(placed, tree, findings)
    _check_spread(nodes, placed, findings)
    _check_pool_max(tree, findings)
    report.pools = len(tree.paths)
    report.violations = findings.messages
    instances = [p for p in placed if not p.is_am]
    report.placements = len(instances)
    report.accepted = sum(1 for p in instances if p.key not in findings.flagged)
    report.drf = _drf_table(nodes, tree, requests, demand)
    return report


def _placements(grants: Grants, nodes: dict, report: Report) -> list:
    apps = {app_id: _App(record) for app_id, record in grants.apps.items()}
    placed = []
    for alloc in grants.allocations:
        node = nodes.get(alloc.node_id)
        app = apps.get(alloc.app_id)
        if node is None:
            report.on_departed_nodes += 1
        elif app is None:
            report.unknown_app += 1
        else:
            placed.append(_Placed(len(placed), alloc, node, app))
    report.checked = len(placed)
    return placed


def _sums_by(placed: list, requests: np.ndarray, key) -> dict:
    """key -> total request of the allocations with that key(p), added up by numpy."""
    index = {}
    codes = np.fromiter((index.setdefault(key(p), len(index)) for p in placed), np.int64, len(placed))
    totals = np.zeros((len(index), len(DIMENSIONS)), np.int64)
    np.add.at(totals, codes, requests)
    return {k: tuple(row) for k, row in zip(index, totals.tolist())}


def _check_capacity(nodes: dict, placed: list, requests: np.ndarray, findings: _Findings):
    used = _sums_by(placed, requests, lambda p: p.node.node_id)
    over = {node_id: _over(u, nodes[node_id].capacity) for node_id, u in used.items()}
    over = {node_id: dims for node_id, dims in over.items() if dims}
    here = defaultdict(list)
    for p in placed:
        if p.node.node_id in over:
            here[p.node.node_id].append(p)
    for node_id, dims in over.items():
        for dim, u, c in dims:
            findings.add(f"node {node_id}: {dim} {u} granted > capacity {c}", here[node_id])


def _check_constraints(placed: list, tree: "_PoolTree", findings: _Findings):
    for p in placed:
        if p.is_am:    # the AM is not an instance: the spec's placement rules are not its
            continue
        labels, app = p.node.labels, p.app
        for label, op, values in app.constraints:
            if not constraint_holds(label, op, values, labels):
                have = labels.get(label, "(none)")
                findings.add(f"{p.name}: constraint {label} {op} {values} fails ({label}={have})", [p])
        model = labels.get(GPU_MODEL_LABEL, "")
        if app.gpu_model and model != app.gpu_model:
            findings.add(f"{p.name}: gpu_model {app.gpu_model} wanted, node has {model or '(none)'}", [p])
        allowed = tree.gpu_models.get(app.pool, ())
        if allowed and any(p.request[i] for i in _GPU_INDEX) and model not in allowed:
            findings.add(f"{p.name}: pool {app.pool} allows GPU models {list(allowed)}, "
                         f"node has {model or '(none)'}", [p])


def constraint_holds(label: str, op: str, values: list, labels) -> bool:
    """`label op values` on a node's labels; != and not_in hold on nodes lacking the label."""
    present = label in labels
    value = labels.get(label)
    if op == "=":
        return present and value in values[:1]
    if op == "!=":
        return not present or value not in values[:1]
    if op == "in":
        return present and value in values
    if op == "not_in":
        return not present or value not in values
    if op == "exists":
        return present
    if op == "not_exists":
        return not present
    return False                 # an op we do not know cannot be shown to hold


def _check_spread(nodes: dict, placed: list, findings: _Findings):
    per_node, per_domain = defaultdict(list), defaultdict(list)
    for p in placed:
        app = p.app
        if p.is_am:
            continue
        if app.max_per_node > 0:
            per_node[(p.key[0], p.node.node_id)].append(p)
        if app.spread_by:
            value = p.node.labels.get(app.spread_by)
            if value is None:    # a node outside every domain would defeat the spreading
                findings.add(f"{p.name}: spread_by {app.spread_by} but the node has no such label", [p])
            else:
                per_domain[(p.key[0], value)].append(p)
    for (_, node_id), group in per_node.items():
        app = group[0].app
        if len(group) > app.max_per_node:
            findings.add(f"app {app.name}: {len(group)} instances on node {node_id} > max_per_node "
                         f"{app.max_per_node}", group)
    domains = _DomainCounter(nodes)
    for (_, value), group in per_domain.items():
        app = group[0].app
        limit = max_per_domain(app, domains.count(app.spread_by))
        if len(group) > limit:
            findings.add(f"app {app.name}: {len(group)} instances in {app.spread_by}={value} > "
                         f"max_per_domain {limit}", group)


def max_per_domain(spec, domains: int) -> int:
    """The spec's max_per_domain, or an even spread: ceil(instances / distinct label values)."""
    explicit = getattr(spec, "max_per_domain", 0)   # newer field: older generated code lacks it
    if explicit > 0:
        return explicit
    return math.ceil(max(spec.instances, 1) / domains) if domains else 0


class _DomainCounter:
    """Distinct values of a label among the registered nodes, counted once per label."""

    def __init__(self, nodes: dict):
        self.nodes = nodes
        self.counts = {}

    def count(self, label: str) -> int:
        if label not in self.counts:
            self.counts[label] = len({n.labels[label] for n in self.nodes.values() if label in n.labels})
        return self.counts[label]


# ---- pools ----

def _parent(path: str) -> str:
    return path.rpartition("/")[0]       # "" is the implicit root


class _PoolTree:
    """Every pool in play: stored ones, `default`, those apps or `demand` name, their parents."""

    def __init__(self, grants: Grants, placed: list, requests: np.ndarray, demand: dict):
        named = set(grants.pools) | {DEFAULT_POOL} | {p.app.pool for p in placed} | set(demand)
        paths = set()
        for path in named:
            while path and path not in paths:
                paths.add(path)
                path = _parent(path)
        self.paths = sorted(paths, key=lambda p: (p.count("/"), p))     # parents first
        self.children = defaultdict(list)                                # "" = root
        for path in self.paths:
            self.children[_parent(path)].append(path)
        stored = grants.pools
        self.weight = {p: (stored[p].weight if p in stored and stored[p].weight > 0 else 1.0) for p in self.paths}
        self.minimum = {p: as_tuple(stored[p].min) if p in stored else ZERO for p in self.paths}
        self.ceiling = {p: _ceiling(stored.get(p)) for p in self.paths}
        self.gpu_models = self._effective_gpu_models(stored)
        self.placed = defaultdict(list)                                  # own allocations
        for p in placed:
            self.placed[p.app.pool].append(p)
        own = _sums_by(placed, requests, lambda p: p.app.pool)
        self.usage = {p: own.get(p, ZERO) for p in self.paths}
        self.subtree_usage = self._subtree_sums(self.usage)

    def _effective_gpu_models(self, stored: dict) -> dict:
        """A pool's own list, within its parent's; an empty list inherits the parent's."""
        out = {"": ()}
        for path in self.paths:
            own = tuple(stored[path].gpu_models) if path in stored else ()
            inherited = out[_parent(path)]
            out[path] = tuple(m for m in own if m in inherited) if own and inherited else (own or inherited)
        return out

    def _subtree_sums(self, own: dict) -> dict:
        total = dict(own)
        for path in reversed(self.paths):                 # children before their parents
            parent = _parent(path)
            if parent:
                total[parent] = _plus(total[parent], total[path])
        return total

    def subtree(self, path: str) -> list:
        out, todo = [], [path]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(self.children.get(p, ()))
        return out

    def leaves(self) -> list:
        return [p for p in self.paths if not self.children.get(p)]


def _ceiling(pool) -> tuple:
    """A pool's max per dimension, None where unbounded; max_gpus caps gpu_share (100 a GPU)."""
    if pool is None:
        return (None,) * len(DIMENSIONS)
    cap = [v or None for v in as_tuple(pool.max)]
    if pool.max_gpus > 0:
        i = DIMENSIONS.index("gpu_share")
        cap[i] = min(c for c in (cap[i], 100 * pool.max_gpus) if c is not None)
    return tuple(cap)


def _sum(vectors) -> tuple:
    out = ZERO
    for v in vectors:
        out = _plus(out, v)
    return out


def _check_pool_max(tree: _PoolTree, findings: _Findings):
    for path in tree.paths:
        for dim, used, cap in _over(tree.subtree_usage[path], tree.ceiling[path]):
            involved = [p for q in tree.subtree(path) for p in tree.placed[q]]
            findings.add(f"pool {path}: {dim} {used} granted > max {cap}", involved)


# ---- DRF ----

def _drf_table(nodes: dict, tree: _PoolTree, requests: np.ndarray, demand: Optional[dict]) -> list:
    capacity = _sum(n.capacity for n in nodes.values())
    scale = np.array([1.0 / c if c > 0 else 0.0 for c in capacity])
    container_share = (requests * scale).max(axis=1, initial=0.0)   # each allocation's dominant share
    fair = None
    if demand is not None:
        wanted = {path: vector(amount) for path, amount in demand.items()}
        fair = fair_allotments(tree, wanted, capacity)
    rows = []
    for path in tree.leaves():
        share = dominant_share(tree.usage[path], capacity)
        mine = [p.index for p in tree.placed[path]]
        largest = float(container_share[mine].max()) if mine else 0.0
        tolerance = max(DRF_MIN_TOLERANCE, largest)
        fair_share = deviation = within = None
        if fair is not None:
            fair_share = float(dominant_share(fair[path], capacity))
            deviation = share - fair_share
            within = bool(abs(deviation) <= tolerance)
        rows.append(PoolShare(path, tree.weight[path], share, fair_share, deviation, tolerance, within))
    return rows


def fair_allotments(tree: _PoolTree, demand: dict, capacity: tuple) -> dict:
    """Each pool's weighted DRF allotment (path -> vector of floats), from the root down.

    A pool's demand is what it asked (leaves: at least what it holds) or, for a parent, its
    children's summed, then capped by its max. The root's allotment is the cluster; each
    parent's is split among its children by `progressive_fill`. As in the DRF paper, demand is
    divisible: a pool gets a fraction of its demand vector."""
    wanted = {}
    for path in reversed(tree.paths):                     # children before their parents
        kids = tree.children.get(path)
        if kids:
            mine = np.sum([wanted[k] for k in kids], axis=0)
        else:
            mine = np.maximum(np.array(demand.get(path, ZERO), float), tree.usage[path])
        cap = np.array([np.inf if c is None else c for c in tree.ceiling[path]])
        wanted[path] = np.minimum(mine, cap)
    scale = np.array([1.0 / c if c > 0 else 0.0 for c in capacity])
    allot = {"": np.array(capacity, float)}
    for path in [""] + tree.paths:                        # parents first
        kids = tree.children.get(path)
        if not kids:
            continue
        fractions = progressive_fill(allot[path], np.array([wanted[k] for k in kids]),
                                     np.array([tree.weight[k] for k in kids]),
                                     np.array([tree.minimum[k] for k in kids], float), scale)
        for k, f in zip(kids, fractions):
            allot[k] = f * wanted[k]
    return allot


def progressive_fill(capacity, demand, weight, minimum, scale) -> np.ndarray:
    """Weighted DRF among siblings: the fraction of its demand each gets of `capacity`.

    Every sibling starts at its guarantee (the largest fraction of its demand within its min
    in the dimensions the min sets; all scaled down alike if they overcommit). Then a level
    L rises and each unfrozen sibling holds dominant share L x weight, i.e. a fraction
    L x weight / (dominant share of its demand), until its demand is met. When a dimension
    runs out, every sibling that needs it freezes; the others go on rising (the DRF paper's
    progressive filling)."""
    share = (demand * scale).max(axis=1)                  # dominant share of each demand
    start = _guaranteed_fractions(capacity, demand, minimum)
    # no share to raise: all of a demand that fits (nothing), or none of it (only dimensions
    # the cluster lacks)
    frozen = share <= 0
    fraction = np.where(frozen, (demand <= capacity).all(axis=1).astype(float), start)
    level = 0.0
    while not frozen.all():
        live = ~frozen

        def at(lvl):
            return np.where(live, np.clip(np.maximum(start, lvl * weight / np.where(live, share, 1)), 0, 1),
                            fraction)

        top = float((share[live] / weight[live]).max())   # every live sibling's demand met
        if _fits(at(top) @ demand, capacity):
            return at(top)
        level, over = _last_fitting_level(at, demand, capacity, level, top)
        fraction = at(level)
        frozen = frozen | (live & (demand[:, over] > 0).any(axis=1)) | (fraction >= 1)
    return fraction


def _guaranteed_fractions(capacity, demand, minimum) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((minimum > 0) & (demand > 0), minimum / demand, np.inf).min(axis=1)
    start = np.where(np.isfinite(ratio), np.minimum(ratio, 1.0), 0.0)
    used = start @ demand
    with np.errstate(divide="ignore", invalid="ignore"):
        fit = np.where(used > capacity, capacity / used, 1.0).min(initial=1.0)
    return start * fit


def _fits(used, capacity) -> bool:
    return bool(np.all(used <= capacity * (1 + 1e-12) + 1e-6))


def _last_fitting_level(at, demand, capacity, lo: float, hi: float) -> tuple:
    """Bisect for the highest level that fits; returns it and the dimensions that run out."""
    for _ in range(100):
        if hi - lo <= 1e-13 * hi:
            break
        mid = (lo + hi) / 2
        if _fits(at(mid) @ demand, capacity):
            lo = mid
        else:
            hi = mid
    over = at(hi) @ demand > capacity * (1 + 1e-12) + 1e-6
    return lo, over


# ---- printing ----

def format_report(report: Report) -> str:
    lines = [
        f"grants of cluster {report.cluster} at revision {report.revision}: {report.allocations} allocations, "
        f"{report.nodes} nodes, {report.apps} apps, {report.pools} pools",
        f"  checked {report.checked}; on departed nodes {report.on_departed_nodes}; "
        f"of unknown apps {report.unknown_app}",
        f"  accepted {report.accepted} of {report.placements} placements; "
        f"{len(report.violations)} violations{'' if report.violations else ' (ok)'}",
    ]
    lines += [f"    {v}" for v in report.violations[:SHOWN]]
    if len(report.violations) > SHOWN:
        lines.append(f"    ... and {len(report.violations) - SHOWN} more")
    lines += _format_drf(report.drf)
    return "\n".join(lines)


def _format_drf(rows: list) -> list:
    if not rows:
        return []
    with_fair = [r for r in rows if r.fair_share is not None]
    outside = sum(1 for r in with_fair if not r.within)
    head = f"  DRF over {len(rows)} leaf pools" + (f": {outside} outside tolerance" if with_fair else "")
    # the rows that matter most first: largest deviation, else largest share
    order = sorted(rows, key=lambda r: -abs(r.deviation) if r.deviation is not None else -r.dominant_share)
    lines = [head, f"    {'pool':<32} {'weight':>7} {'share':>7} {'fair':>7} {'dev':>7} {'tol':>6}  ok"]
    for r in order[:SHOWN]:
        fair = "-" if r.fair_share is None else f"{r.fair_share:.4f}"
        dev = "-" if r.deviation is None else f"{r.deviation:+.4f}"
        ok = "-" if r.within is None else ("yes" if r.within else "NO")
        lines.append(f"    {r.path:<32} {r.weight:>7g} {r.dominant_share:>7.4f} {fair:>7} {dev:>7} "
                     f"{r.tolerance:>6.3f}  {ok}")
    if len(rows) > SHOWN:
        lines.append(f"    ... and {len(rows) - SHOWN} more pools")
    return lines
