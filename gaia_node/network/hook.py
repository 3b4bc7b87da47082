"""The `network` task hook: a container that does not share the host network gets its own
namespace, address, shaping and port mappings (see the package docstring), and loses them
all when it ends. Also the bandwidth meter.

Process-driver tasks join a namespace the hook creates before they start (ctx.netns, which
the shim enters before exec). Other drivers (docker, with network mode "none") create their
own namespace; the hook names it after the task's pid once it runs and wires it then.
"""
import logging
import os
import re
import threading
import time

from gaia_common.pb import types_pb2
from gaia_node.drivers.base import StartFailed
from gaia_node.network import NetworkPlan
from gaia_node.network.ipam import Ipam

log = logging.getLogger("gaia.node.network")

NAME = "network"
JOINS_NAMED_NETNS = {"process"}    # drivers that start the task inside ctx.netns


def support_problem() -> str:
    """Why this node cannot give containers their own network, or "" when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the node manager as root, or use host networking)"
    if not os.path.exists("/proc/self/ns/net"):
        return "this kernel has no network namespaces"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "pyroute2 is not installed"
    return ""


def _capacity(cfg) -> types_pb2.Resources:
    from gaia_node import capacity
    overrides = {k: v for k, v in (cfg.capacity or {}).items() if k in ("net_in", "net_out")}
    out = types_pb2.Resources(net_in_bps=capacity.default_bandwidth(), net_out_bps=capacity.default_bandwidth())
    return capacity.with_overrides(out, overrides)


class NetworkHook:
    name = NAME

    def __init__(self, cfg):
        self.plan = NetworkPlan.from_config(cfg)
        self.ipam = Ipam(self.plan.ipam_dir, self.plan.subnet)
        self.capacity = _capacity(cfg)
        self.host_ip = cfg.host_ip
        self.problem = support_problem()
        self.ifb_in = self.ifb_out = 0
        if not self.problem:
            try:
                self.ensure_node()
            except Exception as e:  # refused per container below, with the reason
                log.exception("container networking unavailable")
                self.problem = f"container networking could not be set up: {e}"

    # ---- node-wide ----

    def ensure_node(self):
        from gaia_node.network import links, shaping
        from gaia_node.network.nat import Nft
        plan = self.plan
        links.ensure_bridge(plan.bridge, plan.gateway, plan.subnet.prefixlen)
        self.ifb_in, self.ifb_out = links.ensure_ifb(plan.ifb_in), links.ensure_ifb(plan.ifb_out)
        shaping.ensure_parent(self.ifb_in, self.capacity.net_in_bps)
        shaping.ensure_parent(self.ifb_out, self.capacity.net_out_bps)
        Nft().ensure_table(plan.nft_table, plan.bridge, str(plan.subnet))
        try:
            collected = collect_garbage(plan, self.ifb_in, self.ifb_out)
        except Exception:  # never worth refusing containers for
            log.exception("collecting orphaned container networks failed")
            collected = []
        if collected:
            log.info("removed the networks of %d ended containers nobody cleaned up: %s", len(collected),
                     ", ".join(collected))

    def _require(self):
        if self.problem:
            raise StartFailed(f"cannot give the container its own network: {self.problem}")

    def _owner(self, container_id: str) -> str:
        return f"{self.plan.tag} {container_id}"

    # ---- the hook ----

    def prestart(self, ctx) -> None:
        if ctx.spec.host_network:
            return
        if self.problem and self._may_share_host_network(ctx.spec):
            return self._share_host_network(ctx)
        self._require()
        cid = ctx.spec.container_id
        state = ctx.state.setdefault(NAME, {})
        state.update(netns=self.plan.netns_name(cid), veth=self.plan.veth_name(cid),
                     ports=self._ports(ctx))
        try:
            state["address"] = self.ipam.allocate(self._owner(cid))
            ctx.status.container_ip = state["address"]
            ctx.env["GAIA_CONTAINER_IP"] = state["address"]
            if ctx.spec.driver in JOINS_NAMED_NETNS:
                from gaia_node.network import links
                ctx.netns = links.create_netns(state["netns"])
                self._wire(state, ctx.spec)
        except Exception as e:
            self.poststop(ctx)  # nothing half-made stays: namespace, veth, classes, address
            raise StartFailed(f"network set-up failed: {e}") from None

    def poststart(self, ctx) -> None:
        state = ctx.state.get(NAME)
        if ctx.spec.host_network or not state or ctx.spec.driver in JOINS_NAMED_NETNS:
            return
        from gaia_node.network import links
        if not ctx.pid:
            raise StartFailed("the task has no pid to find its network namespace by")
        links.attach_netns(state["netns"], ctx.pid)
        self._wire(state, ctx.spec)

    @staticmethod
    def _may_share_host_network(spec) -> bool:
        """Without namespace support (no root, say: a developer's laptop) a process may still run
        in the host's network, as it would anyway, unless it asked for bandwidth this node cannot
        enforce: that is refused, never silently ignored."""
        asked = (spec.resources.request.net_in_bps, spec.resources.request.net_out_bps,
                 spec.resources.limit.net_in_bps, spec.resources.limit.net_out_bps)
        return spec.driver in JOINS_NAMED_NETNS and not any(asked)

    def _share_host_network(self, ctx):
        ctx.env["GAIA_CONTAINER_IP"] = self.host_ip  # where its ports are: the host's own
        ctx.status.message = f"running in the host's network: {self.problem}"
        log.warning("container %s runs in the host's network: %s", ctx.spec.container_id, self.problem)

    def _ports(self, ctx) -> list:
        protocols = {p.name: (p.protocol or "tcp") for p in ctx.spec.ports}
        return sorted([protocols.get(name, "tcp"), int(port)] for name, port in ctx.host_ports.items())

    def _wire(self, state: dict, spec):
        from gaia_node.network import links
        from gaia_node.network.nat import Nft
        plan = self.plan
        links.wire(state["netns"], state["veth"], plan.bridge, state["address"], plan.subnet.prefixlen, plan.gateway)
        state["wired"] = True
        self._shape(state, spec)
        Nft().add_ports(plan.nft_table, [tuple(p) for p in state["ports"]], state["address"])

    def _shape(self, state: dict, spec):
        from gaia_node.network import links, shaping
        request, limit = spec.resources.request, spec.resources.limit
        rates_in = shaping.class_rates(request.net_in_bps, limit.net_in_bps, self.capacity.net_in_bps)
        rates_out = shaping.class_rates(request.net_out_bps, limit.net_out_bps, self.capacity.net_out_bps)
        shaping.add_container(links.link_index(state["veth"]), self._minor(state), state["address"],
                              self.ifb_in, self.ifb_out, rates_in, rates_out)

    def _minor(self, state: dict) -> int:
        return Ipam.host_index(self.plan.subnet, state["address"])

    def poststop(self, ctx) -> None:
        state = ctx.state.get(NAME)
        if not state:
            return
        from gaia_node.network import links, shaping
        from gaia_node.network.nat import Nft
        errors = []
        steps = [
            ("port mappings", lambda: Nft().delete_ports(self.plan.nft_table, [tuple(p) for p in state.get("ports", ())])),
            ("shaping", lambda: state.get("address") and shaping.remove_container(
                self._minor(state), self.ifb_in, self.ifb_out)),
            ("veth", lambda: links.delete_link(state["veth"])),
            ("namespace", lambda: links.remove_netns(state["netns"])),
            ("address", lambda: self.ipam.release(self._owner(ctx.spec.container_id), state.get("address", ""))),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as e:  # keep going: each later step frees something else
                errors.append(f"{what}: {e}")
        if errors:
            log.warning("container %s: network clean-up incomplete: %s", ctx.spec.container_id, "; ".join(errors))
        ctx.state.pop(NAME, None)

    def recover(self, ctx) -> None:
        """After a node-manager restart: the kernel kept the namespace and veth; re-assert the
        address record, the classes and filters, and the port mappings."""
        state = ctx.state.get(NAME)
        if ctx.spec.host_network or not state or not state.get("address"):
            return
        self._require()
        from gaia_node.network import links
        from gaia_node.network.nat import Nft
        if not self.ipam.claim(self._owner(ctx.spec.container_id), state["address"]):
            # another container holds it now: shaping and mapping ports to it would hijack theirs
            log.error("container %s: its address %s is held by %s; its network is not recovered",
                      ctx.spec.container_id, state["address"], self.ipam.owner(state["address"]))
            return
        ctx.status.container_ip = state["address"]
        if not links.link_exists(state["veth"]):
            log.error("container %s: veth %s is gone; its network cannot be recovered", ctx.spec.container_id,
                      state["veth"])
            return
        self._shape(state, ctx.spec)
        Nft().add_ports(self.plan.nft_table, [tuple(p) for p in state["ports"]], state["address"])


class BandwidthMeter:
    """net_in_bps / net_out_bps from the host-side veth's byte counters, averaged since the
    previous reading of the same container (the first reading reports 0)."""

    def __init__(self, plan: NetworkPlan):
        self.plan = plan
        self._last = {}
        self._lock = threading.Lock()

    def __call__(self, spec, status) -> types_pb2.Resources:
        if spec.host_network:
            return types_pb2.Resources()
        from gaia_node.network import links
        now = time.monotonic()
        into, out = links.counters(self.plan.veth_name(spec.container_id))
        with self._lock:
            before = self._last.get(spec.container_id)
            self._last[spec.container_id] = (now, into, out)
            for cid in [c for c, (t, _, _) in self._last.items() if now - t > 600]:
                del self._last[cid]  # containers long gone
        if before is None or now <= before[0]:
            return types_pb2.Resources()
        seconds = now - before[0]
        return types_pb2.Resources(net_in_bps=int(max(into - before[1], 0) * 8 / seconds),
                                   net_out_bps=int(max(out - before[2], 0) * 8 / seconds))


def hook(parts) -> NetworkHook:
    return NetworkHook(parts.cfg)


def meter(parts) -> BandwidthMeter:
    return BandwidthMeter(NetworkPlan.from_config(parts.cfg))


def sweep(cfg) -> list:
    """Remove what the node manager of `cfg` made for its containers (namespaces, veths,
    classes and filters, port mappings, address records), whatever its state dir says: for
    tests and decommissioning. The bridge-wide objects stay (see remove_bridge). Returns
    what it removed."""
    from gaia_node.network import links, shaping
    from gaia_node.network.nat import Nft
    plan = NetworkPlan.from_config(cfg)
    ipam = Ipam(plan.ipam_dir, plan.subnet)
    nft = Nft()
    removed = []
    prefix = f"gaia-{plan.tag}-"
    names = os.listdir(links.NETNS_DIR) if os.path.isdir(links.NETNS_DIR) else []
    for name in names:
        if name.startswith(prefix):
            if links.delete_link(plan.veth_name(name[len(prefix):])):
                removed.append(plan.veth_name(name[len(prefix):]))
            links.remove_netns(name)
            removed.append(name)
    mapped = nft.ports(plan.nft_table)
    ifb_in, ifb_out = links.link_index(plan.ifb_in), links.link_index(plan.ifb_out)
    for address, owner in ipam.owned_by_prefix(f"{plan.tag} ").items():
        cid = owner.split(" ", 1)[1]
        if links.delete_link(plan.veth_name(cid)):
            removed.append(plan.veth_name(cid))
        shaping.remove_container(Ipam.host_index(plan.subnet, address), ifb_in, ifb_out)
        nft.delete_ports(plan.nft_table, [key for key, to in mapped.items() if to == address])
        ipam.release(owner, address)
        removed.append(address)
    return removed


def remove_bridge(cfg) -> None:
    """The node-wide objects of `cfg`'s bridge: its ifb pair, nftables table and the bridge
    itself (only once no container uses them: every node manager on it has been swept)."""
    from gaia_node.network import links
    from gaia_node.network.nat import Nft
    plan = NetworkPlan.from_config(cfg)
    for name in (plan.ifb_in, plan.ifb_out, plan.bridge):
        links.delete_link(name)
    Nft().delete_table(plan.nft_table)


ORPHAN_AGE = 60.0    # seconds: a namespace younger than this may be about to get its process
CONTAINER_NETNS = re.compile(r"^gaia-[0-9a-f]{6}-")    # NetworkPlan.netns_name


def _namespaces_in_use() -> set:
    """(st_dev, st_ino) of every network namespace some process is in."""
    used = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                st = os.stat(f"/proc/{pid}/ns/net")
            except OSError:
                continue
            used.add((st.st_dev, st.st_ino))
    return used


def collect_garbage(plan: NetworkPlan, ifb_in: int, ifb_out: int, min_age: float = ORPHAN_AGE) -> list:
    """Free the networks of containers on this bridge that ended without their node manager
    cleaning up (it was killed, or is gone for good): namespaces no process is in, and
    address records without a namespace, both older than `min_age`. A node manager that
    comes back to such a container finds nothing left to undo, which its clean-up allows."""
    from gaia_node.network import links, shaping
    from gaia_node.network.nat import Nft
    ipam = Ipam(plan.ipam_dir, plan.subnet)
    now = time.time()
    in_use = _namespaces_in_use()
    names = set(os.listdir(links.NETNS_DIR)) if os.path.isdir(links.NETNS_DIR) else set()
    collected = []
    for name in sorted(names):
        if not CONTAINER_NETNS.match(name):
            continue
        try:
            st = os.stat(links.netns_path(name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in in_use or now - st.st_mtime < min_age:
            continue
        links.remove_netns(name)  # its veth goes with it; classes, mappings, address below
        collected.append(name)
    mapped = None
    for address, owner in ipam.owned_by_prefix("").items():
        tag, _, cid = owner.partition(" ")
        if f"gaia-{tag}-{cid}" in names and f"gaia-{tag}-{cid}" not in collected:
            continue  # its namespace lives
        try:
            age = now - os.stat(os.path.join(plan.ipam_dir, address)).st_mtime
        except OSError:
            continue
        if age < min_age:
            continue
        if mapped is None:
            mapped = Nft().ports(plan.nft_table)
        veth = NetworkPlan(plan.bridge, plan.subnet, tag).veth_name(cid)
        links.delete_link(veth)
        shaping.remove_container(Ipam.host_index(plan.subnet, address), ifb_in, ifb_out)
        Nft().delete_ports(plan.nft_table, [key for key, to in mapped.items() if to == address])
        ipam.release(owner, address)
        collected.append(address)
    return collected
