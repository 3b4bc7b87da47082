"""The app's events on the session's etcd: seqs, trimming to the newest 1000, charges counted
once per container, leftovers dropped when a new submission replaces the app."""
import time

import pytest

from gaia_common import spec as spec_mod
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master import events as events_mod
from gaia_master.app_table import AppTable
from gaia_master.events import EventLog
from gaia_master.store import FencedStore


class Leading:
    """An election that holds a key of its own in etcd: the fencing compare really runs."""

    def __init__(self, etcd, keys):
        self.key = keys.election_key(1)
        etcd.put(self.key, b"me")
        _, meta = etcd.get(self.key)
        self.epoch = meta.create_revision

    def is_leader(self):
        return True


@pytest.fixture
def log(etcd, cluster_name):
    keys = Keys(cluster_name)
    store = FencedStore(etcd, Leading(etcd, keys))
    table = AppTable(keys, store)
    yield EventLog(keys, store, table, etcd)
    etcd.delete_prefix(keys.root)


def submit(log, name="web", retry_times=2):
    spec = spec_mod.load_yaml(f"name: {name}\ninstances: 1\nretry_times: {retry_times}\ncommand: ['x']\n")
    record, _ = log.table.submit(spec, "")
    alloc = types_pb2.Allocation(app_id=record.app_id, instance_id="0", node_id="n", node_address="n:1")
    return log.table.allocate(record, [alloc], {"next_instance": 1})


def event(kind="scale", instance_id="0", **fields):
    return types_pb2.AppEvent(kind=kind, instance_id=instance_id, **fields)


def restart(record, counter, platform=False):
    cid = f"{record.app_id}.0.{counter}"
    return event("restart", cause="exit 1", platform=platform, message=f"{cid}: failed")


def stored_seqs(log, app_id):
    prefix = log.keys.app_events(app_id)
    return [int(m.key.decode()[len(prefix):]) for _, m in log.etcd.get_range(prefix, prefix + ":")]


def test_seqs_follow_next_event_and_only_the_newest_1000_stay(log):
    record = submit(log)
    for start in range(0, 1010, 101):
        n = min(101, 1010 - start)
        record = log.append(record.app_id, [event(message=str(start + i)) for i in range(n)], attempt=1)
    assert record.next_event == 1010
    assert log.table.by_id(record.app_id).next_event == 1010   # memory follows the write
    seqs = stored_seqs(log, record.app_id)
    assert seqs == list(range(10, 1010))
    newest = log.latest(record.app_id, 3)
    assert [(e.seq, e.message, e.am_attempt) for e in newest] == [(1007, "1007", 1), (1008, "1008", 1), (1009, "1009", 1)]
    assert all(e.at > 0 for e in newest)


def test_a_report_too_large_is_refused(log):
    record = submit(log)
    with pytest.raises(spec_mod.SpecError):
        log.append(record.app_id, [event()] * (events_mod.MAX_PER_REPORT + 1))


def test_user_restarts_are_charged_once_per_container(log):
    record = submit(log)
    log.append(record.app_id, [restart(record, 0)])
    assert log.table.app_allocations(record.app_id)["0"].charged == 1
    # the same container again (a restarted AM, a retried report): neither charged nor stored
    log.append(record.app_id, [restart(record, 0)])
    assert log.table.app_allocations(record.app_id)["0"].charged == 1
    assert len(log.latest(record.app_id)) == 1
    # platform restarts cost nothing; the next user failure does
    log.append(record.app_id, [restart(record, 1, platform=True), restart(record, 2), restart(record, 2)])
    alloc = log.table.app_allocations(record.app_id)["0"]
    assert alloc.charged == 2
    stored = log.latest(record.app_id)
    assert [e.message.split(":")[0] for e in stored] == [f"{record.app_id}.0.{n}" for n in (0, 1, 2)]
    assert stored[-1].message.endswith("charged 2, retry_times 2")
    # persisted: a new leader's table (loaded from etcd) has the count
    fresh = AppTable(log.keys, log.store)
    fresh.load(log.etcd)
    assert fresh.app_allocations(record.app_id)["0"].charged == 2


def test_a_new_log_dedupes_from_what_etcd_holds(log):
    record = submit(log)
    log.append(record.app_id, [restart(record, 4)])
    again = EventLog(log.keys, log.store, log.table, log.etcd)   # a new leader: no memory of it
    again.append(record.app_id, [restart(record, 4)])
    assert log.table.app_allocations(record.app_id)["0"].charged == 1


def test_latest_of_one_instance(log):
    record = submit(log)
    log.append(record.app_id, [event(instance_id=str(i % 3), message=str(i)) for i in range(30)])
    mine = log.latest(record.app_id, 4, instance_id="1")
    assert [e.message for e in mine] == ["16", "19", "22", "25", "28"][1:]
    assert log.recent(record.app_id)[-1].message == "29" and len(log.recent(record.app_id)) == events_mod.LATEST


def test_events_of_a_finished_app_are_kept_and_go_when_a_new_submission_replaces_it(log):
    record = submit(log)
    log.append(record.app_id, [restart(record, 0)])
    record = log.table.update(record, state=types_pb2.APP_STATE_FAILED, message="done")
    log.append(record.app_id, [event("failed", cause="why")])   # a finished app still records its end
    assert len(log.latest(record.app_id)) == 2
    submit(log)   # same name
    assert log.etcd.get_prefix_response(log.keys.app_events(record.app_id)).count == 0


def test_the_masters_own_events_are_written_in_the_background(log):
    record = submit(log)
    log.record(record.app_id, [event("am.restart", instance_id="", cause="AM node n1 lost", platform=True)])
    deadline = time.monotonic() + 5
    while not log.latest(record.app_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e.kind for e in log.latest(record.app_id)] == ["am.restart"]
