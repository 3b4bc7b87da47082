"""An in-memory harness for Sfair (like Nomad's scheduler Harness): build a cluster, schedule,
apply the plan as the leader would (evictions, then grants), finish apps between cycles, and
check every plan with a checker that shares no code with the scheduler's policy.

`h.now` is the snapshot's clock; requests are submitted at the `now` of the time they are
made unless told otherwise. Harness(lazy=True) hands the scheduler what the leader does at
scale: a RunningSummary and `running_in(pool)` instead of the list of running containers, and
records which pools were asked for in `running_in_calls`."""
from __future__ import annotations

import itertools

import numpy as np

from gaia_master.sfair.model import DIM_INDEX
from gaia_master.sfair import (ClusterSnapshot, LabelConstraint, Nodes, PendingRequest, PoolSpec, Running,
                               RunningSummary, Sfair, SfairConfig, Spread, vec)

GB = 1 << 30


def shape(cpu=0, mem_gb=0, **dims) -> np.ndarray:
    return vec(cpu_millis=int(cpu * 1000), memory_bytes=int(mem_gb * GB), **dims)


class Harness:
    def __init__(self, config: SfairConfig = None, lazy: bool = False):
        self.scheduler = Sfair(config)
        self._nodes: list = []               # (id, capacity, labels, gpu model)
        self.pools: dict = {}
        self.running: list = []
        self.pending: dict = {}              # request_id -> PendingRequest
        self._seq = itertools.count()
        self._next_instance: dict = {}       # app -> next instance number
        self.plans: list = []
        self.evicted: list = []              # every Eviction applied
        self.now = 0.0
        self.lazy = lazy
        self.running_in_calls: list = []

    # ---- building the cluster ----
    def node(self, node_id: str, cpu: float, mem_gb: float, labels=None, gpu_model: str = "", **dims):
        self._nodes.append((node_id, shape(cpu, mem_gb, **dims), dict(labels or {}), gpu_model))
        return self

    def pool(self, path: str, weight: float = 1.0, guaranteed=None, max_quota=None, gpu_models=()):
        self.pools[path] = PoolSpec(path, weight, guaranteed, max_quota, tuple(gpu_models))
        return self

    def request(self, app: str, pool: str, count: int, res: np.ndarray, priority: int = 0, gang: bool = False,
                constraints=(), spread: Spread = None, gpu_models=(), request_id: str = None,
                gang_id: str = "", first_instance: int = None, submitted_at: float = None) -> str:
        rid = request_id or f"{app}/{next(self._seq)}"
        first = self._next_instance.get(app, 0) if first_instance is None else first_instance
        when = self.now if submitted_at is None else submitted_at
        self.pending[rid] = PendingRequest(rid, app, pool, priority, count, res, gang, tuple(constraints),
                                           tuple(gpu_models), spread, float(when), first, gang_id)
        return rid

    def run(self, app: str, pool: str, node: str, res: np.ndarray, priority: int = 0, count: int = 1,
            started_at: float = None) -> list:
        """Containers already running (as if granted in an earlier cycle); their instance ids."""
        ids = []
        for _ in range(count):
            k = self._next_instance.get(app, 0)
            self._next_instance[app] = k + 1
            when = self.now if started_at is None else started_at
            self.running.append(Running(app, pool, priority, node, res, str(k), float(when)))
            ids.append(str(k))
        return ids

    def snapshot(self) -> ClusterSnapshot:
        ids = [n[0] for n in self._nodes]
        capacity = np.array([n[1] for n in self._nodes], dtype=np.int64).reshape(len(ids), -1)
        allocated = np.zeros_like(capacity)
        index = {node_id: i for i, node_id in enumerate(ids)}
        for r in self.running:
            allocated[index[r.node]] += r.resources
        nodes = Nodes(ids, capacity, allocated, [n[2] for n in self._nodes], [n[3] for n in self._nodes])
        pools, pending = list(self.pools.values()), list(self.pending.values())
        if not self.lazy:
            return ClusterSnapshot(nodes, pools, list(self.running), pending, now=self.now)
        running = list(self.running)

        def running_in(pool: str) -> list:
            self.running_in_calls.append(pool)
            return [r for r in running if r.pool == pool]

        return ClusterSnapshot(nodes, pools, (), pending, RunningSummary.of(running), now=self.now,
                               running_in=running_in)

    # ---- the leader's part ----
    def schedule(self):
        snap = self.snapshot()
        running = list(self.running)
        plan = self.scheduler.schedule(snap)
        check_plan(snap, plan, running)
        self.plans.append(plan)
        return plan

    def apply(self, plan) -> None:
        """Evicted containers stop; grants become running containers; granted instances
        leave the pending requests."""
        gone = {(e.app, e.instance, e.node) for e in plan.evictions}
        self.running = [r for r in self.running if (r.app, r.instance, r.node) not in gone]
        self.evicted.extend(plan.evictions)
        granted: dict = {}
        for g in plan.grants:
            req = self.pending[g.request_id]
            self.running.append(Running(g.app, req.pool, req.priority, g.node, req.shape, str(g.instance), self.now))
            self._next_instance[g.app] = max(self._next_instance.get(g.app, 0), g.instance + 1)
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

    def stop(self, containers) -> None:
        """These running containers end (by identity)."""
        gone = {id(r) for r in containers}
        self.running = [r for r in self.running if id(r) not in gone]

    def withdraw(self, request_id: str) -> None:
        self.pending.pop(request_id, None)

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


