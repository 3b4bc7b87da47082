"""A cycle's grants written in parts while Sfair decides (applier.CycleApply), without etcd:
the fake transport records every fenced transaction in the order sent."""
import types

import numpy as np
from etcd3 import etcdrpc

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master.app_table import AppTable
from gaia_master.scheduling import applier as applier_mod
from gaia_master.scheduling.index import AllocationIndex, as_vector
from gaia_master.scheduling.snapshot import Wanted, _before_cycle, _fresh_from
from gaia_master.sfair.model import Plan
from tests.unit.test_grant_writer import FakeStore, FakeTransport

SHAPE = types_pb2.Resources(cpu_millis=1000, memory_bytes=1 << 30)
NODES = ["n0", "n1", "n2", "n3"]


class Nodes:
    def node(self, node_id):
        return types.SimpleNamespace(address=f"{node_id}:1", capacity=types_pb2.Resources(cpu_millis=64000))


class Book:
    def __init__(self):
        self.dropped = []

    def drop_am(self, app_id, attempt):
        self.dropped.append((app_id, attempt))


def setup(*names, message=""):
    transport = FakeTransport()
    t = AppTable(Keys("c1"), FakeStore(transport))
    for name in names:
        record = types_pb2.AppRecord(app_id=f"{name}-1", am_attempt=1, next_instance=0, message=message,
                                     state=types_pb2.APP_STATE_RUNNING,
                                     spec=types_pb2.AppSpec(name=name, pool="p", priority=5))
        t.apps[name], t.names[record.app_id] = record, name
    book = Book()
    return t, transport, applier_mod.PlanApplier(t, Nodes(), book), book


def want(app, count, first=0, gang=False):
    return Wanted(f"{app}-1", 1, False, first, count, SHAPE, None, gang)


def finish(applier, c, chunks=(), streamed=0, pending=None):
    """The cycle's last part: Sfair's plan, the first `streamed` of its chunks handed over."""
    plan = Plan(NODES, list(chunks), pending or {}, {})
    plan.streamed = streamed
    return applier.finish(c, plan)


def chunk(rid, rows, n):
    return (rid, rid.split("/")[0], 0, np.array(rows), np.array(n))


def puts(transport):
    """(key, value) of every put, in the order sent."""
    return [(op.request_put.key.decode(), op.request_put.value) for r in transport.sent for op in r.success]


def allocation_ids(transport, app):
    prefix = f"/gaia/c1/allocations/{app}-1/"
    return [k[len(prefix):] for k, _ in puts(transport) if k.startswith(prefix)]


def record_puts(transport, name):
    return [types_pb2.AppRecord.FromString(v) for k, v in puts(transport) if k == f"/gaia/c1/apps/{name}"]


def test_a_request_split_over_parts_is_numbered_on_and_its_record_written_once_last():
    t, transport, applier, _ = setup("a")
    wanted = {"a-1/0": want("a", 9)}
    c = applier_mod.CycleApply(wanted, t.index.version)
    applier.part(c, [chunk("a-1/0", [0, 1], [2, 1])], NODES, {})
    applier.part(c, [chunk("a-1/0", [2], [2]), chunk("a-1/0", [0], [1])], NODES, {})
    assert record_puts(transport, "a") == []          # parts write allocations alone
    out = finish(applier, c, pending={"a-1/0": "no room"})
    assert allocation_ids(transport, "a") == ["0", "1", "2", "3", "4", "5"]
    (record,) = record_puts(transport, "a")
    assert record.next_instance == 6 and record.message.startswith(applier_mod.WAITING)
    assert puts(transport)[-1][0] == "/gaia/c1/apps/a"   # after every allocation
    assert out.granted == 6
    assert t.apps["a"].next_instance == 6 and sorted(t.allocations["a-1"], key=int) == [str(i) for i in range(6)]
    nodes = [types_pb2.Allocation.FromString(v).node_id for k, v in puts(transport) if "/allocations/" in k]
    assert nodes == ["n0", "n0", "n1", "n2", "n2", "n0"]


def test_unstreamed_chunks_of_a_streamed_request_continue_its_numbering():
    t, transport, applier, _ = setup("a")
    wanted = {"a-1/0": want("a", 5)}
    c = applier_mod.CycleApply(wanted, t.index.version)
    applier.part(c, [chunk("a-1/0", [0], [2])], NODES, {})
    first, rest = chunk("a-1/0", [0], [2]), chunk("a-1/0", [3], [2])
    finish(applier, c, [first, rest], streamed=1)        # the first was handed over already
    assert allocation_ids(transport, "a") == ["0", "1", "2", "3"]
    assert record_puts(transport, "a")[-1].next_instance == 4


def test_gangs_and_ams_wait_for_the_last_part_and_go_with_their_record():
    t, transport, applier, book = setup("a", "g")
    am = Wanted("a-1", 2, True, 0, 1, SHAPE, types.SimpleNamespace(why="placed"), False)
    wanted = {"a-1/am": am, "g-1/0": want("g", 3, gang=True)}
    c = applier_mod.CycleApply(wanted, t.index.version)
    applier.part(c, [chunk("a-1/am", [1], [1]), chunk("g-1/0", [0, 1], [2, 1])], NODES, {})
    assert transport.sent == []                          # nothing of them yet
    finish(applier, c)
    (gang_txn,) = [r for r in transport.sent if any(b"/apps/g" in op.request_put.key for op in r.success)]
    keys = [op.request_put.key.decode() for op in gang_txn.success]
    assert [k for k in keys if k.endswith("/g") or "/g-1/" in k] == ["/gaia/c1/apps/g"] + [f"/gaia/c1/allocations/g-1/{i}" for i in range(3)]
    (record,) = record_puts(transport, "a")
    assert record.am_attempt == 2 and record.message == "placed"
    assert book.dropped == [("a-1", 2)]


