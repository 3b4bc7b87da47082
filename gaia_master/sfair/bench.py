"""Scheduler-only micro-benchmark on a synthetic snapshot (no etcd, no gRPC).

    python -m gaia_master.sfair.bench --nodes 10000 --pools 2500

Workloads:
  c1m    applications of `instances` identical containers, anti-affinity at most 2 per
         node, a few shapes, spread over the pools (Nomad's C1M shape, with constraints);
  mixed  single-instance requests of mixed shapes and priorities over the pools.

With the defaults (500 apps of 1,000) C1M demand exceeds capacity, so the cycle runs the
contended path (DRF progressive filling in entitlement-sized chunks); `strict` turns the
chunks off; fewer apps make it uncontended (each request placed in one step).
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from gaia_master.sfair.model import ClusterSnapshot, Nodes, PendingRequest, PoolSpec, RunningSummary, Spread, vec
from gaia_master.sfair.fairshare import entitlement_shares
from gaia_master.sfair.scheduler import Sfair, SfairConfig
from gaia_master.sfair.state import ClusterState

GB = 1 << 30
SHAPES = [vec(cpu_millis=c, memory_bytes=m * GB, disk_bytes=d * GB)
          for c, m, d in ((250, 1, 1), (500, 2, 2), (1000, 4, 10), (2000, 8, 20), (4000, 16, 50),
                          (500, 4, 5), (1000, 1, 1), (8000, 32, 100))]


def synthetic_cluster(nodes: int, pools: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    cap = np.tile(vec(cpu_millis=32000, memory_bytes=128 * GB, disk_bytes=2000 * GB,
                      net_in_bps=10**10, net_out_bps=10**10), (nodes, 1))
    labels = [{"rack": f"r{i // 40}", "zone": f"z{i % 3}", "arch": "amd64" if i % 10 else "arm64"}
              for i in range(nodes)]
    nodes_ = Nodes([f"node{i:05d}" for i in range(nodes)], cap, labels=labels)
    tops = max(1, int(round(pools ** 0.5)))
    specs = [PoolSpec(f"t{i % tops}/p{i}", weight=float(rng.integers(1, 4))) for i in range(pools)]
    return nodes_, specs


def c1m_requests(specs, apps: int, instances: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for a in range(apps):
        pool = specs[a % len(specs)].path
        out.append(PendingRequest(f"app{a}/0", f"app{a}", pool, int(rng.integers(0, 3)), instances,
                                  SHAPES[a % 4], spread=Spread(max_per_node=2), submitted_at=float(a)))
    return out


def mixed_requests(specs, count: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    pools = rng.integers(0, len(specs), count)
    shapes = rng.integers(0, len(SHAPES), count)
    prios = rng.integers(0, 3, count)
    return [PendingRequest(f"s{i}/0", f"s{i}", specs[int(p)].path, int(pr), 1, SHAPES[int(s)],
                           submitted_at=float(i))
            for i, (p, s, pr) in enumerate(zip(pools, shapes, prios))]


def placements_per_second(nodes: int = 10000, pools: int = 2500, workload: str = "c1m", apps: int = 500,
                          instances: int = 1000, requests: int = 20000, strict: bool = False,
                          seed: int = 0, verbose: bool = True) -> dict:
    node_table, specs = synthetic_cluster(nodes, pools, seed)
    if workload == "c1m":
        pending = c1m_requests(specs, apps, instances, seed)
    elif workload == "mixed":
        pending = mixed_requests(specs, requests, seed)
    else:
        raise ValueError(f"unknown workload {workload!r}")
    snap = ClusterSnapshot(node_table, specs, (), pending)
    scheduler = Sfair(SfairConfig(entitlement_chunks=not strict))
    t, cpu = time.perf_counter(), time.process_time()
    plan = scheduler.schedule(snap)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    spent = np.array(plan.stats["request_spent_s"]) * 1000
    used = plan.node_counts()
    result = {
        "workload": workload, "nodes": nodes, "pools": pools, "requests": len(pending),
        "placements": plan.count, "cycle_s": round(wall, 3),
        "placements_per_s": round(plan.count / wall) if wall else 0,
        # on a shared machine, CPU time is the steadier figure
        "cpu_s": round(cpu, 3), "placements_per_cpu_s": round(plan.count / cpu) if cpu else 0,
        "p50_ms": round(float(np.percentile(spent, 50)), 3), "p99_ms": round(float(np.percentile(spent, 99)), 3),
        "steps": plan.stats["steps"], "classes": plan.stats["classes"],
        "nodes_used": int((used > 0).sum()), "pending_requests": len(plan.pending),
        "uncontended": plan.stats["uncontended"],
        **fairness(snap, plan),
    }
    if verbose:
        print(" ".join(f"{k}={v}" for k, v in result.items()))
    return result


def churn(nodes: int = 10000, pools: int = 2500, cycles: int = 5, apps: int = 500, instances: int = 1000,
          finish: float = 0.1, node_churn: float = 0.01, seed: int = 0, verbose: bool = True) -> dict:
    """Several cycles over a changing cluster, the way the leader would drive the scheduler:
    grants are applied to the node table and to an incrementally kept RunningSummary; between
    cycles a fraction of apps finish, a fraction of nodes leave and come back empty (their
    containers are asked for again), and as many new apps arrive as finished."""
    rng = np.random.default_rng(seed)
    node_table, specs = synthetic_cluster(nodes, pools, seed)
    pending = c1m_requests(specs, apps, instances, seed)
    by_id = {r.request_id: r for r in pending}
    summary = RunningSummary()
    placed_on: dict = {}                     # app -> (request, node rows of its instances)
    scheduler = Sfair()
    totals = {"placements": 0, "cpu_s": 0.0, "wall_s": 0.0}
    next_app = apps
    for cycle in range(cycles):
        snap = ClusterSnapshot(node_table, specs, (), pending, summary)
        t, cpu = time.perf_counter(), time.process_time()
        plan = scheduler.schedule(snap)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        totals["placements"] += plan.count
        totals["cpu_s"] += cpu
        totals["wall_s"] += wall
        if verbose:
            print(f"cycle {cycle}: {plan.count} placements in {wall:.3f}s ({plan.count / wall:,.0f}/s), "
                  f"{len(plan.pending)} requests pending, {plan.stats['steps']} steps")
        for rid, app, _, rows, n in plan.chunks:          # the leader applies the plan
            req = by_id[rid]
            node_table.allocated[rows] += n[:, None] * req.shape
            ids = [node_table.ids[r] for r in np.repeat(rows, n).tolist()]
            summary.add(app, req.pool, ids, req.shape)
            placed_on.setdefault(app, (req, []))[1].extend(np.repeat(rows, n).tolist())
        granted: dict = {}
        for rid, *_, n in plan.chunks:
            granted[rid] = granted.get(rid, 0) + int(n.sum())
        left = []
        for r in pending:                                   # what was not granted still waits
            if r.request_id in plan.pending:
                got = granted.get(r.request_id, 0)
                left.append(dataclasses.replace(r, count=r.count - got, first_instance=r.first_instance + got))
        pending = left
        done = [a for a in placed_on if rng.random() < finish]
        for app in done:                                    # finished apps give their nodes back
            req, rows = placed_on.pop(app)
            np.subtract.at(node_table.allocated, np.array(rows), req.shape)
            summary.remove(app, req.pool, [node_table.ids[r] for r in rows], req.shape)
        gone = set(rng.choice(len(node_table), int(node_churn * len(node_table)), replace=False).tolist())
        for app, (req, rows) in placed_on.items():          # nodes leave: their containers are lost
            lost = [r for r in rows if r in gone]
            if lost:
                placed_on[app] = (req, [r for r in rows if r not in gone])
                summary.remove(app, req.pool, [node_table.ids[r] for r in lost], req.shape)
                again = dataclasses.replace(req, request_id=f"{req.request_id}/c{cycle}", count=len(lost))
                by_id[again.request_id] = again
                pending.append(again)
        node_table.allocated[sorted(gone)] = 0              # ...and rejoin empty
        for a in range(next_app, next_app + len(done)):     # new apps arrive
            new = c1m_requests(specs, a + 1, instances, seed + cycle)[a]
            by_id[new.request_id] = new
            pending.append(new)
        next_app += len(done)
    rate = totals["placements"] / totals["wall_s"] if totals["wall_s"] else 0
    result = {**totals, "placements_per_s": round(rate), "placements_per_cpu_s":
              round(totals["placements"] / totals["cpu_s"]) if totals["cpu_s"] else 0}
    if verbose:
        print(" ".join(f"{k}={v if not isinstance(v, float) else round(v, 3)}" for k, v in result.items()))
    return result


def fairness(snap: ClusterSnapshot, plan) -> dict:
    """How close each pool that still waits for capacity came to its hierarchical weighted DRF
    share (water-filled over the pending demand, fairshare.py): the largest deviation, and how
    many pools are within the larger of 2% and one of their largest containers (the issue's
    tolerance). Pools held back by their own anti-affinity are not bounded by DRF and are
    counted apart. Not an independent checker: it reuses the scheduler's water-filling."""
    state = ClusterState(snap)
    pools = state.pools
    reqs = {r.request_id: r for r in snap.pending}
    demand: dict = {}
    biggest: dict = {}
    for r in snap.pending:
        i = pools.index[r.pool]
        demand[i] = demand.get(i, 0) + r.count * r.shape
        biggest[i] = max(biggest.get(i, 0.0), float((r.shape * pools.inv_capacity).max()))
    target = entitlement_shares(pools, demand, state.cluster_capacity)
    for rid, _, _, _, n in plan.chunks:
        r = reqs[rid]
        pools.charge(pools.index[r.pool], int(n.sum()) * r.shape)
    limited = {pools.index[reqs[rid].pool] for rid, why in plan.pending.items() if "spread" in why}
    waiting = {pools.index[reqs[rid].pool] for rid in plan.pending} - limited
    if not waiting:
        return {"drf_pools_checked": 0, "spread_limited_pools": len(limited)}
    dev = {p: abs(pools.dominant_share(p) - target[p]) for p in waiting if target[p] != float("inf")}
    within = sum(1 for p, d in dev.items() if d <= max(0.02 * target[p], biggest[p] + 1e-12))
    return {"drf_pools_checked": len(dev), "spread_limited_pools": len(limited), "drf_within_tolerance": within,
            "drf_max_dev_pct": round(100 * max((d / target[p] for p, d in dev.items()), default=0.0), 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=10000)
    p.add_argument("--pools", type=int, default=2500)
    p.add_argument("--workload", choices=("c1m", "mixed", "both", "churn"), default="both")
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--apps", type=int, default=500)
    p.add_argument("--instances", type=int, default=1000)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--strict", action="store_true", help="strict progressive filling (no entitlement chunks)")
    args = p.parse_args(argv)
    if args.workload == "churn":
        churn(args.nodes, args.pools, args.cycles, args.apps, args.instances)
        return
    for w in (("c1m", "mixed") if args.workload == "both" else (args.workload,)):
        placements_per_second(args.nodes, args.pools, w, args.apps, args.instances, args.requests,
                              args.strict)


if __name__ == "__main__":
    main()
