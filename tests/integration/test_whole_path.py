"""The whole path of one application, through the real CLI, masters, node, AM and etcd."""
import urllib.request

import psutil
import pytest

from tests.integration.harness import cluster_processes, running_cluster, wait_for

HELLO = """\
name: hello
instances: 2
command: ["{python}", "-m", "http.server", "$GAIA_PORT_HTTP", "--bind", "0.0.0.0"]
resources:
  request: {{cpu: 100m, memory: 64Mi}}
  limit: {{memory: 128Mi}}
ports: [http]
retry_times: 2
"""


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=1) as c:
        yield c


def running(cluster, name, count):
    status = cluster.cli_json("status", name)
    states = [i.get("status", {}).get("state") for i in status["instances"]]
    return status if states.count("CONTAINER_STATE_RUNNING") == count and len(states) == count else None


def http_ok(host, port) -> bool:
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as r:
        return r.status == 200


def test_submit_run_resolve_scale_kill(cluster, tmp_path):
    import sys
    spec = tmp_path / "hello.yaml"
    spec.write_text(HELLO.format(python=sys.executable))

    app_id = cluster.cli("submit", str(spec)).stdout.strip()
    assert app_id.startswith("hello-")

    status = wait_for(lambda: running(cluster, "hello", 2), 60, what="2 running instances")
    assert status["app"]["app_id"] == app_id
    assert status["app"]["state"] == "APP_STATE_RUNNING"
    assert status["am"]["status"]["state"] == "CONTAINER_STATE_RUNNING"
    node_ids = {i["allocation"]["node_id"] for i in status["instances"]}
    assert node_ids == set(cluster.nodes)

    # resolve: host:port of every running instance, and each answers HTTP on it
    endpoints = wait_for(lambda: (lambda e: e if len(e) == 2 else None)(cluster.cli_json("resolve", "hello")["endpoints"]),
                         20, what="2 endpoints")
    for e in endpoints:  # RUNNING means started, not yet listening: give the server a moment
        wait_for(lambda: http_ok(e["host"], e["ports"]["http"]), 15, what=f"HTTP on {e['ports']['http']}")
    table = cluster.cli("resolve", "hello").stdout
    assert f"{endpoints[0]['host']}:{endpoints[0]['ports']['http']}" in table

    listed = cluster.cli_json("list")
    assert [a["app"]["spec"]["name"] for a in listed["apps"]] == ["hello"]

    cluster.cli("scale", "hello", "3")
    wait_for(lambda: running(cluster, "hello", 3), 60, what="3 running instances")
    assert len(wait_for(lambda: (lambda e: e if len(e) == 3 else None)(cluster.cli_json("resolve", "hello")["endpoints"]),
                        20, what="3 endpoints")) == 3

    pids = [i["status"]["pid"] for i in running(cluster, "hello", 3)["instances"]]
    cluster.cli("kill", "hello")
    assert cluster.cli_json("status", "hello")["app"]["state"] == "APP_STATE_KILLED"
    wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), 30, what="instances to stop")
    wait_for(lambda: not [p for p in cluster_processes(cluster.name) if "gaia_cli am" in " ".join(p.cmdline())],
             30, what="the AM to exit")
    assert cluster.cli_json("resolve", "hello")["endpoints"] == []


def test_nodes_and_masters_json(cluster):
    nodes = cluster.cli_json("nodes")
    assert len(nodes["nodes"]) == 1
    node = nodes["nodes"][0]
    assert node["info"]["node_id"] in cluster.nodes
    assert int(node["info"]["capacity"]["cpu_millis"]) > 0
    shown = cluster.cli_json("node", "show", node["info"]["node_id"])
    assert shown["info"]["address"] == node["info"]["address"]
    assert "used" in shown and shown["running"] == [] and isinstance(shown["events"], list)

    masters = cluster.cli_json("masters")
    assert len(masters["masters"]) == 1
    assert masters["masters"][0]["leader"] is True
    assert int(masters["masters"][0]["epoch"]) > 0


def test_batch_app_succeeds(cluster, tmp_path):
    spec = tmp_path / "batch.yaml"
    spec.write_text("name: once\nkind: batch\ninstances: 2\ncommand: ['sh', '-c', 'exit 0']\n")
    cluster.cli("submit", str(spec))
    wait_for(lambda: cluster.cli_json("status", "once")["app"]["state"] == "APP_STATE_SUCCEEDED", 60,
             what="the batch app to succeed")


def test_failed_instance_is_restarted_up_to_retry_times(cluster, tmp_path):
    spec = tmp_path / "flaky.yaml"
    spec.write_text("name: flaky\nkind: batch\ninstances: 1\nretry_times: 2\ncommand: ['sh', '-c', 'exit 3']\n")
    cluster.cli("submit", str(spec))
    status = wait_for(lambda: (lambda s: s if s["app"]["state"] == "APP_STATE_FAILED" else None)(
        cluster.cli_json("status", "flaky")), 60, what="the batch app to fail")
    # 1 run + retry_times restarts, and the reason names the exit code
    assert "instance 0 failed 3 times (exit 3)" in status["app"]["message"]
    assert status["instances"] == []  # a finished app holds no allocations


@pytest.mark.parametrize("name, extra, reason", [
    ("boxed", "driver: docker\nimage: busybox\n", "waiting for capacity: 2 of 2 pending: labels: 1 removed (no docker driver)"),
    ("huge", "command: ['true']\nresources: {request: {memory: 60Ti}}\n", "short of memory_bytes"),
])
def test_pending_app_says_why(cluster, tmp_path, name, extra, reason):
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: {name}\ninstances: 2\n{extra}")
    cluster.cli("submit", str(spec))
    status = wait_for(lambda: (lambda s: s if reason in s["app"]["message"] else None)(
        cluster.cli_json("status", name)), 30,
        what=f"the reason {reason!r}", on_timeout=lambda: cluster.cli_json("status", name)["app"]["message"])
    assert status["instances"] == []
    assert reason in cluster.cli("status", name).stdout  # the table shows it too
