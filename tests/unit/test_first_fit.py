"""First-fit placement: pure policy over a snapshot, tested without etcd."""
from gaia_common.pb import types_pb2
from gaia_master.scheduler import FirstFit, NodeSnapshot


def node(node_id, cpu, mem):
    return NodeSnapshot(node_id, f"{node_id}:1", types_pb2.Resources(cpu_millis=cpu, memory_bytes=mem))


def req(cpu, mem):
    return types_pb2.Resources(cpu_millis=cpu, memory_bytes=mem)


def test_fills_first_node_before_the_next():
    placement = FirstFit().place([req(500, 10)] * 3, [node("b", 1000, 100), node("a", 1000, 100)])
    assert placement.complete
    assert placement.node_ids == ["a", "a", "b"]


def test_partial_placement_explains_the_shortfall():
    placement = FirstFit().place([req(800, 10)] * 3, [node("a", 1000, 100), node("b", 1000, 100)])
    assert placement.node_ids == ["a", "b"]
    assert not placement.complete
    assert "1 of 3" in placement.reason and "cpu_millis" in placement.reason


def test_gang_is_all_or_nothing():
    placement = FirstFit().place([req(800, 10)] * 3, [node("a", 1000, 100), node("b", 1000, 100)], gang=True)
    assert placement.node_ids == []
    assert not placement.complete


def test_no_nodes():
    placement = FirstFit().place([req(1, 1)], [])
    assert placement.reason == "no live node offers this driver"


def test_every_dimension_counts():
    small = NodeSnapshot("a", "a:1", types_pb2.Resources(cpu_millis=1000, memory_bytes=100, disk_bytes=5))
    placement = FirstFit().place([types_pb2.Resources(cpu_millis=1, memory_bytes=1, disk_bytes=6)], [small])
    assert not placement.complete and "disk_bytes" in placement.reason
