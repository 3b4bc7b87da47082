"""`gaia bench recovery`: how long a lost node's instances take to run elsewhere.

For each size k (10, 100, 1,000 by default), on a private etcd with a leader in this process:
  1. an app of k instances is submitted; its AM is placed on a hollow node and this process
     runs that AM (the real ApplicationMaster code, in a thread);
  2. its instances are constrained to a label only one hollow node has at first (the victim),
     so all k land there; then spare hollow nodes with that label join;
  3. the victim's fleet process is killed with SIGKILL (no lease revoke, as a crashed machine);
  4. the clock runs from the kill until every instance is allocated on a live node and that
     node reports its container running. Detection (the lease expiring) is reported apart.
The target is recovery under the node lease TTL + 5 s at 1,000 instances.

Then a rolling update of a `rollout`-instance app (batches of `batch`, a 1 s health gate):
the total time from `UpdateApp` to the rollout's end, and the most instances unavailable at
once (sampled every 20 ms from the leader's view: not running, or being replaced).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time

import yaml

from gaia_common.client import MasterClient
from gaia_common.config import MasterConfig
from gaia_common.etcd import EtcdServer
from gaia_common.pb import master_pb2, types_pb2

CLUSTER = "bench-recovery"
RUNNING = types_pb2.CONTAINER_STATE_RUNNING


def run(sizes=(10, 100, 1000), lease_ttl: int = 3, limit_s: float = 60.0, rollout: int = 100,
        batch: int = 10) -> dict:
    from gaia_master.main import Master
    with tempfile.TemporaryDirectory(prefix="gaia-bench-recovery-") as work:
        os.makedirs(f"{work}/etcd")
        etcd = EtcdServer(data_dir=f"{work}/etcd", name="bench").start()
        fleets, master, client = [], None, None
        try:
            master = Master(MasterConfig(cluster=CLUSTER, etcd=[etcd.endpoint], lease_ttl=5)).start()
            client = MasterClient(CLUSTER, etcd_endpoints=[etcd.endpoint], retry_for=30)
            fleets.append(_hollow(work, etcd.endpoint, "ams", 1, {"cpu": "8", "memory": "16Gi"}, {}, lease_ttl))
            _wait(lambda: len(master.node_view.nodes) >= 1, 30, "the AM node")
            rows = [_one(work, etcd.endpoint, master, client, k, lease_ttl, limit_s, fleets) for k in sizes]
            update = _rolling_update(work, etcd.endpoint, master, client, rollout, batch, lease_ttl, limit_s, fleets) \
                if rollout else {}
            return {"lease_ttl_s": lease_ttl, "target_s": lease_ttl + 5, "runs": rows, "rolling_update": update}
        finally:   # the master first: it would try to stop the apps' containers on gone fleets
            if client is not None:
                client.close()
            if master is not None:
                master.stop()
            for proc in fleets:
                proc.kill()
            etcd.stop()


def _one(work, endpoint, master, client, k: int, ttl: int, limit_s: float, fleets: list) -> dict:
    tier = f"t{k}"
    app_id, am = _start_app(master, client, endpoint, _app_spec(f"rec-{k}", k, tier))

    capacity = {"cpu": str(k // 10 + 2), "memory": f"{k // 16 + 4}Gi"}
    victim = _hollow(work, endpoint, f"victim{k}", 1, capacity, {"tier": tier}, ttl)
    fleets.append(victim)
    _wait(lambda: _running_on(master, app_id, k) is not None, limit_s, f"{k} instances on the victim")
    fleets.append(_hollow(work, endpoint, f"spare{k}", 4, capacity, {"tier": tier}, ttl))
    _wait(lambda: sum(1 for n in master.node_view.node_list() if n.labels.get("tier") == tier) >= 5, 30,
          "spare nodes")
    victim_node = f"victim{k}-hollow-0"

    victim.kill()
    t0 = time.monotonic()
    _wait(lambda: master.node_view.node(victim_node) is None, limit_s, "the victim's lease to expire")
    detected = time.monotonic() - t0
    _wait(lambda: sum(1 for a in master.table.app_allocations(app_id).values() if a.migrations) == k,
          limit_s, f"{k} instances re-placed")
    placed = time.monotonic() - t0
    _wait(lambda: _running_on(master, app_id, k, avoid=victim_node) is not None, limit_s,
          f"{k} instances running off the victim")
    recovered = time.monotonic() - t0
    moved = _running_on(master, app_id, k, avoid=victim_node)
    am.attempt = -1                      # the AM thread sees itself superseded and stops
    client.call("KillApp", master_pb2.KillAppRequest(name=f"rec-{k}"))
    return {"instances": k, "detect_s": round(detected, 2), "placed_s": round(placed, 2), "recover_s": round(recovered, 2),
            "after_detect_s": round(recovered - detected, 2), "within_target": recovered <= ttl + 5,
            "charged": moved["charged"], "moved": moved["moved"]}


def _rolling_update(work, endpoint, master, client, k: int, batch: int, ttl: int, limit_s: float,
                    fleets: list) -> dict:
    spec = _app_spec("roll", k, "roll")
    spec.update.max_unavailable = batch
    spec.update.health_gate_seconds = 1.0
    fleets.append(_hollow(work, endpoint, "roll", 4, {"cpu": str(k // 10 + 2), "memory": f"{k // 16 + 4}Gi"},
                          {"tier": "roll"}, ttl))
    app_id, am = _start_app(master, client, endpoint, spec)
    _wait(lambda: _running_on(master, app_id, k) is not None, limit_s, f"{k} instances of roll")
    new = types_pb2.AppSpec()
    new.CopyFrom(spec)
    new.env["VERSION"] = "2"
    t0 = time.monotonic()
    client.call("UpdateApp", master_pb2.UpdateAppRequest(name="roll", spec=new))
    peak, deadline = 0, t0 + limit_s * 5
    while time.monotonic() < deadline:
        record = master.table.by_id(app_id)
        peak = max(peak, k - _available(master, app_id))
        if record.rollout.state in ("done", "failed", "rolled_back"):
            break
        time.sleep(0.02)
    total = time.monotonic() - t0
    record = master.table.by_id(app_id)
    am.attempt = -1
    client.call("KillApp", master_pb2.KillAppRequest(name="roll"))
    return {"instances": k, "max_unavailable": batch, "state": record.rollout.state,
            "total_s": round(total, 2), "peak_unavailable": peak}


def _available(master, app_id: str) -> int:
    """Instances whose allocated node reports a running container of their allocated version."""
    allocations = {i: a for i, a in master.table.app_allocations(app_id).items() if i != "am"}
    running = {(c.instance_id, c.node_id, c.version or 1) for c in master.node_view.app_containers(app_id)
               if c.state == RUNNING}
    return sum(1 for i, a in allocations.items() if (i, a.node_id, a.version or 1) in running)


def _quietly(fn) -> None:
    """An AM thread ends with the bench's master: what it says then is noise."""
    with contextlib.suppress(Exception):
        fn()


