"""Real network namespaces for the network tests: a node of its own (own bridge and subnet),
and a peer namespace wired to the host by a veth, standing for "another machine".

Traffic goes only to loopback and to addresses inside namespaces these fixtures create;
every namespace, link and nftables table made here is removed by a finalizer, failures too.
"""
import os
import random
import shutil
import subprocess
import sys
import uuid

import pytest

from gaia_common.config import NodeConfig
from gaia_node.network import NetworkPlan, hook as network_hook, links
from gaia_node.network.nat import Nft
from tests.integration.node_harness import CGROUP_ROOT, IS_ROOT, NodeHarness

HAVE_NETNS = IS_ROOT and os.path.exists("/proc/self/ns/net") and os.path.exists("/usr/bin/iperf3")
needs_netns = pytest.mark.skipif(not HAVE_NETNS, reason="needs root, network namespaces and iperf3")

# Serves HTTP on 0.0.0.0 at argv[1] (a container in its own namespace must not bind loopback).
HTTP_SERVER = ("import http.server, sys\n"
               "http.server.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])),"
               " http.server.SimpleHTTPRequestHandler).serve_forever()\n")


def in_netns(name: str, *command, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", name, *command], capture_output=True, text=True,
                          timeout=timeout, check=check)


def http_get_in(name: str, url: str, timeout: float = 2.0) -> bool:
    code = f"import urllib.request; urllib.request.urlopen({url!r}, timeout={timeout}).read()"
    return in_netns(name, sys.executable, "-c", code, timeout=timeout + 10, check=False).returncode == 0


class Peer:
    """A namespace `name` with 10.215.<n>.2/24, reached from the host at 10.215.<n>.1 (the node's
    address in these tests), which is also its default route."""

    def __init__(self, tag: str, n: int):
        self.name = f"gaia-test-peer-{tag}"
        self.host_veth = f"gtp{tag}"
        self.host_ip, self.ip = f"10.215.{n}.1", f"10.215.{n}.2"

    def create(self):
        from pyroute2 import IPRoute
        links.create_netns(self.name)
        with IPRoute() as ipr:
            ipr.link("add", ifname=self.host_veth, kind="veth", peer={"ifname": "eth0", "net_ns_fd": self.name})
            index = ipr.link_lookup(ifname=self.host_veth)[0]
            ipr.addr("add", index=index, address=self.host_ip, prefixlen=24)
            ipr.link("set", index=index, state="up")
        links.wire_peer_inside(links.netns_path(self.name), self.ip, 24, self.host_ip)
        return self

    def destroy(self):
        links.delete_link(self.host_veth)
        links.remove_netns(self.name)


def network_cfg(tmp_path, etcd_endpoint: str, cluster: str, host_ip: str, **extra) -> NodeConfig:
    tag = uuid.uuid4().hex[:8]
    n = random.randrange(1, 250)
    return NodeConfig(cluster=cluster, etcd=[etcd_endpoint], id=f"node-{tag}", state_dir=str(tmp_path / "node"),
                      cgroup_parent=f"gaia-test-{tag}", lease_ttl=2, cgroup_root=CGROUP_ROOT,
                      host_ip=host_ip, network_bridge=f"gtb{tag[:8]}", container_subnet=f"10.214.{n}.0/24",
                      **extra)


def leftovers(cfg: NodeConfig) -> dict:
    """What of this node's networking is still there: namespaces, veths, address records,
    container classes, port mappings."""
    plan = NetworkPlan.from_config(cfg)
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    netns = [n for n in names if n.startswith(f"gaia-{plan.tag}-")]
    ipam_dir = plan.ipam_dir
    addresses = [a for a in (os.listdir(ipam_dir) if os.path.isdir(ipam_dir) else []) if a[0].isdigit()]
    from gaia_node.network import shaping
    classes = []
    for ifb in (plan.ifb_in, plan.ifb_out):
        index = links.link_index(ifb)
        if index:
            classes += [c for c in shaping.class_ids(index)
                        if c not in (shaping.PARENT, shaping.ROOT | shaping.UNCLASSIFIED)]
            classes += [f"filter prio {p}" for p in shaping.filter_prios(index)]
    with open("/proc/net/dev") as f:
        veths = [line.split(":")[0].strip() for line in f if line.strip().startswith("gv")]
    return {"netns": netns, "addresses": addresses, "classes": classes,
            "ports": Nft().ports(plan.nft_table), "veths": [v for v in veths if _master(v) == plan.bridge]}


def _master(ifname: str) -> str:
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{ifname}/master"))
    except OSError:
        return ""


def teardown_network(cfg: NodeConfig):
    network_hook.sweep(cfg)
    network_hook.remove_bridge(cfg)
    shutil.rmtree(NetworkPlan.from_config(cfg).ipam_dir, ignore_errors=True)


@pytest.fixture
def peer():
    p = Peer(uuid.uuid4().hex[:6], random.randrange(1, 250))
    try:
        yield p.create()
    finally:
        p.destroy()


@pytest.fixture
def net_node_factory(tmp_path, etcd_server, cluster_name, etcd):
    """Starts nodes with their own bridge; every one is cleaned up, network included."""
    made = []

    def start(host_ip: str = "127.0.0.1", **extra) -> NodeHarness:
        cfg = network_cfg(tmp_path / f"n{len(made)}", etcd_server.endpoint, cluster_name, host_ip, **extra)
        harness = NodeHarness(cfg, etcd)
        made.append(harness)
        return harness.start()

    try:
        yield start
    finally:
        for harness in made:
            try:
                harness.clean_up()
            finally:
                teardown_network(harness.cfg)
