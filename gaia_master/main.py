"""One master replica: serves gRPC, campaigns, and while it leads runs the reconcile loop.

`start(cfg)` returns a running Master (tests use it in-process); `run(cfg)` blocks until
SIGTERM/SIGINT, on which the replica resigns at once so a follower takes over without
waiting for the lease to expire.
"""
import logging
import os
import threading
import time

from gaia_common import etcd as etcd_mod, rpc
from gaia_common.config import MasterConfig, default_id
from gaia_common.daemon import setup_logging, wait_for_termination
from gaia_common.logctx import set_process_fields
from gaia_common.metrics import serve as serve_metrics
from gaia_common.keys import Keys
from gaia_common.pb import master_pb2_grpc, types_pb2
from gaia_common.security import identity
from gaia_common.security.interceptor import AuthInterceptor
from gaia_common.security.pki import CertificateAuthority
from gaia_common.security.tls import TlsFiles
from gaia_master.access import Access
from gaia_master.app_table import AppTable
from gaia_master import enrol
from gaia_master.election import Election
from gaia_master.enrol import JoinTokens
from gaia_master.events import EventLog
from gaia_master.metrics import MasterMetrics
from gaia_master.node_client import NodeClient
from gaia_master.node_view import NodeView
from gaia_master.pools import PoolTable
from gaia_master.reconciler import Reconciler
from gaia_master.scheduling.loop import SchedulingLoop
from gaia_master.scheduling.requests import RequestBook
from gaia_master.moves import Drains
from gaia_master.service import MasterService
from gaia_master.store import FencedStore
from gaia_master.tenancy import Tenancy
from gaia_master.watch import StreamLimits, Watches

log = logging.getLogger(__name__)
# gRPC workers for unary calls. Long streams (WatchApp, WatchEndpoints, Logs) hold a worker each
# for their life: the server has cfg.max_streams more for them, and Watches.slot refuses a
# stream past that, so however many streams callers open, these stay for the unary calls.
UNARY_WORKERS = 32


