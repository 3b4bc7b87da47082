"""`gaia bench scheduler`: Sfair on a real leader, real etcd and hollow nodes, checked afterwards.

One run, on a private etcd:
  1. a master (in this process, so its scheduling loop's own figures can be read), hollow
     nodes in separate processes (`gaia node run --hollow`), a tree of pools;
  2. apps submitted through the API; their AMs are placed by Sfair on hollow nodes;
  3. the etcd ceiling, before the run (see below);
  4. this process plays every AM: one RequestContainers per app (its whole target), all at
     once; while the leader works, node churn: one hollow fleet leaves and another joins;
  5. when nothing more is granted: the ceiling again, then the independent checker
     (grant_check.py) reads every grant back from etcd and verifies it. Placement figures
     count accepted grants only.

End to end is the accepted grants per second of the leader's cycles that granted (snapshot,
decide, re-check, write until etcd answered). The etcd ceiling is the raw throughput of the
same batched fenced transactions on the same etcd, with the same watchers and the same
hollow heartbeats going on: the leader's own transaction builder (AppTable._transactions)
makes them from the apps' records and Allocations of their shapes, beforehand, and only
their writing is timed, through the leader's pipeline at its depth and at twice it. It is
measured before and after the run (the etcd the run starts from, and the one it leaves) and
the best of the four tries counts, so that noise from other processes can only lower the
ratio. Its keys are deleted and etcd compacted after each try: tombstones of deleted keys
would make every later put cost etcd more (see _etcd_ceiling). What the ceiling cannot have
is the CPU the leader itself needs: on a 2-core machine etcd and the scheduler share it, which
`cpu_us_per_grant` (the run) and `etcd_us_per_put` (the ceiling) show.

Workloads: `c1m` (apps of --instances identical instances, at most 2 per node, several
shapes, some with a label constraint) and `mixed` (single-instance apps of random shapes).
Demand is --demand times the cluster's capacity, so the run saturates it.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import subprocess
import sys
import tempfile
import time

import psutil
import yaml
from etcd3 import utils as etcd_utils

from gaia_common.client import MasterClient
from gaia_common.config import MasterConfig
from gaia_common import etcd as etcd_mod
from gaia_common.etcd import EtcdServer
from gaia_common.keys import Keys
from gaia_common.pb import master_pb2, types_pb2
from gaia_master.store import MAX_OPS_PER_TXN
from gaia_cli.bench import grant_check
from gaia_cli.bench.stats import percentiles

CLUSTER = "bench-sched"
ADMIN_TIMEOUT_S = 300
CEILING_CLUSTER = "bench-ceilg"      # as long as CLUSTER: the ceiling's keys are as long as the grants'
C1M_SHAPES = [(500, 1), (1000, 2), (2000, 4), (4000, 8)]          # (millicores, GiB)
GIB = 1 << 30


def run(nodes: int = 1000, pools: int = 100, workload: str = "c1m", instances: int = 1000,
        demand: float = 1.25, churn: int = None, node_cpu: int = 32, node_memory_gib: int = 128,
        seed: int = 1, settle_s: float = 3.0, max_apps: int = 20000) -> dict:
    rng = random.Random(seed)
    churn = max(1, nodes // 50) if churn is None else churn
    with tempfile.TemporaryDirectory(prefix="gaia-bench-sched-") as work, _cluster(work, nodes, churn, node_cpu,
                                                                                node_memory_gib) as c:
        leaves = _pools(c.client, pools, rng)
        apps = _apps(workload, nodes * node_cpu * 1000, demand, instances, leaves, rng, max_apps)
        _submit(c, apps)
        return _measure(c, apps, rng, settle_s)


# ---- the cluster ----

class _Cluster:
    def __init__(self, work, etcd, master, client, fleets):
        self.work, self.etcd, self.master, self.client, self.fleets = work, etcd, master, client, fleets


@contextlib.contextmanager
def _cluster(work: str, nodes: int, churn: int, cpu: int, memory_gib: int):
    from gaia_master.main import Master   # the leader runs here: its loop's figures are read directly
    os.makedirs(f"{work}/etcd")
    etcd = EtcdServer(data_dir=f"{work}/etcd", name="bench").start()
    master = client = cluster = None
    fleets = {}
    try:
        master = Master(MasterConfig(cluster=CLUSTER, etcd=[etcd.endpoint], lease_ttl=5)).start()
        client = MasterClient(CLUSTER, etcd_endpoints=[etcd.endpoint], retry_for=30)
        capacity = {"cpu": str(cpu), "memory": f"{memory_gib}Gi"}
        ttl = hollow_ttl(nodes)
        fleets["main"] = _hollow(work, etcd.endpoint, "main", nodes - churn, capacity, ttl)
        fleets["leaving"] = _hollow(work, etcd.endpoint, "leaving", churn, capacity, ttl)
        _wait(lambda: len(master.node_view.nodes) >= nodes, 120, "hollow nodes to register")
        cluster = _Cluster(work, etcd, master, client, fleets)
        cluster.capacity, cluster.ttl, cluster.churn = capacity, ttl, churn
        # the bench's own deletes and compactions, on a client of their own: a compaction of
        # 400,000 revisions outlasts the master client's 5 s deadline, and a deadline marks the
        # (only) endpoint failed for every call of that client, the leader's keepalive included
        cluster.admin = etcd_mod.connect([etcd.endpoint], timeout=ADMIN_TIMEOUT_S)
        yield cluster
    finally:
        for proc in fleets.values():
            proc.terminate()
        for proc in fleets.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        if client is not None:
            client.close()
        if getattr(cluster, "admin", None) is not None:
            cluster.admin.close()
        if master is not None:
            master.stop()
        etcd.stop()


def hollow_ttl(nodes: int) -> int:
    """The hollow nodes' lease TTL: their heartbeat at ~600 keepalives/s whatever the fleet.

    etcd 3.4 spends about 0.35 ms of CPU on one lease keepalive (measured: 10,000 leases at
    TTL 10 s, 3,000 keepalives/s, keep one core busy with nothing else to do; at TTL 30 s, a
    third of it). At 10,000 nodes a 10 s TTL would give half of this 2-core machine to the
    heartbeat, and the etcd the scheduler writes to would be mostly busy renewing leases."""
    return max(10, nodes // 200)


def _hollow(work: str, endpoint: str, name: str, count: int, capacity: dict, ttl: int) -> subprocess.Popen:
    path = f"{work}/{name}.yaml"
    with open(path, "w") as f:
        yaml.safe_dump({"cluster": CLUSTER, "etcd": [endpoint], "id": name, "lease_ttl": ttl,
                        "labels": {"rack": "r{i/40}", "zone": "z{i%4}"}, "capacity": capacity}, f)
    return subprocess.Popen([sys.executable, "-m", "gaia_cli", "node", "run", "--config", path,
                             "--hollow", str(count)],
                            stdout=open(f"{work}/{name}.log", "ab"), stderr=subprocess.STDOUT,
                            env=dict(os.environ, GAIA_LOG_LEVEL="WARNING"))


def _pools(client, count: int, rng) -> list:
    """A two-level tree: ~sqrt(count) groups of leaves, random weights 1-4. Returns the leaves."""
    groups = max(1, int(math.sqrt(count)))
    leaves = []
    for g in range(groups):
        client.call("CreatePool", master_pb2.PoolRequest(pool=types_pb2.Pool(path=f"g{g}", weight=rng.randint(1, 4))))
    for i in range(count - groups):
        path = f"g{i % groups}/p{i}"
        client.call("CreatePool", master_pb2.PoolRequest(pool=types_pb2.Pool(path=path, weight=rng.randint(1, 4))))
        leaves.append(path)
    return leaves or [f"g{g}" for g in range(groups)]


# ---- the workload ----

def _apps(workload: str, cluster_millis: int, demand: float, instances: int, leaves: list, rng,
          max_apps: int) -> list:
    """AppSpecs whose requests add up to `demand` x the cluster's cpu."""
    out, asked, i = [], 0, 0
    while asked < demand * cluster_millis and len(out) < max_apps:
        spec = _c1m_app(i, instances, leaves, rng) if workload == "c1m" else _mixed_app(i, leaves, rng)
        asked += spec.instances * spec.resources.request.cpu_millis
        out.append(spec)
        i += 1
    return out


