"""GPU set choice wired into Sfair's cycle and the leader: grants carry GPU indices, chosen
from each node's link tree, with what running allocations hold kept out. Pure: no etcd."""
import types

import numpy as np

from gaia_am.containers import container_spec
from gaia_common.pb import types_pb2
from gaia_master.scheduling.applier import _instance_gpus
from gaia_master.scheduling.index import AllocationIndex, as_vector
from gaia_master.scheduling.snapshot import NodeArrays
from gaia_master.sfair import ClusterSnapshot, Nodes, PendingRequest, PoolSpec, Running, Sfair, SfairConfig, vec
from gaia_master.sfair.gpu_topology import Gpu, NodeGpus, hold
from gaia_master.sfair.model import DIM_INDEX
from gaia_master.sfair.reservation import ReservationBook
from gaia_master.sfair.scheduler import Plugins, _Cycle

GB = 1 << 30
SHARE, MEMORY = DIM_INDEX["gpu_share"], DIM_INDEX["gpu_memory_bytes"]
GPU_MEMORY = 16 * GB


def box_gpus() -> list:
    """2 sockets x 2 PXB switches x 2 GPUs behind one PIX: pairs (0,1) (2,3) (4,5) (6,7)."""
    return [Gpu(i, "V100", GPU_MEMORY, f"SYS:{i // 4}/PHB:0/PXB:{(i // 2) % 2}/PIX:0") for i in range(8)]


def box(held=()) -> NodeGpus:
    """held: (share, memory, indices) of allocations already on the node."""
    node = NodeGpus(box_gpus())
    for share, memory, indices in held:
        hold(node, share, memory, [indices])
    return node


CAPACITY = vec(cpu_millis=64000, memory_bytes=512 * GB, gpu_share=800, gpu_memory_bytes=8 * GPU_MEMORY)


def gpu_shape(share: int, memory: int = 0):
    return vec(cpu_millis=1000, memory_bytes=GB, gpu_share=share, gpu_memory_bytes=memory)


def snapshot(per_node: list, requests: list, running=()) -> ClusterSnapshot:
    ids = [f"n{i}" for i in range(len(per_node))]
    allocated = np.zeros((len(ids), CAPACITY.size), dtype=np.int64)
    for node, row in zip(per_node, allocated):      # GPU use: what the nodes' GPUs hold
        if node is not None:
            row[SHARE], row[MEMORY] = node.used_share.sum(), node.used_memory.sum()
    for r in running:                                 # the rest: the running containers
        rest = r.resources.copy()
        rest[[SHARE, MEMORY]] = 0
        allocated[ids.index(r.node)] += rest
    nodes = Nodes(ids, np.tile(CAPACITY, (len(ids), 1)), allocated, gpus=per_node)
    return ClusterSnapshot(nodes, [PoolSpec("p")], running=list(running), pending=requests)


def request(rid: str, count: int, share: int, memory: int = 0, **kw) -> PendingRequest:
    return PendingRequest(rid, kw.pop("app", rid.split("/")[0]), "p", kw.pop("priority", 0), count,
                          gpu_shape(share, memory), **kw)


def cycle(snap: ClusterSnapshot) -> tuple:
    config = SfairConfig()
    c = _Cycle(snap, config, Plugins.default(config), ReservationBook())
    return c.run(), c.state


def gpus_of(plan, rid: str) -> list:
    return [g.gpus for g in plan.grants if g.request_id == rid]


# ---- the cycle ----

def test_two_whole_gpus_get_a_pix_pair():
    plan, state = cycle(snapshot([box()], [request("a/0", 1, 200)]))
    assert gpus_of(plan, "a/0") == [(0, 1)]
    assert plan.gpu_sets == {("a/0", 0): [(0, 1)]}
    assert state.gpus.used_share[0].tolist() == [100, 100, 0, 0, 0, 0, 0, 0]


def test_two_requests_of_four_get_a_socket_each():
    plan, _ = cycle(snapshot([box()], [request("a/0", 1, 400), request("b/0", 1, 400)]))
    got = sorted(gpus_of(plan, "a/0") + gpus_of(plan, "b/0"))
    assert got == [(0, 1, 2, 3), (4, 5, 6, 7)]


def test_one_request_of_several_instances_gets_sets_in_instance_order():
    plan, _ = cycle(snapshot([box()], [request("a/0", 4, 200)]))
    assert [g.instance for g in plan.grants] == [0, 1, 2, 3]
    assert gpus_of(plan, "a/0") == [(0, 1), (2, 3), (4, 5), (6, 7)]


