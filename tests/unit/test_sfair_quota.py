"""Max quotas, guaranteed minimums and priority bands."""
from gaia_master.sfair import vec
from tests.unit.sfair_harness import GB, Harness, shape


def test_max_quota_is_never_exceeded():
    h = Harness().pool("capped", max_quota=vec(cpu_millis=5000)).pool("free")
    h.node("n1", cpu=100, mem_gb=100)
    rid = h.request("c", "capped", 50, shape(cpu=1, mem_gb=1))
    h.request("f", "free", 10, shape(cpu=1, mem_gb=1))
    plan = h.cycle()
    assert h.count("c") == 5 and h.count("f") == 10
    assert "quota: pool 'capped' max cpu_millis reached" in plan.pending[rid]
    # and in later cycles too
    h.request("c2", "capped", 3, shape(cpu=1, mem_gb=1))
    h.cycle()
    assert h.count("c2") == 0


def test_parent_quota_caps_all_children():
    h = Harness().pool("ads", max_quota=vec(memory_bytes=10 * GB)).pool("ads/a").pool("ads/b")
    h.node("n1", cpu=100, mem_gb=100)
    h.request("a", "ads/a", 50, shape(cpu=1, mem_gb=1))
    h.request("b", "ads/b", 50, shape(cpu=1, mem_gb=1))
    plan = h.cycle()
    assert h.count("a") + h.count("b") == 10
    assert all("pool 'ads' max memory_bytes" in reason for reason in plan.pending.values())


def test_quota_blocks_a_gang_that_would_cross_it_whole():
    h = Harness().pool("p", max_quota=vec(cpu_millis=5000)).node("n1", cpu=100, mem_gb=100)
    rid = h.request("g", "p", 6, shape(cpu=1, mem_gb=1), gang=True)
    plan = h.cycle()
    assert h.count("g") == 0 and "quota" in plan.pending[rid]


def test_pools_below_their_guarantee_go_first():
    # "big" has weight 10 but "small" is below its guaranteed 4 CPU: small is served first
    h = Harness().pool("big", weight=10).pool("small", weight=1, guaranteed=vec(cpu_millis=4000))
    h.node("n1", cpu=6, mem_gb=60)
    h.request("b", "big", 100, shape(cpu=1, mem_gb=1))
    h.request("s", "small", 100, shape(cpu=1, mem_gb=1))
    h.cycle()
    assert h.count("s") >= 4
    assert h.count("b") + h.count("s") == 6


def test_least_satisfied_guarantee_first():
    h = (Harness().pool("x", guaranteed=vec(cpu_millis=2000)).pool("y", guaranteed=vec(cpu_millis=6000))
         .node("n1", cpu=4, mem_gb=40))
    h.request("x", "x", 100, shape(cpu=1, mem_gb=1))
    h.request("y", "y", 100, shape(cpu=1, mem_gb=1))
    h.cycle()
    # both rise towards their guarantee at the same ratio: x 1/2 when y 3/6
    assert (h.count("x"), h.count("y")) == (1, 3)


def test_higher_priority_band_first_within_a_pool():
    h = Harness().pool("p").node("n1", cpu=10, mem_gb=10)
    low = h.request("batch", "p", 10, shape(cpu=1, mem_gb=1), priority=0)
    h.request("online", "p", 8, shape(cpu=1, mem_gb=1), priority=100)
    plan = h.cycle()
    assert (h.count("online"), h.count("batch")) == (8, 2)
    assert plan.pending[low].startswith("8 of 10 pending")


def test_priority_does_not_cross_pools():
    # priority orders requests inside a pool; between pools DRF decides
    h = Harness().pool("a").pool("b").node("n1", cpu=10, mem_gb=10)
    h.request("hi", "a", 10, shape(cpu=1, mem_gb=1), priority=1000)
    h.request("lo", "b", 10, shape(cpu=1, mem_gb=1), priority=0)
    h.cycle()
    assert (h.count("hi"), h.count("lo")) == (5, 5)


def test_unknown_and_internal_pools_are_explained():
    h = Harness().pool("ads/online").node("n1", cpu=10, mem_gb=10)
    r1 = h.request("x", "nope", 1, shape(cpu=1))
    r2 = h.request("y", "ads", 1, shape(cpu=1))
    plan = h.cycle()
    assert "no pool 'nope'" in plan.pending[r1]
    assert "leaf pools" in plan.pending[r2]
