"""Moves without etcd: the index holds both places of a draining move; the AM's counters."""
from gaia_common.pb import types_pb2
from gaia_am.migration import Migrator
from gaia_master.scheduling.index import AllocationIndex
from gaia_master.scheduling.requests import RequestBook


def alloc(node, from_node="", instance="0", cpu=500):
    return types_pb2.Allocation(app_id="a-1", instance_id=instance, node_id=node, from_node_id=from_node,
                                request=types_pb2.Resources(cpu_millis=cpu))


def test_a_draining_move_holds_both_nodes_until_finished():
    index = AllocationIndex()
    old = alloc("n1")
    index.add(old, "default", 0)
    moving = alloc("n2", from_node="n1")
    index.remove(old, "default")
    index.add(moving, "default", 0)
    assert index.node_allocated["n1"][0] == 500 and index.node_allocated["n2"][0] == 500
    assert index.pool_usage["default"][0] == 500          # the pool pays once
    assert index.app_held["a-1"] == 1
    index.remove(moving, "default")
    index.add(alloc("n2"), "default", 0)
    assert index.node_allocated["n1"][0] == 0 and index.node_count["n1"] == 0
    assert index.node_allocated["n2"][0] == 500


def test_a_newer_move_ask_replaces_the_older_and_keeps_its_age():
    book = RequestBook()
    shape = types_pb2.Resources(cpu_millis=100)
    book.ask_moves("a-1", 1, [("0", "n1")], False, "node lost", shape)
    first = book.asks()[2][("a-1", False)]
    book.ask_moves("a-1", 1, [("0", "n1"), ("1", "n1")], False, "node lost", shape)
    second = book.asks()[2][("a-1", False)]
    assert second.origins == (("0", "n1"), ("1", "n1")) and second.since == first.since
    book.drop_moves("a-1", first)          # an outdated ask does not drop the newer one
    assert ("a-1", False) in book.asks()[2]
    # a drain's ask stands beside the lost-node one: neither replaces the other
    book.ask_moves("a-1", 1, [("2", "n2")], True, "node drained", shape)
    assert set(book.asks()[2]) == {("a-1", False), ("a-1", True)}
    book.drop("a-1")
    assert book.asks()[2] == {}


class _View:
    def __init__(self, instance, container_id, from_container=""):
        self.allocation = types_pb2.Allocation(instance_id=instance)
        self.status = types_pb2.ContainerStatus(container_id=container_id)
        self.from_status = types_pb2.ContainerStatus(container_id=from_container)


def test_a_moved_instance_starts_above_every_counter_seen():
    m = Migrator(am=None)
    m.observe([_View("3", "a-1.3.4"), _View("5", "", from_container="a-1.5.2")])
    assert m.first_counter(types_pb2.Allocation(instance_id="3", migrations=1)) == 5
    assert m.first_counter(types_pb2.Allocation(instance_id="5", migrations=1)) == 3
    # never seen (a new AM after the node died): at least the move count, so moves differ
    assert m.first_counter(types_pb2.Allocation(instance_id="7", migrations=2)) == 2
    assert m.first_counter(types_pb2.Allocation(instance_id="7")) == 0      # not moved: from 0


class _Am:
    def __init__(self):
        self.due = None

    def wake_at(self, t):
        self.due = t


class _Lost:
    def __init__(self, instance):
        self.allocation = types_pb2.Allocation(instance_id=instance)
        self.node_lost = True


def test_self_fencing_instances_are_replaced_only_after_their_node_had_time_to_stop_them(monkeypatch):
    from gaia_am import migration
    clock = [1000.0]
    monkeypatch.setattr(migration.time, "time", lambda: clock[0])
    am = _Am()
    m = Migrator(am)
    batch = types_pb2.AppSpec(kind=types_pb2.APP_KIND_BATCH)
    service = types_pb2.AppSpec(kind=types_pb2.APP_KIND_SERVICE)
    lost = [_Lost("0")]
    assert m._fenced(lost, service) == lost                  # keeps running on its node: at once
    assert m._fenced(lost, batch) == [] and am.due == 1000.0 + migration.FENCE_WAIT
    clock[0] += migration.FENCE_WAIT
    assert m._fenced(lost, batch) == lost
