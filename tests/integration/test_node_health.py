"""Health checks and partition fencing on a real node manager, real etcd, real process driver.

Resolution goes through the master's real Resolve handler over a real NodeView mirror of the
registry (no master process: the app table's lookup is stubbed), so what is checked is what
the node writes and what Resolve makes of it.
"""
import os
import shutil
import signal
import sys
import tempfile
import time
import types
import uuid

import pytest

from gaia_common.config import NodeConfig
from gaia_common.etcd import EtcdServer, connect
from gaia_common.pb import master_pb2, types_pb2
from gaia_master.node_view import NodeView
from gaia_master.access import Access
from gaia_master.service import MasterService
from tests.integration.docker_support import busybox_image, docker_client  # noqa: F401 (fixtures)
from tests.integration.node_harness import (CGROUP_ROOT, IS_ROOT, REAL_V1, NodeHarness, node,  # noqa: F401
                                            node_cfg, wait_for)

S = types_pb2
# Serves HTTP on 0.0.0.0:argv[2] while the file argv[1] exists. Mode "status" (argv[3]): then
# answers 503; mode "close": then closes its listening port and sleeps on (it keeps running).
FLAG_SERVER = (
    "import http.server, os, sys, threading, time\n"
    "flag, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200 if os.path.exists(flag) else 503); self.end_headers()\n"
    "    def log_message(self, *a): pass\n"
    "srv = http.server.ThreadingHTTPServer(('0.0.0.0', port), H)\n"
    "threading.Thread(target=srv.serve_forever, daemon=True).start()\n"
    "while mode != 'close' or os.path.exists(flag): time.sleep(0.05)\n"
    "srv.shutdown(); srv.server_close(); time.sleep(300)\n")
INTERVAL, THRESHOLD = 0.3, 2
VERDICT = INTERVAL * THRESHOLD + 3.0      # interval x threshold + slack


class Resolver:
    """The master's Resolve over a NodeView of this test's cluster."""

    def __init__(self, etcd, keys):
        self.view = NodeView(etcd, keys)
        self.view.sync()
        # every app asked about exists (as the real table's get answers, or raises NOT_FOUND)
        table = types.SimpleNamespace(get=lambda name: S.AppRecord(spec=S.AppSpec(name=name)))
        # no TLS: the caller is the anonymous cluster admin, who may resolve every app
        master = types.SimpleNamespace(is_serving=lambda: True, node_view=self.view, table=table,
                                       access=Access(tenancy=None, pools=None, apps=table))
        self.service = MasterService(master)

    def instances(self, app: str, port: str = "") -> list:
        reply = self.service.Resolve(master_pb2.ResolveRequest(app=app, port=port), None)
        return [e.instance_id for e in reply.endpoints]


@pytest.fixture
def resolver(node):
    r = Resolver(node.etcd, node.keys)
    yield r
    r.view.close()


def checked_spec(node, flag, mode, **check):
    spec = node.spec(command=[sys.executable, "-c", FLAG_SERVER, str(flag), "$GAIA_PORT_HTTP", mode],
                     ports=["http"], version=3)
    spec.health_check.CopyFrom(S.HealthCheck(port="http", interval_seconds=INTERVAL, timeout_seconds=0.5,
                                             failure_threshold=THRESHOLD, **check))
    return spec


def registry_health(node, app="web", instance="0"):
    entry = node.etcd_message(node.keys.service(app, instance), S.ServiceEndpoint)
    return entry.health if entry else None


def status_health(node, spec):
    status = node.etcd_message(node.keys.container(spec.app_id, spec.container_id), S.ContainerStatus)
    return status.health if status else None


def wait_health(node, spec, value, timeout):
    wait_for(lambda: registry_health(node) == value and status_health(node, spec) == value, timeout=timeout,
             what=f"{spec.container_id} {value} (registry: {registry_health(node)}, "
                  f"status: {status_health(node, spec)})")


