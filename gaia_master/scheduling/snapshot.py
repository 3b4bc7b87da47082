"""The leader's state as Sfair's input: nodes as arrays, pools, usage sums and pending asks.

Node arrays (capacity, labels) are rebuilt only when the set of nodes changes; what is
allocated comes from the table's incremental index each cycle. Each pending request keeps
a `Wanted` beside it: what the applier needs to turn its grants into Allocations, and to
refuse them if the app moved on meanwhile.
"""
from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from gaia_common.pb import types_pb2
from gaia_master.app_table import TERMINAL
from gaia_master.scheduling.index import as_vector
from gaia_master.sfair import ClusterSnapshot, LabelConstraint, Nodes, PendingRequest, PoolSpec, Spread
from gaia_master.sfair.gpu_topology import Gpu, NodeGpus, hold
from gaia_master.sfair.model import UNLIMITED

log = logging.getLogger(__name__)
DRIVER_LABEL = "gaia.io/driver."      # + name: a label every node offering that driver carries
GPU_MODEL_LABEL = "gaia.io/gpu-model"
DRAINING_LABEL = "gaia.io/draining"   # set on drained nodes: every request shuns them
NOT_DRAINING = LabelConstraint(DRAINING_LABEL, "not_exists")
AM_DRIVER = "process"


@dataclasses.dataclass
class Wanted:
    """One request of the snapshot as the applier sees it."""
    app_id: str
    attempt: int                      # AM attempt that asked (instances) or to place (AM)
    is_am: bool
    first_instance: int
    count: int
    shape: types_pb2.Resources
    ask: object                       # the RequestBook entry, dropped once satisfied
    gang: bool = False
    move_ids: tuple = ()              # a move: the instances re-placed, in order


class NodeArrays:
    """Nodes as Sfair's arrays, cached until the node set changes."""

    def __init__(self):
        self._version = None
        self._nodes = None
        self.infos: dict = {}
        self.gpu_lists: list = []            # per row: (Gpu, ...) the node reported, or None

    def get(self, node_view, draining=frozenset()) -> Nodes:
        version = (node_view.node_version, frozenset(draining))
        if version != self._version:
            infos = sorted(node_view.node_list(), key=lambda n: n.node_id)
            self.infos = {n.node_id: n for n in infos}
            self._nodes = Nodes([n.node_id for n in infos],
                                np.array([as_vector(n.capacity) for n in infos], dtype=np.int64),
                                labels=[_labels(n, n.node_id in draining) for n in infos],
                                gpu_models=[_gpu_model(n) for n in infos])
            self.gpu_lists = [_gpu_list(n) for n in infos]
            self._version = version
        return self._nodes

    def node_gpus(self, index) -> list:
        """Optional[NodeGpus] per row, fresh each cycle, with what the granted allocations
        hold on each GPU (from the index); None for every row when no node reported GPUs."""
        if not any(g is not None for g in self.gpu_lists):
            return None
        out = []
        for node_id, gpus in zip(self._nodes.ids, self.gpu_lists):
            if gpus is None:
                out.append(None)
                continue
            node = NodeGpus(gpus)
            for share, memory, indices in index.gpu_holdings(node_id):
                known = tuple(i for i in indices if i in node.position)   # a GPU that left: skip
                if known and share > 0:
                    try:
                        hold(node, share, memory, [known])
                    except ValueError:
                        pass                 # an invalid share was never granted GPUs by Sfair
            out.append(node)
        return out


def _gpu_list(info):
    """The node's GPUs as Sfair's Gpu values; None when it reported none, or a topology the
    scheduler cannot read (then its GPUs are judged by their sum alone, as before)."""
    if not info.gpus:
        return None
    gpus = tuple(Gpu(int(g.index), g.model, int(g.memory_bytes), g.link_path) for g in info.gpus)
    try:
        NodeGpus(gpus)
    except ValueError as e:
        log.warning("node %s: GPU topology ignored: %s", info.node_id, e)
        return None
    return gpus


def _labels(info, draining: bool = False) -> dict:
    labels = dict(info.labels)
    labels.update((DRIVER_LABEL + d, "true") for d in info.drivers)
    if draining:
        labels[DRAINING_LABEL] = "true"
    return labels


def _gpu_model(info) -> str:
    return info.labels.get(GPU_MODEL_LABEL) or (info.gpus[0].model if info.gpus else "")


