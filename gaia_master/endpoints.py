"""WatchEndpoints: an app's resolvable endpoints, then every change, resumable by revision.

The node view feeds `EndpointLog` with the service registry (services/<app>/<instance>): a
full snapshot at each (re)load (`reset`) and each watch response of the registry (`apply`),
under the view's lock, so the log's revision is always one the whole registry was read at.
Per app it keeps the resolvable set now and a bounded history of changes to it (an endpoint
turning unhealthy is a removal, healthy again an addition), each with its etcd revision.

A client that resumes at `after_revision` gets the changes after it as one coalesced update,
or, when the history no longer reaches back that far (it is bounded; a reload after an etcd
compaction or a broken watch starts it afresh), the full set at the log's revision. Every
replica keeps its log warm, so a new leader resumes clients without a full list unless its
view was reloaded. A client ahead of this replica's log (it came from a replica whose view
was fresher) gets a full list read from etcd at a revision not older than its own.

Streams reuse WatchApp's machinery (gaia_master/watch.py): its notifier (keys `key(app)`),
its cap on open streams, its leadership check and its timing. A quiet stream sends an empty,
non-full update at the current revision every `keepalive` seconds; a client takes an update
with nothing in it at a revision it already has for a keepalive.
"""
import collections
import threading
import time

from gaia_common import etcd as etcd_mod
from gaia_common.pb import master_pb2, types_pb2
from gaia_master import watch
from gaia_master.node_view import instance_order, resolvable
from gaia_master.watch import Notifier

HISTORY = 4096           # changes kept per app: a client further behind gets a full list


def key(app: str):
    """The notifier key of an app's endpoint watchers (tuples never collide with app ids)."""
    return ("endpoints", app)


def project(endpoint, port: str):
    """What a watcher of `port` ("": every port) sees of `endpoint`: None when it is not
    resolvable or lacks the port, else the endpoint (with that port alone)."""
    if endpoint is None or not resolvable(endpoint):
        return None
    if not port:
        return endpoint
    if port not in endpoint.ports:
        return None
    return types_pb2.ServiceEndpoint(app=endpoint.app, instance_id=endpoint.instance_id, host=endpoint.host,
                                     node_id=endpoint.node_id, container_id=endpoint.container_id,
                                     health=endpoint.health, ports={port: endpoint.ports[port]})


Change = collections.namedtuple("Change", "revision instance_id before after")   # before/after: resolvable or None


class AppLog:
    def __init__(self, base: int, history: int):
        self.current = {}                  # instance_id -> resolvable ServiceEndpoint
        self.changes = collections.deque(maxlen=history)
        self.base = base                   # every change after this revision is in `changes`

    def record(self, revision: int, instance_id: str, endpoint):
        after = endpoint if endpoint is not None and resolvable(endpoint) else None
        before = self.current.get(instance_id)
        if before == after:
            return False                   # e.g. starting -> unhealthy: nothing a client sees
        if after is None:
            del self.current[instance_id]
        else:
            self.current[instance_id] = after
        if len(self.changes) == self.changes.maxlen:
            self.base = self.changes[0].revision   # about to fall out: resuming before it needs a full list
        self.changes.append(Change(revision, instance_id, before, after))
        return True

    def since(self, after: int) -> list:
        """The changes after revision `after`, oldest first (the newest are at the right)."""
        out = []
        for change in reversed(self.changes):
            if change.revision <= after:
                break
            out.append(change)
        return out[::-1]


class EndpointLog:
    def __init__(self, history: int = HISTORY, notifier: Notifier = None):
        self.history = history
        self.notifier = notifier or Notifier()
        self.lock = threading.Lock()
        self.apps = {}            # app -> AppLog
        self.revision = 0         # the registry is mirrored up to here
        self.loaded = 0           # the revision of the last reload: history starts there

    # ---- fed by the node view ----

    def reset(self, services: dict, revision: int):
        """A reload of the registry ({app: {instance_id: endpoint}} at `revision`): history
        starts afresh, so clients from before it get a full list."""
        with self.lock:
            self.apps = {}
            for app, endpoints in services.items():
                log = self._log(app, revision)
                for instance_id, endpoint in endpoints.items():
                    if resolvable(endpoint):
                        log.current[instance_id] = endpoint
            self.revision = self.loaded = revision
        self.notifier.notify_all()

    def apply(self, changes, revision: int):
        """One watch response of the registry: [(app, instance_id, endpoint or None, revision)],
        all of it mirrored up to `revision`."""
        touched = set()
        with self.lock:
            for app, instance_id, endpoint, at in changes:
                if at <= self.loaded:
                    continue   # a late event of a watch replaced by a reload: the snapshot has it
                if self._log(app, self.loaded).record(at, instance_id, endpoint):
                    touched.add(app)
            self.revision = max(self.revision, revision)
        if touched:
            self.notifier.notify_many([key(app) for app in touched])

    def _log(self, app: str, base: int) -> AppLog:
        log = self.apps.get(app)
        if log is None:
            log = self.apps[app] = AppLog(base, self.history)
        return log

    # ---- read by streams ----

    def since(self, app: str, port: str, after: int, keepalive: bool = False):
        """The update that brings a client at revision `after` up to date: changes only, or
        the full set when `after` is 0 or older than the history reaches. None when there is
        nothing new (or the client is ahead of this log), unless `keepalive` asks for an
        empty update then."""
        with self.lock:
            log = self.apps.get(app)
            base = log.base if log is not None else self.loaded
            if after <= 0 or after < base:
                return self._full(log, port)
            update = None
            if after <= self.revision and log is not None:
                update = _delta(log.since(after), port, self.revision)
            if update is None and keepalive:
                update = master_pb2.EndpointsUpdate(revision=max(after, self.revision))
            return update

    def full(self, app: str, port: str) -> master_pb2.EndpointsUpdate:
        with self.lock:
            return self._full(self.apps.get(app), port)

    def _full(self, log, port: str) -> master_pb2.EndpointsUpdate:
        endpoints = [project(e, port) for e in (log.current.values() if log is not None else ())]
        return full_update([e for e in endpoints if e is not None], self.revision)


