"""The AM's status feed: statuses from the WatchApp stream, GetApp polling while it is down,
a re-open after a break, and a silent stream taken for dead."""
import queue
import threading
import time

import grpc

from gaia_am import watch as feed_mod
from gaia_am.events import EventReporter
from gaia_common.client import GaiaError
from gaia_common.pb import master_pb2, types_pb2


def status(value, state=types_pb2.APP_STATE_RUNNING):
    return master_pb2.AppStatus(app=types_pb2.AppRecord(app_id="a-1", am_attempt=1, next_instance=value, state=state,
                                                        spec=types_pb2.AppSpec(name="a")))


class Broken(grpc.RpcError):
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return "broken"


class FakeCall:
    def __init__(self):
        self.items = queue.Queue()
        self.cancelled = False

    def __iter__(self):
        return self

    def __next__(self):
        item = self.items.get()
        if isinstance(item, Exception):
            raise item
        return item

    def cancel(self):
        self.cancelled = True
        self.items.put(Broken(grpc.StatusCode.CANCELLED))


class FakeClient:
    def __init__(self):
        self.calls = queue.Queue()     # the streams the feed opened
        self.polls = 0
        self.refuse = None

    def call(self, method, request):
        assert method == "GetApp" and request.name == "a"
        self.polls += 1
        return status(1000 + self.polls)


def started(client):
    feed = feed_mod.StatusFeed(client, "a-1", 1)
    feed.start(status(0))
    return feed


class StreamingClient(FakeClient):
    """Each open gets its first status at once; later ones are pushed by the test."""

    def __init__(self):
        super().__init__()
        self.opened = 0

    def open_stream(self, method, request, timeout=None, on_call=None):
        assert method == "WatchApp" and request.app_id == "a-1" and request.attempt == 1
        if self.refuse:
            raise GaiaError(self.refuse, "no")
        call = FakeCall()
        on_call(call)
        self.opened += 1
        self.calls.put(call)
        return call, [status(self.opened * 100)]


def test_the_stream_feeds_the_loop_and_is_reopened_after_a_break():
    client = StreamingClient()
    feed = started(client)
    call = client.calls.get(timeout=2)
    assert feed.next(2.0).app.next_instance == 100
    call.items.put(status(101))
    began = time.monotonic()
    assert feed.next(2.0).app.next_instance == 101 and time.monotonic() - began < 0.5
    call.items.put(Broken(grpc.StatusCode.UNAVAILABLE))      # the leader went away
    again = client.calls.get(timeout=2)
    assert again is not call and feed.next(2.0).app.next_instance == 200
    assert client.polls <= 1
    feed.stop()


def test_a_refused_watch_falls_back_to_polling():
    client = StreamingClient()
    client.refuse = grpc.StatusCode.RESOURCE_EXHAUSTED
    feed = started(client)
    values = [feed.next(1.0).app.next_instance for _ in range(3)]
    assert values == [1001, 1002, 1003] and client.opened == 0
    feed.stop()


def test_a_silent_stream_is_cancelled_and_polled_meanwhile(monkeypatch):
    monkeypatch.setattr(feed_mod, "SILENT", 0.3)
    client = StreamingClient()
    feed = started(client)
    call = client.calls.get(timeout=2)
    assert feed.next(1.0).app.next_instance == 100
    time.sleep(0.35)                                         # no keepalive: a paused master
    assert feed.next(0.1).app.next_instance == 1001          # polled, and the call cancelled
    assert call.cancelled
    assert client.calls.get(timeout=2) is not call           # and a new one opened
    feed.stop()


def test_a_poke_wakes_the_loop_at_once():
    client = StreamingClient()
    feed = started(client)
    client.calls.get(timeout=2)
    feed.next(1.0)
    threading.Timer(0.05, feed.poke).start()
    began = time.monotonic()
    feed.next(5.0)
    assert time.monotonic() - began < 1.0
    feed.stop()


class RecordingClient:
    def __init__(self, fail_first=0):
        self.reports, self.fail_first = [], fail_first

    def call(self, method, request):
        if self.fail_first:
            self.fail_first -= 1
            raise GaiaError(grpc.StatusCode.UNAVAILABLE, "no leader")
        self.reports.append(request)
        return master_pb2.AppStatus()


def test_plain_events_are_bounded_and_batched(monkeypatch):
    monkeypatch.setattr("gaia_am.events.MAX_BUFFER", 5)
    client = RecordingClient(fail_first=1)
    reporter = EventReporter(client, "a-1", 1)
    for n in range(8):
        reporter.report("scale", message=str(n))
    assert reporter.dropped == 3
    assert reporter.flush() is False and client.reports == []    # the master is away: kept
    assert reporter.flush() is True
    assert [e.message for e in client.reports[0].events] == ["3", "4", "5", "6", "7"]
    assert client.reports[0].attempt == 1 and all(e.am_attempt == 1 for e in client.reports[0].events)