def pool_specs(pools: list) -> list:
    """Stored Pool messages as Sfair's PoolSpecs (0 in a max: no ceiling in that dimension)."""
    out = []
    for p in pools:
        guaranteed = as_vector(p.min)
        ceiling = as_vector(p.max)
        ceiling = np.where(ceiling > 0, ceiling, UNLIMITED)
        if p.max_gpus:
            share = list(types_pb2.Resources.DESCRIPTOR.fields_by_name).index("gpu_share")
            ceiling[share] = min(int(ceiling[share]), 100 * p.max_gpus)
        out.append(PoolSpec(p.path, p.weight or 1.0, guaranteed if guaranteed.any() else None,
                            ceiling, tuple(p.gpu_models)))
    return out


_NEVER = float("inf")


class RequestCache:
    """Each instance ask's requests, kept from cycle to cycle while nothing they are made of
    changed: the ask (the book makes a new one on every ask), the app's record (replaced, never
    changed in place, on every change: next_instance, state, AM attempt), what the app holds,
    and the node set (a spread's per-domain limit). Rebuilding them took about 30 µs a request,
    over a second of every cycle at 40,000 single-instance apps."""

    def __init__(self):
        self._entries: dict = {}          # app_id -> (ask, record, held, nodes, [(PendingRequest, Wanted)])

    def requests(self, table, nodes, asks, book, pending: list, wanted: dict) -> None:
        kept = {}
        for ask in asks:
            record = table.by_id(ask.app_id)
            held = table.index.app_held.get(ask.app_id, 0)
            entry = self._entries.get(ask.app_id)
            if entry is None or not (entry[0] is ask and entry[1] is record and entry[2] == held
                                     and entry[3] is nodes):
                mine, theirs = [], {}
                _instance_requests(table, nodes, ask, book, mine, theirs)
                entry = (ask, record, held, nodes, [(r, theirs[r.request_id]) for r in mine])
            for request, w in entry[4]:
                pending.append(request)
                wanted[request.request_id] = w
            if entry[4]:
                kept[ask.app_id] = entry
        self._entries = kept


def build(table, node_view, pools: list, book, arrays: NodeArrays, now: float,
          draining=frozenset(), requests: RequestCache = None) -> tuple:
    """(ClusterSnapshot, {request_id: Wanted}, index version) under the table's lock.
    `draining`: node ids that take no new work."""
    instance_asks, am_asks, move_asks = book.asks()
    with table.lock:
        nodes = arrays.get(node_view, draining)
        nodes.allocated = table.index.allocated(nodes.ids)
        nodes.gpus = arrays.node_gpus(table.index)
        version = table.index.version
        pending, wanted = [], {}
        for ask in am_asks.values():
            _am_request(table, ask, book, pending, wanted)
        (requests or RequestCache()).requests(table, nodes, instance_asks.values(), book, pending, wanted)
        live = set(nodes.ids) if move_asks else set()
        for ask in move_asks.values():
            _move_request(table, nodes, ask, book, pending, wanted, live, draining)
        summary = table.index.summary({w.app_id for w in wanted.values()})
        if draining:
            pending = [dataclasses.replace(r, constraints=tuple(r.constraints) + (NOT_DRAINING,)) for r in pending]
    fresh_from = _fresh_from(wanted)
    snap = ClusterSnapshot(nodes, pool_specs(pools), pending=pending, summary=summary, now=now,
                           running_in=lambda pool: _before_cycle(table, pool, fresh_from))
    return snap, wanted, version


def _fresh_from(wanted: dict) -> dict:
    """app_id -> the first instance number this cycle may grant it."""
    out: dict = {}
    for w in wanted.values():
        if not (w.is_am or w.move_ids):
            out[w.app_id] = min(out.get(w.app_id, w.first_instance), w.first_instance)
    return out


def _before_cycle(table, pool: str, fresh_from: dict) -> list:
    """A pool's containers as preemption's candidates, without those this cycle granted
    (written while it still decides): a grant is never undone in the cycle that made it."""
    with table.lock:
        running = table.index.running_in(pool)
    return [r for r in running if r.started_at < fresh_from.get(r.app, _NEVER)]


