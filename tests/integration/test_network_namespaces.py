"""Namespaces of the process driver (the shim joins the network namespace the hook made and
creates the extra ones a spec asks for), and the hook's wiring of a namespace that exists
already (the docker driver's path), tried on a plain process in `unshare -n`."""
import json
import os
import subprocess
import sys
import urllib.request

import pytest

from gaia_common.config import NodeConfig
from gaia_common.pb import types_pb2
from gaia_node.hooks import TaskContext
from gaia_node.network import NetworkPlan, hook as network_hook
from tests.integration.network_support import (HTTP_SERVER, leftovers, needs_netns, net_node_factory,  # noqa: F401
                                               teardown_network)
from tests.integration.node_harness import wait_for

S = types_pb2
NOTHING = {"netns": [], "addresses": [], "classes": [], "ports": {}, "veths": []}
pytestmark = needs_netns

# Writes what it sees of itself to argv[1], then sleeps.
INTROSPECT = ("import json, os, socket, sys, time\n"
              "json.dump({'pid': os.getpid(), 'hostname': socket.gethostname(),"
              " 'procs': sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}, open(sys.argv[1], 'w'))\n"
              "time.sleep(60)\n")


def ns(pid, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_extra_namespaces_of_the_process_driver(net_node_factory, tmp_path):
    node = net_node_factory()
    out = tmp_path / "seen.json"
    spec = node.spec(command=[sys.executable, "-c", INTROSPECT, str(out)], namespaces=["pid", "mount", "uts", "ipc"])
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    seen = json.loads(wait_for(lambda: out.exists() and out.read_text(), 10, what="the child's report"))
    assert seen["pid"] == 1 and seen["procs"] == [1]        # its own pid namespace, /proc remounted
    for kind in ("pid", "mnt", "uts", "ipc", "net"):
        assert ns(status.pid, kind) != ns(os.getpid(), kind), kind
    assert node.stop_container(spec.container_id, grace=0.5).state == S.CONTAINER_STATE_STOPPED
    assert leftovers(node.cfg) == NOTHING


def test_host_network_container_shares_the_host_namespace(net_node_factory):
    node = net_node_factory()
    spec = node.spec(host_network=True)
    status = node.start_container(spec)
    assert ns(status.pid, "net") == ns(os.getpid(), "net") and not status.container_ip
    node.stop_container(spec.container_id, grace=0.5)


def test_unknown_namespace_is_refused(net_node_factory):
    node = net_node_factory()
    import grpc
    with pytest.raises(grpc.RpcError) as err:
        node.start_container(node.spec(namespaces=["net"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "namespaces[0]" in err.value.details()
    assert node.report().containers == [] and leftovers(node.cfg) == NOTHING


@pytest.fixture
def hook_cfg(tmp_path):
    import random
    import uuid
    tag = uuid.uuid4().hex[:8]
    cfg = NodeConfig(state_dir=str(tmp_path / "node"), network_bridge=f"gtb{tag}",
                     container_subnet=f"10.214.{random.randrange(1, 250)}.0/24")
    try:
        yield cfg
    finally:
        teardown_network(cfg)


def test_existing_namespace_wired_by_pid(hook_cfg, tmp_path):
    """What the docker driver's containers get: the task makes its own (empty) namespace, the
    hook names and wires it after the start, by pid."""
    hook = network_hook.NetworkHook(hook_cfg)
    assert not hook.problem
    port = 23457
    server = subprocess.Popen(["unshare", "-n", sys.executable, "-c", HTTP_SERVER, str(port)])
    try:
        spec = types_pb2.ContainerSpec(container_id="boxed.0.1", driver="docker")
        spec.ports.add(name="http", protocol="tcp")
        ctx = TaskContext(spec=spec, status=types_pb2.ContainerStatus(), directory=str(tmp_path),
                          host_ports={"http": port}, env={})
        hook.prestart(ctx)
        assert ctx.netns == "" and ctx.env["GAIA_CONTAINER_IP"] == ctx.status.container_ip
        wait_for(lambda: ns(server.pid, "net") != ns(os.getpid(), "net"), what="unshare to exec")
        ctx.pid = server.pid
        hook.poststart(ctx)
        plan = NetworkPlan.from_config(hook_cfg)
        assert os.stat(f"/run/netns/{plan.netns_name(spec.container_id)}").st_ino == \
            os.stat(f"/proc/{server.pid}/ns/net").st_ino

        def answers():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    return reply.status == 200
            except OSError:
                return False
        wait_for(answers, 10, what="HTTP into the wired namespace")
        hook.poststop(ctx)
        assert not answers()
        assert not os.path.exists(f"/run/netns/{plan.netns_name(spec.container_id)}")
        assert not os.listdir(plan.ipam_dir) or os.listdir(plan.ipam_dir) == ["next"]
    finally:
        server.kill()
        server.wait()
