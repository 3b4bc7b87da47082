"""A lab's names and addresses, derived from its name, subnet and sizes (no side effects).

Machine names, address offsets and ports are the Vagrant lab's (vagrant/Vagrantfile), so a
config rendered for one lab reads the same as the other's.
"""
import dataclasses
import hashlib
import ipaddress

DEFAULT_NAME = "lab"
MASTER_PORT = 7070           # the Vagrantfile's MASTER_PORT / NODE_PORT / JOIN_PORT
NODE_PORT = 7071
JOIN_PORT = 7072             # the masters' enrolment port (gaia node join)
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
MASTER_OFFSET = 10           # gaia-master-<i> at subnet + 10 + i, as GAIA_SUBNET.<10+i>
NODE_OFFSET = 100            # gaia-node-<i> at subnet + 100 + i
# Where an unused /24 is looked for when none is given: clear of the nodes' default
# container_subnet (10.213.0.0/16) and of the Vagrant lab's 192.168.56.0/24.
CANDIDATES = ipaddress.IPv4Network("10.250.0.0/16")
BRIDGE = "lab0"              # inside the switch namespace, so it never meets a host link name
HOST_PORT = "host"           # the switch's end of the host's link
INNER_IFNAME = "eth0"        # a lab host's end of its link


@dataclasses.dataclass(frozen=True)
class Host:
    id: str                  # the Vagrant machine name: gaia-master-1, gaia-node-1
    role: str                # "master" (an etcd member and a master replica) or "node"
    index: int
    ip: str
    netns: str

    @property
    def port(self) -> str:
        """Its link's end on the bridge (an interface of the switch namespace)."""
        return self.id


@dataclasses.dataclass(frozen=True)
class LabPlan:
    name: str
    subnet: ipaddress.IPv4Network
    masters: int = 3
    nodes: int = 3

    def __post_init__(self):
        last = NODE_OFFSET + self.nodes
        if self.subnet.num_addresses < last + 2:   # the network and broadcast addresses too
            raise ValueError(f"subnet {self.subnet} is too small for {self.nodes} nodes "
                             f"(a node's address is the subnet's + {NODE_OFFSET} + i)")
        if not 1 <= self.masters < NODE_OFFSET - MASTER_OFFSET:
            raise ValueError(f"{self.masters} masters: 1 to {NODE_OFFSET - MASTER_OFFSET - 1}")

    @property
    def switch_netns(self) -> str:
        # Not gaia-<6 hex>-...: node managers collect unused namespaces named like that.
        return f"gaialab-{self.name}"

    @property
    def host_link(self) -> str:
        """The host's end of its link to the switch: unique per lab, within IFNAMSIZ."""
        return "gaialab" + hashlib.sha1(self.name.encode()).hexdigest()[:8]

    @property
    def gateway(self) -> str:
        """The host's own address on the lab network."""
        return str(self.subnet.network_address + 1)

    def address(self, offset: int) -> str:
        return str(self.subnet.network_address + offset)

    def hosts(self) -> list:
        out = [self._host("master", i, MASTER_OFFSET) for i in range(1, self.masters + 1)]
        return out + [self._host("node", i, NODE_OFFSET) for i in range(1, self.nodes + 1)]

    def _host(self, role: str, i: int, offset: int) -> Host:
        host_id = f"gaia-{role}-{i}"
        return Host(host_id, role, i, self.address(offset + i), f"{self.switch_netns}-{host_id}")

    def host(self, host_id: str) -> Host:
        for h in self.hosts():
            if h.id == host_id:
                return h
        raise KeyError(host_id)

    @property
    def etcd_endpoints(self) -> list:
        return [f"https://{h.ip}:{ETCD_CLIENT_PORT}" for h in self.hosts() if h.role == "master"]

    @property
    def join_addresses(self) -> list:
        """Every master's enrolment port: a joining node takes the first that answers."""
        return [f"{h.ip}:{JOIN_PORT}" for h in self.hosts() if h.role == "master"]

    @property
    def etcd_initial_cluster(self) -> str:
        return ",".join(f"{h.id}=http://{h.ip}:{ETCD_PEER_PORT}" for h in self.hosts() if h.role == "master")


def pick_subnet(taken, candidates: ipaddress.IPv4Network = CANDIDATES) -> ipaddress.IPv4Network:
    """The first /24 of `candidates` that overlaps none of the networks in `taken`."""
    for subnet in candidates.subnets(new_prefix=24):
        if not any(subnet.overlaps(t) for t in taken):
            return subnet
    raise ValueError(f"every /24 of {candidates} is in use on this host; pass --subnet")


def collision(subnet: ipaddress.IPv4Network, taken):
    """The first network of `taken` that `subnet` overlaps, or None."""
    return next((t for t in taken if subnet.overlaps(t)), None)
