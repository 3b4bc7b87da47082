"""WatchEndpoints' history and resume logic (gaia_master/endpoints.py), without etcd or gRPC."""
import threading
import time
import types

from gaia_common.pb import types_pb2
from gaia_master.endpoints import EndpointLog, follow

TIMING = types.SimpleNamespace(min_interval=0.01, keepalive=0.3, check=0.02)


def ep(instance_id, port=20000, health="", ports=None, app="web"):
    return types_pb2.ServiceEndpoint(app=app, instance_id=instance_id, host="10.0.0.1", node_id="n1",
                                     ports=ports or {"http": port}, health=health)


def loaded(history=100, **apps):
    log = EndpointLog(history=history)
    log.reset({app: {e.instance_id: e for e in eps} for app, eps in apps.items()}, 10)
    return log


def ids(update):
    return [e.instance_id for e in update.endpoints]


class Client:
    """What a client does with updates: its set and revision."""

    def __init__(self):
        self.revision, self.set = 0, {}

    def apply(self, update):
        if update.full:
            self.set = {e.instance_id: e for e in update.endpoints}
        else:
            assert update.revision > self.revision or not (update.endpoints or update.removed), "a revision repeated"
            for i in update.removed:
                self.set.pop(i, None)
            self.set.update((e.instance_id, e) for e in update.endpoints)
        self.revision = max(self.revision, update.revision)


def test_full_list_first_then_changes_after_a_revision():
    log = loaded(web=[ep("0"), ep("1", health="starting")])
    first = log.since("web", "", 0)
    assert first.full and first.revision == 10 and ids(first) == ["0"]   # starting is not resolvable
    log.apply([("web", "1", ep("1", health="healthy"), 11)], 11)
    log.apply([("web", "2", ep("2"), 12), ("web", "0", None, 12)], 12)
    update = log.since("web", "", 10)
    assert not update.full and update.revision == 12
    assert ids(update) == ["1", "2"] and list(update.removed) == ["0"]
    assert ids(log.since("web", "", 11)) == ["2"]
    assert log.since("web", "", 12) is None                          # nothing new
    keepalive = log.since("web", "", 12, keepalive=True)
    assert keepalive.revision == 12 and not keepalive.full and not keepalive.endpoints and not keepalive.removed


def test_unhealthy_is_a_removal_and_healthy_again_an_addition():
    log = loaded(web=[ep("0", health="healthy")])
    log.apply([("web", "0", ep("0", health="unhealthy"), 11)], 11)
    assert list(log.since("web", "", 10).removed) == ["0"]
    log.apply([("web", "0", ep("0", health="unhealthy"), 12)], 12)   # a rewrite that shows nothing
    assert len(log.apps["web"].changes) == 1
    log.apply([("web", "0", ep("0", health="healthy"), 13)], 13)
    assert ids(log.since("web", "", 11)) == ["0"]
    assert log.since("web", "", 10) is None       # unhealthy then healthy again, same endpoint: no change


def test_added_then_removed_within_the_range_is_nothing_and_a_changed_port_is_sent():
    log = loaded(web=[ep("0")])
    log.apply([("web", "1", ep("1"), 11)], 11)
    log.apply([("web", "1", None, 12)], 12)
    log.apply([("web", "0", ep("0", port=20001), 13)], 13)
    update = log.since("web", "", 10)
    assert ids(update) == ["0"] and update.endpoints[0].ports["http"] == 20001 and not update.removed


def test_a_port_watcher_sees_only_its_port():
    log = loaded(web=[ep("0", ports={"http": 1, "admin": 2})])
    first = log.since("web", "http", 0)
    assert dict(first.endpoints[0].ports) == {"http": 1}
    log.apply([("web", "0", ep("0", ports={"http": 1, "admin": 3}), 11)], 11)   # another port moved
    assert log.since("web", "http", 10) is None
    assert dict(log.since("web", "", 10).endpoints[0].ports) == {"http": 1, "admin": 3}
    log.apply([("web", "0", ep("0", ports={"admin": 3}), 12)], 12)              # its port went
    assert list(log.since("web", "http", 11).removed) == ["0"]


def test_other_apps_are_apart_and_an_unknown_app_is_empty():
    log = loaded(web=[ep("0")])
    log.apply([("db", "0", ep("0", app="db"), 11)], 11)
    assert log.since("web", "", 10) is None
    assert ids(log.since("db", "", 10)) == ["0"]
    empty = log.since("nope", "", 0)
    assert empty.full and empty.revision == 11 and not empty.endpoints
    assert log.since("nope", "", 10) is None


