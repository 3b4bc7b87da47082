"""The lab's namespaces and links (pyroute2), and the processes inside them.

Every function here is safe to repeat: `up` may be re-run over a half-made lab and `down`
over a half-removed one.
"""
import errno
import ipaddress
import os
import socket

import psutil
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from gaia_node.network import links
from gaia_cli.lab.plan import BRIDGE, HOST_PORT, INNER_IFNAME, Host, LabPlan


def taken_networks() -> list:
    """Every IPv4 network the host routes (any table, the default route aside) or has an
    address on: a lab subnet must overlap none of them."""
    found = set()
    with IPRoute() as ipr:
        for route in ipr.get_routes(family=socket.AF_INET):
            if route["dst_len"] and route.get_attr("RTA_DST"):
                found.add(ipaddress.IPv4Network(f"{route.get_attr('RTA_DST')}/{route['dst_len']}", strict=False))
        for addr in ipr.get_addr(family=socket.AF_INET):
            found.add(ipaddress.IPv4Network(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False))
    return sorted(found)


def _index(ipr, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else 0


def _add_veth(ipr, name: str, peer: str, peer_netns: str):
    """A veth pair: `name` where `ipr` speaks, `peer` moved into the namespace `peer_netns`."""
    if _index(ipr, name):
        return
    fd = os.open(links.netns_path(peer_netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer, "net_ns_fd": fd})
    finally:
        os.close(fd)


def _ensure_netns(name: str):
    if not os.path.exists(links.netns_path(name)):
        links.create_netns(name)


def _configure_inside(netns: str, ifname: str, address: str, prefixlen: int):
    """Inside `netns`: lo up, `ifname` up with `address` (no default route: the lab is one
    subnet, and nothing should leave it)."""
    def work():
        with IPRoute() as ipr:
            ipr.link("set", index=_index(ipr, "lo"), state="up")
            _address(ipr, ifname, address, prefixlen)
    links.in_netns(links.netns_path(netns), work)


def _address(ipr, ifname: str, address: str, prefixlen: int):
    index = _index(ipr, ifname)
    have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=socket.AF_INET)}
    if address not in have:
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    ipr.link("set", index=index, state="up")


def make_switch(plan: LabPlan):
    """The switch namespace with its bridge, and the host's link to it (the gateway address)."""
    _ensure_netns(plan.switch_netns)

    def bridge():
        with IPRoute() as ipr:
            ipr.link("set", index=_index(ipr, "lo"), state="up")
            if not _index(ipr, BRIDGE):
                ipr.link("add", ifname=BRIDGE, kind="bridge")
            ipr.link("set", index=_index(ipr, BRIDGE), state="up")
    links.in_netns(links.netns_path(plan.switch_netns), bridge)
    with IPRoute() as ipr:
        _add_veth(ipr, plan.host_link, HOST_PORT, plan.switch_netns)
        _address(ipr, plan.host_link, plan.gateway, plan.subnet.prefixlen)
    set_port(plan, HOST_PORT, up=True)


def make_host(plan: LabPlan, host: Host):
    """`host`'s namespace, plugged into the bridge, with its address."""
    _ensure_netns(host.netns)

    def plug():
        with IPRoute() as ipr:
            _add_veth(ipr, host.port, INNER_IFNAME, host.netns)
            ipr.link("set", index=_index(ipr, host.port), master=_index(ipr, BRIDGE), state="up")
    links.in_netns(links.netns_path(plan.switch_netns), plug)
    _configure_inside(host.netns, INNER_IFNAME, host.ip, plan.subnet.prefixlen)


def set_port(plan: LabPlan, port: str, up: bool):
    """Plug (up) or unplug (down) a link's end on the bridge: its host sees no carrier, and
    the bridge forwards nothing to it, like a pulled cable."""
    def work():
        with IPRoute() as ipr:
            index = _index(ipr, port)
            if not index:
                raise LookupError(f"no port {port!r} on the lab's bridge")
            ipr.link("set", index=index, master=_index(ipr, BRIDGE), state="up" if up else "down")
    links.in_netns(links.netns_path(plan.switch_netns), work)


def port_up(plan: LabPlan, port: str) -> bool:
    def work():
        with IPRoute() as ipr:
            found = ipr.get_links(_index(ipr, port)) if _index(ipr, port) else []
            return bool(found) and found[0]["flags"] & 1 == 1   # IFF_UP
    try:
        return links.in_netns(links.netns_path(plan.switch_netns), work)
    except OSError:
        return False


def netns_exists(name: str) -> bool:
    return os.path.exists(links.netns_path(name))


def remove_netns(name: str):
    links.remove_netns(name)


def delete_host_link(name: str):
    try:
        links.delete_link(name)
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise


def netns_id(name: str):
    """(st_dev, st_ino) of a named namespace, as /proc/<pid>/ns/net shows it; None if unnamed."""
    try:
        st = os.stat(links.netns_path(name))
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else None


def processes_in(ids) -> list:
    """Every process whose network namespace is one of `ids` (from netns_id)."""
    ids = {i for i in ids if i}
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
            if (st.st_dev, st.st_ino) in ids:
                found.append(psutil.Process(int(pid)))
        except (OSError, psutil.Error):
            continue
    return found


def forget_containers(cfg):
    """A node's container namespaces and address records, when its own namespace is already
    gone (and with it every veth, class and nft rule it made in there)."""
    from gaia_node.network import NetworkPlan
    from gaia_node.network.ipam import Ipam
    plan = NetworkPlan.from_config(cfg)
    prefix = f"gaia-{plan.tag}-"
    names = os.listdir(links.NETNS_DIR) if os.path.isdir(links.NETNS_DIR) else []
    for name in names:
        if name.startswith(prefix):
            links.remove_netns(name)
    ipam = Ipam(plan.ipam_dir, plan.subnet)
    for address, owner in ipam.owned_by_prefix(f"{plan.tag} ").items():
        ipam.release(owner, address)
