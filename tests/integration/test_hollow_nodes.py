"""Hollow nodes against the real master and etcd: `gaia node run --hollow N` registers N nodes,
keeps their leases alive, and reports the AM it is asked to start as RUNNING (nothing runs)."""
import time

import pytest

from tests.integration.harness import LocalCluster, wait_for

APP = """\
name: {name}
command: ["sleep", "1000"]
instances: 2
resources:
  request: {{cpu: 100m, memory: 64Mi}}
"""


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    c = LocalCluster(etcd_server.endpoint, cluster_name, tmp_path)
    c.start_master()
    c.start_hollow(50, labels={"rack": "r{i/10}", "zone": "z{i%3}"}, capacity={"cpu": 16, "memory": "64Gi"})
    try:
        c.wait_ready(nodes=50)
        yield c
    finally:
        c.stop()


def test_fifty_hollow_nodes_register_and_stay(cluster):
    nodes = cluster.cli_json("nodes")["nodes"]
    assert len(nodes) == 50
    ids = sorted(n["info"]["node_id"] for n in nodes)
    assert ids == sorted(f"{cluster.name}-h-hollow-{i}" for i in range(50))
    by_id = {n["info"]["node_id"]: n["info"] for n in nodes}
    assert by_id[f"{cluster.name}-h-hollow-23"]["labels"] == {"rack": "r2", "zone": "z2", "gaia.hollow": "true"}
    assert by_id[f"{cluster.name}-h-hollow-0"]["capacity"]["cpu_millis"] == "16000"
    assert len({n["address"] for n in by_id.values()}) == 1        # one port serves all of them
    shown = cluster.cli_json("node", "show", f"{cluster.name}-h-hollow-7")   # the master asks the node's Status
    assert shown["info"]["node_id"] == f"{cluster.name}-h-hollow-7" and shown["running"] == []
    # leases live past several TTLs (3 s): the shared keepalive stream renews all 50
    time.sleep(7)
    assert len(cluster.cli_json("nodes")["nodes"]) == 50


def test_am_runs_on_a_hollow_node_and_kill_stops_it(cluster, tmp_path):
    spec = tmp_path / "app.yaml"
    spec.write_text(APP.format(name="hollowapp"))
    cluster.cli("submit", str(spec))

    def am_running():
        status = cluster.cli_json("status", "hollowapp")
        am = status.get("am", {})
        return status if am.get("status", {}).get("state") == "CONTAINER_STATE_RUNNING" else None

    status = wait_for(am_running, 20, what="the AM reported running")
    am = status["am"]
    assert am["status"]["node_id"] == am["allocation"]["node_id"]      # reported by the node it was granted on
    assert "-hollow-" in am["status"]["node_id"]
    assert status["instances"] == []          # the AM never really runs, so it asks for nothing
    # `node show` asks that very hollow node (the request names it), not the fleet's first
    shown = cluster.cli_json("node", "show", am["status"]["node_id"])
    assert [c["container_id"] for c in shown["running"]] == [am["status"]["container_id"]]

    cluster.cli("kill", "hollowapp")

    def am_gone():
        containers = list(cluster.etcd.get_prefix(cluster.keys.containers + status["app"]["app_id"] + "/"))
        return not containers
    wait_for(am_gone, 20, what="the AM's container stopped and removed")
    assert cluster.cli_json("status", "hollowapp")["app"]["state"] == "APP_STATE_KILLED"


def test_hollow_nodes_leave_when_stopped(cluster):
    proc = cluster.nodes[f"{cluster.name}-h"]
    proc.terminate()
    proc.wait(15)
    wait_for(lambda: not cluster.cli_json("nodes")["nodes"], 10, what="the hollow nodes to leave")
