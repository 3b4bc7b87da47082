"""Bandwidth accuracy for `gaia bench node`: how close the node's tc shaping holds a container
to its limit, and whether requests hold when containers compete.

Everything is made by the node's own code (gaia_node.network.hook.NetworkHook) on a private
bridge and subnet, against a peer namespace standing for another machine; iperf3 (without
-b) runs in the containers' namespaces (servers) and in the peer (clients). Each direction
is measured: "in" is towards the container (net_in), "out" from it (iperf3 -R). Figures are
iperf3's TCP goodput, which is some 4-5% below the shaped wire rate (headers). Needs root,
network namespaces and iperf3; everything made is removed, failures included.
"""
import contextlib
import ipaddress
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid

from gaia_common.config import NodeConfig
from gaia_common.pb import types_pb2
from gaia_node.hooks import TaskContext

MBIT = 1_000_000
DEFAULT_LIMITS_MBIT = (10, 25, 50)
CAPACITY_MBIT = 100
SECONDS = 4
PORT = 5201


class _Peer:
    """A namespace with one veth to the host (host side x.x.x.1, peer x.x.x.2)."""

    def __init__(self, tag: str, subnet: ipaddress.IPv4Network):
        self.name, self.veth = f"gaia-bench-peer-{tag}", f"gbp{tag}"
        self.host_ip, self.ip = str(subnet.network_address + 1), str(subnet.network_address + 2)
        self.prefixlen = subnet.prefixlen

    def __enter__(self):
        from pyroute2 import IPRoute
        from gaia_node.network import links
        links.create_netns(self.name)
        fd = os.open(links.netns_path(self.name), os.O_RDONLY)
        try:
            with IPRoute() as ipr:
                ipr.link("add", ifname=self.veth, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
                index = ipr.link_lookup(ifname=self.veth)[0]
                ipr.addr("add", index=index, address=self.host_ip, prefixlen=self.prefixlen)
                ipr.link("set", index=index, state="up")
        finally:
            os.close(fd)
        links.wire_peer_inside(links.netns_path(self.name), self.ip, self.prefixlen, self.host_ip)
        return self

    def __exit__(self, *exc):
        from gaia_node.network import links
        links.delete_link(self.veth)
        links.remove_netns(self.name)


@contextlib.contextmanager
def _lab(capacity_mbit: int):
    """A NetworkHook on a bridge of its own, and a peer; all removed on exit."""
    from gaia_node.network import hook as network_hook
    tag = uuid.uuid4().hex[:6]
    n = random.randrange(1, 250)
    state_dir = tempfile.mkdtemp(prefix="gaia-bench-net-")
    cfg = NodeConfig(state_dir=state_dir, network_bridge=f"gbb{tag}", container_subnet=f"10.216.{n}.0/24",
                     capacity={"net_in": f"{capacity_mbit}Mbit", "net_out": f"{capacity_mbit}Mbit"})
    try:
        hook = network_hook.NetworkHook(cfg)
        if hook.problem:
            raise RuntimeError(hook.problem)
        with _Peer(tag, ipaddress.IPv4Network(f"10.217.{n}.0/24")) as peer:
            yield hook, peer
    finally:
        network_hook.sweep(cfg)
        network_hook.remove_bridge(cfg)
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(network_hook.NetworkPlan.from_config(cfg).ipam_dir, ignore_errors=True)


@contextlib.contextmanager
def _container(hook, name: str, request_mbit: int, limit_mbit: int):
    """A wired, shaped namespace running an iperf3 server; yields its address."""
    spec = types_pb2.ContainerSpec(container_id=f"bench-{name}.0.1", driver="process")
    for side in ("net_in_bps", "net_out_bps"):
        setattr(spec.resources.request, side, request_mbit * MBIT)
        setattr(spec.resources.limit, side, limit_mbit * MBIT)
    ctx = TaskContext(spec=spec, status=types_pb2.ContainerStatus(), directory="", host_ports={}, env={})
    hook.prestart(ctx)
    server = None
    try:
        server = subprocess.Popen(["ip", "netns", "exec", hook.plan.netns_name(spec.container_id),
                                   "iperf3", "-s", "-p", str(PORT)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        yield ctx.status.container_ip
    finally:
        if server:
            server.kill()
            server.wait()
        hook.poststop(ctx)


def _measure(peer, addresses, reverse: bool) -> list:
    """Mbit/s received per address, all clients at once."""
    clients = [subprocess.Popen(["ip", "netns", "exec", peer.name, "iperf3", "-c", a, "-p", str(PORT), "-t",
                                 str(SECONDS), "-O", "1", "-J"] + (["-R"] if reverse else []),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in addresses]
    out = []
    for client in clients:
        stdout, stderr = client.communicate(timeout=SECONDS + 30)
        if client.returncode != 0:
            raise RuntimeError(f"iperf3: {stderr.strip() or stdout[-300:]}")
        out.append(round(json.loads(stdout)["end"]["sum_received"]["bits_per_second"] / MBIT, 2))
    return out


def bandwidth_figures(limits_mbit=DEFAULT_LIMITS_MBIT, capacity_mbit: int = CAPACITY_MBIT) -> dict:
    """Measured goodput against each limit alone (both directions), then two containers
    requesting 20% and 80% of a 50 Mbit/s node, ceilings at the capacity, busy together and
    one alone (the borrowing case)."""
    if os.geteuid() != 0 or not shutil.which("iperf3"):
        raise RuntimeError("needs root and iperf3")
    figures = {"seconds_per_run": SECONDS, "measure": "iperf3 TCP goodput, Mbit/s", "limits": []}
    with _lab(capacity_mbit) as (hook, peer):
        for limit in limits_mbit:
            row = {"limit_mbit": limit}
            with _container(hook, f"l{limit}", limit, limit) as address:
                for direction, reverse in (("in", False), ("out", True)):
                    measured = _measure(peer, [address], reverse)[0]
                    row[f"{direction}_mbit"] = measured
                    row[f"{direction}_ratio"] = round(measured / limit, 3)
            figures["limits"].append(row)
    with _lab(50) as (hook, peer):
        shared = {"capacity_mbit": 50, "requests_mbit": [10, 40], "ceil_mbit": 50}
        with _container(hook, "small", 10, 50) as small, _container(hook, "big", 40, 50) as big:
            for direction, reverse in (("in", False), ("out", True)):
                shared[f"{direction}_both_busy_mbit"] = _measure(peer, [small, big], reverse)
                shared[f"{direction}_small_alone_mbit"] = _measure(peer, [small], reverse)[0]
        figures["shared"] = shared
    return figures


if __name__ == "__main__":
    print(json.dumps(bandwidth_figures(), indent=2))