def test_fractions_pack_onto_one_gpu_before_opening_another():
    plan, state = cycle(snapshot([box()], [request("a/0", 4, 30, GB)]))
    sets = gpus_of(plan, "a/0")
    assert sets[:3] == [sets[0]] * 3 and len(sets[0]) == 1
    assert sets[3] != sets[0]
    used = state.gpus.used_share[0]
    assert sorted(used.tolist()) == [0] * 6 + [30, 90]


def test_fractions_join_a_partly_used_gpu_of_a_running_allocation():
    plan, _ = cycle(snapshot([box(held=[(50, 0, (5,))])], [request("a/0", 1, 30)]))
    assert gpus_of(plan, "a/0") == [(5,)]


def test_used_gpus_are_not_assigned_again():
    node = box(held=[(100, GPU_MEMORY, (0,)), (100, GPU_MEMORY, (1,)), (200, 0, (2, 3))])
    plan, _ = cycle(snapshot([node], [request("a/0", 2, 200)]))
    assert gpus_of(plan, "a/0") == [(4, 5), (6, 7)]


def test_a_node_whose_gpus_are_used_is_avoided():
    # node 0 has 4 GPUs in use as fractions: the sum says 760% is free, the GPUs say 4 whole ones
    busy = box(held=[(10, 0, (i,)) for i in range(4)])
    plan, _ = cycle(snapshot([busy, box()], [request("a/0", 1, 800)]))
    assert [g.node for g in plan.grants] == ["n1"]
    assert gpus_of(plan, "a/0") == [tuple(range(8))]


def test_gpu_slots_is_a_pending_reason():
    busy = box(held=[(10, 0, (i,)) for i in range(4)])
    plan, _ = cycle(snapshot([busy], [request("a/0", 3, 200)]))   # the sum holds 3, the GPUs 2
    assert gpus_of(plan, "a/0") == [(4, 5), (6, 7)]
    assert "gpu-slots: 1 removed (fewer than 2 entirely free GPUs)" in plan.pending["a/0"]


def test_nodes_without_topology_still_judged_by_the_sum():
    plan, state = cycle(snapshot([None, box(held=[(100, 0, (i,)) for i in range(8)])], [request("a/0", 2, 200)]))
    assert [g.node for g in plan.grants] == ["n0", "n0"] and gpus_of(plan, "a/0") == [(), ()]
    assert plan.gpu_sets == {}
    assert state.gpus is not None


def test_no_topology_anywhere_costs_nothing():
    plan, state = cycle(snapshot([None], [request("a/0", 2, 200)]))
    assert state.gpus is None and plan.gpu_sets == {} and plan.count == 2


def test_a_rolled_back_gang_leaves_no_gpu_held():
    # member 1 (2 x 2 GPUs) fits, member 2 (4 GPUs) does not once it is placed: all roll back
    busy = box(held=[(10, 0, (i,)) for i in range(4)])
    snap = snapshot([busy], [request("a/0", 2, 200, gang_id="g"), request("a/1", 1, 400, gang_id="g")])
    plan, state = cycle(snap)
    assert plan.count == 0 and plan.gpu_sets == {}
    assert state.gpus.used_share[0].tolist() == [10, 10, 10, 10, 0, 0, 0, 0]
    assert not state._gpu_held and not state._gpu_owed


def test_a_gang_that_fits_gets_its_sets():
    snap = snapshot([box()], [request("a/0", 2, 200, gang_id="g"), request("a/1", 1, 400, gang_id="g")])
    plan, _ = cycle(snap)
    assert plan.count == 3
    pairs, four = gpus_of(plan, "a/0"), gpus_of(plan, "a/1")
    assert [len(p) for p in pairs] == [2, 2] and [len(f) for f in four] == [4]
    assert sorted(sum(pairs + four, ())) == list(range(8))


def test_preemption_cannot_free_gpus_it_does_not_know_and_does_not_raise():
    # every GPU held by a low-priority container of the pool: evicting it frees the sum, not
    # GPUs the cycle can name, so the request stays pending and nothing is evicted
    held = [(800, 0, tuple(range(8)))]
    victim = Running("low", "p", 0, "n0", gpu_shape(800), "0")
    plan, state = cycle(snapshot([box(held=held)], [request("hi/0", 1, 200, priority=5)], running=[victim]))
    assert plan.count == 0 and plan.evictions == [] and "hi/0" in plan.pending
    assert state.gpus.used_share[0].tolist() == [100] * 8


def test_preemption_places_with_gpus_when_they_are_free():
    # the victim holds memory, not GPUs: evicting it lets the instance in, with GPUs
    victim = Running("low", "p", 0, "n0", vec(cpu_millis=63500, memory_bytes=GB), "0")
    plan, _ = cycle(snapshot([box()], [request("hi/0", 1, 200, priority=5)], running=[victim]))
    assert len(plan.evictions) == 1 and gpus_of(plan, "hi/0") == [(0, 1)]


