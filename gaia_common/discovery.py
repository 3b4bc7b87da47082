"""Finding an application's instances from a program: resolve and watch by name.

    resolver = Resolver("prod", etcd_endpoints=["https://10.0.0.1:2379"])   # or masters=[...]
    resolver.resolve("web", "http")         # [ServiceEndpoint], from a cache
    for change in resolver.watch("web"):    # the set now, then after every change
        ...

Like every client (gaia_common/client.py) it reads only the masters' addresses from etcd and
asks the leading master for the rest, through its WatchEndpoints stream. The first question
about an app starts a background follower that keeps its set (every port) current; later
`resolve` calls answer from that cache, also while the follower reconnects (then the set is
the last one known). A follower resumes a broken stream (master killed or paused, failover,
etcd restart) at the revision it last applied, so it misses no change and applies none twice;
the master answers with a full set when it cannot say what changed since.
"""
import collections
import dataclasses
import itertools
import logging
import random
import threading
import time

import grpc

from gaia_common import config
from gaia_common.client import GaiaError, MasterClient
from gaia_common.pb import master_pb2, types_pb2

log = logging.getLogger(__name__)
FIRST_WAIT = 15.0        # seconds the first question about an app waits for its set
STALL = 15.0             # a stream silent this long is dead (the master sends keepalives every 5 s)
MAX_PENDING = 1000       # changes queued for a slow watch() consumer before it gets the latest set only


@dataclasses.dataclass
class EndpointSet:
    """One state of an app's endpoints, as `watch` yields it."""
    revision: int            # the registry revision it is at
    endpoints: list          # every resolvable endpoint, by instance id
    added: list              # new or changed since the previous one yielded
    removed: list            # instance ids gone since the previous one yielded


def project(endpoints, port: str = None) -> list:
    """The endpoints that have `port` (each with that port alone), or all of them; sorted."""
    out = []
    for e in endpoints:
        if port:
            if port not in e.ports:
                continue
            e = types_pb2.ServiceEndpoint(app=e.app, instance_id=e.instance_id, host=e.host, node_id=e.node_id,
                                          container_id=e.container_id, health=e.health, ports={port: e.ports[port]})
        out.append(e)
    return sorted(out, key=lambda e: _order(e.instance_id))


def _difference(last, revision: int, endpoints: list):
    """The EndpointSet that follows `last` (the endpoints yielded before; None at first), or
    None when the set is the same."""
    before = {e.instance_id: e for e in last or ()}
    added = [e for e in endpoints if before.get(e.instance_id) != e]
    now = {e.instance_id for e in endpoints}
    removed = sorted((i for i in before if i not in now), key=_order)
    if last is not None and not added and not removed:
        return None
    return EndpointSet(revision, endpoints, added, removed)


def _order(instance_id: str):
    return (0, int(instance_id), "") if instance_id.isdigit() else (1, 0, instance_id)


class Resolver:
    def __init__(self, cluster: str, etcd_endpoints=None, masters=None, client: MasterClient = None,
                 first_wait: float = FIRST_WAIT, stall: float = STALL):
        self._own_client = client is None
        self.client = client or MasterClient(cluster, etcd_endpoints=etcd_endpoints, masters=masters)
        self.first_wait = first_wait
        self.stall = stall
        self._lock = threading.Lock()
        self._followers = {}          # app -> _Follower
        self._closed = threading.Event()

    @classmethod
    def for_cluster(cls, name: str, **kwargs) -> "Resolver":
        """Look `name` up in the client config (~/.gaia/config.yaml or $GAIA_CONFIG)."""
        entry = config.cluster_entry(name)
        return cls(name, etcd_endpoints=entry.get("etcd"), masters=entry.get("masters"), **kwargs)

    def resolve(self, app: str, port: str = None) -> list:
        """The app's resolvable endpoints (those with `port`, with it alone), from the cache.
        The first call for an app waits for its set; GaiaError (NOT_FOUND...) if none comes."""
        return project(self._ready(app).snapshot()[1].values(), port)

    def watch(self, app: str, port: str = None):
        """Yield an EndpointSet now and after every change to the set (of those with `port`),
        until the resolver is closed. A consumer that falls MAX_PENDING changes behind skips
        to the latest set (what it yields still adds up: added and removed are against the
        previous one it yielded)."""
        follower = self._ready(app)
        queue = follower.listen()
        try:
            last = None
            while not self._closed.is_set():
                state = queue.get(timeout=0.5)
                if state is not None:
                    change = _difference(last, state[0], project(state[1].values(), port))
                    if change is not None:     # None: another port's change, nothing here
                        yield change
                        last = change.endpoints
        finally:
            follower.unlisten(queue)

    def close(self):
        self._closed.set()
        with self._lock:
            followers, self._followers = list(self._followers.values()), {}
        for follower in followers:
            follower.stop()
        if self._own_client:
            self.client.close()

    def _ready(self, app: str) -> "_Follower":
        """The app's follower, started on first use and waited for (one that failed before its
        first set is dropped, so the next question tries again)."""
        if not app:
            raise GaiaError(grpc.StatusCode.INVALID_ARGUMENT, "no app named")
        with self._lock:
            if self._closed.is_set():
                raise GaiaError(grpc.StatusCode.CANCELLED, "resolver closed")
            follower = self._followers.get(app)
            if follower is None:
                follower = self._followers[app] = _Follower(self.client, app, self.stall)
        try:
            follower.wait_ready(self.first_wait)
        except GaiaError:
            with self._lock:
                if self._followers.get(app) is follower:
                    del self._followers[app]
            follower.stop()
            raise
        return follower


