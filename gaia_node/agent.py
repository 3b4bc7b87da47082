"""NodeManager: wires the node's parts together and runs its two loops.

Start-up order matters: drivers and cgroups first (a bad config fails before anything is
announced), then re-adopting the containers already running, then the lease, and only then
the gRPC server, so no command arrives before the node knows what it runs.
"""
import logging
import os
import threading

from gaia_common import etcd as etcd_mod, rpc
from gaia_common.config import ConfigError, default_id
from gaia_common.keys import Keys
from gaia_common.masters import current_epoch
from gaia_common.metrics import serve as serve_metrics
from gaia_common.pb import node_pb2_grpc
from gaia_common.security.interceptor import AuthInterceptor
from gaia_common.security.tls import TlsFiles
from gaia_node import capacity, cgroups, drivers, gpu_discovery
from gaia_node.containers import Containers
from gaia_node.epoch import EpochGuard
from gaia_node.events import EventLog
from gaia_node.fencing import AttemptGuard, FencingStore, am_attempt_reader
from gaia_node.hooks import HookRunner
from gaia_node.hooks.registry import NodeParts, build_hooks, build_managers, build_usage
from gaia_node.metrics import NodeMetrics
from gaia_node.ports import PortAllocator
from gaia_node.publish import Publisher
from gaia_node.registration import ETCD_ERRORS, Registration
from gaia_node.service import NodeService
from gaia_node.spec_check import SpecCheck, grant_reader
from gaia_node.state import ContainerDirs

log = logging.getLogger("gaia.node")

EPOCH_POLL = 0.3
DRIVER_RETRY = 5.0     # how often a configured driver that did not answer is tried again
STATUS_POLL = 0.5
ETCD_TIMEOUT = 2.0     # short: node writes are retried by the lease loop anyway


def advertised(cfg, bound: str) -> str:
    """Where others dial us: the configured address, else the bound one with a routable host."""
    if cfg.advertise:
        return cfg.advertise
    host, port = bound.rsplit(":", 1)
    if host in ("0.0.0.0", "[::]", "::", ""):
        host = cfg.host_ip
    return f"{host}:{port}"


class NodeManager:
    def __init__(self, cfg):
        self.cfg = cfg
        self.node_id = cfg.id or default_id()
        self.keys = Keys(cfg.cluster)
        self.address = ""
        self._stop = threading.Event()
        self._threads = []
        self.metrics = NodeMetrics(self)
        self.metrics_server = None

    def start(self) -> "NodeManager":
        cfg = self.cfg
        os.makedirs(cfg.state_dir, exist_ok=True)
        dirs = self.dirs = ContainerDirs(cfg.state_dir)
        self.cgroups = cgroups.detect(cfg.cgroup_root, cfg.cgroup_parent)
        if self.cgroups is None:
            log.warning("no cgroups under %s: resource limits will not be enforced", cfg.cgroup_root)
        self.drivers = drivers.load(cfg.drivers, dirs, self.cgroups, cfg)
        self.gpus = gpu_discovery.node_gpus(cfg)     # declared in node.yaml, else NVML's
        self.etcd = etcd_mod.connect_config(cfg, timeout=ETCD_TIMEOUT)
        self.tls = TlsFiles.from_config(cfg.tls)     # mutual TLS; the callers' roles checked by policy
        self.auth = AuthInterceptor(cfg.cluster, tls=self.tls is not None)
        self.server = rpc.make_server(interceptors=[self.auth])
        self.address = advertised(cfg, rpc.bind(self.server, cfg.listen, tls=self.tls))
        self.info = capacity.node_info(cfg, self.node_id, self.address, self.drivers, self.gpus)
        self.registration = Registration(self.etcd, cfg.lease_ttl)
        self.registration.set(self.keys.node(self.node_id), self.info.SerializeToString())
        self.events = EventLog(on_record=self.metrics.node_event)
        parts = NodeParts(cfg=cfg, cgroups=self.cgroups, containers=None, events=self.events,
                          registration=self.registration, metrics=self.metrics, gpus=self.gpus)
        self.containers = Containers(dirs=dirs, drivers=self.drivers, configured=cfg.drivers,
                                     ports=PortAllocator(*cfg.port_range),
                                     publisher=Publisher(self.registration, self.keys),
                                     node_id=self.node_id, host_ip=cfg.host_ip, cluster=cfg.cluster,
                                     hooks=HookRunner(build_hooks(parts)), metrics=self.metrics)
        parts.containers = self.containers
        self.meters = build_usage(parts)
        running = self.containers.recover()
        # the highest epoch and AM attempts seen survive a restart (<state_dir>/fencing.json)
        self.fencing = FencingStore(cfg.state_dir)
        self.epoch = EpochGuard(lambda: current_epoch(self.etcd, self.keys), errors=ETCD_ERRORS, store=self.fencing)
        self.attempts = AttemptGuard(self.fencing, am_attempt_reader(self.etcd, self.keys), errors=ETCD_ERRORS)
        self.spec_check = SpecCheck(self.node_id, grant_reader(self.etcd, self.keys, ETCD_ERRORS))
        self.registration.start()
        self.epoch.refresh()
        self._every(EPOCH_POLL, self.epoch.refresh, "gaia-node-epoch")
        self._every(STATUS_POLL, self.containers.poll, "gaia-node-status")
        self._every(DRIVER_RETRY, self._load_missing_drivers, "gaia-node-drivers")
        for name, interval, work in build_managers(parts):
            self._every(interval, work, f"gaia-node-{name}")
        node_pb2_grpc.add_NodeServicer_to_server(NodeService(self), self.server)
        self.server.start()
        self.metrics_server = serve_metrics(self.metrics.registry, cfg.metrics_listen, f"node {self.node_id}")
        log.info("node %s serving on %s (cluster %s, %d containers re-adopted)",
                 self.node_id, self.address, cfg.cluster, running)
        return self

    def _load_missing_drivers(self):
        """A configured driver whose runtime did not answer (an engine restarting) is tried again;
        once it loads, the node offers it and re-adopts the containers that waited for it."""
        missing = [name for name in self.cfg.drivers if name not in self.drivers]
        if not missing:
            return
        try:
            loaded = drivers.load(missing, self.dirs, self.cgroups, self.cfg)
        except ConfigError:  # still none of them: try again later
            return
        self.drivers.update(loaded)  # the container table and the service share this dict
        self.info = capacity.node_info(self.cfg, self.node_id, self.address, self.drivers, self.gpus)
        self.registration.set(self.keys.node(self.node_id), self.info.SerializeToString())
        log.info("driver(s) %s available again; %d container(s) re-adopted", ", ".join(sorted(loaded)),
                 self.containers.readopt_waiting())

    def _every(self, interval: float, work, name: str):
        def loop():
            while not self._stop.wait(interval):
                try:
                    work()
                except Exception:  # a loop that dies silently would freeze the node's view
                    log.exception("%s failed; continuing", name)
        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop serving and heartbeating. Containers keep running and the lease is not revoked:
        a node manager restarted within the TTL takes everything over unnoticed."""
        self._stop.set()
        self.server.stop(grace=1).wait()
        if self.metrics_server is not None:
            self.metrics_server.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.registration.stop()
        self.etcd.close()
        log.info("node %s stopped; its containers keep running", self.node_id)
