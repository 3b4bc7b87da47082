"""Hollow nodes: N simulated node managers in one process (`gaia node run --hollow N`).

Each hollow node registers a NodeInfo under a lease of its own, keeps that lease alive, and
answers StartContainer by reporting the container RUNNING in etcd (ContainerStatus and service
entry under its lease) without starting anything; StopContainer reports it STOPPED. Commands
go through the same epoch check as a real node (EpochGuard). The real masters and etcd see
N nodes; a scale run drives them with thousands from one machine.

Scaling to 10,000 nodes in one Python process:
  - leases are granted and NodeInfos written pipelined (gRPC futures on etcd's own stubs,
    puts batched into transactions), not one blocking call after another;
  - every lease is kept alive by ONE thread (an asyncio loop) over one channel: a keepalive
    per lease each ttl/3, dealt over a few LeaseKeepAlive streams (one per 500 leases) written
    concurrently, and the answers; a lease etcd reports expired (TTL 0) is replaced and its
    node's keys re-written by a maintenance thread;
  - one gRPC server on one port serves all N nodes; every node advertises that address.

Which hollow node a command is for (the address is shared):
  1. the `gaia-node` request metadata, when the caller sends it (the explicit way);
  2. StartContainer without it: the leader writes the grant (allocations/<app>/<instance>,
     naming the node) before any node is asked to start it, so the grant says which node;
  3. StopContainer without it: the node that started the container id;
  4. Status without it: an empty report (no node was named).
"""
import asyncio
import contextlib
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
from gaia_node import publish
from gaia_node.agent import advertised
from gaia_node.capacity import with_overrides
from gaia_node.containers import TERMINAL, NotFound
from gaia_node.epoch import EpochGuard
from gaia_node.registration import ETCD_ERRORS
from gaia_node.service import status_codes
from gaia_node.validation import validate_container_spec

log = logging.getLogger("gaia.node.hollow")

NODE_METADATA = "gaia-node"
# What a hollow node offers unless node.yaml's capacity says otherwise: a large machine.
DEFAULT_CAPACITY = {"cpu": "64", "memory": "256Gi", "disk": "2Ti", "net_in": "10Gbit", "net_out": "10Gbit",
                    "disk_read": "2G", "disk_write": "2G"}
