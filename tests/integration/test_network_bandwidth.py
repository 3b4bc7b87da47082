"""Bandwidth shaping measured with iperf3 between containers' namespaces and a peer namespace:
requests are guaranteed, idle bandwidth is borrowed up to the ceiling, both directions."""
import json
import subprocess
import sys

import pytest

from gaia_common.pb import types_pb2
from tests.integration.network_support import needs_netns, net_node_factory, peer  # noqa: F401
from tests.integration.node_harness import wait_for

S = types_pb2
MBIT = 1_000_000
CAPACITY = 50 * MBIT
SECONDS = 4
pytestmark = needs_netns


def iperf_server(node, name: str, request_mbit: int, limit_mbit: int):
    spec = node.spec(name=name, command=["iperf3", "-s", "-p", "$GAIA_PORT_DATA"], ports=["data"])
    for side in ("net_in_bps", "net_out_bps"):
        setattr(spec.resources.request, side, request_mbit * MBIT)
        setattr(spec.resources.limit, side, limit_mbit * MBIT)
    status = node.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    return status


def start_client(peer_ns: str, status, reverse: bool) -> subprocess.Popen:
    command = ["ip", "netns", "exec", peer_ns, "iperf3", "-c", status.container_ip, "-p", str(status.host_ports["data"]),
               "-t", str(SECONDS), "-O", "1", "-J"] + (["-R"] if reverse else [])
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mbits(proc: subprocess.Popen) -> float:
    out, err = proc.communicate(timeout=SECONDS + 20)
    assert proc.returncode == 0, err or out[-500:]
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / MBIT


def measure(peer_ns: str, statuses, reverse: bool) -> list:
    clients = [start_client(peer_ns, s, reverse) for s in statuses]
    return [mbits(c) for c in clients]


def server_up(peer_ns: str, status) -> bool:
    probe = ("import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 1); s.close()")
    return subprocess.run(["ip", "netns", "exec", peer_ns, sys.executable, "-c", probe, status.container_ip,
                           str(status.host_ports["data"])], capture_output=True).returncode == 0


@pytest.mark.parametrize("reverse", [False, True], ids=["into-containers", "out-of-containers"])
def test_requests_guaranteed_and_idle_bandwidth_borrowed(net_node_factory, peer, reverse):
    node = net_node_factory(capacity={"net_in": "50Mbit", "net_out": "50Mbit"})
    small, big = iperf_server(node, "small", 10, 50), iperf_server(node, "big", 40, 50)
    for status in (small, big):
        wait_for(lambda: server_up(peer.name, status), 10, what="iperf3 server")

    both = measure(peer.name, [small, big], reverse)
    alone = measure(peer.name, [small], reverse)[0]
    print(f"{'out' if reverse else 'in'}: both busy {both[0]:.1f} + {both[1]:.1f} Mbit/s, small alone {alone:.1f}")
    assert both[0] >= 10 * 0.9 and both[1] >= 40 * 0.9, both     # each gets its request
    assert sum(both) <= 50 * 1.1, both                            # together within the node's capacity
    assert 50 * 0.9 <= alone <= 50 * 1.1, alone                   # idle bandwidth borrowed up to the ceiling
