"""The discovery client (gaia_common/discovery.py) against a fake master built on the real
EndpointLog and follow(): resume after broken streams, reloads and stalls, without gaps or repeats."""
import threading
import time
import types

import grpc
import pytest

from gaia_common.client import GaiaError
from gaia_common.discovery import Resolver
from gaia_common.pb import types_pb2
from gaia_master.endpoints import EndpointLog, follow

TIMING = types.SimpleNamespace(min_interval=0.01, keepalive=0.2, check=0.02)


class Broken(grpc.RpcError):
    def __init__(self, code=grpc.StatusCode.UNAVAILABLE):
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return "broken"


class Call:
    """A server stream: follow() until broken or cancelled."""

    def __init__(self, master, request):
        self.cancelled = threading.Event()
        self.master = master
        first = master.log.since(request.app, request.port, request.after_revision, keepalive=True)
        self.head = first
        self.updates = follow(master.log, request.app, request.port, first.revision, self._go_on, TIMING)

    def _go_on(self):
        if self.cancelled.is_set():
            raise Broken(grpc.StatusCode.CANCELLED)
        if self.master.break_streams.is_set() or self.master.paused.is_set():
            if self.master.paused.is_set():
                return True
            raise Broken()
        return True

    def __iter__(self):
        return self

    def __next__(self):
        if self.master.paused.is_set():          # a paused master: its connection stays, silent
            while self.master.paused.is_set():
                if self.cancelled.wait(0.01):
                    raise Broken(grpc.StatusCode.CANCELLED)
        return next(self.updates)

    def cancel(self):
        self.cancelled.set()


class FakeMaster:
    """MasterClient.open_stream over an EndpointLog; records every request."""

    def __init__(self, log):
        self.log = log
        self.requests = []
        self.break_streams = threading.Event()
        self.paused = threading.Event()
        self.unknown = set()

    def open_stream(self, method, request, timeout=None, on_call=None):
        assert method == "WatchEndpoints"
        while self.break_streams.is_set():       # the failover: nobody answers for a moment
            time.sleep(0.01)
        if request.app in self.unknown:
            raise GaiaError(grpc.StatusCode.NOT_FOUND, f"no application named {request.app!r}")
        self.requests.append(request.after_revision)
        call = Call(self, request)
        if on_call:
            on_call(call)
        return call, [call.head]

    def close(self):
        pass


def ep(instance_id, port=20000, ports=None):
    return types_pb2.ServiceEndpoint(app="web", instance_id=instance_id, host="10.0.0.1",
                                     ports=ports or {"http": port, "admin": 1})


@pytest.fixture
def world():
    log = EndpointLog()
    log.reset({"web": {"0": ep("0")}}, 10)
    master = FakeMaster(log)
    resolver = Resolver("c", client=master, first_wait=2, stall=0.5)
    yield log, master, resolver
    resolver.close()


class Recorder(threading.Thread):
    def __init__(self, resolver, port=None):
        super().__init__(daemon=True)
        self.resolver, self.port, self.seen = resolver, port, []
        self.start()

    def run(self):
        for change in self.resolver.watch("web", self.port):
            self.seen.append(change)

    def sets(self):
        return [[e.instance_id for e in s.endpoints] for s in self.seen]


def wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_resolve_is_served_from_the_cache_and_follows_changes(world):
    log, master, resolver = world
    assert [e.instance_id for e in resolver.resolve("web")] == ["0"]
    assert dict(resolver.resolve("web", "http")[0].ports) == {"http": 20000}
    assert resolver.resolve("web", "nope") == []
    log.apply([("web", "1", ep("1"), 11)], 11)
    wait(lambda: [e.instance_id for e in resolver.resolve("web")] == ["0", "1"])
    assert master.requests == [0]                 # one stream for every question


def test_unknown_app_raises_and_is_asked_again_later(world):
    log, master, resolver = world
    master.unknown.add("ghost")
    with pytest.raises(GaiaError) as e:
        resolver.resolve("ghost")
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    master.unknown.clear()
    assert resolver.resolve("ghost") == []


def test_watch_yields_the_set_then_each_change_and_resumes_without_gaps_or_repeats(world):
    log, master, resolver = world
    rec = Recorder(resolver)
    wait(lambda: rec.seen)
    assert rec.sets() == [["0"]] and rec.seen[0].revision == 10
    log.apply([("web", "1", ep("1"), 11)], 11)
    wait(lambda: len(rec.seen) == 2)
    master.break_streams.set()                    # the stream breaks; changes go on meanwhile
    log.apply([("web", "2", ep("2"), 12)], 12)
    log.apply([("web", "0", None, 13)], 13)
    time.sleep(0.1)
    master.break_streams.clear()
    wait(lambda: rec.sets()[-1] == ["1", "2"])
    assert master.requests[0] == 0 and 11 in master.requests[1:]    # resumed where it was
    assert rec.seen[-1].revision == 13
    revisions = [s.revision for s in rec.seen]
    assert revisions == sorted(set(revisions))
    assert [e.instance_id for e in rec.seen[1].added] == ["1"] and rec.seen[-1].removed == ["0"]


def test_a_reload_on_the_master_becomes_a_replace(world):
    log, master, resolver = world
    rec = Recorder(resolver)
    wait(lambda: rec.seen)
    log.reset({"web": {"5": ep("5")}}, 50)        # e.g. a compaction broke the master's watch
    wait(lambda: rec.sets()[-1] == ["5"])
    assert rec.seen[-1].removed == ["0"] and rec.seen[-1].revision == 50


def test_a_silent_stream_is_dropped_and_resumed(world):
    log, master, resolver = world
    rec = Recorder(resolver)
    wait(lambda: rec.seen)
    master.paused.set()                            # no keepalives: the watchdog cancels it
    log.apply([("web", "1", ep("1"), 11)], 11)
    time.sleep(0.8)
    master.paused.clear()
    wait(lambda: rec.sets()[-1] == ["0", "1"])
    assert len(master.requests) >= 2 and master.requests[-1] >= 10


def test_a_port_watch_skips_changes_it_cannot_see(world):
    log, master, resolver = world
    rec = Recorder(resolver, port="http")
    wait(lambda: rec.seen)
    log.apply([("web", "0", ep("0", ports={"http": 20000, "admin": 2}), 11)], 11)
    log.apply([("web", "0", ep("0", ports={"http": 20001, "admin": 2}), 12)], 12)
    wait(lambda: len(rec.seen) == 2)
    time.sleep(0.1)
    assert len(rec.seen) == 2 and dict(rec.seen[1].endpoints[0].ports) == {"http": 20001}
