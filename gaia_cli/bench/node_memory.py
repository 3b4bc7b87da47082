"""The elastic-memory (EMC) scenario, run for real: figures for `gaia bench node`, and what
tests/integration/test_memory_emc.py asserts on.

A node manager in this process (real process driver, real cgroups: root on cgroup v1 or v2) is
given a memory budget. Borrowers go beyond their requests while two owners idle: one holds
page cache (a file it wrote), three hold anonymous memory (bytearrays), at priorities 1 < 2 <
4 < 6. Then the owners grow to their requests. With EMC (limits above requests) the node
reclaims: the page cache is squeezed, anonymous borrowers are killed lowest priority first,
the owners are untouched. With hard limits only (limit = request) nobody can borrow at all:
the kernel OOM-kills every anonymous borrower at its limit, however idle the machine is.
"""
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid

import psutil

from gaia_common import rpc
from gaia_common.config import NodeConfig
from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2

MI = 1 << 20
S = types_pb2
# argv: kind (anon|cache|idle), MiB, ready file, trigger file ("-": none). Waits for the trigger,
# takes the memory, says so, then sleeps (bounded: it never outlives a crashed test long).
PROGRAM = (
    "import os, sys, time\n"
    "kind, mib, ready, trigger = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]\n"
    "deadline = time.time() + 180\n"
    "while trigger != '-' and not os.path.exists(trigger) and time.time() < deadline:\n"
    "    time.sleep(0.05)\n"
    "held = []\n"
    "if kind == 'anon':\n"
    "    for _ in range(mib // 8):\n"
    "        held.append(b'\\x01' * (8 << 20))\n"
    "        time.sleep(0.01)\n"
    "elif kind == 'cache':\n"
    "    chunk = b'\\x02' * (1 << 20)\n"
    "    with open('cache.dat', 'wb') as f:\n"
    "        for _ in range(mib):\n"
    "            f.write(chunk)\n"
    "        f.flush()\n"
    "        os.fsync(f.fileno())\n"
    "open(ready, 'w').close()\n"
    "while time.time() < deadline:\n"
    "    time.sleep(0.2)\n")


def scenario(emc: bool) -> list:
    """(name, priority, kind, MiB it takes, request MiB, limit MiB, waits for the trigger)."""
    def limit(request, ceiling):
        return ceiling if emc else request
    return [("owner-a", 0, "anon", 216, 240, 240, True),
            ("owner-b", 0, "anon", 216, 240, 240, True),
            ("cache-p1", 1, "cache", 160, 64, limit(64, 500), False),
            ("anon-p2", 2, "anon", 152, 32, limit(32, 400), False),
            ("anon-p4", 4, "anon", 152, 32, limit(32, 400), False),
            ("anon-p6", 6, "anon", 152, 32, limit(32, 400), False)]


def swap_bytes() -> int:
    return psutil.swap_memory().total