def test_http_check_starting_healthy_unhealthy_and_back(node, resolver, tmp_path):
    flag = tmp_path / "ok"
    flag.touch()
    spec = checked_spec(node, flag, "status", kind="http", path="/", initial_delay_seconds=1.0)
    status = node.start_container(spec)
    assert status.health == "starting" and status.version == 3
    assert registry_health(node) == "starting" and resolver.instances("web") == []

    wait_health(node, spec, "healthy", timeout=1.0 + VERDICT)
    wait_for(lambda: resolver.instances("web") == ["0"], timeout=2, what="Resolve to list the healthy instance")
    assert resolver.instances("web", port="http") == ["0"]
    in_etcd = node.etcd_message(node.keys.container(spec.app_id, spec.container_id), S.ContainerStatus)
    assert in_etcd.version == 3

    flag.unlink()                                     # 503 from now on
    started = time.monotonic()
    wait_health(node, spec, "unhealthy", timeout=VERDICT)
    assert time.monotonic() - started >= INTERVAL * (THRESHOLD - 1)  # not on the first failure
    wait_for(lambda: resolver.instances("web") == [], timeout=2, what="Resolve to drop the unhealthy instance")
    assert any(e.kind == "health.unhealthy" and e.container_id == spec.container_id for e in node.report().events)
    assert node.container(spec.container_id).state == S.CONTAINER_STATE_RUNNING  # the AM decides, not the node

    flag.touch()                                      # one success: healthy again
    wait_health(node, spec, "healthy", timeout=VERDICT)
    wait_for(lambda: resolver.instances("web") == ["0"], timeout=2, what="Resolve to list it again")

    node.stop_container(spec.container_id)
    assert node.manager.containers.hooks.hooks[-1].watching() == []   # probes end with the container


def test_tcp_check_sees_the_port_close(node, resolver, tmp_path):
    flag = tmp_path / "ok"
    flag.touch()
    spec = checked_spec(node, flag, "close", kind="tcp")
    node.start_container(spec)
    wait_health(node, spec, "healthy", timeout=VERDICT)
    assert resolver.instances("web") == ["0"]

    flag.unlink()                                     # the server closes its port, the process runs on
    wait_health(node, spec, "unhealthy", timeout=VERDICT)
    wait_for(lambda: resolver.instances("web") == [], timeout=2, what="Resolve to drop it")
    assert node.container(spec.container_id).state == S.CONTAINER_STATE_RUNNING


def test_exec_check_in_the_containers_environment_survives_a_node_restart(node, resolver, tmp_path):
    flag = tmp_path / "ok"
    flag.touch()
    # $FLAG comes from the container's env: the check runs with it, in its namespaces and cgroups
    seen = tmp_path / "seen"
    spec = node.spec(command=["sleep", "60"], env={"FLAG": str(flag), "SEEN": str(seen)})
    where = 'readlink /proc/self/ns/net > "$SEEN"; cat /proc/self/cgroup >> "$SEEN"; test -f "$FLAG"'
    spec.health_check.CopyFrom(S.HealthCheck(kind="exec", command=["sh", "-c", where],
                                             interval_seconds=INTERVAL, timeout_seconds=2,
                                             failure_threshold=THRESHOLD))
    pid = node.start_container(spec).pid
    wait_health(node, spec, "healthy", timeout=VERDICT)
    assert resolver.instances("web") == ["0"]
    netns, *cgroups = seen.read_text().splitlines()
    assert netns == os.readlink(f"/proc/{pid}/ns/net")            # the container's network, not the node's
    if REAL_V1:                                                   # and its cgroups
        assert any(line.endswith(f"/{spec.container_id}") for line in cgroups), cgroups

    node.stop()                                       # the container runs on; a new node manager adopts it
    node.start()
    assert node.container(spec.container_id).health == "healthy"   # no flap back to starting
    flag.unlink()
    wait_health(node, spec, "unhealthy", timeout=VERDICT)
    wait_for(lambda: resolver.instances("web") == [], timeout=2, what="Resolve to drop it")


def test_exec_check_of_a_docker_container(node_cfg, etcd, docker_client, busybox_image, tmp_path):
    from gaia_cli.procs import remove_cgroups
    from gaia_node.drivers.docker import LABEL_PARENT
    from tests.integration.docker_support import remove_labelled
    node_cfg.drivers, node_cfg.docker_host = ["process", "docker"], os.environ.get("DOCKER_HOST", "")
    harness = NodeHarness(node_cfg, etcd)
    try:
        harness.start()
        # the file the check looks for lives inside the container: the check runs in there
        spec = harness.spec(command=["sh", "-c", "touch /tmp/ok; sleep 60"], driver="docker", image=busybox_image,
                            host_network=True)
        spec.health_check.CopyFrom(S.HealthCheck(kind="exec", command=["test", "-f", "/tmp/ok"],
                                                 interval_seconds=INTERVAL, timeout_seconds=2,
                                                 failure_threshold=THRESHOLD))
        harness.start_container(spec)
        wait_health(harness, spec, "healthy", timeout=VERDICT + 5)
        docker_id = harness.manager.containers.get(spec.container_id).handle.docker_id
        exec_id = docker_client.api.exec_create(docker_id, ["rm", "/tmp/ok"])["Id"]
        docker_client.api.exec_start(exec_id)
        wait_health(harness, spec, "unhealthy", timeout=VERDICT + 5)
    finally:
        harness.stop()
        remove_labelled(docker_client, LABEL_PARENT, node_cfg.cgroup_parent)
        harness.clean_up()
        remove_cgroups(node_cfg.cgroup_parent)


