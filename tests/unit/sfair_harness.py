"""An in-memory harness for Sfair (like Nomad's scheduler Harness): build a cluster, schedule,
apply the plan as the leader would, finish apps between cycles, and check every plan with a
checker that shares no code with the scheduler's policy."""
from __future__ import annotations

import itertools

import numpy as np

from gaia_master.sfair.model import DIM_INDEX
from gaia_master.sfair import (ClusterSnapshot, LabelConstraint, Nodes, PendingRequest, PoolSpec, Running,
                               Sfair, SfairConfig, Spread, vec)

GB = 1 << 30


def shape(cpu=0, mem_gb=0, **dims) -> np.ndarray:
    return vec(cpu_millis=int(cpu * 1000), memory_bytes=int(mem_gb * GB), **dims)


class Harness:
    def __init__(self, config: SfairConfig = None):
        self.scheduler = Sfair(config)
        self._nodes: list = []               # (id, capacity, labels, gpu model)
        self.pools: dict = {}
        self.running: list = []
        self.pending: dict = {}              # request_id -> PendingRequest
        self._seq = itertools.count()
        self.plans: list = []

    # ---- building the cluster ----
    def node(self, node_id: str, cpu: float, mem_gb: float, labels=None, gpu_model: str = "", **dims):
        self._nodes.append((node_id, shape(cpu, mem_gb, **dims), dict(labels or {}), gpu_model))
        return self

    def pool(self, path: str, weight: float = 1.0, guaranteed=None, max_quota=None, gpu_models=()):
        self.pools[path] = PoolSpec(path, weight, guaranteed, max_quota, tuple(gpu_models))
        return self

    def request(self, app: str, pool: str, count: int, res: np.ndarray, priority: int = 0, gang: bool = False,
                constraints=(), spread: Spread = None, gpu_models=(), request_id: str = None,
                gang_id: str = "", first_instance: int = None) -> str:
        rid = request_id or f"{app}/{next(self._seq)}"
        first = sum(1 for r in self.running if r.app == app) if first_instance is None else first_instance
        self.pending[rid] = PendingRequest(rid, app, pool, priority, count, res, gang, tuple(constraints),
                                           tuple(gpu_models), spread, float(next(self._seq)), first, gang_id)
        return rid

    def snapshot(self) -> ClusterSnapshot:
        ids = [n[0] for n in self._nodes]
        capacity = np.array([n[1] for n in self._nodes], dtype=np.int64).reshape(len(ids), -1)
        allocated = np.zeros_like(capacity)
        index = {node_id: i for i, node_id in enumerate(ids)}
        for r in self.running:
            allocated[index[r.node]] += r.resources
        nodes = Nodes(ids, capacity, allocated, [n[2] for n in self._nodes], [n[3] for n in self._nodes])
        return ClusterSnapshot(nodes, list(self.pools.values()), list(self.running), list(self.pending.values()))

    # ---- the leader's part ----
    def schedule(self):
        snap = self.snapshot()
        plan = self.scheduler.schedule(snap)
        check_plan(snap, plan)
        self.plans.append(plan)
        return plan

    def apply(self, plan) -> None:
        """Grants become running containers; granted instances leave the pending requests."""
        granted: dict = {}
        for g in plan.grants:
            req = self.pending[g.request_id]
            self.running.append(Running(g.app, req.pool, req.priority, g.node, req.shape))
            granted[g.request_id] = granted.get(g.request_id, 0) + 1
        for rid, k in granted.items():
            req = self.pending.pop(rid)
            if k < req.count:
                self.pending[rid] = PendingRequest(rid, req.app, req.pool, req.priority, req.count - k, req.shape,
                                                   req.gang, req.constraints, req.gpu_models, req.spread,
                                                   req.submitted_at, req.first_instance + k, req.gang_id)

    def cycle(self):
        plan = self.schedule()
        self.apply(plan)
        return plan

    def finish(self, app: str) -> None:
        self.running = [r for r in self.running if r.app != app]

    # ---- reading results ----
    def count(self, app: str) -> int:
        return sum(1 for r in self.running if r.app == app)

    def usage(self, prefix: str) -> np.ndarray:
        """Resources held by every container whose pool is `prefix` or under it."""
        out = np.zeros_like(self._nodes[0][1])
        for r in self.running:
            if r.pool == prefix or r.pool.startswith(prefix + "/"):
                out += r.resources
        return out

    def dominant_share(self, prefix: str) -> float:
        cap = sum(n[1] for n in self._nodes).astype(float)
        use = self.usage(prefix)
        return float(max(use[d] / cap[d] for d in range(len(cap)) if cap[d] > 0))

    def nodes_of(self, app: str) -> list:
        return [r.node for r in self.running if r.app == app]