class Scenario:
    def __init__(self, etcd_endpoint: str, work_dir: str, emc: bool = True, budget_mib: int = 800,
                 cgroup_root: str = "/sys/fs/cgroup"):
        tag = uuid.uuid4().hex[:8]
        self.emc = emc
        self.budget_mib = budget_mib
        self.work_dir = work_dir
        self.cfg = NodeConfig(cluster=f"emc-{tag}", etcd=[etcd_endpoint], id=f"emc-node-{tag}",
                              state_dir=os.path.join(work_dir, "node"), cgroup_root=cgroup_root,
                              cgroup_parent=f"gaia-emc-{tag}", lease_ttl=3, memory_budget=f"{budget_mib}Mi",
                              memory_psi_threshold=0.0)  # the host's PSI is other people's business here
        self.manager = self.channel = self.stub = None
        self.ids = {}

    def run(self) -> dict:
        from gaia_node import main
        self.manager = main.start(self.cfg)
        if self.manager.cgroups is None:
            raise RuntimeError(f"no cgroups under {self.cfg.cgroup_root}: the EMC scenario needs root and cgroups")
        self.channel = rpc.channel(self.manager.address)
        self.stub = node_pb2_grpc.NodeStub(self.channel)
        try:
            return self._run()
        finally:
            self.clean_up()

    def _spec(self, name, priority, kind, mib, request, limit, triggered) -> S.ContainerSpec:
        ready = os.path.join(self.work_dir, f"{name}.ready")
        trigger = os.path.join(self.work_dir, "grow") if triggered else "-"
        spec = S.ContainerSpec(container_id=f"{name}-id.0.1", app_id=f"{name}-id", app_name=name, instance_id="0",
                               driver="process", command=[sys.executable, "-c", PROGRAM, kind, str(mib), ready, trigger],
                               cluster=self.cfg.cluster, priority=priority)
        spec.resources.request.memory_bytes, spec.resources.limit.memory_bytes = request * MI, limit * MI
        spec.resources.request.cpu_millis = 100   # and no cpu limit: no quota slows the allocations
        return spec

    def _statuses(self) -> dict:
        report = self.stub.Status(node_pb2.NodeStatusRequest(), timeout=10)
        by_id = {s.container_id: s for s in report.containers}
        return {name: by_id.get(cid) for name, cid in self.ids.items()}, report

    def _wait(self, names, timeout=40.0):
        """Until each named container said it is ready, or ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses, _ = self._statuses()
            if all(os.path.exists(os.path.join(self.work_dir, f"{n}.ready"))
                   or statuses[n].state != S.CONTAINER_STATE_RUNNING for n in names):
                return
            time.sleep(0.1)
        raise TimeoutError(f"containers {names} not ready within {timeout}s")

    def _run(self) -> dict:
        plan = scenario(self.emc)
        specs = {row[0]: self._spec(*row) for row in plan}
        for name, spec in specs.items():
            self.ids[name] = spec.container_id
            status = self.stub.StartContainer(node_pb2.StartContainerRequest(epoch=1, spec=spec), timeout=30)
            if status.state not in (S.CONTAINER_STATE_RUNNING, S.CONTAINER_STATE_FAILED):
                raise RuntimeError(f"{name} did not start: {status}")
        borrowers = [row[0] for row in plan if not row[6]]
        owners = [row[0] for row in plan if row[6]]
        self._wait(borrowers)
        time.sleep(1.0)  # the reclaim loop sees the borrowing phase (and must do nothing)
        borrowing, report = self._statuses()
        events_while_borrowing = len(report.events)
        open(os.path.join(self.work_dir, "grow"), "w").close()
        self._wait(owners)
        time.sleep(3.0)  # a few reclaim ticks after the owners reached their requests
        final, report = self._statuses()
        figures = self._figures(plan, specs, borrowing, events_while_borrowing, final, report)
        figures["restored"] = self._owners_leave(owners) if self.emc else None
        return figures

    def _owners_leave(self, owners) -> dict:
        """The owners stop: the pressure is over, and squeezed borrowers get their ceilings back."""
        for name in owners:
            self.stub.StopContainer(node_pb2.StopContainerRequest(epoch=1, container_id=self.ids[name],
                                                                  grace_seconds=0.5), timeout=20)
        deadline, restored = time.monotonic() + 10.0, {}
        while time.monotonic() < deadline:
            _, report = self._statuses()
            restored = {e.container_id: e.message for e in report.events if e.kind == "reclaim.restore"}
            if self.ids["cache-p1"] in restored:
                break
            time.sleep(0.2)
        by_id = {cid: name for name, cid in self.ids.items()}
        ceiling = self.manager.cgroups.memory_ceiling(self.ids["cache-p1"])
        return {"containers": sorted(by_id.get(cid, cid) for cid in restored), "cache-p1_ceiling_bytes": ceiling}

    def _figures(self, plan, specs, borrowing, events_while_borrowing, final, report) -> dict:
        containers = {}
        for name, priority, kind, mib, request, limit, _ in plan:
            before, after = borrowing[name], final[name]
            if after.state == S.CONTAINER_STATE_RUNNING:
                ended = ""
            elif after.platform_reason.startswith("evicted: memory reclaim"):
                ended = "reclaim"
            elif "OOM-killed" in after.message:
                ended = "kernel-oom"
            else:
                ended = S.ContainerState.Name(after.state)
            containers[name] = {
                "priority": priority, "kind": kind, "request_bytes": request * MI, "limit_bytes": limit * MI,
                "usage_borrowing": before.usage.memory_bytes if before.state == S.CONTAINER_STATE_RUNNING else 0,
                "usage_final": after.usage.memory_bytes if after.state == S.CONTAINER_STATE_RUNNING else 0,
                "state": S.ContainerState.Name(after.state), "ended_by": ended, "message": after.message}
        by_id = {cid: name for name, cid in self.ids.items()}
        events = [(e.kind, by_id.get(e.container_id, e.container_id), e.message) for e in report.events]
        killed = [n for n, c in containers.items() if c["ended_by"]]
        return {
            "mode": "emc" if self.emc else "hard-limits",
            "budget_bytes": self.budget_mib * MI,
            "containers": containers,
            "killed": killed,
            "kills": len(killed),
            "kill_order": [name for kind, name, _ in events if kind == "reclaim.kill"],
            "borrowed_bytes": sum(max(0, c["usage_borrowing"] - c["request_bytes"]) for c in containers.values()),
            "reclaim_events": {k: sum(1 for e in events if e[0] == f"reclaim.{k}") for k in ("squeeze", "kill", "restore")},
            "events_while_borrowing": events_while_borrowing,
            "events": events,
        }

    def clean_up(self):
        """Stop and remove every container, stop the node manager, remove the cgroups."""
        for cid in self.ids.values():
            try:
                self.stub.StopContainer(node_pb2.StopContainerRequest(epoch=1, container_id=cid, grace_seconds=0.5,
                                                                      remove=True), timeout=20)
            except Exception:  # already gone, or the node is: the sweep below still runs
                pass
        if self.channel:
            self.channel.close()
        cgroups = self.manager.cgroups if self.manager else None
        if self.manager:
            self.manager.stop()
        if cgroups is not None:
            sweep_cgroups(cgroups)


def sweep_cgroups(cgroups) -> None:
    """Kill what is left in the node's cgroups (bounded), then remove them and their parent."""
    if cgroups.version == "v1":
        parents = [os.path.join(cgroups.root, c, cgroups.parent) for c in cgroups.controllers]
    else:
        parents = [os.path.join(cgroups.root, cgroups.parent)]
    for parent in parents:
        if not os.path.isdir(parent):
            continue
        for leaf in [os.path.join(parent, d) for d in os.listdir(parent)]:
            if not os.path.isdir(leaf):
                continue
            for _ in range(50):
                try:
                    os.rmdir(leaf)
                    break
                except OSError:
                    for pid in open(os.path.join(leaf, "cgroup.procs")).read().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    time.sleep(0.1)
        try:
            os.rmdir(parent)
        except OSError:
            pass