def test_gpu_sets_are_taken_in_order_across_parts():
    t, transport, applier, _ = setup("a")
    wanted = {"a-1/0": want("a", 4)}
    sets = {("a-1/0", 0): [(0,), (1,), (2,), (3,)]}        # Sfair's choices per (request, row), grown in order
    c = applier_mod.CycleApply(wanted, t.index.version)
    applier.part(c, [chunk("a-1/0", [0], [1])], NODES, sets)
    applier.part(c, [chunk("a-1/0", [0], [2])], NODES, sets)
    finish(applier, c)
    granted = [types_pb2.Allocation.FromString(v) for k, v in puts(transport) if "/allocations/" in k]
    assert [(a.instance_id, list(a.gpu_indices)) for a in granted] == [("0", [0]), ("1", [1]), ("2", [2])]


def test_a_part_for_a_killed_app_is_refused_and_nothing_is_written_for_it():
    t, transport, applier, _ = setup("a")
    t.apps["a"].state = types_pb2.APP_STATE_KILLED
    c = applier_mod.CycleApply({"a-1/0": want("a", 2)}, t.index.version)
    applier.part(c, [chunk("a-1/0", [0], [2])], NODES, {})
    out = finish(applier, c)
    assert transport.sent == [] and out.refused == 2 and out.granted == 0


def test_the_lock_is_held_from_the_first_part_to_the_end():
    t, _, applier, _ = setup("a")
    c = applier_mod.CycleApply({"a-1/0": want("a", 2)}, t.index.version)
    applier.part(c, [chunk("a-1/0", [0], [1])], NODES, {})
    assert t.lock._is_owned()
    finish(applier, c)
    assert not t.lock._is_owned()


def test_a_failed_write_releases_the_lock_and_keeps_only_what_committed():
    transport = FakeTransport(refuse_from=2)
    t, _, applier, _ = setup("a")
    t.store.transport = transport
    c = applier_mod.CycleApply({"a-1/0": want("a", 300)}, t.index.version)
    try:
        applier.part(c, [chunk("a-1/0", [0, 1, 2], [100, 100, 100])], NODES, {})
        finish(applier, c)
        raise AssertionError("the refused fence must raise")
    except Exception as e:
        assert type(e).__name__ == "NotLeader"
    assert not t.lock._is_owned()
    assert len(t.allocations["a-1"]) == 120
    # the record never went: the next cycle must not grant ids 0-119 again
    assert t.apps["a"].next_instance == 120


def test_a_cycle_that_fails_after_parts_went_moves_next_instance_past_them():
    t, _, applier, _ = setup("a")
    c = applier_mod.CycleApply({"a-1/0": want("a", 4)}, t.index.version)
    applier.part(c, [chunk("a-1/0", [0, 1], [2, 1])], NODES, {})
    applier.close(c, failed=True)                          # Sfair raised: no last part
    assert not t.lock._is_owned() and sorted(t.allocations["a-1"]) == ["0", "1", "2"]
    assert t.apps["a"].next_instance == 3


def test_this_cycles_grants_are_never_preemption_candidates():
    t, _, applier, _ = setup("a")
    old = [types_pb2.Allocation(app_id="a-1", instance_id=str(i), node_id="n0", request=SHAPE) for i in range(3)]
    t._remember(t.apps["a"], old, as_vector(SHAPE))
    t.apps["a"].next_instance = 3
    wanted = {"a-1/0": want("a", 2, first=3)}
    c = applier_mod.CycleApply(wanted, t.index.version)
    applier.part(c, [chunk("a-1/0", [1], [2])], NODES, {})   # instances 3 and 4 now in memory
    running = _before_cycle(t, "p", _fresh_from(wanted))
    assert sorted(r.instance for r in running) == ["0", "1", "2"]
    finish(applier, c)


def test_the_index_knows_each_pools_lowest_priority_without_listing_it():
    index = AllocationIndex()
    low = types_pb2.Allocation(app_id="x", instance_id="0", node_id="n0", request=SHAPE)
    am = types_pb2.Allocation(app_id="y", instance_id="am", node_id="n0", request=SHAPE, is_am=True)
    index.add(low, "p", 1)
    index.add(am, "p", 0)                                   # an AM is never a victim
    index.add_granted([types_pb2.Allocation(app_id="z", instance_id=str(i), node_id="n1", request=SHAPE)
                       for i in range(2)], ["0", "1"], "p", 7, as_vector(SHAPE))
    assert index.summary(set()).pool_lowest_priority == {"p": 1}
    index.remove(low, "p")
    assert index.summary(set()).pool_lowest_priority == {"p": 7}
    index.remove(am, "p")
    assert index.pool_priorities["p"] == {7: 2}