def _am_request(table, ask, book, pending, wanted):
    record = table.by_id(ask.app_id)
    if record is None or record.state in TERMINAL or record.am_attempt + 1 != ask.attempt:
        book.drop_am(ask.app_id, ask.attempt)   # placed already, or the app is gone
        return
    rid = f"{ask.app_id}/am"
    driver = LabelConstraint(DRIVER_LABEL + AM_DRIVER, "exists")
    # an app key of its own: the AM shares no spread limit or per-app share with the instances
    # the app's own priority: an AM above every band would preempt other apps' instances
    pending.append(PendingRequest(rid, rid, record.spec.pool, record.spec.priority, 1, as_vector(ask.shape),
                                  constraints=(driver,), submitted_at=ask.since))
    wanted[rid] = Wanted(ask.app_id, ask.attempt, True, 0, 1, ask.shape, ask)


def _instance_requests(table, nodes, ask, book, pending, wanted):
    record = table.by_id(ask.app_id)
    if record is None or record.state in TERMINAL or record.am_attempt != ask.attempt:
        book.drop_instances(ask.app_id, ask)   # the app or its AM attempt is gone
        return
    held = table.index.app_held.get(ask.app_id, 0)
    want = ask.target - held
    if want <= 0:
        book.drop_instances(ask.app_id, ask)
        return
    spec = record.spec
    base = dict(app=ask.app_id, pool=spec.pool, priority=spec.priority, shape=as_vector(ask.shape),
                constraints=_constraints(spec), gpu_models=(spec.gpu_model,) if spec.gpu_model else (),
                spread=_spread(spec, nodes, ask.target), submitted_at=ask.since)
    first = record.next_instance
    parts = [(want, False)]
    if ask.gang and held == 0 and spec.gang:   # the first `gang` instances: all or none
        parts = [(spec.gang, True)] + ([(want - spec.gang, False)] if want > spec.gang else [])
    for i, (count, gang) in enumerate(parts):
        rid = f"{ask.app_id}/{i}"
        pending.append(PendingRequest(rid, count=count, gang=gang, first_instance=first, **base))
        wanted[rid] = Wanted(ask.app_id, ask.attempt, False, first, count, ask.shape, ask, gang)
        first += count


def _move_request(table, nodes, ask, book, pending, wanted, live: set, draining):
    """The instances still to move, as one request of the app (same constraints and spread).
    An ask outlives nothing: a lost node that came back, or a drain undone, ends it."""
    record = table.by_id(ask.app_id)
    if record is None or record.state in TERMINAL or record.am_attempt != ask.attempt:
        book.drop_moves(ask.app_id, ask)
        return
    mine = table.allocations.get(ask.app_id, {})
    # still where it was asked to move from (not moved yet, nor moving) and allowed one more move
    still = (lambda n: n in draining) if ask.keep_old else (lambda n: n not in live)
    ids = tuple(i for i, node_id in dict(ask.origins).items() if i in mine and mine[i].node_id == node_id
                and still(node_id) and not mine[i].from_node_id
                and mine[i].migrations < record.spec.migrate_times)
    if not ids:
        book.drop_moves(ask.app_id, ask)
        return
    spec = record.spec
    rid = f"{ask.app_id}/{'drain' if ask.keep_old else 'move'}"
    pending.append(PendingRequest(rid, ask.app_id, spec.pool, spec.priority, len(ids), as_vector(ask.shape),
                                  constraints=_constraints(spec),
                                  gpu_models=(spec.gpu_model,) if spec.gpu_model else (),
                                  spread=_spread(spec, nodes, spec.instances), submitted_at=ask.since))
    wanted[rid] = Wanted(ask.app_id, ask.attempt, False, 0, len(ids), ask.shape, ask, move_ids=ids)


def _constraints(spec) -> tuple:
    out = [LabelConstraint(c.label, c.op, tuple(c.values)) for c in spec.constraints]
    out.append(LabelConstraint(DRIVER_LABEL + spec.driver, "exists"))
    return tuple(out)


def _spread(spec, nodes: Nodes, target: int):
    if not spec.max_per_node and not spec.spread_by:
        return None
    per_domain = None
    if spec.spread_by:
        domains = len(nodes.label_codes(spec.spread_by)[1])
        per_domain = spec.max_per_domain or max(1, math.ceil(target / max(domains, 1)))
    return Spread(spec.max_per_node or None, spec.spread_by or None, per_domain)
