"""GPU set choice from the topology tree (gpu_topology.py) and the gpu-slots / gpu-packing
plugins, without etcd or a scheduling cycle."""
import types

import numpy as np
import pytest

from gaia_master.sfair import Nodes, vec
from gaia_master.sfair.equivalence import EqClass
from gaia_master.sfair.gpu_topology import (LEVEL_COST, MANY, Gpu, GpuTable, NodeGpus, assign, choose_fraction,
                                            choose_whole, hold, instances_that_fit, link_costs, release,
                                            whole_gpus)
from gaia_master.sfair.plugins.gpu_slots import GpuPacking, GpuSlots

GB = 1 << 30


def pcie_box(used_share=None, used_memory=None, memory=16 * GB) -> NodeGpus:
    """A DGX-1-like PCIe box: 2 sockets, each one host bridge with 2 PXB switches, each
    switch 2 GPUs behind a PIX. GPUs 0-3 on socket 0, pairs (0,1) (2,3) (4,5) (6,7)."""
    gpus = [Gpu(i, "V100", memory, f"SYS:{i // 4}/PHB:{i // 4}/PXB:{i // 2}/PIX:{i // 2}") for i in range(8)]
    return NodeGpus(gpus, used_share, used_memory)


def used(*indices, share=100, n=8) -> list:
    out = [0] * n
    for i in indices:
        out[i] = share
    return out


# ---- costs ----

def test_cost_is_the_cheapest_level_two_gpus_share():
    cost = pcie_box().cost
    assert cost[0, 1] == LEVEL_COST["PIX"]
    assert cost[0, 2] == LEVEL_COST["PHB"]
    assert cost[0, 4] == LEVEL_COST["SYS"]
    assert (np.diag(cost) == 0).all() and (cost == cost.T).all()


def test_nvlink_and_nothing_shared_and_unknown_levels():
    cost = link_costs(("SYS:0/NV4:0/PIX:0", "SYS:0/NV4:0/PIX:1", "", "SYS:1/PXB:0"))
    assert cost[0, 1] == LEVEL_COST["NV"]
    assert cost[0, 2] == cost[0, 3] == LEVEL_COST["SYS"]   # sharing nothing costs as much as SYS
    with pytest.raises(ValueError, match="XYZ:0"):
        link_costs(("XYZ:0/PIX:0",))


def test_sibling_ids_need_not_be_globally_unique():
    cost = link_costs(("SYS:0/PIX:0", "SYS:1/PIX:0"))       # two different PIX switches
    assert cost[0, 1] == LEVEL_COST["SYS"]


# ---- whole GPUs ----

def test_whole_gpus_take_the_closest_set():
    node = pcie_box()
    assert choose_whole(node, 1) == (0,)
    assert choose_whole(node, 2) == (0, 1)
    assert choose_whole(node, 3) == (0, 1, 2)
    assert choose_whole(node, 4) == (0, 1, 2, 3)
    assert choose_whole(node, 8) == tuple(range(8))
    assert choose_whole(node, 9) is None


def test_with_some_gpus_used_the_cheapest_remaining_set():
    node = pcie_box(used(0, share=30))                      # a fraction makes GPU 0 not free
    assert choose_whole(node, 4) == (4, 5, 6, 7)
    assert choose_whole(node, 2) == (2, 3)                  # an intact PIX pair, not 1 + a stranger
    assert choose_whole(node, 3) == (1, 2, 3)               # leaves socket 1's four together
    assert choose_whole(node, 8) is None
    node = pcie_box(used(1, 2, 5))
    assert choose_whole(node, 2) == (6, 7)                  # the only intact pair
    assert choose_whole(node, 3) == (4, 6, 7)               # within one socket
    assert choose_whole(node, 5) == (0, 3, 4, 6, 7)


def test_one_gpu_breaks_an_already_broken_pair():
    assert choose_whole(pcie_box(used(2)), 1) == (3,)
    assert choose_whole(pcie_box(used(0, 6)), 1) == (1,)
    # both broken: the one whose socket has fewer free GPUs left, so the other keeps more
    assert choose_whole(pcie_box(used(0, 4, 6)), 1) == (5,)


