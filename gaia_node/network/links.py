"""Links, addresses and routes through pyroute2: the node bridge, the ifb pair, and one
container's namespace with its veth."""
import ctypes
import errno
import logging
import os
import threading

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from gaia_node.network import NETNS_DIR

log = logging.getLogger("gaia.node.network")

CONTAINER_IFNAME = "eth0"


def _sysctl(path: str, value: str):
    with open(os.path.join("/proc/sys", path), "w") as f:
        f.write(value)


def _index(ipr, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else 0


def ensure_bridge(bridge: str, gateway: str, prefixlen: int) -> None:
    """The bridge with the gateway address, up; forwarding and route_localnet on."""
    with IPRoute() as ipr:
        index = _index(ipr, bridge)
        if not index:
            try:
                ipr.link("add", ifname=bridge, kind="bridge")
            except NetlinkError as e:
                if e.code != errno.EEXIST:  # another node manager on this host made it just now
                    raise
            index = _index(ipr, bridge)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)}
        if (gateway, prefixlen) not in have:
            try:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
        ipr.link("set", index=index, state="up")
    _sysctl("net/ipv4/ip_forward", "1")
    # The host reaches containers' ports through 127.0.0.1 (OUTPUT DNAT, then out the bridge).
    _sysctl(f"net/ipv4/conf/{bridge}/route_localnet", "1")


def ensure_ifb(name: str) -> int:
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if not index:
            ipr.link("add", ifname=name, kind="ifb")
            index = _index(ipr, name)
        ipr.link("set", index=index, state="up")
        return index


def delete_link(name: str) -> bool:
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if not index:
            return False
        try:
            ipr.link("del", index=index)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise
        return True


def link_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return bool(_index(ipr, name))


def link_index(name: str) -> int:
    with IPRoute() as ipr:
        return _index(ipr, name)


# ---- one container ----

def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def create_netns(name: str) -> str:
    """A new, named network namespace. Made by a short-lived thread that unshares its own
    network namespace (namespaces are per thread) and names it: pyroute2's own helpers fork,
    and a fork of the node manager (gRPC threads running) may crash in the child."""
    def make():
        _libc_call("unshare", CLONE_NEWNET)
        netns.attach(name, "thread-self")
    _in_thread(make)
    return netns_path(name)


def in_netns(path: str, work):
    """work() run by a thread that has joined the network namespace at `path`: a netlink
    socket it opens (IPRoute()) speaks to that namespace. Its result, or its exception."""
    def enter_and_work():
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _libc_call("setns", fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return work()
    return _in_thread(enter_and_work)


def _in_thread(work):
    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as e:  # re-raised in the caller's thread
            outcome["error"] = e
    thread = threading.Thread(target=run, name="gaia-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _libc_call(name: str, *args):
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def attach_netns(name: str, pid: int) -> str:
    """Name the namespace a running process already has (a Docker container's), so it can be
    wired, recovered and released like one we created."""
    if not os.path.exists(netns_path(name)):
        netns.attach(name, pid)
    return netns_path(name)


def remove_netns(name: str) -> None:
    if os.path.exists(netns_path(name)):
        try:
            netns.remove(name)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise


def wire(ns_name: str, veth: str, bridge: str, address: str, prefixlen: int, gateway: str) -> None:
    """A veth pair: `veth` on the host in `bridge`, eth0 in the namespace with `address` and a
    default route via `gateway`."""
    with IPRoute() as ipr:
        if not _index(ipr, veth):
            fd = os.open(netns_path(ns_name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("add", ifname=veth, kind="veth", peer={"ifname": CONTAINER_IFNAME, "net_ns_fd": fd})
            finally:
                os.close(fd)
        index = _index(ipr, veth)
        ipr.link("set", index=index, master=_index(ipr, bridge), state="up")
    wire_peer_inside(netns_path(ns_name), address, prefixlen, gateway)


def wire_peer_inside(path: str, address: str, prefixlen: int, gateway: str) -> None:
    """Inside the namespace at `path`: eth0 with `address`, up, lo up, default route via `gateway`."""
    def configure():
        with IPRoute() as inside:
            eth = _index(inside, CONTAINER_IFNAME)
            have = {a.get_attr("IFA_ADDRESS") for a in inside.get_addr(index=eth, family=2)}
            if address not in have:
                inside.addr("add", index=eth, address=address, prefixlen=prefixlen)
            inside.link("set", index=eth, state="up")
            inside.link("set", index=_index(inside, "lo"), state="up")
            if not inside.get_default_routes(family=2):
                inside.route("add", dst="0.0.0.0/0", gateway=gateway)
    in_netns(path, configure)


def counters(veth: str) -> tuple:
    """(bytes into the container, bytes out of it), from the host end's counters."""
    base = f"/sys/class/net/{veth}/statistics"
    with open(f"{base}/tx_bytes") as tx, open(f"{base}/rx_bytes") as rx:
        return int(tx.read()), int(rx.read())