def _delta(changes: list, port: str, revision: int):
    """One update for `changes` (oldest first) as a watcher of `port` sees them, or None when
    they add up to nothing for it (added then removed, a port it does not watch)."""
    first, last = {}, {}
    for change in changes:
        first.setdefault(change.instance_id, change.before)
        last[change.instance_id] = change.after
    update = master_pb2.EndpointsUpdate(revision=revision)
    for instance_id in sorted(last, key=instance_order):
        before, after = project(first[instance_id], port), project(last[instance_id], port)
        if before == after:
            continue
        if after is None:
            update.removed.append(instance_id)
        else:
            update.endpoints.append(after)
    return update if update.endpoints or update.removed else None


def full_update(endpoints, revision: int) -> master_pb2.EndpointsUpdate:
    return master_pb2.EndpointsUpdate(revision=revision, full=True,
                                      endpoints=sorted(endpoints, key=lambda e: instance_order(e.instance_id)))


def read_full(etcd, keys, app: str, port: str) -> master_pb2.EndpointsUpdate:
    """The app's set read from etcd itself, at etcd's current revision: for a client ahead of
    this replica's mirror, which must not be sent back in time."""
    prefix = keys.app_services(app)
    response = etcd_mod.retry(lambda: etcd.get_prefix_response(prefix))
    endpoints = []
    for kv in response.kvs:
        endpoint = types_pb2.ServiceEndpoint()
        endpoint.ParseFromString(kv.value)
        endpoints.append(project(endpoint, port))
    return full_update([e for e in endpoints if e is not None], response.header.revision)


# ---- the stream ----

def first_update(master, request) -> master_pb2.EndpointsUpdate:
    """What a new stream starts with (computed in the handler, so etcd errors become codes)."""
    log = master.node_view.endpoint_log
    if request.after_revision > log.revision:
        return read_full(master.etcd, master.keys, request.app, request.port)
    return log.since(request.app, request.port, request.after_revision, keepalive=True)


def follow(log: EndpointLog, app: str, port: str, cursor: int, go_on, timing):
    """Updates after revision `cursor` until `go_on()` is false: changes as they come
    (coalesced over `timing.min_interval`), an empty one when `timing.keepalive` passes
    without any. Separated from gRPC so it can be tested without a server."""
    changed = log.notifier.subscribe(key(app))
    changed.set()            # look once at once: a change may have come before we subscribed
    sent_at = time.monotonic()
    try:
        while _wait(changed, sent_at, go_on, timing):
            changed.clear()  # before reading: a change from now on wakes us again
            update = log.since(app, port, cursor, keepalive=time.monotonic() - sent_at >= timing.keepalive)
            if update is not None:
                yield update
                cursor, sent_at = max(cursor, update.revision), time.monotonic()
            time.sleep(timing.min_interval)   # coalesce: what changes meanwhile goes in the next one
    finally:
        log.notifier.unsubscribe(key(app), changed)


def _wait(changed: threading.Event, sent_at: float, go_on, timing) -> bool:
    """Until a change or the keepalive is due; False when the stream must end."""
    while go_on():
        left = sent_at + timing.keepalive - time.monotonic()
        if left <= 0 or changed.wait(min(timing.check, left)):
            return go_on()
    return False


def serve(master, request, context):
    """The WatchEndpoints stream: the first update, then `follow` while we lead."""
    first = first_update(master, request)

    def stream():
        with master.watches.slot(context, "poll Resolve instead"):
            yield first
            yield from follow(master.node_view.endpoint_log, request.app, request.port, first.revision,
                              lambda: watch.going_on(master, context), master.watches)

    return stream()