def test_sfair_schedule_plan_carries_the_sets():
    plan = Sfair().schedule(snapshot([box()], [request("a/0", 1, 100)]))
    assert plan.grants[0].gpus == (0,)


def test_a_starving_gpu_request_is_reserved_and_held_for():
    busy = box(held=[(10, 0, (i,)) for i in range(4)])
    scheduler = Sfair()
    for _ in range(3):                           # reserve, then serve and hold, cycle after cycle
        snap = snapshot([busy.copy(), box(held=[(10, 0, (7,))])],
                        [request("big/0", 1, 800, submitted_at=0.0), request("small/0", 1, 100)])
        snap.now = 1000.0
        plan = scheduler.schedule(snap)
        assert "big/0" in plan.pending and plan.reservations.get("big/0")
        assert len(gpus_of(plan, "small/0")) == 1


# ---- the leader's side ----

def allocation(app: str, instance: str, node: str, share: int, memory: int, indices=()) -> types_pb2.Allocation:
    out = types_pb2.Allocation(app_id=app, instance_id=instance, node_id=node)
    out.request.gpu_share = share
    out.request.gpu_memory_bytes = memory
    out.gpu_indices.extend(indices)
    return out


def test_index_gpu_holdings_round_trip():
    index = AllocationIndex()
    a = allocation("a", "0", "n0", 200, GB, (0, 1))
    b = allocation("a", "1", "n0", 30, 0, (4,))
    plain = allocation("c", "0", "n0", 0, 0)
    index.add(a, "p", 0)
    index.add(plain, "p", 0)
    index.add_granted([b], [b.instance_id], "p", 0, as_vector(b.request))
    assert sorted(index.gpu_holdings("n0")) == [(30, 0, (4,)), (200, GB, (0, 1))]
    index.remove(a, "p")
    assert index.gpu_holdings("n0") == [(30, 0, (4,))]
    index.remove(b, "p")
    index.remove(plain, "p")
    assert index.gpu_holdings("n0") == [] and index.node_gpus == {}


def node_info(node_id: str, gpus=True) -> types_pb2.NodeInfo:
    info = types_pb2.NodeInfo(node_id=node_id)
    info.capacity.gpu_share = 800 if gpus else 0
    if gpus:
        for g in box_gpus():
            info.gpus.add(index=g.index, model=g.model, memory_bytes=g.memory_bytes, link_path=g.link_path)
    return info


def test_snapshot_node_gpus_hold_what_the_index_says():
    infos = [node_info("n0"), node_info("n1", gpus=False)]
    view = types.SimpleNamespace(node_version=1, node_list=lambda: infos)
    arrays = NodeArrays()
    arrays.get(view)
    index = AllocationIndex()
    index.add(allocation("a", "0", "n0", 200, 0, (2, 3)), "p", 0)
    index.add(allocation("a", "1", "n0", 30, GB, (6,)), "p", 0)
    per_node = arrays.node_gpus(index)
    assert per_node[1] is None
    assert per_node[0].used_share.tolist() == [0, 0, 100, 100, 0, 0, 30, 0]
    assert per_node[0].used_memory[6] == GB and per_node[0].used_memory[2] == GPU_MEMORY
    again = arrays.node_gpus(index)              # fresh each cycle: the scheduler's copy is its own
    assert again[0] is not per_node[0]
    no_gpus = NodeArrays()
    no_gpus.get(types.SimpleNamespace(node_version=1, node_list=lambda: [node_info("x", gpus=False)]))
    assert no_gpus.node_gpus(index) is None


def test_applier_gives_each_instance_its_set_in_order():
    gpu_sets = {("a/0", 0): [(0, 1), (2, 3)], ("a/0", 1): [(4, 5)]}
    # the plan's (row, instances) pairs, as chunks list them: two steps on row 0
    assert _instance_gpus("a/0", [(0, 1), (1, 1), (0, 1)], gpu_sets) == [(0, 1), (4, 5), (2, 3)]
    assert _instance_gpus("b/0", [(0, 2)], gpu_sets) == []
    assert _instance_gpus("a/0", [(0, 1)], {}) == []


def test_container_gets_cuda_visible_devices():
    record = types_pb2.AppRecord(app_id="app-1")
    record.spec.env["A"] = "b"
    alloc = allocation("app-1", "3", "n0", 200, 0, (4, 5))
    spec = container_spec(record, alloc, 0)
    assert spec.instance_id == "3" and spec.env["CUDA_VISIBLE_DEVICES"] == "4,5" and spec.env["A"] == "b"
    assert container_spec(record, "3", 0, alloc.gpu_indices).env["CUDA_VISIBLE_DEVICES"] == "4,5"
    assert "CUDA_VISIBLE_DEVICES" not in container_spec(record, "3", 0).env
