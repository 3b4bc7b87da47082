"""A fleet of hollow nodes: their records, leases, containers, and where commands go.

See gaia_node/hollow/__init__.py for what hollow nodes are and how they scale.
"""
import itertools
import logging
import queue
import re
import threading
import time

import grpc
from etcd3 import etcdrpc

import gaia_common
from gaia_common import etcd as etcd_mod, rpc
from gaia_common.config import ConfigError, default_id
from gaia_common.keys import Keys
from gaia_common.masters import current_epoch
from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2
from gaia_common.security.interceptor import AuthInterceptor
from gaia_common.security.tls import TlsFiles
from gaia_node import gpus, publish
from gaia_node.agent import advertised
from gaia_node.capacity import with_overrides
from gaia_node.containers import TERMINAL, NotFound
from gaia_node.epoch import EpochGuard
from gaia_node.registration import ETCD_ERRORS
from gaia_node.hollow.keepalive import KeepAlive
from gaia_node.hollow.service import NODE_METADATA, HollowService
from gaia_node.validation import validate_container_spec

log = logging.getLogger("gaia.node.hollow")

# What a hollow node offers unless node.yaml's capacity says otherwise: a large machine.
DEFAULT_CAPACITY = {"cpu": "64", "memory": "256Gi", "disk": "2Ti", "net_in": "10Gbit", "net_out": "10Gbit",
                    "disk_read": "2G", "disk_write": "2G"}
PIPELINE = 256            # etcd calls in flight while registering
PUTS_PER_TXN = 100        # below etcd's default --max-txn-ops (128)
EPOCH_POLL = 0.5
FAKE_PORTS = (20000, 60000)
_PATTERN = re.compile(r"\{i(?:([%/])(\d+))?\}")


def hollow_ids(base: str, count: int) -> list:
    """The node ids of a fleet of `count` hollow nodes started with id `base`."""
    return [f"{base}-hollow-{i}" for i in range(count)]


def check_serves(tls: TlsFiles, cluster: str, node_ids: list):
    """Under TLS the master and AMs dial each hollow node expecting its own server name, so the
    fleet's one certificate must name all of them: say so now, not as failed handshakes later."""
    from gaia_common.security.identity import node_server_name
    from gaia_common.security.pki import dns_names
    with open(tls.cert, "rb") as f:
        names = set(dns_names(f.read()))
    missing = [n for n in node_ids if node_server_name(cluster, n) not in names]
    if missing:
        raise ConfigError(f"tls.cert: {tls.cert} does not name hollow node {missing[0]} "
                          f"({node_server_name(cluster, missing[0])}) nor {len(missing) - 1} more; issue the "
                          f"fleet's certificate with `gaia ca issue --role node --hollow {len(node_ids)}`")