def test_whole_gpu_memory_per_gpu():
    node = NodeGpus([Gpu(0, "A", 16 * GB, "SYS:0/PIX:0"), Gpu(1, "A", 16 * GB, "SYS:0/PIX:0"),
                     Gpu(2, "B", 80 * GB, "SYS:0/PIX:1"), Gpu(3, "B", 80 * GB, "SYS:0/PIX:1")])
    assert choose_whole(node, 2, memory=64 * GB) == (2, 3)  # 32 GiB on each of the two
    assert choose_whole(node, 1, memory=40 * GB) == (2,)
    assert choose_whole(node, 2, memory=161 * GB) is None
    assert instances_that_fit(node, 100, 40 * GB) == 2


def test_large_node_uses_nearest_sets_and_stays_in_one_subtree():
    # 32 GPUs: 4 sockets x 2 PXB x 2 PIX x 2 GPUs; C(32, 8) is far past exact enumeration
    gpus = [Gpu(i, "A", 16 * GB, f"SYS:{i // 8}/PHB:0/PXB:{i // 4 % 2}/PIX:{i // 2 % 2}") for i in range(32)]
    node = NodeGpus(gpus)
    assert choose_whole(node, 8) == tuple(range(8))
    assert choose_whole(node, 4) == (0, 1, 2, 3)
    node.used_share[[0, 9]] = 100
    assert choose_whole(node, 8) == tuple(range(16, 24))
    assert choose_whole(node, 1) == (1,)



def test_nearest_sets_keep_the_exact_link_level(monkeypatch):
    # on a tree the nearest-neighbour sets reach the same worst link as enumeration
    from gaia_master.sfair import gpu_topology
    gpus = [Gpu(i, "A", 16 * GB, f"SYS:{i // 8}/PHB:0/PXB:{i // 4 % 2}/PIX:{i // 2 % 2}") for i in range(16)]
    rng = np.random.default_rng(7)
    for _ in range(100):
        node = NodeGpus(gpus, np.where(rng.random(16) < 0.35, 100, 0))
        k = int(rng.integers(1, 9))
        exact = choose_whole(node, k)
        monkeypatch.setattr(gpu_topology, "EXACT_LIMIT", 0)
        nearest = choose_whole(node, k)
        monkeypatch.undo()
        assert (exact is None) == (nearest is None)
        if exact is not None:
            assert node.cost[np.ix_(exact, exact)].max() == node.cost[np.ix_(nearest, nearest)].max()

# ---- fractions ----

def test_fractions_pack_onto_partly_used_gpus_and_open_fresh_ones_only_when_needed():
    node = pcie_box()
    placed = [assign(node, share, 0, 1)[0] for share in (30, 30, 50, 50)]
    assert placed == [(0,), (0,), (1,), (1,)]               # 60 + 100: GPU 1 opened for the first 50
    assert node.used_share.tolist() == [60, 100, 0, 0, 0, 0, 0, 0]
    assert choose_fraction(node, 40) == 0                   # exact fit, no fresh GPU
    assert choose_fraction(node, 41) == 2                   # nothing partly used has 41 left


def test_best_fit_is_the_partly_used_gpu_with_least_room():
    node = pcie_box([50, 20, 0, 0, 90, 0, 0, 0])
    assert choose_fraction(node, 30) == 0                   # 20 left, not 50 on GPU 1
    assert choose_fraction(node, 10) == 4


def test_fresh_gpu_comes_from_the_most_fragmented_subtree():
    assert choose_fraction(pcie_box(used(4)), 20) == 5     # its pair is broken already
    assert choose_fraction(pcie_box(used(0, 2, 4)), 20) == 1   # a broken pair, in the socket with fewer free
    assert choose_fraction(pcie_box([100] * 8), 20) is None


def test_fraction_memory_must_fit_too():
    node = pcie_box()
    assert [assign(node, 30, 10 * GB, 1)[0] for _ in range(2)] == [(0,), (1,)]   # 20 GiB > 16
    assert node.used_memory[:2].tolist() == [10 * GB, 10 * GB]
    assert choose_fraction(node, 30, 6 * GB) == 0           # 6 more GiB fits beside the 10
    assert choose_fraction(node, 30, 7 * GB) == 2


