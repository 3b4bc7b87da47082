"""The application table's rules, over a fake fenced store (no etcd)."""
import pytest

from gaia_common import spec as spec_mod
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master.app_table import AppTable, Conflict
from gaia_master.store import NotLeader


class FakeElection:
    epoch = 7


class FakeStore:
    """Records committed ops; can be told to lose leadership."""

    def __init__(self):
        self.election = FakeElection()
        self.committed = []
        self.leading = True

    def commit(self, ops, extra_compare=()):
        if not self.leading:
            raise NotLeader("deposed")
        self.committed.append(list(ops))

    def commit_batches(self, ops):
        self.commit(ops)

    def put(self, key, message, lease=None):
        return ("put", key, message.SerializeToString())

    def delete(self, key):
        return ("delete", key)

    def delete_prefix(self, prefix):
        return ("delete_prefix", prefix)


def spec(name="web"):
    return spec_mod.load_yaml(f"name: {name}\ncommand: sleep 1\n")


@pytest.fixture
def table():
    return AppTable(Keys("c1"), FakeStore())


def test_submit_stores_pending_app_with_writer_epoch(table):
    record, existed = table.submit(spec(), "key-1")
    assert not existed
    assert record.state == types_pb2.APP_STATE_PENDING and record.epoch == 7
    assert table.store.committed[0][0][1] == "/gaia/c1/apps/web"


def test_same_idempotency_key_returns_the_first_app(table):
    first, _ = table.submit(spec(), "key-1")
    again, existed = table.submit(spec(), "key-1")
    assert existed and again.app_id == first.app_id
    assert len(table.store.committed) == 1


def test_duplicate_name_is_refused_while_active(table):
    table.submit(spec(), "key-1")
    with pytest.raises(Conflict) as e:
        table.submit(spec(), "key-2")
    assert e.value.code == "exists"


def test_finished_app_name_can_be_reused(table):
    first, _ = table.submit(spec(), "key-1")
    table.update(first, state=types_pb2.APP_STATE_KILLED)
    second, existed = table.submit(spec(), "key-2")
    assert not existed and second.app_id != first.app_id


def test_nothing_changes_in_memory_when_the_write_is_refused(table):
    record, _ = table.submit(spec(), "key-1")
    table.store.leading = False
    with pytest.raises(NotLeader):
        table.update(record, spec_instances=5)
    assert table.get("web").spec.instances == 1


def test_allocate_and_release(table):
    record, _ = table.submit(spec(), "k")
    grants = [types_pb2.Allocation(app_id=record.app_id, instance_id=str(i), node_id="n1") for i in range(2)]
    table.allocate(record, grants, {"next_instance": 2})
    assert set(table.app_allocations(record.app_id)) == {"0", "1"}
    assert all(a.epoch == 7 for a in table.app_allocations(record.app_id).values())
    assert table.release(record.app_id, ["1", "9"]) == ["1"]
    assert set(table.app_allocations(record.app_id)) == {"0"}


def test_terminal_app_drops_its_allocations(table):
    record, _ = table.submit(spec(), "k")
    table.allocate(record, [types_pb2.Allocation(app_id=record.app_id, instance_id="0", node_id="n1")])
    table.update(table.get("web"), state=types_pb2.APP_STATE_KILLED)
    assert table.app_allocations(record.app_id) == {}
    assert ("delete", f"/gaia/c1/allocations/{record.app_id}/0") in table.store.committed[-1]


def test_a_finished_app_keeps_its_final_state(table):
    record, _ = table.submit(spec(), "k")
    table.update(record, state=types_pb2.APP_STATE_KILLED)
    with pytest.raises(Conflict) as e:  # the AM's late "succeeded" must not replace "killed"
        table.update(record, state=types_pb2.APP_STATE_SUCCEEDED)
    assert e.value.code == "terminal"
    assert table.get("web").state == types_pb2.APP_STATE_KILLED
