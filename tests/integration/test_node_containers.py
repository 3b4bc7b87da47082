"""The node manager with real etcd, the real process driver and (as root) real cgroup v1."""
import json
import os
import socket
import sys
import time
import urllib.request

import grpc
import psutil
import pytest

from gaia_common.masters import current_epoch
from gaia_common.pb import types_pb2
from tests.integration.node_harness import REAL_V1, node, node_cfg, wait_for  # noqa: F401 (fixtures)

S = types_pb2
# Dumps its environment to argv[1], then serves HTTP at argv[2] on every address of its network
# namespace (its own: a server bound to 127.0.0.1 there is not reachable from the host).
HTTP_SERVER = (
    "import http.server, json, os, sys\n"
    "json.dump(dict(os.environ), open(sys.argv[1], 'w'))\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[2])),"
    " http.server.SimpleHTTPRequestHandler).serve_forever()\n")


def http_ok(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as reply:
            return reply.status == 200
    except OSError:
        return False


def test_registers_the_node(node):
    info = node.etcd_message(node.keys.node(node.cfg.id), S.NodeInfo)
    assert info.address == node.manager.address and info.drivers == ["process"]
    assert info.capacity.cpu_millis >= 1000 and info.capacity.memory_bytes > 0 and info.capacity.disk_bytes > 0
    assert node.report().info.node_id == node.cfg.id


def test_http_server_runs_registers_and_stops(node, tmp_path):
    env_file = tmp_path / "env.json"
    spec = node.spec(command=[sys.executable, "-c", HTTP_SERVER, str(env_file), "$GAIA_PORT_HTTP"], ports=["http"],
                     env={"GREETING": "hi"})
    spec.resources.request.memory_bytes = 64 << 20
    spec.resources.limit.memory_bytes = 256 << 20
    spec.resources.request.cpu_millis = spec.resources.limit.cpu_millis = 500
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING and status.pid > 0
    port = status.host_ports["http"]
    assert node.cfg.port_range[0] <= port <= node.cfg.port_range[1]
    wait_for(lambda: http_ok(port), what="the http port to answer")

    env = json.loads(env_file.read_text())
    assert env["GAIA_PORT_HTTP"] == str(port) and env["GREETING"] == "hi"
    assert (env["GAIA_APP"], env["GAIA_APP_ID"], env["GAIA_INSTANCE"]) == ("web", "web-id", "0")
    assert (env["GAIA_CLUSTER"], env["GAIA_NODE_ID"]) == (node.cfg.cluster, node.cfg.id)
    assert env["GAIA_CONTAINER_ID"] == spec.container_id and env["GAIA_HOST_IP"] == "127.0.0.1"

    in_etcd = node.etcd_message(node.keys.container(spec.app_id, spec.container_id), S.ContainerStatus)
    assert in_etcd.state == S.CONTAINER_STATE_RUNNING and in_etcd.host_ports["http"] == port
    assert in_etcd.pid == status.pid and in_etcd.node_id == node.cfg.id
    service = node.etcd_message(node.keys.service("web", "0"), S.ServiceEndpoint)
    assert service.ports["http"] == port and service.host == "127.0.0.1"
    assert service.container_id == spec.container_id

    if REAL_V1:
        memory = node.cgroup_dir("memory", spec.container_id)
        assert str(status.pid) in open(os.path.join(memory, "cgroup.procs")).read().split()
        assert open(os.path.join(memory, "memory.limit_in_bytes")).read().strip() == str(256 << 20)
        assert open(os.path.join(memory, "memory.soft_limit_in_bytes")).read().strip() == str(64 << 20)
        cpu = node.cgroup_dir("cpu", spec.container_id)
        assert open(os.path.join(cpu, "cpu.shares")).read().strip() == "512"
        assert open(os.path.join(cpu, "cpu.cfs_quota_us")).read().strip() == "50000"

    stopped = node.stop_container(spec.container_id, remove=True)
    assert stopped.state == S.CONTAINER_STATE_STOPPED
    assert not psutil.pid_exists(status.pid) or psutil.Process(status.pid).status() == psutil.STATUS_ZOMBIE
    assert node.etcd.get(node.keys.container(spec.app_id, spec.container_id))[0] is None
    assert node.etcd.get(node.keys.service("web", "0"))[0] is None
    assert node.container(spec.container_id) is None
    if REAL_V1:
        assert not os.path.exists(node.cgroup_dir("memory", spec.container_id))


def test_start_is_idempotent(node):
    spec = node.spec()
    first = node.start_container(spec)
    again = node.start_container(spec)
    assert again.pid == first.pid and len(node.report().containers) == 1


def test_stop_without_remove_keeps_the_status(node):
    spec = node.spec(ports=["http"])
    node.start_container(spec)
    stopped = node.stop_container(spec.container_id)
    assert stopped.state == S.CONTAINER_STATE_STOPPED and "SIGTERM" in stopped.message
    in_etcd = node.etcd_message(node.keys.container(spec.app_id, spec.container_id), S.ContainerStatus)
    assert in_etcd.state == S.CONTAINER_STATE_STOPPED
    assert node.etcd.get(node.keys.service("web", "0"))[0] is None


def test_sigkill_after_grace(node, tmp_path):
    ready = tmp_path / "ready"
    spec = node.spec(command=[sys.executable, "-c", "import signal, sys, time; "
                              "signal.signal(signal.SIGTERM, signal.SIG_IGN); open(sys.argv[1], 'w').close(); "
                              "time.sleep(60)", str(ready)])
    node.start_container(spec)
    wait_for(ready.exists, what="the child to ignore SIGTERM")
    stopped = node.stop_container(spec.container_id, grace=0.3)
    assert stopped.state == S.CONTAINER_STATE_STOPPED and stopped.exit_code == 137


def test_nonzero_exit_shows_failed(node):
    spec = node.spec(command=[sys.executable, "-c", "import sys; sys.exit(3)"], ports=["http"])
    node.start_container(spec)
    status = wait_for(lambda: (s := node.container(spec.container_id)) and s.state == S.CONTAINER_STATE_FAILED and s,
                      what="FAILED")
    assert status.exit_code == 3 and status.finished_at > 0
    # the node's own view changes first; etcd follows once the clean-up hooks ran
    in_etcd = wait_for(lambda: (m := node.etcd_message(node.keys.container(spec.app_id, spec.container_id),
                                                       S.ContainerStatus)) and m.state == S.CONTAINER_STATE_FAILED and m,
                       what="the status key to say FAILED")
    assert in_etcd.exit_code == 3
    assert node.etcd.get(node.keys.service("web", "0"))[0] is None


def test_zero_exit_shows_exited(node):
    spec = node.spec(command=["true"])
    node.start_container(spec)
    status = wait_for(lambda: (s := node.container(spec.container_id)) and s.state == S.CONTAINER_STATE_EXITED and s,
                      what="EXITED")
    assert status.exit_code == 0


def test_command_not_found_fails_with_a_message(node):
    spec = node.spec(command=["/no/such/program"])
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_FAILED and status.exit_code == 127
    assert "could not start" in status.message


def test_stale_epoch_is_refused_and_counted(node, etcd):
    lease = etcd.lease(10)
    etcd.put(node.keys.election_key(lease.id), S.MasterInfo(id="m1").SerializeToString(), lease=lease)
    try:
        epoch = current_epoch(etcd, node.keys)
        wait_for(lambda: node.report().known_epoch == epoch, what="the leader epoch")
        with pytest.raises(grpc.RpcError) as err:
            node.start_container(node.spec(), epoch=epoch - 1)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"stale epoch {epoch - 1} < {epoch}" in err.value.details()
        with pytest.raises(grpc.RpcError):
            node.stop_container("whatever", epoch=0)
        report = node.report()
        assert report.refused_commands == 2 and report.containers == []

        assert node.start_container(node.spec(), epoch=epoch).state == S.CONTAINER_STATE_RUNNING
    finally:
        etcd.revoke_lease(lease.id)


def test_deposed_leader_is_refused_right_after_failover(node, etcd):
    old = etcd.lease(10)
    etcd.put(node.keys.election_key(old.id), b"", lease=old)
    old_epoch = current_epoch(etcd, node.keys)
    node.start_container(node.spec(), epoch=old_epoch)
    etcd.revoke_lease(old.id)                      # the old leader is gone...
    new = etcd.lease(10)
    etcd.put(node.keys.election_key(new.id), b"", lease=new)  # ...and a new one elected
    try:
        wait_for(lambda: current_epoch(etcd, node.keys) > old_epoch)
        time.sleep(0.6)   # longer than the re-read age: the check itself must see the new leader
        with pytest.raises(grpc.RpcError) as err:
            node.stop_container(node.spec().container_id, epoch=old_epoch)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        etcd.revoke_lease(new.id)


def test_errors_name_what_is_wrong(node):
    with pytest.raises(grpc.RpcError) as err:
        node.stop_container("nope.0.1")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        node.start_container(node.spec(driver="docker"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec.driver" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        node.start_container(node.spec(image="busybox"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec.image" in err.value.details()


def test_fixed_port_in_use_is_refused(node):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        spec = node.spec()
        spec.ports.add(name="http", container_port=busy.getsockname()[1], protocol="tcp")
        with pytest.raises(grpc.RpcError) as err:
            node.start_container(spec)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert node.report().containers == []


def test_lost_lease_registers_again(node, etcd):
    spec = node.spec(ports=["http"])
    node.start_container(spec)
    etcd.revoke_lease(node.manager.registration.lease_id)  # as if etcd had expired it
    assert node.etcd.get(node.keys.node(node.cfg.id))[0] is None
    wait_for(lambda: node.etcd.get(node.keys.node(node.cfg.id))[0] is not None, what="the node key again")
    wait_for(lambda: node.etcd.get(node.keys.container(spec.app_id, spec.container_id))[0] is not None,
             what="the container key again")
    assert node.etcd.get(node.keys.service("web", "0"))[0] is not None


def test_limit_below_request_is_refused_and_leaves_nothing(node, etcd):
    spec = node.spec()
    spec.resources.request.memory_bytes = 128 * 2**20
    spec.resources.limit.memory_bytes = 64 * 2**20
    with pytest.raises(grpc.RpcError) as err:
        node.start_container(spec)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resources.limit.memory" in err.value.details()
    assert node.report().containers == []
    assert not os.path.exists(os.path.join(node.cfg.state_dir, "containers", spec.container_id))
    assert list(etcd.get_prefix(node.keys.containers)) == []