# ---- counting, assigning, invalid shapes ----

def test_instances_that_fit():
    node = pcie_box()
    assert instances_that_fit(node, 100) == 8
    assert instances_that_fit(node, 300) == 2
    assert instances_that_fit(node, 30) == 24
    assert instances_that_fit(node, 30, 10 * GB) == 8
    node = pcie_box([60, 100, 0, 0, 0, 0, 0, 0])
    assert instances_that_fit(node, 200) == 3
    assert instances_that_fit(node, 40) == 1 + 6 * 2


def test_count_that_fits_is_what_assign_places():
    for share, memory in ((30, 0), (30, 5 * GB), (100, 0), (200, 0), (300, 0)):
        node = pcie_box(used(1, share=45))
        n = instances_that_fit(node, share, memory)
        sets = assign(node, share, memory, n)
        assert len(sets) == n and instances_that_fit(node, share, memory) == 0


def test_assign_in_order_and_release_is_its_inverse():
    node = pcie_box()
    assert assign(node, 200, 0, 4) == [(0, 1), (2, 3), (4, 5), (6, 7)]
    node = pcie_box()
    before = (node.used_share.copy(), node.used_memory.copy())
    assert assign(node, 100, 0, 1) + assign(node, 200, 0, 1) + assign(node, 100, 0, 1) == [(0,), (2, 3), (1,)]
    assert node.used_memory[[0, 1, 2, 3]].tolist() == [16 * GB] * 4     # a whole GPU's memory is held
    sets = assign(node, 25, GB, 3)
    release(node, 25, GB, sets)
    release(node, 100, 0, [(0,), (1,)])
    release(node, 200, 0, [(2, 3)])
    assert (node.used_share == before[0]).all() and (node.used_memory == before[1]).all()


def test_hold_marks_granted_sets_as_assign_would():
    node = pcie_box()
    hold(node, 200, 0, [(2, 3)])
    hold(node, 30, GB, [(0,), (0,)])
    assert node.used_share.tolist() == [60, 0, 100, 100, 0, 0, 0, 0]
    assert node.used_memory[[0, 2]].tolist() == [2 * GB, 16 * GB]
    assert choose_whole(node, 1) == (1,) and choose_whole(node, 2) == (4, 5)
    release(node, 30, GB, [(0,), (0,)])
    release(node, 200, 0, [(2, 3)])
    assert node.free.all()


def test_assign_more_than_fits_raises_and_holds_nothing():
    node = pcie_box(used(0, 1, 2, 3, 4, 5))
    with pytest.raises(ValueError, match="only 1 of 2"):
        assign(node, 200, 0, 2)
    assert node.used_share.tolist() == used(0, 1, 2, 3, 4, 5)


@pytest.mark.parametrize("share", [150, 250, 0, -100])
def test_invalid_share(share):
    with pytest.raises(ValueError, match=str(share)):
        whole_gpus(share)
    with pytest.raises(ValueError, match=str(share)):
        instances_that_fit(pcie_box(), share)
    with pytest.raises(ValueError, match=str(share)):
        assign(pcie_box(), share, 0, 1)


def test_whole_shares_are_not_fractions():
    assert whole_gpus(100) == 1 and whole_gpus(800) == 8 and whole_gpus(99) == 0
    with pytest.raises(ValueError, match="choose_whole"):
        choose_fraction(pcie_box(), 200)


# ---- the table and the plugins over several nodes ----

def cluster(*per_node):
    """A state with the given NodeGpus per node (None: a node without GPU topology)."""
    n = len(per_node)
    capacity = np.array([vec(cpu_millis=64000, gpu_share=800 if g is not None else 0) for g in per_node])
    nodes = Nodes([f"n{i}" for i in range(n)], capacity)
    nodes.gpus = list(per_node)                   # what the lead adds to Nodes
    return types.SimpleNamespace(nodes=nodes)


