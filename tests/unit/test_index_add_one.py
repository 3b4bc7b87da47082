"""The allocation index's single-allocation path (AMs, single-instance apps) leaves the index
exactly as adding the same allocations one by one through the general path does."""
import numpy as np

from gaia_common.pb import types_pb2
from gaia_master.scheduling.index import AllocationIndex, as_vector

GB = 1 << 30


def alloc(app, instance, node, cpu, gpu_share=0, indices=(), am=False):
    a = types_pb2.Allocation(app_id=app, instance_id=instance, node_id=node, is_am=am)
    a.request.cpu_millis = cpu
    a.request.memory_bytes = cpu * GB // 1000
    a.request.gpu_share = gpu_share
    a.gpu_indices.extend(indices)
    return a


GRANTS = [  # (allocation, pool, priority)
    (alloc("a", "am", "n0", 100, am=True), "p/x", 0),
    (alloc("a", "0", "n0", 500), "p/x", 0),
    (alloc("a", "1", "n1", 500), "p/x", 0),
    (alloc("b", "0", "n0", 2000, gpu_share=50, indices=(3,)), "p/y", 5),
    (alloc("c", "am", "n2", 100, am=True), "p/y", 5),
]


def state(index: AllocationIndex) -> dict:
    arrays = lambda d: {k: v.tolist() for k, v in d.items()}   # noqa: E731
    positive = lambda c: {k: v for k, v in c.items() if v}     # noqa: E731
    return {"node_allocated": arrays(index.node_allocated), "node_count": positive(index.node_count),
            "pool_usage": arrays(index.pool_usage), "app_usage": arrays(index.app_usage),
            "app_nodes": {k: positive(v) for k, v in index.app_nodes.items() if positive(v)},
            "app_held": positive(index.app_held),
            "by_pool": {p: {k: (a.SerializeToString(), prio, v.tolist()) for k, (a, prio, v) in held.items()}
                        for p, held in index.by_pool.items()},
            "pool_priorities": {p: positive(c) for p, c in index.pool_priorities.items()},
            "node_gpus": index.node_gpus}


def test_single_grants_leave_the_index_as_the_general_path_does():
    one_by_one, general = AllocationIndex(), AllocationIndex()
    for a, pool, priority in GRANTS:
        one_by_one.add_granted([a], [a.instance_id], pool, priority, as_vector(a.request))
        general.add(a, pool, priority)
    assert state(one_by_one) == state(general)
    assert one_by_one.app_held["a"] == 2 and one_by_one.app_held["c"] == 0
    assert state(one_by_one)["pool_priorities"] == {"p/x": {0: 2}, "p/y": {5: 1}}     # AMs are no victims
    assert one_by_one.version == len(GRANTS)
    np.testing.assert_array_equal(one_by_one.node_allocated["n0"],
                                  as_vector(GRANTS[0][0].request) + as_vector(GRANTS[1][0].request)
                                  + as_vector(GRANTS[3][0].request))


def test_single_grants_come_off_again_completely():
    index = AllocationIndex()
    for a, pool, priority in GRANTS:
        index.add_granted([a], [a.instance_id], pool, priority, as_vector(a.request))
    for a, pool, _ in GRANTS:
        index.remove(a, pool)
    empty = state(index)
    assert not any(v for v in empty["node_allocated"].values() if any(v))
    assert empty["by_pool"] == {"p/x": {}, "p/y": {}} and empty["node_gpus"] == {}
    assert empty["app_held"] == {} and empty["pool_priorities"] == {"p/x": {}, "p/y": {}}
