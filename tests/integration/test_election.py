"""Election and fencing in-process, against a real etcd."""
import time

import pytest

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master.election import Election
from gaia_master.store import FencedStore, NotLeader
from tests.integration.harness import wait_for


@pytest.fixture
def elections(etcd, cluster_name):
    made = []

    def make(name):
        e = Election(etcd, Keys(cluster_name), types_pb2.MasterInfo(id=name, address=f"{name}:1"), ttl=2)
        e.start()
        made.append(e)
        return e

    yield make
    for e in made:
        e.resign()


def test_lowest_create_revision_leads_and_is_the_epoch(etcd, elections, cluster_name):
    a = elections("a")
    wait_for(a.is_leader, 10, what="a to lead")
    b = elections("b")
    time.sleep(0.5)
    assert a.is_leader() and not b.is_leader()
    _, meta = etcd.get(a.key)
    assert a.epoch == meta.create_revision


def test_resign_hands_over_at_once(elections):
    a = elections("a")
    wait_for(a.is_leader, 10, what="a to lead")
    b = elections("b")
    time.sleep(0.3)
    a.resign()
    started = time.monotonic()
    wait_for(b.is_leader, 3, interval=0.01, what="b to lead")
    assert time.monotonic() - started < 1.0
    assert b.epoch > a.epoch or a.epoch == 0


def test_deposed_leader_write_is_refused_by_etcd(etcd, elections, cluster_name):
    """A leader that still *believes* it leads (paused, stale) cannot write: etcd refuses."""
    keys = Keys(cluster_name)
    a = elections("a")
    wait_for(a.is_leader, 10, what="a to lead")
    stale_key, stale_epoch = a.key, a.epoch
    store = FencedStore(etcd, a)
    store.commit([store.put(keys.app("x"), types_pb2.AppRecord(app_id="x1", epoch=a.epoch))])
    b = elections("b")
    etcd.revoke_lease(a.lease.id)  # a's lease expires under it
    wait_for(b.is_leader, 10, what="b to lead")

    class Believer:  # what a paused leader thinks when it wakes: still leading, same key
        key, epoch = stale_key, stale_epoch

        def is_leader(self):
            return True

    with pytest.raises(NotLeader):
        FencedStore(etcd, Believer()).commit([store.put(keys.app("x"), types_pb2.AppRecord(app_id="x2"))])
    value, _ = etcd.get(keys.app("x"))
    assert types_pb2.AppRecord.FromString(value).app_id == "x1"


def test_leader_stops_acting_when_lease_cannot_be_proven(etcd, elections):
    a = elections("a")
    wait_for(a.is_leader, 10, what="a to lead")
    a._stop.set()  # keepalives stop, as when etcd becomes unreachable
    wait_for(lambda: not a.is_leader(), 3, interval=0.02, what="a to stop acting")
    assert a.epoch  # etcd may not have revoked it yet: it is the proof that ran out


def test_new_lease_is_kept_alive_after_losing_the_old_one(etcd, elections):
    a = elections("a")
    wait_for(a.is_leader, 10, what="a to lead")
    first_lease = a.lease.id
    etcd.revoke_lease(first_lease)  # as if etcd expired it during a pause
    wait_for(lambda: a.lease is not None and a.lease.id != first_lease and a.is_leader(), 10,
             what="a to lead again on a new lease")
    time.sleep(a.ttl * 2.5)  # the new lease must be refreshed, not expire after one TTL
    assert a.is_leader()
    assert etcd.get(a.key)[0] is not None
