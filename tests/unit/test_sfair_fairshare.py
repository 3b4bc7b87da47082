"""Water-filling entitlements, and the vector pieces the cycle is built from."""
import numpy as np
import pytest

from gaia_master.sfair.fairshare import water_fill
from gaia_master.sfair.placement import _cap_by_group
from gaia_master.sfair.pools import PoolTree
from gaia_master.sfair.model import PoolSpec, vec

INV = np.array([1 / 9, 1 / 18])


def test_water_fill_reproduces_the_drf_paper():
    demand = np.array([[100.0, 400.0], [300.0, 100.0]])      # A: 100 x <1,4>, B: 100 x <3,1>
    alloc = water_fill(demand, np.ones(2), np.zeros((2, 2)), np.array([9.0, 18.0]), INV)
    assert alloc[0] == pytest.approx([3, 12]) and alloc[1] == pytest.approx([6, 2])


def test_water_fill_gives_all_when_demand_fits():
    demand = np.array([[1.0, 1.0], [2.0, 2.0]])
    assert np.array_equal(water_fill(demand, np.ones(2), np.zeros((2, 2)), np.array([9.0, 18.0]), INV), demand)


def test_water_fill_by_weight_and_guarantee():
    demand = np.array([[90.0, 0.0], [90.0, 0.0], [90.0, 0.0]])
    weights = np.array([2.0, 1.0, 1.0])
    cap = np.array([9.0, 18.0])
    alloc = water_fill(demand, weights, np.zeros((3, 2)), cap, INV)
    assert alloc[:, 0] == pytest.approx([4.5, 2.25, 2.25])
    # the third pool's guarantee (5) is above its weighted share: it gets 5, the rest split 2:1
    alloc = water_fill(demand, weights, np.array([[0, 0], [0, 0], [5.0, 0]]), cap, INV)
    assert alloc[:, 0] == pytest.approx([8 / 3, 4 / 3, 5.0])
    # guarantees that overcommit the parent are scaled down together
    alloc = water_fill(demand, weights, np.array([[6.0, 0], [0, 0], [6.0, 0]]), cap, INV)
    assert alloc[:, 0] == pytest.approx([4.5, 0, 4.5])


def test_cap_by_group_keeps_each_domain_within_its_room():
    take = np.array([2, 2, 2, 1, 1])
    group = np.array([0, 1, 0, 0, 1])
    room = np.array([3, 5])
    assert list(_cap_by_group(take, group, room)) == [2, 2, 1, 0, 1]


def test_pool_tree_implies_parents_and_restricts_gpu_models_down_the_path():
    tree = PoolTree([PoolSpec("ads", gpu_models=("A100", "H100")), PoolSpec("ads/cv/train", gpu_models=("H100", "V100"))],
                    vec(cpu_millis=1000))
    assert tree.paths == ["", "ads", "ads/cv", "ads/cv/train"]
    assert tree.gpu_models[tree.index["ads/cv"]] == ("A100", "H100")
    assert tree.gpu_models[tree.index["ads/cv/train"]] == ("H100",)
    tree.charge(tree.index["ads/cv/train"], vec(cpu_millis=250))
    assert tree.dominant_share(tree.index["ads"]) == pytest.approx(0.25)


def test_quota_room_names_the_binding_pool_and_dimension():
    tree = PoolTree([PoolSpec("a", max_quota=vec(memory_bytes=10)), PoolSpec("a/b", max_quota=vec(cpu_millis=100))],
                    vec(cpu_millis=1000, memory_bytes=1000))
    room, limit = tree.quota_room(tree.index["a/b"], vec(cpu_millis=30, memory_bytes=2))
    assert (room, limit) == (3, ("a/b", "cpu_millis"))
    room, limit = tree.quota_room(tree.index["a/b"], vec(cpu_millis=1, memory_bytes=4))
    assert (room, limit) == (2, ("a", "memory_bytes"))


def test_water_fill_with_no_capacity_and_no_guarantees_gives_nothing_without_nan():
    """A cluster with no nodes yet: nothing to share, and no NaN (0 * inf) warnings."""
    demand = np.array([[1000.0, 0.0], [500.0, 0.0]])
    with np.errstate(all="raise"):
        out = water_fill(demand, np.ones(2), np.zeros((2, 2)), np.zeros(2), np.zeros(2))
    assert out.tolist() == [[0.0, 0.0], [0.0, 0.0]]
