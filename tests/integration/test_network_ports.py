"""Named ports of containers in their own network namespace: DNAT at the node's address."""
import os
import socket
import sys
import urllib.request

from gaia_common.pb import types_pb2
from gaia_node.network import NetworkPlan
from tests.integration.network_support import (HTTP_SERVER, http_get_in, in_netns, leftovers, needs_netns,  # noqa: F401
                                               net_node_factory, peer)
from tests.integration.node_harness import wait_for

S = types_pb2
pytestmark = needs_netns


def http_ok(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def test_named_port_reached_at_the_node_address_from_another_namespace(net_node_factory, peer):
    node = net_node_factory(host_ip=peer.host_ip)
    spec = node.spec(command=[sys.executable, "-c", HTTP_SERVER, "$GAIA_PORT_HTTP"], ports=["http"])
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    port = status.host_ports["http"]
    assert status.container_ip.startswith(node.cfg.container_subnet.rsplit(".", 1)[0] + ".")
    assert node.container(spec.container_id).container_ip == status.container_ip

    # another "machine": the peer namespace reaches the node's address and the host port
    wait_for(lambda: http_get_in(peer.name, f"http://{peer.host_ip}:{port}/"), 20, what="HTTP from the peer namespace")
    # the host itself, through loopback and through the node's address
    wait_for(lambda: http_ok("127.0.0.1", port), 10, what="HTTP on 127.0.0.1")
    assert http_ok(peer.host_ip, port)
    # the registry keeps the node's address and the host port
    service = node.etcd_message(node.keys.service("web", "0"), S.ServiceEndpoint)
    assert (service.host, service.ports["http"]) == (peer.host_ip, port)
    # the program really runs in its own namespace, with its own address
    netns = f"gaia-{NetworkPlan.from_config(node.cfg).tag}-{spec.container_id}"
    assert f"{status.container_ip}/" in in_netns(netns, "ip", "-4", "addr", "show", "eth0").stdout
    assert os.stat(f"/proc/{status.pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino
    node.stop_container(spec.container_id, remove=True)
    assert not http_ok("127.0.0.1", port)
    assert leftovers(node.cfg) == {"netns": [], "addresses": [], "classes": [], "ports": {}, "veths": []}


def test_port_taken_is_refused_and_leaves_nothing(net_node_factory):
    node = net_node_factory()
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        spec = node.spec(ports=[])
        spec.ports.add(name="http", container_port=busy.getsockname()[1], protocol="tcp")
        try:
            node.start_container(spec)
            raise AssertionError("a taken port was accepted")
        except Exception as e:  # grpc.RpcError
            assert "in use" in str(e)
    assert node.report().containers == []
    assert leftovers(node.cfg) == {"netns": [], "addresses": [], "classes": [], "ports": {}, "veths": []}


def test_network_setup_failure_is_clear_and_leaves_nothing(net_node_factory):
    """A /30 has one address for containers: the second start fails in the network hook."""
    import grpc
    import pytest
    node = net_node_factory()
    node.cfg.container_subnet = node.cfg.container_subnet.replace(".0/24", ".0/30")
    node.stop()
    node.start()
    first = node.start_container(node.spec(name="first", ports=["http"]))
    assert first.state == S.CONTAINER_STATE_RUNNING
    with pytest.raises(grpc.RpcError) as err:
        node.start_container(node.spec(name="second", ports=["http"]))
    assert "no free address" in err.value.details()
    assert [c.container_id for c in node.report().containers] == [first.container_id]
    left = leftovers(node.cfg)
    assert len(left["netns"]) == 1 and len(left["veths"]) == 1 and list(left["ports"].values()) == [first.container_ip]
    node.stop_container(first.container_id, remove=True)
    assert leftovers(node.cfg) == {"netns": [], "addresses": [], "classes": [], "ports": {}, "veths": []}
