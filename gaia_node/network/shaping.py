"""Bandwidth shaping with tc through pyroute2: the node-wide HTB parents on the ifb pair and
one class per container, fed by clsact filters on the container's host-side veth.

Only what this kernel builds in is used: htb, clsact, the u32 classifier and the mirred
action (no matchall, skbedit or fq_codel here), so the ifbs pick a container's class by its
address, one u32 filter priority per container (its host index), and traffic from an
address no container owns lands in the small 1:ffff class.

See the package docstring for the picture. Rates are bits per second throughout.
"""
import dataclasses
import errno
import ipaddress

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.protocols import ETH_P_ALL, ETH_P_IP

ROOT = 0x10000                # htb 1:
PARENT = 0x10001              # 1:1, the node's capacity
CLSACT_INGRESS = 0xFFFFFFF2   # from the container
CLSACT_EGRESS = 0xFFFFFFF3    # towards the container
FILTER_PRIO = 1
UNCLASSIFIED = 0xFFFF         # 1:ffff (no container has host index 65535)
IP_SRC, IP_DST = 12, 16       # offsets in the IPv4 header, for u32
MIN_RATE = 100_000            # a container that asked for nothing still gets a trickle
MAX_RATE = 32_000_000_000     # tc_htb_opt holds bytes/s in 32 bits
MTU = 1514
GSO_MAX = 65536               # veth hands HTB whole GSO packets: a burst must hold one


@dataclasses.dataclass(frozen=True)
class ClassRates:
    rate: int
    ceil: int


def class_rates(request: int, limit: int, capacity: int) -> ClassRates:
    """rate = request, ceil = limit (the capacity when unset), both within the capacity."""
    capacity = max(MIN_RATE, min(capacity, MAX_RATE))
    rate = min(max(request, MIN_RATE), capacity)
    ceil = min(limit if limit > 0 else capacity, capacity)
    return ClassRates(rate=rate, ceil=max(ceil, rate))


def burst_bytes(rate_bps: int) -> int:
    """10 ms at the rate, never less than one GSO packet: small bursts make HTB undershoot."""
    return max(rate_bps // 8 // 100, GSO_MAX + MTU)


def quantum_bytes(rate_bps: int) -> int:
    """How much a class sends per turn when borrowing: proportional to its rate, as r2q does,
    kept within the bounds HTB warns about."""
    return min(max(rate_bps // 8 // 10, MTU), 200_000)


def classid(minor: int) -> int:
    if not 2 <= minor <= 0xFFFF:
        raise ValueError(f"class minor {minor} out of range")
    return 0x10000 | minor


def _class_kwargs(rates: ClassRates) -> dict:
    return {"rate": f"{rates.rate}bit", "ceil": f"{rates.ceil}bit", "burst": burst_bytes(rates.rate),
            "cburst": burst_bytes(rates.ceil), "quantum": quantum_bytes(rates.rate)}


def _ignore(codes, call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except NetlinkError as e:
        if e.code not in codes:
            raise
        return None


def ensure_parent(ifb_index: int, capacity_bps: int) -> None:
    """htb 1: with 1:1 at the node's capacity, and the small 1:ffff for what no container
    class claims (ARP, IPv6 link-local, spoofed sources); kept, with the containers'
    classes, when it exists."""
    rates = class_rates(capacity_bps, capacity_bps, capacity_bps)
    stray = class_rates(MIN_RATE, max(MIN_RATE, rates.ceil // 100), rates.ceil)
    with IPRoute() as ipr:
        if not _has_htb_root(ipr, ifb_index):
            _ignore((errno.EEXIST,), ipr.tc, "add", "htb", index=ifb_index, handle=ROOT, default=UNCLASSIFIED)
        ipr.tc("replace-class", "htb", index=ifb_index, handle=PARENT, parent=ROOT, **_class_kwargs(rates))
        ipr.tc("replace-class", "htb", index=ifb_index, handle=ROOT | UNCLASSIFIED, parent=PARENT,
               **_class_kwargs(stray))


def _has_htb_root(ipr, index: int) -> bool:
    for q in ipr.get_qdiscs(index=index):
        if q["handle"] == ROOT and q.get_attr("TCA_KIND") == "htb":
            return True
    return False


def _ip_key(address: str, offset: int) -> str:
    return f"0x{int(ipaddress.IPv4Address(address)):08x}/0xffffffff+{offset}"


def add_container(veth_index: int, minor: int, address: str, ifb_in: int, ifb_out: int,
                  rates_in: ClassRates, rates_out: ClassRates) -> None:
    """The container's classes on both ifbs with the filters that pick them by its address,
    and the veth's redirects into the ifbs. Safe to repeat (recovery re-asserts it all)."""
    cid = classid(minor)
    with IPRoute() as ipr:
        for ifb, rates, offset in ((ifb_in, rates_in, IP_DST), (ifb_out, rates_out, IP_SRC)):
            ipr.tc("replace-class", "htb", index=ifb, handle=cid, parent=PARENT, **_class_kwargs(rates))
            # one filter priority per container: removed as a whole, by its priority, on stop
            picks = {"index": ifb, "parent": ROOT, "prio": minor, "protocol": ETH_P_IP, "target": cid,
                     "keys": [_ip_key(address, offset)]}
            _ignore((errno.ENOENT, errno.EINVAL), ipr.tc, "del-filter", "u32", **picks)
            ipr.tc("add-filter", "u32", **picks)
        if not any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=veth_index)):
            _ignore((errno.EEXIST,), ipr.tc, "add", "clsact", index=veth_index)
        for parent, ifb in ((CLSACT_INGRESS, ifb_out), (CLSACT_EGRESS, ifb_in)):
            redirect = {"index": veth_index, "parent": parent, "prio": FILTER_PRIO, "protocol": ETH_P_ALL,
                        "target": cid, "keys": ["0x0/0x0+0"],
                        "action": {"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": ifb}}
            _ignore((errno.ENOENT, errno.EINVAL), ipr.tc, "del-filter", "u32", **redirect)
            ipr.tc("add-filter", "u32", **redirect)


def remove_container(minor: int, ifb_in: int, ifb_out: int) -> None:
    """The container's filters and classes on the ifbs (its veth goes with its redirects)."""
    cid = classid(minor)
    with IPRoute() as ipr:
        for ifb in (ifb_in, ifb_out):
            if not ifb:
                continue
            # the kind and its options too: without them pyroute2 sends priority 0, i.e. "all filters"
            _ignore((errno.ENOENT, errno.EINVAL, errno.ENODEV), ipr.tc, "del-filter", "u32", index=ifb, parent=ROOT,
                    prio=minor, protocol=ETH_P_IP, target=cid, keys=["0x0/0x0+0"])
            _ignore((errno.ENOENT, errno.EINVAL, errno.ENODEV), ipr.tc, "del-class", index=ifb, handle=cid)


def class_ids(ifb_index: int) -> set:
    """The HTB class ids on an ifb (for tests and leak checks)."""
    with IPRoute() as ipr:
        return {c["handle"] for c in ipr.get_classes(index=ifb_index) if c.get_attr("TCA_KIND") == "htb"}


def filter_prios(ifb_index: int) -> set:
    """The priorities of the filters on an ifb's HTB (one per container)."""
    with IPRoute() as ipr:
        return {f["info"] >> 16 for f in ipr.get_filters(index=ifb_index, parent=ROOT)}
