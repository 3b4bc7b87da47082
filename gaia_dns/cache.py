"""The DNS view of one cluster's service registry, and the prebuilt answers replies are made of.

A PrefixMirror of `services/` feeds it: load() after each (re)load, apply() with the watch's
events, both in the mirror's lock (so one writer). A change rebuilds the answers of the apps
it touched, at once, in the watch's thread: the next query finds them ready.

Queries read `answers` and `apps` with no lock. Writers change them only by single dict
operations or by swapping whole dicts, which are atomic under the GIL, so a query sees a name's
old answer or its new one, never a half-built one.
"""
import collections
import logging

from dnslib import QTYPE

from gaia_common.pb import types_pb2
from gaia_dns import records
from gaia_dns.names import PROTOCOLS, Zone
from gaia_master.node_view import instance_order, resolvable

log = logging.getLogger(__name__)

# What a name needs to exist (NOERROR with no records) even when no instance is resolvable.
AppView = collections.namedtuple("AppView", "instances ports")


class Cache:
    def __init__(self, zone: Zone, ttl: int):
        self.zone, self.ttl = zone, ttl
        self.entries = {}      # app -> {instance id: ServiceEndpoint}: the registry as etcd has it
        self.apps = {}         # app -> AppView of every entry, resolvable or not
        self.answers = {}      # question key (lowercase wire bytes) -> records.Answer
        self._keys = {}        # app -> the keys its answers are under, to drop them on a rebuild
        self.serial = 0        # the registry's etcd revision: the SOA serial
        self.version = 0       # bumped after every load and change; 0: never loaded (SERVFAIL)
        self.soa = records.soa_rr(zone.origin, 0, ttl)

    # ---- fed by the mirror ----

    def load(self, revision: int, items: dict):
        entries = {}
        for rest, value in next(iter(items.values()), []):
            _put(entries, rest, value)
        answers, keys = {}, {}
        for app, by_instance in entries.items():
            keys[app] = self._build(app, by_instance, answers)
        apps = {app: _view(by_instance) for app, by_instance in entries.items()}
        self.serial = revision
        answers.update(self._apex())
        self.entries, self.apps, self._keys, self.answers = entries, apps, keys, answers
        self.version += 1

    def apply(self, revision: int, changes: list):
        touched = set()
        for _prefix, rest, value in changes:
            touched.add(_put(self.entries, rest, value))
        for app in touched - {None}:
            self._rebuild(app)
        self.serial = revision
        self.answers.update(self._apex())
        self.version += 1

    # ---- lookups for the slow path ----

    def exists(self, name) -> bool:
        """Whether a parsed name (names.Name) is there, with records or not (NODATA vs NXDOMAIN)."""
        if name.kind == "apex":
            return True
        view = self.apps.get(name.app)
        if view is None:
            return False
        return {"app": True, "instance": name.instance in view.instances,
                "proto": bool(view.ports), "srv": name.port in view.ports}.get(name.kind, False)

    # ---- building ----

    def _rebuild(self, app: str):
        by_instance = self.entries.get(app)
        fresh = {}
        keys = self._build(app, by_instance, fresh) if by_instance else set()
        self.answers.update(fresh)
        for key in self._keys.get(app, set()) - keys:
            self.answers.pop(key, None)
        if by_instance:
            self._keys[app], self.apps[app] = keys, _view(by_instance)
        else:
            self._keys.pop(app, None)
            self.apps.pop(app, None)

    def _build(self, app: str, by_instance: dict, into: dict) -> set:
        """Put the answers of every name of `app` into `into`; the keys they are under."""
        try:
            built = app_answers(self.zone, app, by_instance, self.ttl)
        except Exception:  # one bad entry must not take the other apps' names down
            log.exception("cannot build the records of %s; it resolves to nothing", app)
            built = {}
        into.update(built)
        return set(built)

    def _apex(self) -> dict:
        self.soa = records.soa_rr(self.zone.origin, self.serial, self.ttl)
        key, answer = records.build(self.zone.origin, QTYPE.SOA, [self.soa])
        return {key: answer}


def app_answers(zone: Zone, app: str, by_instance: dict, ttl: int) -> dict:
    """key -> Answer for every name of `app` that has records: the app's, each instance's, the SRVs."""
    ready = [(iid, e) for iid, e in sorted(by_instance.items(), key=lambda item: instance_order(item[0]))
             if resolvable(e) and records.address_type(e.host)]
    # each instance's address record serves its own name and, as glue, every SRV naming it
    address = {iid: records.address_rr(zone.instance(app, iid), e.host, ttl) for iid, e in ready}
    out = {}
    hosts = {e.host: records.address_rr(zone.app(app), e.host, ttl) for _, e in ready}   # once each
    _addresses(out, zone.app(app), list(hosts.values()))
    for iid, _ in ready:
        _addresses(out, zone.instance(app, iid), [address[iid]])
    for port in sorted({p for _, e in ready for p in e.ports}):
        with_port = [(iid, e) for iid, e in ready if port in e.ports]
        name = zone.srv(app, port, PROTOCOLS[0])
        srvs = [records.srv_rr(name, e.ports[port], zone.instance(app, iid), ttl) for iid, e in with_port]
        key, answer = records.build(name, QTYPE.SRV, srvs, [address[iid] for iid, _ in with_port])
        out[key] = answer
        for protocol in PROTOCOLS[1:]:
            # same-length labels (_tcp, _udp): the packed records point into the question at the
            # same offsets, so one Answer serves both
            out[records.Encoder(zone.srv(app, port, protocol), QTYPE.SRV).key] = answer
    return out


def _addresses(out: dict, name: str, rrs: list):
    for qtype in (QTYPE.A, QTYPE.AAAA):
        of_type = [rr for rr in rrs if rr.rtype == qtype]
        if of_type:
            key, answer = records.build(name, qtype, of_type)
            out[key] = answer


def _view(by_instance: dict) -> AppView:
    return AppView(frozenset(by_instance), frozenset(p for e in by_instance.values() for p in e.ports))


def _put(entries: dict, rest: str, value):
    """Apply one registry key (`<app>/<instance>`, value None for a delete); the app, or None."""
    app, _, instance = rest.partition("/")
    if not app or not instance:
        return None
    if value is None:
        entries.get(app, {}).pop(instance, None)
        if not entries.get(app, True):
            entries.pop(app, None)
        return app
    endpoint = types_pb2.ServiceEndpoint()
    try:
        endpoint.ParseFromString(value)
    except Exception:  # a value we cannot read: the instance cannot be resolved
        log.warning("services/%s: not a ServiceEndpoint; left out", rest)
        return _put(entries, rest, None)
    if endpoint.private:   # a private app is not served by DNS: as if it had no entry at all
        return _put(entries, rest, None)
    entries.setdefault(app, {})[instance] = endpoint
    return app