def check_plan(snap: ClusterSnapshot, plan) -> None:
    """The independent checker: capacity, constraints, anti-affinity, max quotas, gangs, and
    instance numbering, recomputed from the grants with plain Python."""
    nodes = snap.nodes
    reqs = {r.request_id: r for r in snap.pending}
    used = {node_id: np.array(nodes.allocated[i]) for i, node_id in enumerate(nodes.ids)}
    per_app_node: dict = {}
    for r in snap.running:
        per_app_node[(r.app, r.node)] = per_app_node.get((r.app, r.node), 0) + 1
    pool_use: dict = {}
    for r in snap.running:
        _charge(pool_use, r.pool, r.resources)
    per_request: dict = {}
    for g in plan.grants:
        req = reqs[g.request_id]
        i = nodes.index[g.node]
        used[g.node] = used[g.node] + req.shape
        per_app_node[(g.app, g.node)] = per_app_node.get((g.app, g.node), 0) + 1
        per_request.setdefault(g.request_id, []).append(g)
        _charge(pool_use, req.pool, req.shape)
        labels = nodes.labels[i]
        for c in req.constraints:
            assert _label_ok(labels, c), f"{g} breaks {c}"
        if req.gpu_models and req.shape[DIM_INDEX["gpu_share"]] > 0:
            assert nodes.gpu_models[i] in req.gpu_models, f"{g} on GPU model {nodes.gpu_models[i]}"
        if req.spread and req.spread.max_per_node is not None:
            assert per_app_node[(g.app, g.node)] <= req.spread.max_per_node, f"{g}: too many per node"
    for node_id, u in used.items():
        cap = nodes.capacity[nodes.index[node_id]]
        assert np.all(u <= cap), f"node {node_id} over capacity: {u} > {cap}"
    for spec in snap.pools:
        if spec.max_quota is not None:
            use = sum((v for p, v in pool_use.items() if p == spec.path or p.startswith(spec.path + "/")), 0)
            limit = np.where(np.asarray(spec.max_quota) > 0, spec.max_quota, np.iinfo(np.int64).max)
            assert np.all(use <= limit), f"pool {spec.path} over its max quota"
    gangs: dict = {}
    for req in snap.pending:
        if req.gang_id:
            gangs.setdefault((req.app, req.gang_id), []).append(req)
    for members in gangs.values():
        placed = [len(per_request.get(m.request_id, [])) for m in members]
        assert placed == [0] * len(members) or placed == [m.count for m in members], \
            f"gang {members[0].gang_id} partially placed: {placed}"
    for rid, grants in per_request.items():
        req = reqs[rid]
        assert len(grants) <= req.count
        if req.gang:
            assert len(grants) == req.count, f"gang {rid} partially placed ({len(grants)} of {req.count})"
        assert sorted(g.instance for g in grants) == list(range(req.first_instance, req.first_instance + len(grants)))
        if req.spread and req.spread.domain_key:
            _check_domains(snap, req, grants)


def _check_domains(snap, req, grants) -> None:
    nodes = snap.nodes
    count: dict = {}
    for r in snap.running:
        if r.app == req.app:
            dom = nodes.labels[nodes.index[r.node]].get(req.spread.domain_key)
            count[dom] = count.get(dom, 0) + 1
    for g in grants:
        dom = nodes.labels[nodes.index[g.node]].get(req.spread.domain_key)
        assert dom is not None, f"{g} on a node without {req.spread.domain_key}"
        count[dom] = count.get(dom, 0) + 1
        assert count[dom] <= req.spread.max_per_domain, f"{g}: too many per {req.spread.domain_key}"


def _charge(pool_use: dict, pool: str, res) -> None:
    pool_use[pool] = pool_use.get(pool, 0) + np.asarray(res)


def _label_ok(labels: dict, c: LabelConstraint) -> bool:
    has = c.key in labels
    value = labels.get(c.key)
    return {"=": has and value in c.values, "in": has and value in c.values,
            "!=": not has or value not in c.values, "not_in": not has or value not in c.values,
            "exists": has, "not_exists": not has}[c.op]