# ---- partitions: a dedicated etcd this test can freeze ----

@pytest.fixture
def frozen_etcd():
    data_dir = tempfile.mkdtemp(prefix="gaia-test-partition-etcd-")
    server = EtcdServer(data_dir=data_dir, name="gaia-partition").start()
    yield server
    server.proc.send_signal(signal.SIGCONT)   # whatever the test did
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_partition_stops_stop_on_partition_containers_after_the_grace(frozen_etcd, tmp_path, cluster_name):
    tag = uuid.uuid4().hex[:8]
    grace = 2.0
    cfg = NodeConfig(cluster=cluster_name, etcd=[frozen_etcd.endpoint], id=f"node-{tag}",
                     state_dir=str(tmp_path / "node"), cgroup_parent=f"gaia-test-{tag}", lease_ttl=2,
                     partition_grace=grace, cgroup_root=CGROUP_ROOT if IS_ROOT else str(tmp_path / "no-cgroups"))
    etcd = connect([frozen_etcd.endpoint])
    harness = NodeHarness(cfg, etcd)
    try:
        harness.start()
        fenced = harness.spec(name="gang", command=["sleep", "120"], stop_on_partition=True)
        kept = harness.spec(name="svc", command=["sleep", "120"])
        for spec in (fenced, kept):
            assert harness.start_container(spec).state == S.CONTAINER_STATE_RUNNING

        frozen_etcd.proc.send_signal(signal.SIGSTOP)      # the node can no longer renew its lease
        frozen_at = time.monotonic()
        wait_for(lambda: harness.container(fenced.container_id).state == S.CONTAINER_STATE_FAILED,
                 timeout=grace + 10, what="the stop_on_partition container to be stopped")
        # renewals are every ttl/3; the last one may have landed just before the freeze
        assert time.monotonic() - frozen_at >= grace - cfg.lease_ttl / 3 - 0.1
        stopped = harness.container(fenced.container_id)
        assert stopped.platform_reason.startswith("partition")     # not charged to the app
        assert harness.container(kept.container_id).state == S.CONTAINER_STATE_RUNNING
        events = [(e.kind, e.container_id) for e in harness.report().events]
        assert ("partition.stop", fenced.container_id) in events
        assert ("partition.stop", kept.container_id) not in events

        frozen_etcd.proc.send_signal(signal.SIGCONT)      # back: registered and republished
        wait_for(lambda: harness.etcd_message(harness.keys.node(cfg.id), S.NodeInfo) is not None
                 and _state(harness, fenced) == S.CONTAINER_STATE_FAILED
                 and _state(harness, kept) == S.CONTAINER_STATE_RUNNING,
                 timeout=15, what="the node and its containers' statuses back in etcd")
        assert harness.container(kept.container_id).state == S.CONTAINER_STATE_RUNNING
    finally:
        frozen_etcd.proc.send_signal(signal.SIGCONT)
        harness.clean_up()
        etcd.close()


def _state(harness, spec):
    status = harness.etcd_message(harness.keys.container(spec.app_id, spec.container_id), S.ContainerStatus)
    return status.state if status else None


# ---- the whole path: spec -> AM -> node probes -> the real master's Resolve ----

CHECKED_APP = """\
name: checked
instances: 1
command: ["{python}", "-m", "http.server", "$GAIA_PORT_HTTP", "--bind", "0.0.0.0"]
resources: {{request: {{cpu: 50m, memory: 32Mi}}}}
ports: [http]
health_check: {{kind: http, port: http, path: /, interval: 300ms, initial_delay: 2s}}
"""


def test_submitted_app_is_resolved_once_healthy(etcd_server, cluster_name, tmp_path):
    from tests.integration.harness import running_cluster, wait_for as wait_long
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=1) as cluster:
        path = tmp_path / "checked.yaml"
        path.write_text(CHECKED_APP.format(python=sys.executable))
        cluster.cli("submit", str(path))
        client = cluster.client(retry_for=10)

        def instance():
            views = client.call("GetApp", master_pb2.GetAppRequest(name="checked")).instances
            running = [v.status for v in views if v.status.state == S.CONTAINER_STATE_RUNNING]
            return running[0] if running else None

        first = wait_long(instance, 40, what="the instance running")
        resolved = client.call("Resolve", master_pb2.ResolveRequest(app="checked")).endpoints
        if first.health == "starting":               # within its initial delay: not handed out yet
            assert [e.instance_id for e in resolved] == []
        wait_long(lambda: [e.health for e in client.call(
            "Resolve", master_pb2.ResolveRequest(app="checked")).endpoints] == ["healthy"], 15,
            what="Resolve to list the instance once healthy")
        assert wait_long(instance, 5, what="its status").health == "healthy"
