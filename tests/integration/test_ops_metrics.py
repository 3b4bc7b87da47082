"""/metrics of a real master and node while an app runs and restarts, parsed with
prometheus_client's text-format parser; the daemons' log lines carry app and instance."""
import json
import os
import signal
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gaia_common.etcd import free_port
from tests.integration.harness import LocalCluster, wait_for

APP = """\
name: metered
instances: 2
command: ["{python}", "-c", "import time; time.sleep(600)"]
resources:
  request: {{cpu: 100m, memory: 32Mi}}
retry_times: 3
"""


def scrape(port: int) -> dict:
    """sample name -> [(labels, value)], from the page as Prometheus would read it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(samples: dict, name: str, **labels) -> float:
    return sum(v for l, v in samples.get(name, []) if all(l.get(k) == x for k, x in labels.items()))


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    c = LocalCluster(etcd_server.endpoint, cluster_name, tmp_path)
    c.ports = {"master": free_port(), "node": free_port()}
    try:
        # the master logs JSON, the node key=value text: both formats are read below
        c.start_master(metrics_listen=f"127.0.0.1:{c.ports['master']}", log_format="json")
        c.start_node(metrics_listen=f"127.0.0.1:{c.ports['node']}")
        c.wait_ready(nodes=1)
        yield c
    finally:
        c.stop()


def instances(cluster):
    status = cluster.cli_json("status", "metered")
    return [i for i in status["instances"] if i.get("status", {}).get("state") == "CONTAINER_STATE_RUNNING"]


def test_metrics_move_and_logs_name_the_app(cluster, tmp_path):
    spec = tmp_path / "metered.yaml"
    spec.write_text(APP.format(python=sys.executable))
    app_id = cluster.cli("submit", str(spec)).stdout.strip()
    running = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(instances(cluster)), 45,
                       what="2 running instances")

    master = wait_for(lambda: (lambda m: m if total(m, "gaia_master_placements_total") >= 3 else None)(
        scrape(cluster.ports["master"])), 15, what="placements counted (the AM and 2 instances)")
    assert total(master, "gaia_master_is_leader") == 1 and total(master, "gaia_master_epoch") > 0
    assert total(master, "gaia_master_leadership_acquired_total") == 1
    assert total(master, "gaia_master_scheduling_cycles_total") >= 1
    assert total(master, "gaia_master_scheduling_cycle_duration_seconds_count") >= 1
    assert total(master, "gaia_master_scheduling_wait_duration_seconds_count") >= 1
    assert total(master, "gaia_master_apps", state="running") == 1
    assert total(master, "gaia_master_nodes") == 1

    node = scrape(cluster.ports["node"])
    assert total(node, "gaia_node_container_starts_total", driver="process") >= 3
    assert total(node, "gaia_node_containers", state="running") == 3
    assert total(node, "gaia_node_cpu_allocated_cores") >= 0.2
    assert total(node, "gaia_node_memory_allocated_bytes") >= 64 * 2**20
    assert total(node, "gaia_node_memory_capacity_bytes") > 0 and total(node, "gaia_node_cpu_capacity_cores") > 0
    assert "gaia_node_memory_used_bytes" in node

    # a user failure: the AM restarts the instance; the node counts the end and the restart,
    # the master the charged restart
    os.kill(running[0]["status"]["pid"], signal.SIGKILL)
    node = wait_for(lambda: (lambda n: n if total(n, "gaia_node_container_restarts_total") >= 1 else None)(
        scrape(cluster.ports["node"])), 30, what="the restart counted on the node")
    assert total(node, "gaia_node_container_ends_total", cause="failed") >= 1
    wait_for(lambda: total(scrape(cluster.ports["master"]), "gaia_master_instance_restarts_total", cause="user") >= 1,
             15, what="the charged restart counted on the master")

    # logs: a container start names its app and instance; every master line its cluster and id
    node_log = cluster.log(next(iter(cluster.nodes)))
    started = [line for line in node_log.splitlines() if f"container {app_id}.0.0 started" in line]
    assert started, node_log[-2000:]
    assert f"app={app_id} instance=0 container={app_id}.0.0" in started[0]
    assert f"cluster={cluster.name} node={next(iter(cluster.nodes))}" in started[0]
    lines = [json.loads(line) for line in cluster.log("master-1").splitlines() if line.startswith("{")]
    assert lines and all(doc["cluster"] == cluster.name and doc["master"] == f"{cluster.name}-m1" for doc in lines)
    assert any(doc.get("app") == app_id and doc.get("instance") == "am" for doc in lines), "AM actions name the app"
