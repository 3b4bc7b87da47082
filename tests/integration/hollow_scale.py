"""Hollow-node scale figures (a script, not a test): registration time and steady-state CPU.

    python tests/integration/hollow_scale.py NODES [LEASE_TTL=3] [SECONDS=30]

Starts a private etcd, one master and `gaia node run --hollow NODES` as separate processes,
then prints how long registration took (in the hollow process, and until the master's
ListNodes shows every node), the CPU each process used over SECONDS of steady state, how long
ListNodes takes, and how long 20 apps submitted at once take to get their AM RUNNING.
The README's hollow-node table comes from here.
"""
import os
import subprocess
import sys
import tempfile
import time

import psutil
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from gaia_common import spec as spec_mod  # noqa: E402
from gaia_common.client import MasterClient  # noqa: E402
from gaia_common.etcd import EtcdServer  # noqa: E402
from gaia_common.pb import master_pb2, types_pb2  # noqa: E402

APPS = 20


def main(nodes: int, ttl: int, window: float):
    work = tempfile.mkdtemp(prefix="gaia-hollow-scale-")
    os.makedirs(f"{work}/etcd")
    etcd = EtcdServer(data_dir=f"{work}/etcd").start()
    env = dict(os.environ, PYTHONPATH=ROOT, GAIA_LOG_LEVEL="INFO")

    def spawn(kind, cfg, *args):
        path = f"{work}/{kind}.yaml"
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        return subprocess.Popen([sys.executable, "-m", "gaia_cli", kind, "run", "--config", path, *args],
                                stdout=open(f"{work}/{kind}.log", "ab"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    cluster = "scale"
    master = spawn("master", {"cluster": cluster, "etcd": [etcd.endpoint], "lease_ttl": 2})
    client = MasterClient(cluster, etcd_endpoints=[etcd.endpoint], retry_for=30)
    list_nodes = lambda: client.call("ListNodes", master_pb2.ListNodesRequest(), timeout=60).nodes  # noqa: E731
    list_nodes()
    began = time.monotonic()
    hollow = spawn("node", {"cluster": cluster, "etcd": [etcd.endpoint], "id": "h", "lease_ttl": ttl,
                            "labels": {"rack": "r{i/40}"}}, "--hollow", str(nodes))
    try:
        while len(list_nodes()) < nodes:
            time.sleep(0.2)
        visible = time.monotonic() - began
        with open(f"{work}/node.log") as f:
            said = [line.split(": ", 1)[-1].strip() for line in f if "registered in" in line]
        print(f"{nodes} hollow nodes, lease_ttl {ttl}s: all in ListNodes {visible:.2f}s after spawn; "
              f"hollow: {said[0] if said else '?'}")
        time.sleep(3)
        procs = {"hollow": psutil.Process(hollow.pid), "etcd": psutil.Process(etcd.proc.pid),
                 "master": psutil.Process(master.pid)}
        before = {k: p.cpu_times() for k, p in procs.items()}
        start = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - start
        for name, p in procs.items():
            a, b = before[name], p.cpu_times()
            used = (b.user + b.system) - (a.user + a.system)
            print(f"  {name:7s} {100 * used / elapsed:5.1f}% of one core, rss {p.memory_info().rss / 2**20:.0f} MiB")
        started = time.monotonic()
        count = len(list_nodes())
        print(f"  ListNodes of {count} nodes: {time.monotonic() - started:.2f}s")
        started = time.monotonic()
        for k in range(APPS):
            client.call("SubmitApp", master_pb2.SubmitAppRequest(
                spec=spec_mod.load_yaml(f"name: app{k}\ncommand: sleep 1000\n"), idempotency_key=f"scale-{k}"))

        def running():
            apps = client.call("ListApps", master_pb2.ListAppsRequest(), timeout=60).apps
            return sum(1 for a in apps if a.am.status.state == types_pb2.CONTAINER_STATE_RUNNING)
        while running() < APPS and time.monotonic() - started < 120:
            time.sleep(0.2)
        print(f"  {running()} of {APPS} AMs RUNNING on hollow nodes {time.monotonic() - started:.2f}s after the first submit")
    finally:
        for p in (hollow, master):
            p.terminate()
        for p in (hollow, master):
            p.wait(30)
        client.close()
        etcd.stop()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 1000, int(args[1]) if len(args) > 1 else 3,
         float(args[2]) if len(args) > 2 else 30)