def emc_figures(budget_mib: int = 800, etcd_endpoint: str = None) -> dict:
    """The EMC scenario with elastic memory and with hard limits only, on this machine (root).

    {"swap_bytes", "emc": {...}, "hard_limits": {...}}: for each, which containers were killed
    (and by whom: the node's reclaim or the kernel's OOM killer), how many, the bytes borrowed
    beyond requests while the owners idled, the reclaim events by kind, and the kill order.
    Uses the etcd at `etcd_endpoint`, or starts one of its own. About 15 s."""
    from gaia_common.etcd import EtcdServer
    work = tempfile.mkdtemp(prefix="gaia-bench-emc-")
    etcd = None
    try:
        if etcd_endpoint is None:
            os.makedirs(os.path.join(work, "etcd"))
            etcd = EtcdServer(data_dir=os.path.join(work, "etcd"), name="gaia-bench-emc").start()
            etcd_endpoint = etcd.endpoint
        out = {"swap_bytes": swap_bytes()}
        for key, emc in (("emc", True), ("hard_limits", False)):
            run_dir = os.path.join(work, key)
            os.makedirs(run_dir)
            out[key] = Scenario(etcd_endpoint, run_dir, emc=emc, budget_mib=budget_mib).run()
        return out
    finally:
        if etcd is not None:
            etcd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import json
    print(json.dumps(emc_figures(), indent=1, default=str))