class Master:
    def __init__(self, cfg: MasterConfig):
        self.cfg = cfg
        self.keys = Keys(cfg.cluster)
        self.etcd = etcd_mod.connect_config(cfg)
        # long streams hold a worker each for their life: counted, in all and per caller, and
        # given workers of their own on top of the unary calls'
        self.watches = Watches(limits=StreamLimits.from_config(cfg), caller=self._stream_caller)
        # TLS: mutual, from the config (not the process's: tests run several daemons in one)
        self.tls = TlsFiles.from_config(cfg.tls)
        self.ca = CertificateAuthority.load(cert_path=self.tls.ca, key_path=cfg.ca_key) \
            if self.tls and cfg.ca_key else None     # signs AM certificates
        self.auth = AuthInterceptor(cfg.cluster, tls=self.tls is not None, app_id_of_name=self._app_id_of)
        self.server = rpc.make_server(max_workers=UNARY_WORKERS + self.watches.max_watches,
                                      interceptors=[self.auth])
        master_pb2_grpc.add_MasterServicer_to_server(MasterService(self), self.server)
        bound = rpc.bind(self.server, cfg.listen, tls=self.tls)
        self.address = cfg.advertise or bound
        self.id = cfg.id or f"{default_id()}-{os.getpid()}"
        me = types_pb2.MasterInfo(id=self.id, address=self.address, started_at=time.time())
        self.election = Election(self.etcd, self.keys, me, cfg.lease_ttl,
                                 on_elected=self._on_elected, on_deposed=self._on_deposed)
        self.store = FencedStore(self.etcd, self.election)
        self.table = AppTable(self.keys, self.store)
        self.node_view = NodeView(self.etcd, self.keys)
        self.events = EventLog(self.keys, self.store, self.table, self.etcd)
        self.metrics = MasterMetrics(self)
        self.events.on_stored = self.metrics.app_events
        self.metrics_server = None
        self.table.on_change = self.watches.notifier.notify
        self.node_view.on_change = self._containers_changed
        self.node_view.endpoint_log.notifier = self.watches.notifier   # WatchEndpoints wakes like WatchApp
        self.nodes = NodeClient(self.election, tls=self.tls, cluster=cfg.cluster)
        self.tenancy = Tenancy(self.keys, self.store)
        self.pools = PoolTable(self.keys, self.store, tenant_exists=lambda name: name in self.tenancy.tenants)
        self.access = Access(self.tenancy, self.pools, self.table)   # who calls, and what it may do
        self.book = RequestBook()
        self.drains = Drains(self.keys, self.store)
        self.join_tokens = JoinTokens(self.keys, self.etcd, self.store)   # gaia node token create / join
        self.enrol_server, self.join_address = None, ""
        self.scheduling = SchedulingLoop(self)
        self.node_view.on_join = self.scheduling.wake    # new capacity: the backlog may fit now
        self.reconciler = Reconciler(self)
        self._term = 0            # bumped on every election and deposition
        self._ready_term = -1     # the term whose state is loaded; serve only then
        self._stopped = threading.Event()

    # ---- lifecycle ----

    def start(self) -> "Master":
        self.server.start()
        self.metrics_server = serve_metrics(self.metrics.registry, self.cfg.metrics_listen, f"master {self.id}")
        self.node_view.sync()
        threading.Thread(target=self._view_keeper, name="node-view", daemon=True).start()
        self.election.start()
        if self.cfg.join_listen:
            if self.ca is None:
                raise ValueError("join_listen: enrolment needs tls and ca_key (it signs node certificates)")
            self.enrol_server, self.join_address = enrol.serve(self, self.cfg.join_listen)
            log.info("enrolment (gaia node join) on %s", self.join_address)
        log.info("master %s serving on %s for cluster %s", self.id, self.address, self.cfg.cluster)
        return self

    def stop(self):
        """Resign (followers take over at once) and stop serving. Containers are untouched."""
        self._stopped.set()
        self.election.resign()
        if self.enrol_server is not None:
            self.enrol_server.stop(grace=1)
        self.server.stop(grace=1).wait()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.node_view.close()
        self.nodes.close()
        self.etcd.close()

    def _stream_caller(self):
        """Who opens the stream being served, for its caps: the access Principal (a bearer
        token counts as its user); None (only the total) when the caller cannot be told."""
        try:
            return self.access.who(identity.current(), identity.bearer_token())
        except Exception:  # noqa: BLE001 - the handler already refused an unknown caller
            ident = identity.current()
            return None if ident.role == "anonymous" else ident

    def _app_id_of(self, name: str) -> str:
        """The current app id of app `name` ('' if none): an AM may read only its own app."""
        record = self.table.apps.get(name)
        return record.app_id if record is not None else ""

    def is_serving(self) -> bool:
        return self.election.is_leader() and self._ready_term == self._term

    def pool_table(self) -> PoolTable:
        """The pool tree, loaded from etcd once per leadership epoch before it is used."""
        self.pools.ensure_loaded(self.etcd, self.election.epoch)
        return self.pools

    # ---- leadership ----

    def _on_elected(self, epoch: int):
        self._term += 1
        term = self._term
        self.metrics.leadership(True)
        self.table.load(self.etcd)            # rebuild everything from etcd before answering
        self.pool_table()
        self.tenancy.load(self.etcd, epoch)
        if self.tls:                          # someone must be able to create the other users
            self.tenancy.ensure_bootstrap_admin()
        self.drains.load(self.etcd)
        self.book.clear()                     # askers repeat their asks to the new term
        if self.node_view.broken:
            self.node_view.sync()
        leader = types_pb2.MasterInfo(id=self.id, address=self.address, epoch=epoch, leader=True,
                                      started_at=time.time())
        self.store.commit([self.store.put(self.keys.leader, leader, lease=self.election.lease)])
        self._ready_term = term
        current = lambda: self._term == term and self.is_serving()  # noqa: E731
        threading.Thread(target=self.reconciler.run, args=(current,), name=f"reconcile-{epoch}",
                         daemon=True).start()
        threading.Thread(target=self.scheduling.run, args=(current,), name=f"schedule-{epoch}",
                         daemon=True).start()

    def _on_deposed(self):
        self._term += 1
        self.metrics.leadership(False)
        self.reconciler.wake()
        self.scheduling.wake()

    def _containers_changed(self, app_ids, everything: bool):
        """Wake the watches of apps whose containers changed (all of them when a node went)."""
        if everything:
            self.watches.notifier.notify_all()
        else:
            self.watches.notifier.notify_many(app_ids)

    def _view_keeper(self):
        """Reload the node view whenever its watch breaks (etcd member lost, compaction)."""
        while not self._stopped.wait(0.5):
            if self.node_view.broken:
                try:
                    self.node_view.sync()
                except Exception as e:
                    log.warning("node view reload failed: %s", e)


def start(cfg: MasterConfig) -> Master:
    return Master(cfg).start()


def run(cfg: MasterConfig):
    setup_logging("master", cfg.log_format, cluster=cfg.cluster)
    master = Master(cfg)
    set_process_fields(master=master.id)   # known once the replica has its id
    master.start()
    wait_for_termination()
    master.stop()  # resigns at once: a follower leads without waiting out the lease
