"""`gaia dev --detach` brings up a real local cluster that answers; `gaia dev down` leaves nothing running."""
import importlib
import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from gaia_cli.procs import cgroup_dirs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _has_run(module: str) -> bool:
    try:
        return callable(getattr(importlib.import_module(module), "run", None))
    except ImportError:
        return False


pytestmark = pytest.mark.skipif(not (_has_run("gaia_master.main") and _has_run("gaia_node.main")),
                                reason="gaia_master.main / gaia_node.main have no run() yet")


@pytest.fixture
def gaia(tmp_path):
    env = dict(os.environ, GAIA_DEV_HOME=str(tmp_path / "dev"), GAIA_CONFIG=str(tmp_path / "client.yaml"),
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    env.pop("GAIA_CLUSTER", None)

    def run(*args, timeout=120):
        return subprocess.run([sys.executable, "-m", "gaia_cli", *args], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=timeout)
    run.home = tmp_path / "dev"
    return run


def gone(pid: int, started: float) -> bool:
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - started) > 0.01 or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_dev_up_answers_and_down_leaves_nothing(gaia, cluster_name):
    name = f"dev-{cluster_name}"
    up = gaia("dev", "--detach", "--masters", "1", "--nodes", "1", "--name", name, "--timeout", "60")
    state_path = gaia.home / name / "state.json"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert name in up.stdout and "http://127.0.0.1:" in up.stdout
        state = json.loads(state_path.read_text())
        assert sorted(r["role"] for r in state["processes"]) == ["etcd", "master", "node"]

        masters = gaia("--cluster", name, "masters", "-o", "json")
        assert masters.returncode == 0, masters.stderr
        doc = json.loads(masters.stdout)
        assert doc["cluster"] == name
        assert [m["leader"] for m in doc["masters"]] == [True]

        nodes = gaia("--cluster", name, "nodes", "-o", "json")
        assert nodes.returncode == 0, nodes.stderr
        assert [(n["info"]["node_id"], n["alive"]) for n in json.loads(nodes.stdout)["nodes"]] == [("dev-node-1", True)]

        # A container the nodes started must not outlive `down` either. The master is killed
        # first, so that no leader collects this container of no app before `down` runs.
        master = next(r for r in state["processes"] if r["role"] == "master")
        os.kill(master["pid"], signal.SIGKILL)
        container = start_container(name, doc["masters"][0]["epoch"], json.loads(nodes.stdout)["nodes"][0],
                                    master_tls(gaia.home / name, state))

        again = gaia("dev", "--detach", "--masters", "1", "--nodes", "1", "--name", name)
        assert again.returncode == 2 and "already up" in again.stderr
    finally:
        down = gaia("dev", "down", "--name", name)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not state_path.exists()
    left = [r for r in state["processes"] if not gone(r["pid"], r["started"])]
    assert left == [], f"still running: {left}"
    marked = [p.pid for p in psutil.process_iter() if _env(p).get("GAIA_DEV_TOKEN") == state["token"]]
    assert marked == [], f"processes the cluster started are still running: {marked}"
    assert gone(container.pid, container.create_time()), "the container outlived `gaia dev down`"
    assert cgroup_dirs(state["cgroup_parent"]) == [], "the cluster's cgroups are left behind"
    listed = json.loads(gaia("cluster", "list", "-o", "json").stdout)
    assert name not in listed["clusters"]


def master_tls(directory, state: dict):
    """TLS on (gaia dev's default): the node takes commands from its masters' certificates only."""
    from gaia_common.security.tls import TlsFiles
    if not state.get("tls"):
        return None
    d = directory / "tls"
    return TlsFiles(str(d / "ca.crt"), str(d / "master-dev-master-1.crt"), str(d / "master-dev-master-1.key"))


def start_container(cluster: str, epoch: str, node: dict, tls=None) -> psutil.Process:
    """`sleep 600` on the dev cluster's node, started through the node's API as a master would."""
    from gaia_common import rpc
    from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2
    spec = types_pb2.ContainerSpec(container_id="sleeper.0.1", app_id="sleeper", app_name="sleeper",
                                   instance_id="0", driver="process", command=["sleep", "600"], cluster=cluster)
    channel = rpc.channel(node["info"]["address"], tls=tls)
    try:
        status = node_pb2_grpc.NodeStub(channel).StartContainer(
            node_pb2.StartContainerRequest(epoch=int(epoch), spec=spec), timeout=30)
    finally:
        channel.close()
    assert status.state == types_pb2.CONTAINER_STATE_RUNNING and status.pid
    return psutil.Process(status.pid)


def _env(p) -> dict:
    try:
        return p.environ()
    except (psutil.Error, OSError):
        return {}
