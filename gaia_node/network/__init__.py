"""Container networks: a network namespace per container, a veth into a node bridge, tc
shaping both ways, and DNAT for named ports. Wired in by the `network` task hook (hook.py).

Layout on a node (names derive from the node's config, see `NetworkPlan`):

    container netns            host
    eth0 10.213.0.7/16 <-veth-> gv<hash> --- bridge gaia0 (10.213.0.1, the gateway)
                                  |  clsact ingress: u32 match-all, mirred redirect -> ifb "out"
                                  |  clsact egress:  u32 match-all, mirred redirect -> ifb "in"
    ifb gaia0-out: htb 1: -- 1:1 rate=ceil=capacity.net_out -- 1:<n> rate=request ceil=limit
    ifb gaia0-in:  htb 1: -- 1:1 rate=ceil=capacity.net_in  -- 1:<n> rate=request ceil=limit
                        (u32 filters: src/dst address of container <n> -> 1:<n>; the rest -> 1:ffff)

Shaping. HTB only shapes what leaves a device, and each container's traffic crosses its own
veth, so the per-veth traffic of both directions is redirected into two ifb devices that hold
the node-wide parent class (the node's capacity) and one child class per container: sibling
classes borrow idle bandwidth from the parent up to their ceil and give it back when the
others need their rate. On the ifbs a container's class is picked by its address (source
for "out", destination for "in"); <n> is the address's host index, unique on the subnet, and
doubles as the u32 filter's priority so one container's filter is removed on its own.
Traffic no container's address claims (ARP, IPv6 link-local, a forged source) shares the
small 1:ffff class instead of escaping shaping. "in" = towards the container (net_in_bps),
"out" = from it (net_out_bps). Only htb, clsact, u32 and mirred are needed (this CI kernel
has no matchall or skbedit).

Ports. A container listens on its `GAIA_PORT_<NAME>` (the same number as the host port) on
0.0.0.0 or $GAIA_CONTAINER_IP; a program that binds 127.0.0.1 is only reachable from inside
its own namespace, as in Docker. The node's nftables table holds one map, (protocol, host
port) -> container address, consulted for packets to any local address (host_ip, other
hosts' view of the node, and 127.0.0.1 from the host itself through the OUTPUT hook).
Loopback-originated connections need route_localnet on the bridge plus a masquerade so the
container answers the gateway; a guard rule drops packets for 127.0.0.0/8 arriving from the
bridge, so containers cannot reach the host's loopback-only services through that door.
Hairpin connections (container -> host_ip:port -> another container on the bridge) are
masqueraded too.

Everything node-wide is named after the bridge: the ifb pair (<bridge>-in, <bridge>-out) and
the nftables table (ip <bridge>). Several node managers on one host (dev clusters, tests)
share them: addresses are allocated through files under /run/gaia/ipam/<bridge> (like CNI
host-local), so host indexes, class ids and filter priorities never collide; each node
manager names its containers' namespaces with a short hash of its state directory (`tag`),
so it can sweep what is its own. They then also share one capacity parent: the last to start
sets its rate. A node manager leaves the node-wide objects in place when it stops (its
containers keep running and keep being shaped); `hook.remove_bridge` removes them. A node
manager starting on a bridge frees what ended containers left there when nobody cleaned up
after them (namespaces no process is in, address records without a namespace, both older
than a minute: `hook.collect_garbage`).

A node that cannot do this (not root, no netns support) reports `network_namespaces=False`
and refuses specs that ask for a network of their own (host_network false) with a clear error.
"""
import dataclasses
import hashlib
import ipaddress
import os

DEFAULT_BRIDGE = "gaia0"
DEFAULT_SUBNET = "10.213.0.0/16"
NETNS_DIR = "/run/netns"
IPAM_ROOT = "/run/gaia/ipam"


def short_hash(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


@dataclasses.dataclass(frozen=True)
class NetworkPlan:
    """Every name and address the node's network uses, derived from its config."""
    bridge: str
    subnet: ipaddress.IPv4Network
    tag: str                      # this node manager's own containers (netns names, address records)

    @classmethod
    def from_config(cls, cfg) -> "NetworkPlan":
        subnet = ipaddress.IPv4Network(cfg.container_subnet, strict=True)
        if subnet.num_addresses < 4:
            raise ValueError(f"container_subnet {subnet} is too small")
        if not 0 < len(cfg.network_bridge) <= 11:  # + "-out" within IFNAMSIZ
            raise ValueError(f"network_bridge {cfg.network_bridge!r} must be 1-11 characters")
        if subnet.prefixlen < 16:  # host indexes are HTB class minors: 16 bits
            raise ValueError(f"container_subnet {subnet} is larger than a /16")
        return cls(bridge=cfg.network_bridge, subnet=subnet,
                   tag=short_hash(os.path.abspath(cfg.state_dir), 6))

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def ifb_in(self) -> str:
        return f"{self.bridge}-in"

    @property
    def ifb_out(self) -> str:
        return f"{self.bridge}-out"

    @property
    def nft_table(self) -> str:
        return self.bridge

    @property
    def ipam_dir(self) -> str:
        return os.path.join(IPAM_ROOT, self.bridge)

    def netns_name(self, container_id: str) -> str:
        return f"gaia-{self.tag}-{container_id}"

    def veth_name(self, container_id: str) -> str:
        return "gv" + short_hash(f"{self.tag}/{container_id}", 11)
