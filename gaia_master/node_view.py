"""What the nodes publish (nodes, containers, services), mirrored in memory by an etcd watch.

Every replica keeps the mirror warm, so a newly elected leader has it already. The mirror is
loaded with one range read and then follows a watch that starts at the read's revision + 1,
so no event falls between the two. A broken watch (etcd member down, compaction) triggers a
full reload. The registry's loads and changes, with their revisions, also go to `endpoint_log`
(gaia_master/endpoints.py: WatchEndpoints' history).
"""
import functools
import logging
import threading

from etcd3 import events as etcd_events

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2

log = logging.getLogger(__name__)


class NodeView:
    def __init__(self, etcd, keys: Keys):
        self.etcd = etcd
        self.keys = keys
        self.lock = threading.Lock()
        self.nodes = {}        # node_id -> NodeInfo
        self.containers = {}   # app_id -> {container_id: ContainerStatus}
        # (app_id, instance_id) -> the highest start counter ever seen: a moved instance starts
        # above it, so a node that comes back never shares a container id with its replacement.
        # Kept across reloads (a lost node's keys are gone by then).
        self.counters = {}
        self.services = {}     # app_name -> {instance_id: ServiceEndpoint}
        self.revision = 0
        self.node_version = 0  # bumped whenever a node joins, changes or leaves
        self.broken = True
        self._watch_ids = []
        from gaia_master.endpoints import EndpointLog   # here: endpoints imports this module
        self.endpoint_log = EndpointLog()   # the registry's recent changes, for WatchEndpoints
        # on_change(app_ids, everything): after containers of those apps changed, or (everything)
        # after a node left or the mirror was reloaded; called outside the lock (WatchApp)
        self.on_change = lambda app_ids, everything: None
        # on_join(): after a node that was not in the mirror registered (new capacity: the
        # leader's scheduling loop retries its backlog now, not at its next timed cycle)
        self.on_join = lambda: None
        self._joined = False
        self._tables = (
            (keys.nodes, types_pb2.NodeInfo, self._put_node, self._del_node),
            (keys.containers, types_pb2.ContainerStatus, self._put_container, self._del_container),
            (keys.services, types_pb2.ServiceEndpoint, self._put_service, self._del_service),
        )

    # ---- loading and following ----

    def sync(self):
        """(Re)load everything and follow changes; call again whenever `broken` is set."""
        if self._watch_ids:
            self._cancel()
        with self.lock:
            self.nodes, self.containers, self.services = {}, {}, {}
            self.node_version += 1
            revision = None  # every table is read at the first read's revision: one snapshot
            for prefix, cls, put, _ in self._tables:
                response = self.etcd.get_prefix_response(prefix, revision=revision)
                revision = revision or response.header.revision
                for kv in response.kvs:
                    put(kv.key.decode()[len(prefix):], _decode(cls, kv.value))
            self.revision = revision
            self.endpoint_log.reset(self.services, revision)
        # one watch per table, not the cluster's root: the leader's own grants (a million
        # allocation keys) would otherwise stream back to every master
        self._watch_ids = [self.etcd.add_watch_prefix_callback(prefix, functools.partial(self._on_watch, prefix),
                                                               start_revision=revision + 1)
                           for prefix, *_ in self._tables]
        self.broken = False
        self.on_change((), True)
        self.on_join()     # nodes may have come back while the mirror was broken

    def close(self):
        self._cancel()

    def _cancel(self):
        for watch_id in self._watch_ids:
            try:
                self.etcd.cancel_watch(watch_id)
            except Exception:
                pass
        self._watch_ids = []

    def _on_watch(self, prefix, response):
        if isinstance(response, Exception):
            log.warning("node view watch broke: %s", response)
            self.broken = True
            return
        with self.lock:
            self._joined = False
            applied = [self._apply(event) for event in response.events]
            joined = self._joined
            if prefix == self.keys.services:   # this watch's header: the registry is mirrored up to it
                changes = [(*_app_instance(rest), value, at) for rest, value, at in applied]
                self.endpoint_log.apply(changes, response.header.revision)
            # three watches advance separately; the mirror's revision is for the logs only
            self.revision = max(self.revision, response.header.revision)
        self._changed(response.events)
        if joined:
            self.on_join()

    def _changed(self, events):
        apps, everything = set(), False
        for event in events:
            key = event.key.decode()
            if key.startswith(self.keys.containers):
                apps.add(key[len(self.keys.containers):].partition("/")[0])
            elif key.startswith(self.keys.nodes) and isinstance(event, etcd_events.DeleteEvent):
                everything = True   # its instances are node_lost now
        if apps or everything:
            self.on_change(apps, everything)

    def _apply(self, event):
        """(key after its table's prefix, the new value or None when deleted, its revision)."""
        key = event.key.decode()
        for prefix, cls, put, delete in self._tables:
            if key.startswith(prefix):
                rest, value = key[len(prefix):], None
                if isinstance(event, etcd_events.DeleteEvent):
                    delete(rest)
                else:
                    value = _decode(cls, event.value)
                    put(rest, value)
                return rest, value, event.mod_revision
        return key, None, event.mod_revision

    # ---- tables ----

    def _put_node(self, node_id, info):
        self._joined |= node_id not in self.nodes
        self.nodes[node_id] = info
        self.node_version += 1

    def _del_node(self, node_id):
        self.nodes.pop(node_id, None)
        self.node_version += 1

    def _put_container(self, rest, status):
        app_id, _, container_id = rest.partition("/")
        self.containers.setdefault(app_id, {})[container_id] = status
        key = (app_id, status.instance_id)
        self.counters[key] = max(self.counters.get(key, 0), start_counter(container_id))

    def _del_container(self, rest):
        app_id, _, container_id = rest.partition("/")
        self.containers.get(app_id, {}).pop(container_id, None)

    def _put_service(self, rest, endpoint):
        app, _, instance_id = rest.partition("/")
        self.services.setdefault(app, {})[instance_id] = endpoint

    def _del_service(self, rest):
        app, _, instance_id = rest.partition("/")
        self.services.get(app, {}).pop(instance_id, None)

    # ---- queries (copies, safe to use without the lock) ----

    def node_list(self) -> list:
        with self.lock:
            return list(self.nodes.values())

    def node(self, node_id: str):
        with self.lock:
            return self.nodes.get(node_id)

    def app_containers(self, app_id: str) -> list:
        with self.lock:
            return list(self.containers.get(app_id, {}).values())

    def all_containers(self) -> list:
        with self.lock:
            return [c for by_app in self.containers.values() for c in by_app.values()]

    def endpoints(self, app_name: str) -> list:
        with self.lock:
            return sorted(self.services.get(app_name, {}).values(), key=lambda e: instance_order(e.instance_id))


UNRESOLVED_HEALTH = ("starting", "unhealthy")


def resolvable(endpoint) -> bool:
    """Registry readers hand out instances without a health check ("") and healthy ones only."""
    return endpoint.health not in UNRESOLVED_HEALTH


def _app_instance(rest: str):
    """services/<app>/<instance_id> less the prefix -> (app, instance_id)."""
    app, _, instance_id = rest.partition("/")
    return app, instance_id


def _decode(cls, value: bytes):
    message = cls()
    message.ParseFromString(value)
    return message


def instance_order(instance_id: str):
    return (0, int(instance_id), "") if instance_id.isdigit() else (1, 0, instance_id)


def highest_counter(node_view, app_id: str, instance_id: str) -> int:
    with node_view.lock:
        return node_view.counters.get((app_id, instance_id), -1)


def latest_container(containers: list, instance_id: str, node_id: str = None):
    """The newest container of an instance (on `node_id`, if given: a copy left on a node
    the instance moved off is not its status): container ids end in a start counter."""
    mine = [c for c in containers if c.instance_id == instance_id and node_id in (None, c.node_id)]
    return max(mine, key=lambda c: start_counter(c.container_id), default=None)


def start_counter(container_id: str) -> int:
    tail = container_id.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0