def check_plan(snap: ClusterSnapshot, plan, running=None) -> None:
    """The independent checker: capacity, constraints, anti-affinity, max quotas, gangs,
    instance numbering and evictions, recomputed from the plan with plain Python. `running`:
    every running container (the snapshot's own list unless it has only a summary)."""
    running = list(snap.running if running is None else running)
    nodes = snap.nodes
    reqs = {r.request_id: r for r in snap.pending}
    used = {node_id: np.array(nodes.allocated[i]) for i, node_id in enumerate(nodes.ids)}
    victims = _check_evictions(plan, running, reqs)
    for v in victims:
        used[v.node] = used[v.node] - v.resources
    alive = [r for r in running if all(r is not v for v in victims)]
    per_app_node: dict = {}
    for r in alive:
        per_app_node[(r.app, r.node)] = per_app_node.get((r.app, r.node), 0) + 1
    pool_use: dict = {}
    for r in alive:
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
    _check_evictions_needed(snap, plan, victims, used)
    before: dict = {}
    for r in running:
        _charge(before, r.pool, r.resources)
    _check_guarantees(snap, plan, victims, reqs, before, pool_use)
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
            _check_domains(snap, req, grants, alive)


def _check_evictions(plan, running: list, reqs: dict) -> list:
    """Each eviction names a running container, once, of the right kind, next to a grant of
    the request it was for on the same node. Returns the evicted containers."""
    by_key = {(r.app, r.instance, r.node): r for r in running}
    granted_on = {(g.request_id, g.node) for g in plan.grants}
    victims = []
    for e in plan.evictions:
        key = (e.app, e.instance, e.node)
        assert key in by_key, f"{e} evicts a container that is not running"
        assert all(v is not by_key[key] for v in victims), f"{e} evicted twice"
        victim, req = by_key[key], reqs[e.for_request]
        assert (e.for_request, e.node) in granted_on, f"{e}: the request it made room for is not placed there"
        if e.kind == "preempt":
            assert victim.pool == req.pool and victim.priority < req.priority, f"{e}: not a lower priority of its pool"
        else:
            assert e.kind == "reclaim" and victim.pool != req.pool, f"{e}: bad kind or same pool"
        victims.append(victim)
    return victims


def _check_evictions_needed(snap, plan, victims: list, used: dict) -> None:
    """The room freed is what the grants there use: without the evictions, the node would be
    over capacity (a reserved node is exempt: what it holds is free to the checker)."""
    freed: dict = {}
    for v in victims:
        freed[v.node] = freed.get(v.node, 0) + v.resources
    reserved = {n for nodes in plan.reservations.values() for n in nodes}
    for node_id, amount in freed.items():
        cap = snap.nodes.capacity[snap.nodes.index[node_id]]
        assert node_id in reserved or np.any(used[node_id] + amount > cap), \
            f"evictions on {node_id} were not needed"


def _check_guarantees(snap, plan, victims: list, reqs: dict, before: dict, after: dict) -> None:
    """Reclaim takes no borrower below its guarantee (in what its evicted containers held),
    and only for a claimant that was below its own by at least one instance at some point of
    the cycle (its usage can only have dipped below `before` by evictions from it)."""
    specs = {s.path: s for s in snap.pools if s.guaranteed is not None}
    lowest = dict(before)
    for v in victims:
        _charge(lowest, v.pool, -np.asarray(v.resources))
    for e, v in zip(plan.evictions, victims):
        if e.kind != "reclaim":
            continue
        req = reqs[e.for_request]
        for path, spec in specs.items():
            if _under(v.pool, path) and not _under(req.pool, path):
                dims = (np.asarray(spec.guaranteed) > 0) & (np.asarray(v.resources) > 0)
                assert np.all(_use(after, path)[dims] >= spec.guaranteed[dims]), f"{e} takes {path} below its guarantee"
        assert req.pool in specs, f"{e}: {req.pool} has no guarantee to reclaim"
        g = np.asarray(specs[req.pool].guaranteed)
        assert np.all((_use(lowest, req.pool) + req.shape)[g > 0] <= g[g > 0]), f"{e}: {req.pool} was not below it"


def _under(pool: str, path: str) -> bool:
    return pool == path or pool.startswith(path + "/")


def _use(pool_use: dict, path: str) -> np.ndarray:
    return np.asarray(sum((v for p, v in pool_use.items() if _under(p, path)), np.zeros(len(vec()), dtype=np.int64)))


def _check_domains(snap, req, grants, running) -> None:
    nodes = snap.nodes
    count: dict = {}
    for r in running:
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
