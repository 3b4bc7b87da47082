"""Packing against fragmentation, equivalence classes, and the plan's shape."""
import numpy as np

from gaia_master.sfair import SfairConfig
from tests.unit.sfair_harness import Harness, shape


def test_packing_keeps_whole_nodes_free_for_a_large_request():
    h = Harness().pool("p")
    for i in range(4):
        h.node(f"n{i}", cpu=8, mem_gb=32)
    h.request("small", "p", 8, shape(cpu=1, mem_gb=2))
    h.cycle()
    assert len(set(h.nodes_of("small"))) == 1                      # one node filled, three whole
    h.request("large", "p", 3, shape(cpu=8, mem_gb=32))
    h.cycle()
    assert h.count("large") == 3


def test_small_requests_of_different_shapes_share_partly_used_nodes():
    h = Harness().pool("p")
    for i in range(3):
        h.node(f"n{i}", cpu=8, mem_gb=32)
    h.request("a", "p", 3, shape(cpu=1, mem_gb=1))
    h.cycle()
    h.request("b", "p", 2, shape(cpu=2, mem_gb=4))
    h.cycle()
    assert set(h.nodes_of("a")) == set(h.nodes_of("b"))


def test_spreading_without_packing_would_fragment():
    # the same scenario with the packing weight at 0 and a spreading preference shows why
    # packing matters: the large request no longer fits
    from gaia_master.sfair import Spread
    h = Harness().pool("p")
    for i in range(4):
        h.node(f"n{i}", cpu=8, mem_gb=32)
    h.request("small", "p", 8, shape(cpu=1, mem_gb=2), spread=Spread(prefer_spread=True))
    h.cycle()
    h.request("large", "p", 3, shape(cpu=8, mem_gb=32))
    h.cycle()
    assert h.count("large") == 0


def test_identical_instances_are_not_full_passes():
    h = Harness(SfairConfig(uncontended_fast_path=False, entitlement_chunks=False)).pool("a").pool("b")
    for i in range(200):
        h.node(f"n{i}", cpu=4, mem_gb=16)
    h.request("x", "a", 400, shape(cpu=1, mem_gb=1))
    h.request("y", "b", 400, shape(cpu=1, mem_gb=1))
    plan = h.cycle()
    assert h.count("x") == h.count("y") == 400
    stats = plan.stats
    assert stats["classes"] == 1                                   # same shape, no spread: shared
    assert stats["full_rebuilds"] == 1
    assert stats["steps"] >= 10                                    # interleaved for fairness...
    assert stats["row_refreshes"] == stats["steps"] - 1            # ...each step refreshes few rows


def test_uncontended_cycle_places_each_request_in_one_step():
    h = Harness().pool("a").pool("b")
    for i in range(100):
        h.node(f"n{i}", cpu=8, mem_gb=16)
    h.request("x", "a", 300, shape(cpu=1, mem_gb=1))
    h.request("y", "b", 300, shape(cpu=1, mem_gb=1))
    plan = h.cycle()
    assert plan.stats["uncontended"] and plan.stats["steps"] == 2
    assert h.count("x") == h.count("y") == 300


def test_plan_is_a_pure_function_of_the_snapshot():
    h = Harness().pool("a").pool("b")
    for i in range(20):
        h.node(f"n{i}", cpu=4, mem_gb=8, labels={"rack": f"r{i % 4}"})
    h.request("x", "a", 50, shape(cpu=1, mem_gb=1))
    h.request("y", "b", 50, shape(cpu=2, mem_gb=1))
    snap = h.snapshot()
    before = snap.nodes.allocated.copy()
    first = [(g.app, g.instance, g.node) for g in h.scheduler.schedule(snap).grants]
    second = [(g.app, g.instance, g.node) for g in h.scheduler.schedule(snap).grants]
    assert first == second and np.array_equal(snap.nodes.allocated, before)


def test_instances_are_numbered_from_first_instance():
    h = Harness().pool("p").node("n", cpu=8, mem_gb=8)
    h.request("x", "p", 2, shape(cpu=1))
    h.cycle()
    h.request("x", "p", 3, shape(cpu=1), request_id="x/more")
    plan = h.cycle()
    assert [g.instance for g in plan.grants] == [2, 3, 4]


def test_cycle_time_budget_leaves_the_rest_pending():
    h = Harness(SfairConfig(max_cycle_s=1e-9)).pool("a").pool("b").node("n", cpu=8, mem_gb=8)
    h.request("x", "a", 2, shape(cpu=1))
    h.request("y", "b", 2, shape(cpu=1))
    plan = h.cycle()
    assert plan.stats["out_of_time"] and plan.count == 0
    assert all("cycle time budget spent" in why for why in plan.pending.values())


def test_a_shape_of_zeros_is_placed_without_warnings(recwarn):
    h = Harness().pool("p").node("n", cpu=1, mem_gb=1)
    h.request("sidecar", "p", 3, shape())
    h.cycle()
    assert h.count("sidecar") == 3 and not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_apps_that_spread_share_their_shape_class():
    from gaia_master.sfair import Spread
    h = Harness(SfairConfig(uncontended_fast_path=False, entitlement_chunks=False)).pool("a").pool("b")
    for i in range(50):
        h.node(f"n{i}", cpu=8, mem_gb=8)
    for app, pool in (("x", "a"), ("y", "b")):
        h.request(app, pool, 60, shape(cpu=1, mem_gb=1), spread=Spread(max_per_node=2))
    plan = h.cycle()
    assert h.count("x") == h.count("y") == 60
    assert plan.stats["classes"] == 3                              # one shape class, two app classes
    assert plan.stats["full_rebuilds"] == 3                        # each class built once...
    assert plan.stats["row_refreshes"] > 0                         # ...then only changed rows


def test_a_running_summary_decides_like_the_full_list():
    import dataclasses
    from gaia_master.sfair import RunningSummary, Spread
    h = Harness().pool("a").pool("b")
    for i in range(10):
        h.node(f"n{i}", cpu=4, mem_gb=8)
    h.request("x", "a", 12, shape(cpu=1, mem_gb=1), spread=Spread(max_per_node=2))
    h.cycle()
    h.request("x", "a", 12, shape(cpu=1, mem_gb=1), spread=Spread(max_per_node=2), request_id="x/more")
    h.request("y", "b", 30, shape(cpu=1, mem_gb=1))
    snap = h.snapshot()
    summarised = dataclasses.replace(snap, running=(), summary=RunningSummary.of(snap.running))
    full = [(g.app, g.instance, g.node) for g in h.scheduler.schedule(snap).grants]
    assert full == [(g.app, g.instance, g.node) for g in h.scheduler.schedule(summarised).grants]
    assert len(full) == 8 + 20                                      # x: 2 per node caps it; y: the rest
