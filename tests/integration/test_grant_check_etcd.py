"""The grant checker's read side against a real etcd: a small cluster's keys written by hand
(no master, no scheduler), read back with read_grants in one consistent snapshot."""
from gaia_cli.bench import grant_check as gc
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2

GB = 2**30


def put(etcd, key, message):
    etcd.put(key, message.SerializeToString())


def write_cluster(etcd, keys):
    for i in range(3):
        put(etcd, keys.node(f"n{i}"), types_pb2.NodeInfo(
            node_id=f"n{i}", capacity=types_pb2.Resources(cpu_millis=4000, memory_bytes=8 * GB),
            labels={"rack": f"r{i % 2}"}))
    put(etcd, keys.pool("ads"), types_pb2.Pool(path="ads", weight=2, max=types_pb2.Resources(cpu_millis=6000)))
    put(etcd, keys.pool("ads/online"), types_pb2.Pool(path="ads/online", weight=1))
    spec = types_pb2.AppSpec(name="web", pool="ads/online", instances=6, max_per_node=2, spread_by="rack")
    put(etcd, keys.app("web"), types_pb2.AppRecord(app_id="a1", spec=spec))
    put(etcd, keys.allocation("a1", "am"), types_pb2.Allocation(
        app_id="a1", instance_id="am", node_id="n0", is_am=True, request=types_pb2.Resources(cpu_millis=100)))
    for i in range(6):
        put(etcd, keys.allocation("a1", str(i)), types_pb2.Allocation(
            app_id="a1", instance_id=str(i), node_id=f"n{i % 3}",
            request=types_pb2.Resources(cpu_millis=500, memory_bytes=GB)))


def test_read_grants_reads_back_one_snapshot(etcd, cluster_name, monkeypatch):
    keys = Keys(cluster_name)
    write_cluster(etcd, keys)
    put(etcd, Keys("other-" + cluster_name[:40]).node("elsewhere"), types_pb2.NodeInfo(node_id="elsewhere"))
    monkeypatch.setattr(gc, "PAGE", 2)          # several pages per table, all at one revision
    grants = gc.read_grants(etcd, cluster_name)

    assert grants.cluster == cluster_name
    assert grants.revision == etcd.get_response(keys.root).header.revision
    assert sorted(grants.nodes) == ["n0", "n1", "n2"] and grants.nodes["n1"].labels["rack"] == "r1"
    assert list(grants.apps) == ["a1"] and grants.apps["a1"].spec.spread_by == "rack"
    assert sorted(a.instance_id for a in grants.allocations) == ["0", "1", "2", "3", "4", "5", "am"]
    assert sorted(grants.pools) == ["ads", "ads/online"] and grants.pools["ads"].weight == 2

    # racks r0 (n0, n2) and r1 (n1): 4 instances on r0 > ceil(6 / 2)
    report = gc.check(grants, demand={"ads/online": {"cpu_millis": 3000, "memory_bytes": 6 * GB}})
    assert report.allocations == 7 and report.placements == 6 and report.nodes == 3 and report.apps == 1
    assert report.violations == ["app web: 4 instances in rack=r0 > max_per_domain 3"]
    assert report.accepted == 2                  # the two on r1
    rows = {r.path: r for r in report.drf}
    assert abs(rows["ads/online"].dominant_share - 3100 / 12000) < 1e-9


def test_writes_after_the_first_read_are_not_seen(etcd, cluster_name, monkeypatch):
    keys = Keys(cluster_name)
    write_cluster(etcd, keys)
    real = etcd.get_range_response

    def late_write(*args, **kwargs):
        # a node leaves and a grant appears between the reads: the snapshot shows neither
        response = real(*args, **kwargs)
        if not getattr(late_write, "done", False):
            late_write.done = True
            etcd.delete(keys.node("n2"))
            put(etcd, keys.allocation("a1", "6"), types_pb2.Allocation(app_id="a1", instance_id="6", node_id="n2"))
        return response

    monkeypatch.setattr(etcd, "get_range_response", late_write)
    grants = gc.read_grants(etcd, cluster_name)
    assert sorted(grants.nodes) == ["n0", "n1", "n2"] and len(grants.allocations) == 7
    grants = gc.read_grants(etcd, cluster_name)
    assert sorted(grants.nodes) == ["n0", "n1"] and len(grants.allocations) == 8
    assert gc.check(grants).on_departed_nodes == 3
