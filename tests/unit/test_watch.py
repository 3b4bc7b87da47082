"""WatchApp's stream logic with a fake app: coalescing, keepalives, ends, the cap on watches."""
import threading
import time

import grpc
import pytest

from gaia_common.pb import master_pb2, types_pb2
from gaia_master.watch import Notifier, Watches


class App:
    """A status that changes when told to, and says so through the notifier."""

    def __init__(self, notifier):
        self.notifier = notifier
        self.value = 0
        self.state = types_pb2.APP_STATE_RUNNING

    def change(self, value=None, state=None):
        self.value = self.value + 1 if value is None else value
        self.state = state or self.state
        self.notifier.notify("a-1")

    def build(self):
        return master_pb2.AppStatus(app=types_pb2.AppRecord(app_id="a-1", next_instance=self.value, state=self.state))


def ended(status):
    return status.app.state == types_pb2.APP_STATE_SUCCEEDED


def collect(watches, app, go_on=lambda: True, seconds=None):
    """Run one watch in a thread; returns (list of (monotonic, value), thread)."""
    got = []

    def run():
        for status in watches.follow("a-1", app.build, ended, go_on):
            got.append((time.monotonic(), status.app.next_instance))
            if seconds is not None and time.monotonic() > start + seconds:
                return

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return got, thread


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_current_status_first_then_each_change_quickly():
    watches = Watches(min_interval=0.05, keepalive=5.0, check=0.1)
    app = App(watches.notifier)
    got, _ = collect(watches, app)
    assert wait_for(lambda: got)
    assert got[0][1] == 0
    changed_at = time.monotonic()
    app.change()
    assert wait_for(lambda: len(got) == 2)
    assert got[1][1] == 1 and got[1][0] - changed_at < 0.3
    app.change(state=types_pb2.APP_STATE_SUCCEEDED)   # the last one ends the stream
    assert wait_for(lambda: len(got) == 3)


def test_a_burst_of_changes_is_coalesced_and_the_last_value_arrives():
    watches = Watches(min_interval=0.05, keepalive=5.0, check=0.1)
    app = App(watches.notifier)
    got, _ = collect(watches, app)
    assert wait_for(lambda: got)
    began = time.monotonic()
    while time.monotonic() - began < 0.5:            # ~500 changes in half a second
        app.change()
        time.sleep(0.001)
    final = app.value
    assert wait_for(lambda: got[-1][1] == final)
    sent = [t for t, _ in got[1:]]
    assert len(sent) <= 0.5 / 0.05 + 3               # at most ~20 a second
    assert all(b - a >= 0.045 for a, b in zip(sent, sent[1:]))


def test_changes_that_show_nothing_new_are_not_sent_but_keepalives_are():
    watches = Watches(min_interval=0.01, keepalive=0.5, check=0.05)
    app = App(watches.notifier)
    got, _ = collect(watches, app)
    for _ in range(20):
        app.notifier.notify("a-1")                   # same value: nothing to send
        time.sleep(0.005)
    time.sleep(0.1)
    assert len(got) == 1
    assert wait_for(lambda: len(got) >= 3, timeout=2.0)   # keepalives every 0.5 s
    assert all(v == 0 for _, v in got)


def test_other_apps_changes_do_not_wake_it():
    notifier = Notifier()
    mine, other = notifier.subscribe("a-1"), notifier.subscribe("b-2")
    notifier.notify("b-2")
    assert other.is_set() and not mine.is_set()
    notifier.notify_many(["a-1"])
    assert mine.is_set()
    notifier.unsubscribe("a-1", mine)
    notifier.unsubscribe("b-2", other)
    assert notifier._subs == {}


def test_the_stream_ends_when_go_on_says_so():
    watches = Watches(min_interval=0.01, keepalive=5.0, check=0.02)
    app = App(watches.notifier)
    stop = threading.Event()
    got, thread = collect(watches, app, go_on=lambda: not stop.is_set())
    assert wait_for(lambda: got)
    stop.set()
    thread.join(1.0)
    assert not thread.is_alive()
    assert watches.notifier._subs == {}              # unsubscribed on the way out


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self):
        self.active = True
        self.trailing = None

    def is_active(self):
        return self.active

    def set_trailing_metadata(self, metadata):
        self.trailing = metadata

    def abort(self, code, details):
        raise Aborted(code, details)


def test_watches_are_capped_and_a_lost_leadership_aborts_naming_the_leader():
    watches = Watches(max_watches=1, min_interval=0.01, keepalive=5.0, check=0.02)
    app = App(watches.notifier)
    leading = [True]
    alive = lambda: None if leading[0] else (grpc.StatusCode.FAILED_PRECONDITION, "not the leader", "10.0.0.2:7070")  # noqa: E731
    first_ctx = FakeContext()
    first = watches.stream("a-1", app.build, ended, alive, first_ctx)
    assert next(first).app.app_id == "a-1"
    with pytest.raises(Aborted) as e:                # a second one is over the cap
        next(watches.stream("a-1", app.build, ended, alive, FakeContext()))
    assert e.value.args[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    leading[0] = False
    with pytest.raises(Aborted) as e:
        next(first)
    assert e.value.args[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert first_ctx.trailing == (("gaia-leader", "10.0.0.2:7070"),)
    third = watches.stream("a-1", app.build, ended, lambda: None, FakeContext())
    assert next(third) is not None                   # the slot came back
    third.close()
