"""A container's network across its life: nothing left after stop, shaping and port mappings
re-asserted when a restarted node manager re-adopts a running container."""
import sys
import urllib.request

from gaia_common.pb import types_pb2
from gaia_node.network import NetworkPlan, links, shaping
from gaia_node.network.ipam import Ipam
from gaia_node.network.nat import Nft
from tests.integration.network_support import HTTP_SERVER, leftovers, needs_netns, net_node_factory  # noqa: F401
from tests.integration.node_harness import wait_for

S = types_pb2
NOTHING = {"netns": [], "addresses": [], "classes": [], "ports": {}, "veths": []}
pytestmark = needs_netns


def http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def container_class(plan: NetworkPlan, address: str) -> dict:
    """ifb name -> (rate, ceil) in bits/s of the container's HTB class, where it exists."""
    from pyroute2 import IPRoute
    minor = Ipam.host_index(plan.subnet, address)
    out = {}
    with IPRoute() as ipr:
        for ifb in (plan.ifb_in, plan.ifb_out):
            for c in ipr.get_classes(index=links.link_index(ifb)):
                if c["handle"] == shaping.classid(minor):
                    params = c.get_attr("TCA_OPTIONS").get_attr("TCA_HTB_PARMS")
                    out[ifb] = (params["rate"] * 8, params["ceil"] * 8)
    return out


def test_stop_leaves_nothing_and_restart_reasserts(net_node_factory):
    node = net_node_factory(capacity={"net_in": "100Mbit", "net_out": "100Mbit"})
    plan = NetworkPlan.from_config(node.cfg)
    spec = node.spec(command=[sys.executable, "-c", HTTP_SERVER, "$GAIA_PORT_HTTP"], ports=["http"])
    spec.resources.request.net_in_bps, spec.resources.limit.net_in_bps = 20_000_000, 60_000_000
    spec.resources.request.net_out_bps = 5_000_000
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    port, address = status.host_ports["http"], status.container_ip
    wait_for(lambda: http_ok(port), 15, what="HTTP through the port mapping")
    expected = {plan.ifb_in: (20_000_000, 60_000_000), plan.ifb_out: (5_000_000, 100_000_000)}
    assert container_class(plan, address) == expected

    # The node manager goes away; meanwhile its classes, filters and port mapping are lost.
    node.stop()
    shaping.remove_container(Ipam.host_index(plan.subnet, address), links.link_index(plan.ifb_in),
                             links.link_index(plan.ifb_out))
    Nft().delete_ports(plan.nft_table, [("tcp", port)])
    assert container_class(plan, address) == {} and not http_ok(port)

    node.start()  # same config and state dir: re-adopts the running container
    again = node.container(spec.container_id)
    assert again.state == S.CONTAINER_STATE_RUNNING and again.pid == status.pid
    assert again.container_ip == address
    assert container_class(plan, address) == expected
    wait_for(lambda: http_ok(port), 10, what="HTTP after the restart")

    stopped = node.stop_container(spec.container_id, remove=True)
    assert stopped.state == S.CONTAINER_STATE_STOPPED
    assert leftovers(node.cfg) == NOTHING


def test_a_process_that_exits_at_once_leaves_nothing(net_node_factory):
    node = net_node_factory()
    spec = node.spec(command=["sh", "-c", "exit 4"], ports=["http"])
    node.start_container(spec)
    wait_for(lambda: (s := node.container(spec.container_id)) and s.state == S.CONTAINER_STATE_FAILED,
             what="FAILED")
    wait_for(lambda: leftovers(node.cfg) == NOTHING, 5, what="the network to be released")


# Serves a 4 MB file over HTTP at argv[1].
BIG_FILE_SERVER = ("import http.server, os, sys\n"
                   "open('big', 'wb').write(os.urandom(4 << 20))\n"
                   "http.server.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])),"
                   " http.server.SimpleHTTPRequestHandler).serve_forever()\n")


def test_bandwidth_meter_reports_traffic(net_node_factory):
    node = net_node_factory()
    spec = node.spec(command=[sys.executable, "-c", BIG_FILE_SERVER, "$GAIA_PORT_HTTP"], ports=["http"])
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    port = status.host_ports["http"]
    wait_for(lambda: http_ok(port), 15, what="HTTP through the port mapping")
    node.report()  # the first reading is a baseline
    for _ in range(3):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/big", timeout=10) as reply:
            assert len(reply.read()) == 4 << 20
    used = node.container(spec.container_id).usage
    assert used.net_out_bps > 1_000_000 and used.net_in_bps > 0, used  # 12 MB out, the requests in


def test_orphaned_network_is_collected(net_node_factory):
    """A container that died while its node manager was away (and never came back) leaves its
    namespace, veth, class, mapping and address; the next node manager on the bridge frees them."""
    import os
    import signal
    from gaia_node.network import hook as network_hook
    node = net_node_factory()
    plan = NetworkPlan.from_config(node.cfg)
    spec = node.spec(ports=["http"])
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    node.stop()
    os.killpg(status.pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{status.pid}/ns/net"), what="the process to die")
    assert leftovers(node.cfg) != NOTHING
    collected = network_hook.collect_garbage(plan, links.link_index(plan.ifb_in), links.link_index(plan.ifb_out),
                                             min_age=0)
    assert plan.netns_name(spec.container_id) in collected and status.container_ip in collected
    assert leftovers(node.cfg) == NOTHING
    node.start()  # its own clean-up of the ended container finds nothing left to undo
    ended = wait_for(lambda: (s := node.container(spec.container_id)) and s.state != S.CONTAINER_STATE_RUNNING and s,
                     what="the death to be noticed")
    assert ended.state in (S.CONTAINER_STATE_FAILED, S.CONTAINER_STATE_LOST)
    assert leftovers(node.cfg) == NOTHING