def _c1m_app(i: int, instances: int, leaves: list, rng) -> types_pb2.AppSpec:
    millis, gib = C1M_SHAPES[i % len(C1M_SHAPES)]
    spec = _spec(f"c{i}", leaves[i % len(leaves)], instances, millis, gib * GIB)
    spec.max_per_node = 2
    if i % 3 == 0:
        spec.constraints.add(label="zone", op="!=", values=["z3"])
    return spec


def _mixed_app(i: int, leaves: list, rng) -> types_pb2.AppSpec:
    millis = rng.choice([250, 500, 1000, 2000, 4000, 8000])
    return _spec(f"m{i}", rng.choice(leaves), 1, millis, int(millis / 1000 * rng.choice([1, 2, 4])) * GIB // 2)


def _spec(name, pool, instances, millis, memory) -> types_pb2.AppSpec:
    spec = types_pb2.AppSpec(name=name, pool=pool, instances=instances, kind=types_pb2.APP_KIND_SERVICE,
                             driver="process", command=["sleep", "infinity"])
    spec.resources.request.cpu_millis = millis
    spec.resources.request.memory_bytes = memory
    return spec


def _submit(c: _Cluster, apps: list) -> None:
    for spec in apps:
        c.client.call("SubmitApp", master_pb2.SubmitAppRequest(spec=spec, idempotency_key=spec.name))
    table = c.master.table
    _wait(lambda: all(table.apps[s.name].am_attempt > 0 for s in apps), 300, "every AM to be placed")


# ---- the measured run ----

def _measure(c: _Cluster, apps: list, rng, settle_s: float) -> dict:
    asked = sum(s.instances for s in apps)
    before = _etcd_ceiling(c, apps, asked)      # measured before and after the run: the best try counts
    totals, elapsed, asked_s, cpu, am_restarts = _run(c, apps, settle_s)
    with c.master.table.lock:   # the leader idle, as before the run: its loop, at saturation, keeps
        after = _etcd_ceiling(c, apps, asked)     # re-trying the backlog; the ceiling is etcd's
    ceiling = {"puts_per_s": max(before["puts_per_s"], after["puts_per_s"]), "before": before, "after": after}
    grants = grant_check.read_grants(c.master.etcd, CLUSTER)
    report = grant_check.check(grants, _demand(apps))
    figures = _figures(apps, totals, elapsed, asked_s, ceiling, report, cpu, _utilisation(grants))
    figures["placements"]["am_restarts"] = am_restarts     # AMs on nodes that left, asked again
    return figures


def _run(c: _Cluster, apps: list, settle_s: float) -> tuple:
    """Every AM asks, the leader places, nodes churn, until nothing more is granted: (the
    loop's totals, first ask to last grant, seconds the asks took, CPU per process, AMs
    restarted)."""
    loop = c.master.scheduling
    procs = {"etcd": psutil.Process(c.etcd.proc.pid), "hollow": [psutil.Process(p.pid) for p in c.fleets.values()],
             "master+bench": psutil.Process()}
    ams = _BenchAMs(c, apps)
    ams.register()      # each app's AM registers, as a real one would, before the clock starts
    # Every AM's ask lands in the leader's queue at once (what the RequestContainers handler
    # does for each), so the run starts from the whole demand: fairness at saturation is
    # only defined when every pool's demand is known.
    cpu0 = _cpu(procs)
    loop.totals.__init__()
    t0 = time.perf_counter()
    ams.ask()
    loop.wake()
    asked_s = time.perf_counter() - t0
    procs["hollow"].append(_churn(c))
    _wait_quiet(loop, c.master.book, settle_s, ams)
    totals = copy.deepcopy(loop.totals)   # the run's: cycles go on (the backlog) while the bench measures
    elapsed = (totals.last_grant_at or time.perf_counter()) - t0
    used = _cpu_delta(procs, cpu0)
    window = time.perf_counter() - t0      # the whole measured run, settling included
    cpu = {k: v / window for k, v in used.items()}
    cpu["us_per_grant"] = {k: round(used[k] * 1e6 / max(1, totals.granted), 1) for k in ("etcd", "master+bench")}
    return totals, elapsed, asked_s, cpu, ams.restarted


def _churn(c: _Cluster) -> psutil.Process:
    """One fleet leaves (its grants are refused or left on departed nodes) and one joins.
    The leaving fleet is stopped, so it revokes its leases and its nodes vanish at once (with
    the long TTL of a large fleet, a killed one's nodes would look alive for the whole run)."""
    leaving = c.fleets.pop("leaving")
    leaving.terminate()
    c.fleets["left"] = leaving    # reaped at the end only: until then psutil still reads its CPU
    c.fleets["joining"] = _hollow(c.work, c.etcd.endpoint, "joining", c.churn, c.capacity, c.ttl)
    return psutil.Process(c.fleets["joining"].pid)


class _BenchAMs:
    """This process plays every app's AM. An AM on a node that leaves is restarted by the
    leader on another node (a new attempt, which voids the old attempt's ask); its successor
    registers and asks again for the app's whole target, as a real AM does."""
    POLL_S = 0.5

    def __init__(self, c: _Cluster, apps: list):
        self.c, self.apps = c, apps
        self.attempts = {}          # app name -> the AM attempt that asked
        self.restarted = 0
        self._polled = 0.0

    def register(self, specs=None) -> None:
        for spec in specs or self.apps:
            record = self.c.master.table.apps[spec.name]
            self.c.client.call("RegisterAM", master_pb2.RegisterAMRequest(app_id=record.app_id,
                                                                         attempt=record.am_attempt))

    def ask(self, specs=None) -> None:
        for spec in specs or self.apps:
            record = self.c.master.table.apps[spec.name]
            self.attempts[spec.name] = record.am_attempt
            self.c.master.book.ask_instances(record.app_id, record.am_attempt, spec.instances,
                                             spec.resources.request, gang=False)

    def poll(self) -> None:
        """The successors of restarted AMs, once granted, register and ask."""
        if time.monotonic() - self._polled < self.POLL_S:
            return
        self._polled = time.monotonic()
        apps = self.c.master.table.apps
        moved = [s for s in self.apps if apps[s.name].am_attempt != self.attempts[s.name]]
        if moved:
            self.restarted += len(moved)
            self.register(moved)
            self.ask(moved)
            self.c.master.scheduling.wake()


def _wait_quiet(loop, book, settle_s: float, ams: _BenchAMs = None, limit_s: float = 600) -> None:
    """Until nothing was granted for `settle_s` seconds (demand exceeds capacity: it
    saturates, and cycles that find the backlog still does not fit may go on) and no cycle
    is running, so the totals are final."""
    deadline = time.monotonic() + limit_s
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if ams is not None:
            ams.poll()
        if loop.totals.granted != seen:
            seen, quiet_since = loop.totals.granted, time.monotonic()
        elif time.monotonic() - quiet_since > settle_s and book.started == book.cycles:
            return


def _etcd_ceiling(c: _Cluster, apps: list, count: int) -> dict:
    """The raw throughput of the leader's own kind of grant transactions on this etcd, now.

    The transactions are built exactly as the leader builds a cycle's (AppTable._transactions
    over the applier's groups: up to 120 Allocations of an app's shape per fenced transaction,
    then every app's record; the same fields and sizes, keys as long: a shadow cluster root
    `/gaia/bench-ceilg/`, which, like allocations/, nothing watches), all of them beforehand, so only their writing is timed:
    through the leader's pipeline (scheduling/writer.py) at its depth and at twice it, the
    better counting (the best these transactions do here, not the leader's choice). Each try
    writes fresh keys; they are deleted and etcd compacted afterwards, since uncompacted
    tombstones of tens of thousands of deleted keys make etcd 3.4 spend about twice the CPU
    on every later put (measured), which would slow the run and the next measurement."""
    from gaia_master.app_table import AppTable
    from gaia_master.scheduling import writer
    shadow = AppTable(Keys(CEILING_CLUSTER), c.master.store)
    groups = _ceiling_groups(c, apps, count)
    txns = [txn for txn, _ in shadow._transactions(groups, MAX_OPS_PER_TXN)]
    tries = {}
    for depth in (writer.DEPTH, 2 * writer.DEPTH):
        tries[depth] = _ceiling_try(c, txns, depth, count)
        _forget_keys(c, shadow.keys.root, groups)
    best = max(tries, key=lambda d: tries[d]["puts_per_s"])
    return {"puts": count, "transactions": len(txns), "tries": tries, **tries[best]}


def _ceiling_try(c: _Cluster, txns: list, depth: int, count: int) -> dict:
    """Write the prepared transactions through a pipeline `depth` deep: puts/s, and etcd's CPU
    per put meanwhile (what the run must share the machine with)."""
    from gaia_master.scheduling import writer
    store = c.master.store
    etcd = psutil.Process(c.etcd.proc.pid)
    pipeline = writer.Pipeline(writer.transport(store), store.election, depth)
    cpu0, t0 = _proc_cpu(etcd), time.perf_counter()
    for txn in txns:
        pipeline.send(txn)
    pipeline.flush()
    elapsed = time.perf_counter() - t0
    return {"puts_per_s": round(count / elapsed), "etcd_us_per_put": round((_proc_cpu(etcd) - cpu0) * 1e6 / count, 1)}


def _ceiling_groups(c: _Cluster, apps: list, count: int) -> list:
    """`count` grants dealt over the apps in turn as (record, allocations, changes, vector),
    the applier's groups: each app's allocations alone (its request, nodes round robin,
    instance ids from 0), then each app's record with its next_instance, as a cycle's last
    part writes it."""
    nodes = c.master.node_view.node_list()
    groups, left, k = [], count, 0
    for spec in apps:
        record = c.master.table.apps[spec.name]
        n = min(left, spec.instances)
        allocations = []
        for i in range(n):
            node = nodes[k % len(nodes)]
            k += 1
            allocations.append(types_pb2.Allocation(app_id=record.app_id, instance_id=str(i), node_id=node.node_id,
                                                    node_address=node.address, request=spec.resources.request,
                                                    version=record.version or 1))
        groups.append((record, allocations, None, None))
        left -= n
    return groups + [(record, [], {"next_instance": len(allocations)}, None) for record, allocations, *_ in groups]


def _forget_keys(c: _Cluster, root: str, groups: list) -> None:
    """Delete what a ceiling wrote, a few thousand keys a transaction (one range of 200,000
    keys would hold etcd for seconds), then compact, so that neither the run nor the next
    try meets its tombstones."""
    etcd = c.admin
    tx = etcd.transactions
    ops, keys = [], 0
    for record, allocations, *_ in groups:
        prefix = f"{root}allocations/{record.app_id}/"
        ops.append(tx.delete(prefix, range_end=etcd_utils.prefix_range_end(prefix.encode())))
        keys += len(allocations)
        if keys >= 5000 or len(ops) >= 100:
            etcd.transaction(compare=[], success=ops, failure=[])
            ops, keys = [], 0
    if ops:
        etcd.transaction(compare=[], success=ops, failure=[])
    etcd.delete_prefix(root)                  # the app records
    etcd.compact(etcd.get_response(root).header.revision, physical=True)


def _demand(apps: list) -> dict:
    out: dict = {}
    for spec in apps:
        r = spec.resources.request
        d = out.setdefault(spec.pool, {"cpu_millis": 0, "memory_bytes": 0})
        d["cpu_millis"] += spec.instances * r.cpu_millis
        d["memory_bytes"] += spec.instances * r.memory_bytes
    return out


def _figures(apps, totals, elapsed, asked_s, ceiling, report, cpu, utilisation) -> dict:
    accepted = report.accepted
    # the leader's pipeline: snapshot, decide, re-check, write, per second of the cycles that
    # granted (the wall clock also holds the idle waits for churned nodes, and once the
    # cluster is full, cycles that only find the backlog still does not fit)
    busy = totals.granting_s
    end_to_end = min(accepted, totals.granted) / busy if busy > 0 else 0.0
    drf = [row for row in report.drf if row.within is not None]
    worst = max(drf, key=lambda r: abs(r.deviation) - r.tolerance, default=None)
    return {
        "workload": {"apps": len(apps), "instances_asked": sum(s.instances for s in apps),
                     "nodes": report.nodes, "pools": report.pools, "asks_sent_s": round(asked_s, 2)},
        "placements": {"granted": totals.granted, "accepted_by_checker": accepted,
                       "violations": len(report.violations), "on_departed_nodes": report.on_departed_nodes,
                       "refused_by_recheck": totals.refused},
        # Sfair's decisions per second of the cycles that placed (not of those, once the
        # cluster is full, that only find the backlog still does not fit)
        "scheduler_only_per_s": round(totals.placed / totals.placing_s) if totals.placing_s else None,
        "end_to_end_per_s": round(end_to_end),
        "wall_clock": {"first_ask_to_last_grant_s": round(elapsed, 2),
                       "per_s": round(accepted / elapsed) if elapsed > 0 else None},
        "etcd_ceiling_per_s": ceiling["puts_per_s"],
        "etcd_ceiling_runs": {f"{when}_per_s": ceiling[when]["puts_per_s"] for when in ("before", "after")},
        "etcd_ceiling_tries": {f"{when}_depth_{d}": t for when in ("before", "after")
                               for d, t in ceiling[when]["tries"].items()},
        "end_to_end_vs_ceiling": round(end_to_end / ceiling["puts_per_s"], 3) if ceiling["puts_per_s"] else None,
        "decision_latency_ms": _ms(percentiles(totals.decisions_s)),
        "decided_after_cycle_start_ms": _ms(percentiles(totals.completions_s)),
        "cycles": {"count": totals.cycles, "snapshot_s": round(totals.snapshot_s, 2),
                   "schedule_s": round(totals.schedule_s, 2), "apply_s": round(totals.apply_s, 2),
                   "placing_s": round(totals.placing_s, 2), "granting_s": round(totals.granting_s, 2)},
        "utilisation": utilisation,
        "drf": {"pools_checked": len(drf), "within_tolerance": sum(1 for r in drf if r.within),
                "worst_pool": worst.path if worst else None,
                "worst_deviation": round(worst.deviation, 4) if worst else None,
                "worst_tolerance": round(worst.tolerance, 4) if worst else None},
        "cpu_cores": {k: round(v, 2) for k, v in cpu.items() if k != "us_per_grant"},
        "cpu_us_per_grant": cpu["us_per_grant"],    # over the whole window, settling included
        "violations_sample": report.violations[:5],
    }


def _ms(p: dict) -> dict:
    return {k: (round(v * 1000, 2) if isinstance(v, float) else v) for k, v in p.items()}


def _utilisation(grants) -> dict:
    """Granted / capacity of the live nodes, per dimension the workload asks for."""
    out = {}
    for dim in ("cpu_millis", "memory_bytes"):
        capacity = sum(getattr(n.capacity, dim) for n in grants.nodes.values())
        used = sum(getattr(a.request, dim) for a in grants.allocations if a.node_id in grants.nodes)
        out[dim] = round(used / capacity, 4) if capacity else None
    return out


def _cpu(procs: dict) -> dict:
    out = {}
    for name, p in procs.items():
        out[name] = sum(_proc_cpu(q) for q in (p if isinstance(p, list) else [p]))
    t = psutil.cpu_times()   # the whole machine: what is not ours is other processes' (noise)
    out["others"] = t.user + t.nice + t.system + t.irq + t.softirq - sum(out.values())
    return out


def _proc_cpu(p) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def _cpu_delta(procs: dict, before: dict) -> dict:
    now = _cpu(procs)
    return {k: now[k] - before[k] for k in now}


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"bench scheduler: timed out after {timeout:.0f}s waiting for {what}")