def eq_of(**dims) -> EqClass:
    shape = vec(cpu_millis=1000, **dims)
    return EqClass(("test",), shape, np.flatnonzero(shape), (), (), None, None)


def test_table_views_follow_assign_and_leave_the_snapshot_alone():
    source = pcie_box()
    table = GpuTable([source, None])
    assign(table.node(0), 200, 0, 2)
    assert table.instances(200, 0).tolist() == [2, MANY]
    assert source.free.all()                     # the snapshot's NodeGpus is untouched
    assert table.node(0) is table.node(0) and table.node(1) is None


def test_gpu_slots_room_over_several_nodes():
    state = cluster(pcie_box(), pcie_box(used(0, 1, 2, 3, 4, 6)), pcie_box(used(0, share=70)), None)
    slots = GpuSlots()
    whole2 = eq_of(gpu_share=200)
    assert slots.applies(whole2) and not slots.applies(eq_of(memory_bytes=GB))
    assert slots.room(state, whole2, None).tolist() == [4, 1, 3, MANY]   # node 1: 5 and 7, not a pair, still 2 GPUs
    assert slots.room(state, eq_of(gpu_share=30), None).tolist() == [24, 6, 1 + 21, MANY]
    assert slots.room(state, eq_of(gpu_share=30, gpu_memory_bytes=10 * GB), np.array([1, 2])).tolist() == [2, 8]
    result = slots.explain(state, eq_of(gpu_share=800), np.ones(4, dtype=bool))
    assert result.mask.tolist() == [True, False, False, True]
    assert "fewer than 8 entirely free GPUs" in result.reason


def test_nodes_without_topology_are_left_to_fits():
    state = types.SimpleNamespace(nodes=Nodes(["a", "b"], np.array([vec(gpu_share=800)] * 2)))
    assert GpuSlots().room(state, eq_of(gpu_share=200), None).tolist() == [MANY, MANY]
    assert GpuPacking().score(state, eq_of(gpu_share=200), np.arange(2)).tolist() == [0.0, 0.0]


def test_gpu_slots_sees_placements_through_the_table():
    state = cluster(pcie_box(), pcie_box())
    eq = eq_of(gpu_share=400)
    assert GpuSlots().room(state, eq, None).tolist() == [2, 2]
    assign(state.gpus.node(0), 400, 0, 1)
    assert GpuSlots().room(state, eq, np.array([0])).tolist() == [1]


def test_gpu_slots_invalid_share_is_a_reason_not_an_exception():
    state = cluster(pcie_box())
    eq = eq_of(gpu_share=150)
    assert GpuSlots().room(state, eq, None).tolist() == [0]
    result = GpuSlots().explain(state, eq, np.ones(1, dtype=bool))
    assert "gpu_share 150" in result.reason and not result.mask.any()
    assert not GpuPacking().applies(eq)


def test_gpu_packing_prefers_partly_used_gpus_for_fractions():
    state = cluster(pcie_box(), pcie_box(used(3, share=50)), pcie_box(used(3, share=80)), None)
    score = GpuPacking().score(state, eq_of(gpu_share=30), np.arange(4))
    assert score[1] > score[0] > 0                # pack before opening a fresh GPU
    assert score[2] < score[1]                    # 80 + 30 does not fit: a fresh GPU there too
    assert score[3] == 0


def test_gpu_packing_prefers_best_linked_free_gpus_for_whole_requests():
    # node 0: two free GPUs across sockets; node 1: a free PIX pair; node 2: an empty node
    state = cluster(pcie_box(used(1, 2, 3, 5, 6, 7)), pcie_box(used(2, 3, 4, 5, 6, 7)), pcie_box())
    score = GpuPacking().score(state, eq_of(gpu_share=200), np.arange(3))
    assert score[1] > score[2] > score[0]         # a pair beats none; a busy node before an empty one
    # one GPU: a broken pair (node 0) before the pair (node 1) and before the empty node
    score = GpuPacking().score(state, eq_of(gpu_share=100), np.arange(3))
    assert score[0] > score[1] > score[2]
    assert np.all((score > 0) & (score <= 1))
