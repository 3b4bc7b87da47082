"""A node that cannot make network namespaces (not root) runs processes in the host's network,
saying so, unless they ask for bandwidth it cannot enforce."""
import pytest

from gaia_common.config import NodeConfig
from gaia_common.pb import types_pb2
from gaia_node.drivers.base import StartFailed
from gaia_node.hooks import TaskContext
from gaia_node.network import hook as network


@pytest.fixture
def rootless_hook(monkeypatch, tmp_path):
    monkeypatch.setattr(network, "support_problem", lambda: "network namespaces need root")
    cfg = NodeConfig(state_dir=str(tmp_path), host_ip="192.0.2.7")
    return network.NetworkHook(cfg)


def context(driver="process", net_out=0):
    spec = types_pb2.ContainerSpec(container_id="a-1.0.0", driver=driver, command=["x"], host_network=False)
    spec.resources.request.net_out_bps = net_out
    return TaskContext(spec=spec, status=types_pb2.ContainerStatus(), directory="/nonexistent",
                       host_ports={"http": 20001}, env={})


def test_process_without_bandwidth_shares_the_host_network(rootless_hook):
    ctx = context()
    rootless_hook.prestart(ctx)
    assert ctx.netns == ""  # the driver starts it in the host's network
    assert ctx.env["GAIA_CONTAINER_IP"] == "192.0.2.7"
    assert "running in the host's network: network namespaces need root" in ctx.status.message
    rootless_hook.poststop(ctx)  # nothing to undo


def test_bandwidth_it_cannot_enforce_is_refused(rootless_hook):
    with pytest.raises(StartFailed, match="network namespaces need root"):
        rootless_hook.prestart(context(net_out=10_000_000))


def test_docker_without_namespace_support_is_refused(rootless_hook):
    with pytest.raises(StartFailed):
        rootless_hook.prestart(context(driver="docker"))