def label_value(pattern: str, index: int) -> str:
    """Expand `{i}`, `{i%N}` and `{i/N}` (integer division) with the node's index:
    `rack: r{i/40}` puts nodes 0-39 on r0, 40-79 on r1, ...; `zone: z{i%3}` deals them round."""
    def one(m):
        op, n = m.group(1), int(m.group(2) or 1)
        if op and n == 0:
            raise ConfigError(f"label pattern {pattern!r}: division by zero")
        return str(index % n if op == "%" else index // n if op == "/" else index)
    return _PATTERN.sub(one, str(pattern))


class _HollowDriver:
    """Accepts any spec: nothing is ever started."""

    def validate(self, spec):
        pass


class HollowNode:
    def __init__(self, index: int, info: types_pb2.NodeInfo, keys: Keys):
        self.index = index
        self.info = info
        self.node_id = info.node_id
        self.keys = keys
        self.lease_id = 0
        self.keepalive = None          # the prebuilt LeaseKeepAliveRequest of lease_id
        self.lock = threading.Lock()
        self.desired = {keys.node(self.node_id): info.SerializeToString()}   # key -> value under the lease
        self.containers = {}           # container_id -> (ContainerSpec, ContainerStatus)
        self.gone = False              # left the cluster (HollowFleet.leave) until it rejoins
        self._ports = itertools.count(index * 7)   # made-up host ports, different per node

    def fake_port(self) -> int:
        return FAKE_PORTS[0] + next(self._ports) % (FAKE_PORTS[1] - FAKE_PORTS[0])


class HollowFleet:
    def __init__(self, cfg, count: int, etcd_timeout: float = 10.0):
        if count < 1:
            raise ValueError("--hollow needs at least 1 node")
        self.cfg = cfg
        self.count = count
        self.keys = Keys(cfg.cluster)
        self.ttl = max(1, int(cfg.lease_ttl))
        # the node's etcd login when it has one (etcd_user, etcd_tls): the raw stub calls below
        # send its token themselves (_md), as AuthClient's own calls do
        self.etcd = etcd_mod.connect_config(cfg, timeout=etcd_timeout)
        self.nodes = {}                # node_id -> HollowNode
        self.by_lease = {}             # lease id -> HollowNode
        self.by_container = {}         # container_id -> HollowNode
        self.expired = queue.SimpleQueue()   # nodes whose lease etcd reported gone
        self.drivers = {name: _HollowDriver() for name in cfg.drivers}
        self.address = ""
        self.registered_in = 0.0       # seconds the first registration of all nodes took
        self._stop = threading.Event()
        self._threads = []
        self._lock = threading.Lock()

    # ---- lifecycle ----

    def start(self) -> "HollowFleet":
        cfg = self.cfg
        # one certificate for the whole fleet (its `tls:`), naming every hollow node's server name
        # (check_serves): a hollow node never calls anyone, and callers are checked exactly as a
        # real node checks them
        tls = TlsFiles.from_config(cfg.tls)
        ids = hollow_ids(cfg.id or default_id(), self.count)
        if tls is not None:
            check_serves(tls, cfg.cluster, ids)
        self.server = rpc.make_server(max_workers=16, interceptors=[AuthInterceptor(cfg.cluster, tls=tls is not None)])
        self.address = advertised(cfg, rpc.bind(self.server, cfg.listen, tls=tls))
        devices = gpus.declared(cfg.gpus)
        capacity = gpus.with_gpus(with_overrides(with_overrides(types_pb2.Resources(), DEFAULT_CAPACITY),
                                                 cfg.capacity), devices, cfg.capacity)
        now = time.time()
        for i in range(self.count):
            labels = {str(k): label_value(v, i) for k, v in (cfg.labels or {}).items()}
            labels.setdefault("gaia.hollow", "true")
            info = types_pb2.NodeInfo(node_id=ids[i], address=self.address, host_ip=cfg.host_ip,
                                      capacity=capacity, labels=labels, registered_at=now, gpus=devices,
                                      version=gaia_common.__version__, drivers=sorted(self.drivers))
            self.nodes[info.node_id] = HollowNode(i, info, self.keys)
        self.epoch = EpochGuard(lambda: current_epoch(self.etcd, self.keys), errors=ETCD_ERRORS)
        self.epoch.refresh()
        # serving before any node is advertised: a leader that sees a node at once (a fleet
        # joining a busy cluster) may place an AM there before the rest of the fleet registered
        node_pb2_grpc.add_NodeServicer_to_server(HollowService(self), self.server)
        self.server.start()
        started = time.monotonic()
        self.register(list(self.nodes.values()))
        self.registered_in = time.monotonic() - started
        etcd_tls = cfg.etcd_tls or {}
        self.heartbeat = KeepAlive(cfg.etcd, self.ttl, self._keepalive_requests, lambda: len(self.nodes),
                                   self._lease_gone, self._stop, metadata=self._md, on_error=self._relogin,
                                   credentials=etcd_mod.tls_credentials(etcd_tls.get("ca"), etcd_tls.get("cert"),
                                                                        etcd_tls.get("key")))
        for target, name in ((self.heartbeat.run, "hollow-keepalive"), (self._maintain, "hollow-maintain")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("%d hollow nodes registered in %.2fs, serving on %s (cluster %s)",
                 self.count, self.registered_in, self.address, cfg.cluster)
        return self

    def stop(self, revoke: bool = True):
        """Stop serving; by default revoke the leases so the nodes vanish at once."""
        self._stop.set()
        self.server.stop(grace=1).wait()
        for thread in self._threads:   # first: no re-registration may follow the revokes
            thread.join(timeout=5)
        if revoke:
            futures = [self.etcd.leasestub.LeaseRevoke.future(etcdrpc.LeaseRevokeRequest(ID=n.lease_id), 10,
                                                               metadata=self._md())
                       for n in self.nodes.values() if n.lease_id]
            for f in futures:
                try:
                    f.result()
                except grpc.RpcError:
                    pass
        self.etcd.close()

    # ---- etcd login (raw stub calls carry the token themselves) ----

    def _md(self):
        """This call's metadata: the login token, read fresh (None without etcd RBAC)."""
        return etcd_mod.call_metadata(self.etcd)

    def _relogin(self, exc):
        """etcd forgot our token (idle, restarted): log in again so the next try gets through."""
        if isinstance(exc, grpc.RpcError) and etcd_mod.relogin_if_expired(self.etcd, exc):
            log.info("hollow fleet: etcd token expired; logged in again")

    # ---- registration ----

    def register(self, nodes: list):
        """Give each node a new lease and write all its keys under it, pipelined."""
        try:
            self._register(nodes)
        except grpc.RpcError as e:
            self._relogin(e)
            raise

    def _register(self, nodes: list):
        grants = []
        for i in range(0, len(nodes), PIPELINE):
            window = [(n, self.etcd.leasestub.LeaseGrant.future(etcdrpc.LeaseGrantRequest(TTL=self.ttl), 10,
                                                                metadata=self._md()))
                      for n in nodes[i:i + PIPELINE]]
            grants += [(n, f.result().ID) for n, f in window]
        puts = []
        with self._lock:
            for node, lease_id in grants:
                with node.lock:
                    if node.gone:  # left meanwhile: the fresh lease simply expires unused
                        continue
                    self.by_lease.pop(node.lease_id, None)
                    node.lease_id = lease_id
                    node.keepalive = etcdrpc.LeaseKeepAliveRequest(ID=lease_id)
                    puts += [(k, v, lease_id) for k, v in node.desired.items()]
                self.by_lease[lease_id] = node
        self._put_many(puts)

    # ---- churn: nodes that leave and come back (scale runs) ----

    def leave(self, node_ids: list):
        """Nodes die: their leases are revoked, so their records, containers and service
        entries vanish from etcd at once, and they stop answering commands."""
        nodes = [self.nodes[i] for i in node_ids]
        futures = []
        with self._lock:
            for node in nodes:
                with node.lock:
                    if node.keepalive is None:
                        continue
                    futures.append(self.etcd.leasestub.LeaseRevoke.future(
                        etcdrpc.LeaseRevokeRequest(ID=node.lease_id), 10, metadata=self._md()))
                    self.by_lease.pop(node.lease_id, None)
                    node.keepalive = None
                    for container_id in node.containers:
                        self.by_container.pop(container_id, None)
                    node.containers.clear()
                    node.desired = {self.keys.node(node.node_id): node.info.SerializeToString()}
                    node.gone = True
        for f in futures:
            f.result()

    def rejoin(self, node_ids: list):
        """Nodes that left come back, empty, under new leases."""
        nodes = [self.nodes[i] for i in node_ids if self.nodes[i].gone]
        for node in nodes:
            node.gone = False
        self.register(nodes)

    def _put_many(self, puts: list):
        pending = []
        for i in range(0, len(puts), PUTS_PER_TXN):
            ops = [etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=k.encode(), value=v, lease=lease))
                   for k, v, lease in puts[i:i + PUTS_PER_TXN]]
            pending.append(self.etcd.kvstub.Txn.future(etcdrpc.TxnRequest(success=ops), 10, metadata=self._md()))
            if len(pending) >= PIPELINE:
                pending.pop(0).result()
        for f in pending:
            f.result()

    def _write(self, node: HollowNode, puts: dict, deletes: list):
        """Write one node's key changes in one transaction (bound to its lease)."""
        ops = [etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=k.encode(), value=v, lease=node.lease_id))
               for k, v in puts.items()]
        ops += [etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=k.encode())) for k in deletes]
        if ops:
            try:
                self.etcd.kvstub.Txn(etcdrpc.TxnRequest(success=ops), 10, metadata=self._md())
            except grpc.RpcError as e:
                self._relogin(e)     # the command fails; its caller's retry gets through
                raise

    # ---- heartbeat (gaia_node/hollow/keepalive.py) and its upkeep ----

    def _keepalive_requests(self) -> list:
        with self._lock:
            return [n.keepalive for n in self.nodes.values() if n.keepalive is not None]

    def _lease_gone(self, lease_id: int):
        node = self.by_lease.get(lease_id)
        if node is not None:   # not one we replaced or revoked already
            self.expired.put(node)

    def _maintain(self):
        """Re-register nodes whose lease is gone; keep the known epoch fresh."""
        last_epoch = 0.0
        while not self._stop.wait(0.1):
            try:
                self._reregister_expired()
            except Exception as e:
                log.warning("hollow re-registration failed, will retry: %s: %s", type(e).__name__, e)
            if time.monotonic() - last_epoch >= EPOCH_POLL:
                self.epoch.refresh()
                last_epoch = time.monotonic()

    def _reregister_expired(self):
        nodes = {}
        while True:
            try:
                node = self.expired.get_nowait()
            except queue.Empty:
                break
            nodes[node.node_id] = node
        if nodes:
            log.warning("%d hollow node leases expired; registering them again", len(nodes))
            try:
                self.register(list(nodes.values()))
            except BaseException:
                for node in nodes.values():  # none is forgotten: the next pass tries them all again
                    self.expired.put(node)
                raise

    # ---- routing and containers ----

    def node_for_start(self, spec, named: str) -> HollowNode:
        node_id = named
        if not node_id:
            value, _ = etcd_mod.retry(lambda: self.etcd.get(self.keys.allocation(spec.app_id, spec.instance_id)))
            if value is None:
                raise NotFound(f"no grant for {spec.app_id}/{spec.instance_id} names a node; "
                               f"send the node id in `{NODE_METADATA}` metadata")
            alloc = types_pb2.Allocation()
            alloc.ParseFromString(value)
            node_id = alloc.node_id
        node = self.nodes.get(node_id)
        if node is None or node.gone:
            raise NotFound(f"{node_id!r} is not a live hollow node of this process")
        return node

    def start_container(self, node: HollowNode, spec) -> types_pb2.ContainerStatus:
        validate_container_spec(spec, self.drivers)
        with node.lock:
            existing = node.containers.get(spec.container_id)
            if existing is not None:
                return _copy(existing[1])
            status = types_pb2.ContainerStatus(
                container_id=spec.container_id, app_id=spec.app_id, app_name=spec.app_name,
                instance_id=spec.instance_id, node_id=node.node_id, host_ip=node.info.host_ip,
                state=types_pb2.CONTAINER_STATE_RUNNING, started_at=time.time(), version=spec.version,
                # nothing runs to probe: a checked instance counts as healthy (rollout gates pass)
                health="healthy" if spec.health_check.kind else "",
                host_ports={p.name: p.container_port if spec.host_network and p.container_port else node.fake_port()
                            for p in spec.ports})
            puts = {self.keys.container(spec.app_id, spec.container_id): status.SerializeToString()}
            if publish.registers_service(spec, status):
                puts[self.keys.service(spec.app_name, spec.instance_id)] = \
                    publish.endpoint(spec, status).SerializeToString()
            self._write(node, puts, [])
            node.containers[spec.container_id] = (spec, status)
            node.desired.update(puts)
        self.by_container[spec.container_id] = node
        return _copy(status)

    def node_of_container(self, container_id: str, named: str) -> HollowNode:
        node = self.nodes.get(named) if named else self.by_container.get(container_id)
        if node is None or node.gone or container_id not in node.containers:
            raise NotFound(f"no container {container_id!r}")
        return node

    def stop_container(self, node: HollowNode, container_id: str, remove: bool) -> types_pb2.ContainerStatus:
        with node.lock:
            spec, status = node.containers[container_id]
            puts, deletes = {}, []
            if status.state not in TERMINAL:
                status = _copy(status)
                status.state = types_pb2.CONTAINER_STATE_STOPPED
                status.finished_at = time.time()
                status.message = "stopped"
                puts[self.keys.container(spec.app_id, container_id)] = status.SerializeToString()
            service_key = self.keys.service(spec.app_name, spec.instance_id)
            if node.desired.get(service_key) == publish.endpoint(spec, node.containers[container_id][1]).SerializeToString():
                deletes.append(service_key)
            if remove:
                puts.pop(self.keys.container(spec.app_id, container_id), None)
                deletes.append(self.keys.container(spec.app_id, container_id))
            self._write(node, puts, deletes)
            for key in deletes:
                node.desired.pop(key, None)
            node.desired.update(puts)
            if remove:
                del node.containers[container_id]
            else:
                node.containers[container_id] = (spec, status)
        if remove:
            self.by_container.pop(container_id, None)
        return _copy(status)

    def report(self, node) -> node_pb2.NodeReport:
        report = node_pb2.NodeReport(known_epoch=self.epoch.known_epoch, refused_commands=self.epoch.refused_commands)
        if node is not None and not node.gone:
            with node.lock:
                report.info.CopyFrom(node.info)
                report.containers.extend(status for _, status in node.containers.values())
                for spec, status in node.containers.values():
                    if status.state == types_pb2.CONTAINER_STATE_RUNNING:
                        _add(report.allocated, spec.resources.request)
        return report


def _copy(status):
    out = types_pb2.ContainerStatus()
    out.CopyFrom(status)
    return out


def _add(total: types_pb2.Resources, more: types_pb2.Resources):
    for field in types_pb2.Resources.DESCRIPTOR.fields:
        setattr(total, field.name, getattr(total, field.name) + getattr(more, field.name))