def test_a_client_behind_the_bounded_history_gets_a_full_list():
    log = loaded(history=3, web=[])
    for rev in range(11, 16):                      # 5 changes, 3 kept: 13, 14, 15
        log.apply([("web", str(rev), ep(str(rev)), rev)], rev)
    assert log.apps["web"].base == 12
    assert not log.since("web", "", 12).full and ids(log.since("web", "", 12)) == ["13", "14", "15"]
    behind = log.since("web", "", 11)
    assert behind.full and behind.revision == 15 and ids(behind) == ["11", "12", "13", "14", "15"]


def test_one_revision_half_dropped_from_history_still_resumes_right():
    log = loaded(history=2, web=[])
    log.apply([("web", "0", ep("0"), 11), ("web", "1", ep("1"), 11)], 11)
    log.apply([("web", "2", ep("2"), 12)], 12)     # drops (11, "0"): base 11
    assert log.since("web", "", 10).full
    assert ids(log.since("web", "", 11)) == ["2"]


def test_a_reload_starts_history_afresh():
    log = loaded(web=[ep("0")])
    log.apply([("web", "1", ep("1"), 11)], 11)
    log.reset({"web": {"1": ep("1"), "2": ep("2")}}, 20)
    update = log.since("web", "", 11)
    assert update.full and update.revision == 20 and ids(update) == ["1", "2"]
    assert log.since("web", "", 20) is None


def test_a_client_ahead_of_the_log_gets_nothing_until_the_log_passes_it():
    log = loaded(web=[ep("0")])
    assert log.since("web", "", 15) is None
    assert log.since("web", "", 15, keepalive=True).revision == 15     # never back in time
    log.apply([("web", "1", ep("1"), 14)], 14)
    log.apply([("web", "2", ep("2"), 16)], 16)
    assert ids(log.since("web", "", 15)) == ["2"]                       # 14 was in what it had


def test_any_resume_point_replays_to_the_same_set():
    """From every revision a client may hold, resuming brings it to exactly the log's set."""
    log = loaded(history=8, web=[ep("0")])
    history = {10: {"0"}}
    now = {"0"}
    for rev in range(11, 30):
        i = str(rev % 5)
        if i in now:
            now = now - {i}
            log.apply([("web", i, None, rev)], rev)
        else:
            now = now | {i}
            log.apply([("web", i, ep(i, health="healthy"), rev)], rev)
        history[rev] = set(now)
    for at, known in history.items():
        client = Client()
        client.apply(log.since("web", "", 0))
        client.set = {i: ep(i) for i in known}
        client.revision = at
        update = log.since("web", "", at)
        if update is not None:
            client.apply(update)
        assert set(client.set) == now, at


def test_follow_sends_changes_then_keepalives_and_stops_when_told():
    log = loaded(web=[ep("0")])
    got, stop = [], threading.Event()

    def run():
        for update in follow(log, "web", "", 10, lambda: not stop.is_set(), TIMING):
            got.append((time.monotonic(), update))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.05)
    changed_at = time.monotonic()
    log.apply([("web", "1", ep("1"), 11)], 11)
    assert _wait(lambda: got)
    at, update = got[0]
    assert ids(update) == ["1"] and update.revision == 11 and at - changed_at < 0.2
    assert _wait(lambda: len(got) >= 3, 2.0)         # keepalives every 0.3 s
    assert all(u.revision == 11 and not u.endpoints and not u.removed for _, u in got[1:])
    assert all(b - a >= TIMING.keepalive * 0.9 for (a, _), (b, _) in zip(got[1:], got[2:]))
    stop.set()
    thread.join(1.0)
    assert not thread.is_alive() and log.notifier._subs == {}


def test_follow_after_a_reload_sends_a_full_list_and_a_burst_is_coalesced():
    log = loaded(web=[ep("0")])
    client, stop = Client(), threading.Event()
    client.apply(log.since("web", "", 0))
    seen = []

    def run():
        for update in follow(log, "web", "", client.revision, lambda: not stop.is_set(), TIMING):
            client.apply(update)
            seen.append(update)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    for rev in range(11, 111):                       # 100 changes as fast as they come
        log.apply([("web", str(rev % 7), ep(str(rev % 7), port=rev), rev)], rev)
    assert _wait(lambda: client.revision == 110)
    assert len(seen) < 50
    assert {i: e.ports["http"] for i, e in client.set.items()} == {str(r % 7): r for r in range(104, 111)}
    log.reset({"web": {"9": ep("9")}}, 200)
    assert _wait(lambda: client.revision == 200)
    assert seen[-1].full and set(client.set) == {"9"}
    stop.set()
    thread.join(1.0)


def _wait(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_late_events_from_before_a_reload_are_ignored():
    log = loaded(web=[ep("0")])
    log.reset({"web": {}}, 20)                     # instance 0 went away at some revision <= 20
    log.apply([("web", "0", ep("0"), 15)], 15)     # a replaced watch delivers an older put
    assert log.since("web", "", 0).endpoints == [] and log.since("web", "", 20) is None