def _app_spec(name: str, k: int, tier: str) -> types_pb2.AppSpec:
    spec = types_pb2.AppSpec(name=name, pool="default", instances=k, kind=types_pb2.APP_KIND_SERVICE,
                             driver="process", command=["sleep", "infinity"], retry_times=0, migrate_times=3)
    spec.resources.request.cpu_millis = 100
    spec.resources.request.memory_bytes = 32 << 20
    spec.constraints.add(label="tier", op="=", values=[tier])
    return spec


def _start_app(master, client, endpoint: str, spec) -> tuple:
    """Submit; once the leader has placed its AM (on a hollow node), run that AM here."""
    from gaia_am.am import ApplicationMaster
    app_id = client.call("SubmitApp", master_pb2.SubmitAppRequest(spec=spec)).app_id
    _wait(lambda: master.table.by_id(app_id).am_attempt > 0, 30, f"{spec.name}'s AM placement")
    am = ApplicationMaster(MasterClient(CLUSTER, etcd_endpoints=[endpoint], retry_for=30), app_id,
                           master.table.by_id(app_id).am_attempt, interval=0.2)
    threading.Thread(target=_quietly, args=(am.run,), name=f"am-{spec.name}", daemon=True).start()
    return app_id, am


def _running_on(master, app_id: str, k: int, avoid: str = None):
    """{moved, charged} when all k instances are allocated on live nodes (not `avoid`) and
    each one's node reports its container running; else None."""
    allocations = {i: a for i, a in master.table.app_allocations(app_id).items() if i != "am"}
    if len(allocations) != k:
        return None
    running = {(c.instance_id, c.node_id) for c in master.node_view.app_containers(app_id) if c.state == RUNNING}
    for i, a in allocations.items():
        if a.node_id == avoid or (i, a.node_id) not in running or master.node_view.node(a.node_id) is None:
            return None
    return {"moved": sum(1 for a in allocations.values() if a.migrations),
            "charged": sum(a.charged for a in allocations.values())}


def _hollow(work: str, endpoint: str, name: str, count: int, capacity: dict, labels: dict,
            ttl: int) -> subprocess.Popen:
    path = f"{work}/{name}.yaml"
    with open(path, "w") as f:
        yaml.safe_dump({"cluster": CLUSTER, "etcd": [endpoint], "id": name, "lease_ttl": ttl,
                        "labels": labels, "capacity": capacity}, f)
    return subprocess.Popen([sys.executable, "-m", "gaia_cli", "node", "run", "--config", path,
                             "--hollow", str(count)],
                            stdout=open(f"{work}/{name}.log", "ab"), stderr=subprocess.STDOUT,
                            env=dict(os.environ, GAIA_LOG_LEVEL="WARNING"))


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.05)
    raise TimeoutError(f"bench recovery: timed out after {timeout:.0f}s waiting for {what}")