class _Queue:
    """What one watch() consumer has not taken yet: (revision, {instance_id: endpoint}) states."""

    def __init__(self, first):
        self.cond = threading.Condition()
        self.items = collections.deque([first])

    def put(self, state):
        with self.cond:
            if len(self.items) >= MAX_PENDING:
                self.items.clear()     # behind: the latest set stands for what it missed
            self.items.append(state)
            self.cond.notify()

    def get(self, timeout: float):
        with self.cond:
            if not self.items:
                self.cond.wait(timeout)
            return self.items.popleft() if self.items else None


class _Follower:
    """One app's WatchEndpoints stream, kept open (and resumed) by a thread of its own."""

    def __init__(self, client: MasterClient, app: str, stall: float):
        self.client, self.app, self.stall = client, app, stall
        self.lock = threading.Lock()
        self.revision = 0
        self.endpoints = {}           # instance_id -> ServiceEndpoint (every port)
        self.error = None             # why the first set did not come
        self.ready = threading.Event()
        self._queues = []
        self._stopped = threading.Event()
        self._call, self._heard = None, time.monotonic()
        threading.Thread(target=self._run, name=f"resolve-{app}", daemon=True).start()
        threading.Thread(target=self._watchdog, name=f"resolve-{app}-watchdog", daemon=True).start()

    # ---- read by the resolver ----

    def wait_ready(self, timeout: float):
        if not self.ready.wait(timeout):
            raise GaiaError(grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"no endpoints of {self.app!r} within {timeout}s: no leading master answered")
        if self.error is not None:
            raise self.error

    def snapshot(self):
        with self.lock:
            return self.revision, dict(self.endpoints)

    def listen(self) -> _Queue:
        with self.lock:
            queue = _Queue((self.revision, dict(self.endpoints)))
            self._queues.append(queue)
        return queue

    def unlisten(self, queue: _Queue):
        with self.lock:
            if queue in self._queues:
                self._queues.remove(queue)

    def stop(self):
        self._stopped.set()
        self._cancel()

    # ---- the stream ----

    def _run(self):
        backoff = 0
        while not self._stopped.is_set():
            backoff = self._attempt(backoff)
            if backoff is None:
                return
            self._stopped.wait(min(5.0, 0.1 * 2 ** min(backoff, 6)) * (0.5 + random.random()))

    def _attempt(self, backoff: int):
        """One stream, until it breaks: the backoff step before the next one, None to give up."""
        try:
            self._follow_once()
            return 0
        except GaiaError as e:       # no leader within the client's retry_for, or a final answer
            if not self.ready.is_set():
                self.error = e
                self.ready.set()     # the asker raises it
                return None
            log.warning("endpoints of %s: %s; retrying", self.app, e.message)
        except grpc.RpcError as e:   # the stream broke: resume at once (a failover, a restart)
            if not self._stopped.is_set():
                log.info("endpoints of %s: stream ended (%s); resuming at revision %d",
                         self.app, e.code().name, self.revision)
            return 0
        except Exception:            # closed under us, or a bug: the cache must not die silently
            if self._stopped.is_set():
                return None
            log.exception("endpoints of %s: follower failed; retrying", self.app)
        return backoff + 1

    def _follow_once(self):
        """One stream from `self.revision` on, until it breaks (RpcError) or the server ends it."""
        request = master_pb2.WatchEndpointsRequest(app=self.app, after_revision=self.revision)
        self._heard = time.monotonic()
        call, head = self.client.open_stream("WatchEndpoints", request, timeout=None, on_call=self._opened)
        try:
            for update in itertools.chain(head, call):
                self._heard = time.monotonic()
                self._apply(update)
                if self._stopped.is_set():
                    return
        finally:
            call.cancel()

    def _opened(self, call):
        self._call, self._heard = call, time.monotonic()
        if self._stopped.is_set():
            call.cancel()

    def _apply(self, update):
        with self.lock:
            if update.full:
                endpoints = {e.instance_id: e for e in update.endpoints}
            elif update.revision <= self.revision:
                return                   # a keepalive: nothing after what we have
            else:
                endpoints = dict(self.endpoints)
                for instance_id in update.removed:
                    endpoints.pop(instance_id, None)
                endpoints.update((e.instance_id, e) for e in update.endpoints)
            changed = endpoints != self.endpoints or not self.ready.is_set()
            self.revision, self.endpoints = update.revision, endpoints
            if changed:
                for queue in self._queues:
                    queue.put((update.revision, endpoints))
        self.ready.set()

    def _watchdog(self):
        """Cancel a stream that stopped talking (a paused master keeps its connection open), so
        `_run` resumes elsewhere."""
        while not self._stopped.wait(min(1.0, self.stall / 4)):
            if time.monotonic() - self._heard > self.stall:
                log.info("endpoints of %s: no word for %.0fs; reconnecting", self.app, self.stall)
                self._heard = time.monotonic()
                self._cancel()

    def _cancel(self):
        call = self._call
        if call is not None:
            call.cancel()
