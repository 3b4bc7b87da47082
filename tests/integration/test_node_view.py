"""The master's mirror of what nodes publish, against a real etcd: which changes tell the
leader that new capacity arrived (its scheduling loop retries the backlog at once)."""
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master.node_view import NodeView
from tests.integration.harness import wait_for


def put_node(etcd, keys, node_id: str, cpu_millis: int):
    info = types_pb2.NodeInfo(node_id=node_id, capacity=types_pb2.Resources(cpu_millis=cpu_millis))
    etcd.put(keys.node(node_id), info.SerializeToString())


def test_a_node_joining_wakes_the_leader_and_an_update_or_a_departure_does_not(etcd, cluster_name):
    keys = Keys(cluster_name)
    put_node(etcd, keys, "n0", 1000)
    view = NodeView(etcd, keys)
    joins = []
    view.on_join = lambda: joins.append(sorted(view.nodes))
    view.sync()
    try:
        assert joins == [["n0"]]                 # a (re)load: nodes may have come back meanwhile
        put_node(etcd, keys, "n1", 1000)
        wait_for(lambda: len(joins) == 2, 10, what="n1's join")
        assert joins[1] == ["n0", "n1"]          # called after the mirror holds the new node
        put_node(etcd, keys, "n1", 2000)         # a node re-publishing itself is not new capacity
        etcd.delete(keys.node("n0"))
        wait_for(lambda: view.nodes.get("n1") and view.nodes["n1"].capacity.cpu_millis == 2000
                 and "n0" not in view.nodes, 10, what="the update and the departure")
        put_node(etcd, keys, "n0", 1000)         # a departed node that comes back is
        wait_for(lambda: len(joins) == 3, 10, what="n0's return")
        assert joins == [["n0"], ["n0", "n1"], ["n0", "n1"]]
    finally:
        view.close()