PIPELINE = 256            # etcd calls in flight while registering
PUTS_PER_TXN = 100        # below etcd's default --max-txn-ops (128)
LEASES_PER_STREAM = 500   # keepalive streams are written concurrently; see _keepalive_thread
MAX_STREAMS = 32
EPOCH_POLL = 0.5
FAKE_PORTS = (20000, 60000)
_PATTERN = re.compile(r"\{i(?:([%/])(\d+))?\}")


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
        self._ports = itertools.count(FAKE_PORTS[0] + index * 7 % (FAKE_PORTS[1] - FAKE_PORTS[0]))

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
        self.etcd = etcd_mod.connect(cfg.etcd, timeout=etcd_timeout)
        self.nodes = {}                # node_id -> HollowNode
        self.by_lease = {}             # lease id -> HollowNode
        self.by_container = {}         # container_id -> HollowNode
        self.expired = queue.SimpleQueue()   # nodes whose lease etcd reported gone
        self.drivers = {name: _HollowDriver() for name in cfg.drivers}
        self.address = ""
        self.registered_in = 0.0       # seconds the first registration of all nodes took
        self.keepalives_sent = 0
        self.keepalive_rounds = 0
        self.last_round_s = 0.0        # how long the last keepalive round took to write
        self._stop = threading.Event()
        self._threads = []
        self._lock = threading.Lock()

    # ---- lifecycle ----

    def start(self) -> "HollowFleet":
        cfg = self.cfg
        self.server = rpc.make_server(max_workers=16)
        self.address = advertised(cfg, rpc.bind(self.server, cfg.listen))
        capacity = with_overrides(with_overrides(types_pb2.Resources(), DEFAULT_CAPACITY), cfg.capacity)
        base = cfg.id or default_id()
        now = time.time()
        for i in range(self.count):
            labels = {str(k): label_value(v, i) for k, v in (cfg.labels or {}).items()}
            labels.setdefault("gaia.hollow", "true")
            info = types_pb2.NodeInfo(node_id=f"{base}-hollow-{i}", address=self.address, host_ip=cfg.host_ip,
                                      capacity=capacity, labels=labels, registered_at=now,
                                      version=gaia_common.__version__, drivers=sorted(self.drivers))
            self.nodes[info.node_id] = HollowNode(i, info, self.keys)
        self.epoch = EpochGuard(lambda: current_epoch(self.etcd, self.keys), errors=ETCD_ERRORS)
        started = time.monotonic()
        self.register(list(self.nodes.values()))
        self.registered_in = time.monotonic() - started
        self.epoch.refresh()
        node_pb2_grpc.add_NodeServicer_to_server(HollowService(self), self.server)
        self.server.start()
        for target, name in ((self._keepalive_thread, "hollow-keepalive"), (self._maintain, "hollow-maintain")):
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
            futures = [self.etcd.leasestub.LeaseRevoke.future(etcdrpc.LeaseRevokeRequest(ID=n.lease_id), 10)
                       for n in self.nodes.values() if n.lease_id]
            for f in futures:
                try:
                    f.result()
                except grpc.RpcError:
                    pass
        self.etcd.close()

    # ---- registration ----

    def register(self, nodes: list):
        """Give each node a new lease and write all its keys under it, pipelined."""
        grants = []
        for i in range(0, len(nodes), PIPELINE):
            window = [(n, self.etcd.leasestub.LeaseGrant.future(etcdrpc.LeaseGrantRequest(TTL=self.ttl), 10))
                        for n in nodes[i:i + PIPELINE]]
            grants += [(n, f.result().ID) for n, f in window]
        puts = []
        with self._lock:
            for node, lease_id in grants:
                with node.lock:
                    self.by_lease.pop(node.lease_id, None)
                    node.lease_id = lease_id
                    node.keepalive = etcdrpc.LeaseKeepAliveRequest(ID=lease_id)
                    puts += [(k, v, lease_id) for k, v in node.desired.items()]
                self.by_lease[lease_id] = node
        self._put_many(puts)

    def _put_many(self, puts: list):
        pending = []
        for i in range(0, len(puts), PUTS_PER_TXN):
            ops = [etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=k.encode(), value=v, lease=lease))
                   for k, v, lease in puts[i:i + PUTS_PER_TXN]]
            pending.append(self.etcd.kvstub.Txn.future(etcdrpc.TxnRequest(success=ops), 10))
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
            self.etcd.kvstub.Txn(etcdrpc.TxnRequest(success=ops), 10)

    # ---- keepalive: one stream for every lease ----

    def _keepalive_thread(self):
        """One thread, one asyncio loop, one channel to etcd for every lease.

        grpc.aio costs about a quarter of the CPU per message of the threaded streaming API
        (measured: ~100 us against ~470 us per keepalive and answer). A stream takes one
        write at a time, and each write waits for the transport, so the leases are dealt
        over several LeaseKeepAlive streams written concurrently (LEASES_PER_STREAM each):
        the same CPU, but a round of 10,000 keepalives no longer outlasts a short TTL."""
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._keepalive_forever())
        finally:
            self._loop.close()

    async def _keepalive_forever(self):
        endpoints = itertools.cycle([etcd_mod.parse_endpoint(e) for e in self.cfg.etcd])
        self._stream_failures = 0
        while not self._stop.is_set():
            host, port, secure = next(endpoints)
            target = f"{host}:{port}"
            channel = (grpc.aio.secure_channel(target, grpc.ssl_channel_credentials()) if secure
                       else grpc.aio.insecure_channel(target))
            streams = max(1, min(MAX_STREAMS, -(-len(self.nodes) // LEASES_PER_STREAM)))
            calls, readers = [], []
            try:
                for _ in range(streams):
                    calls.append(etcdrpc.LeaseStub(channel).LeaseKeepAlive())
                    readers.append(asyncio.ensure_future(self._read_answers(calls[-1])))
                await self._send_rounds(calls, readers)
            except (grpc.aio.AioRpcError, asyncio.CancelledError, grpc.RpcError) as e:
                if not self._stop.is_set():  # etcd away: next endpoint, backing off; leases expire only after ttl
                    self._stream_failures += 1
                    (log.warning if self._stream_failures == 1 else log.debug)(
                        "hollow keepalive stream to %s broke: %s", target, getattr(e, "code", lambda: e)())
                    await asyncio.sleep(min(2.0, 0.1 * 2 ** self._stream_failures))
            finally:
                for call, reader in zip(calls, readers):
                    reader.cancel()
                    call.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                await channel.close()

    async def _send_rounds(self, calls: list, readers: list):
        interval = self.ttl / 3
        while not self._stop.is_set():
            began = time.monotonic()
            with self._lock:
                batch = [n.keepalive for n in self.nodes.values() if n.keepalive is not None]
            await asyncio.gather(*(self._write_all(call, batch[i::len(calls)], reader)
                                   for i, (call, reader) in enumerate(zip(calls, readers))))
            self.keepalives_sent += len(batch)
            self.keepalive_rounds += 1
            self.last_round_s = time.monotonic() - began
            if self._stream_failures:
                log.info("hollow keepalive stream is back after %d failed tries", self._stream_failures)
                self._stream_failures = 0
            while not self._stop.is_set() and time.monotonic() - began < interval:
                await asyncio.sleep(min(0.1, interval))

    @staticmethod
    async def _write_all(call, requests: list, reader):
        for request in requests:
            if reader.done():  # the stream broke: surface why
                return reader.result()
            await call.write(request)

    async def _read_answers(self, call):
        async for response in call:
            if response.TTL <= 0:   # expired (or revoked): register that node again
                node = self.by_lease.get(response.ID)
                if node is not None:
                    self.expired.put(node)
        raise grpc.RpcError("keepalive stream ended")

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
            self.register(list(nodes.values()))

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
        if node is None:
            raise NotFound(f"{node_id!r} is not a hollow node of this process")
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
                state=types_pb2.CONTAINER_STATE_RUNNING, started_at=time.time(),
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
        if node is None or container_id not in node.containers:
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
        if node is not None:
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


@contextlib.contextmanager
def etcd_unavailable(context):
    """An etcd write or read that failed: the caller may retry (starts and stops are idempotent)."""
    try:
        yield
    except (grpc.RpcError, *ETCD_ERRORS) as e:
        context.abort(grpc.StatusCode.UNAVAILABLE, f"etcd: {type(e).__name__}: {e}")


class HollowService(node_pb2_grpc.NodeServicer):
    """The Node API for every hollow node of the fleet, on one port."""

    def __init__(self, fleet: HollowFleet):
        self.fleet = fleet

    @staticmethod
    def _named(context) -> str:
        return next((v for k, v in context.invocation_metadata() if k == NODE_METADATA), "")

    def StartContainer(self, request, context):
        with status_codes(context), etcd_unavailable(context):
            self.fleet.epoch.admit(request.epoch)
            node = self.fleet.node_for_start(request.spec, self._named(context))
            return self.fleet.start_container(node, request.spec)

    def StopContainer(self, request, context):
        with status_codes(context), etcd_unavailable(context):
            self.fleet.epoch.admit(request.epoch)
            node = self.fleet.node_of_container(request.container_id, self._named(context))
            return self.fleet.stop_container(node, request.container_id, request.remove)

    def Status(self, request, context):
        return self.fleet.report(self.fleet.nodes.get(self._named(context)))

    def Logs(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "hollow nodes run nothing and keep no logs")


def start(cfg, count: int) -> HollowFleet:
    return HollowFleet(cfg, count).start()


def run(cfg, count: int) -> None:
    """Serve until SIGTERM or SIGINT; then revoke every hollow lease (the nodes leave at once)."""
    from gaia_common.daemon import setup_logging, wait_for_termination
    setup_logging("hollow")
    fleet = start(cfg, count)
    try:
        wait_for_termination()
    finally:
        fleet.stop()

