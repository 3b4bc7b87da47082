"""Gang scheduling: all N or none, and nothing partially held leaves a cycle."""
import numpy as np

from gaia_master.sfair.model import ClusterSnapshot, Nodes, PoolSpec, vec
from gaia_master.sfair.state import ClusterState
from gaia_master.sfair.statement import Statement
from tests.unit.sfair_harness import Harness, shape


def test_gang_is_all_or_nothing():
    h = Harness().pool("p").node("n1", cpu=4, mem_gb=8).node("n2", cpu=4, mem_gb=8)
    rid = h.request("job", "p", 10, shape(cpu=1, mem_gb=1), gang=True)
    plan = h.cycle()
    assert plan.grants == [] and h.count("job") == 0
    assert "gang of 10: only 8 fit" in plan.pending[rid]


def test_gang_that_fits_is_placed_whole():
    h = Harness().pool("p").node("n1", cpu=4, mem_gb=8).node("n2", cpu=4, mem_gb=8)
    h.request("job", "p", 8, shape(cpu=1, mem_gb=1), gang=True)
    h.cycle()
    assert h.count("job") == 8


def test_failed_gang_leaves_its_capacity_to_others_in_the_same_cycle():
    h = Harness().pool("a").pool("b").node("n1", cpu=6, mem_gb=6)
    h.request("big", "a", 8, shape(cpu=1, mem_gb=1), gang=True)
    h.request("small", "b", 6, shape(cpu=1, mem_gb=1))
    h.cycle()
    assert (h.count("big"), h.count("small")) == (0, 6)


def test_statement_rolls_back_in_reverse_to_the_exact_state():
    nodes = Nodes(["a", "b"], np.array([vec(cpu_millis=4000)] * 2))
    state = ClusterState(ClusterSnapshot(nodes, [PoolSpec("p")]))
    before_free, before_usage = state.free.copy(), state.pools.usage.copy()
    stmt = Statement(state)
    stmt.place(np.array([0]), np.array([2]), vec(cpu_millis=1000), "x", 1)
    stmt.place(np.array([0, 1]), np.array([1, 3]), vec(cpu_millis=500), "x", 1)
    assert state.free[1, 0] == 2500
    stmt.discard()
    assert np.array_equal(state.free, before_free)
    assert np.array_equal(state.pools.usage, before_usage)
    assert state.app_counts("x").sum() == 0 and stmt.placed == []


def test_volcano_five_jobs_of_two_ps_and_four_workers_all_complete():
    # A cluster that fits two 6-task jobs at a time. Without gang scheduling the five jobs
    # grab partial sets and deadlock; with it every cycle places whole jobs only.
    h = Harness().pool("ml")
    for i in range(3):
        h.node(f"n{i}", cpu=4, mem_gb=16)                        # 12 CPU: two jobs of 6 x 1 CPU
    jobs = [f"job{i}" for i in range(5)]
    for job in jobs:
        h.request(job, "ml", 6, shape(cpu=1, mem_gb=2), gang=True)
    done, cycles = [], 0
    while len(done) < len(jobs):
        cycles += 1
        assert cycles <= 10, f"deadlock: done {done}"
        h.cycle()
        running = [j for j in jobs if h.count(j)]
        for j in running:
            assert h.count(j) == 6, f"{j} partially placed"
        assert len(running) <= 2
        for j in running:                                          # jobs finish before the next cycle
            h.finish(j)
            done.append(j)
    assert sorted(done) == jobs
    assert cycles == 3


def test_gang_with_ps_and_workers_spread_across_racks():
    h = Harness().pool("ml")
    for rack in ("r1", "r2", "r3"):
        for i in range(2):
            h.node(f"{rack}n{i}", cpu=8, mem_gb=32, labels={"rack": rack})
    from gaia_master.sfair import Spread
    rid = h.request("job", "ml", 6, shape(cpu=1, mem_gb=1), gang=True,
                    spread=Spread(max_per_node=1, domain_key="rack", max_per_domain=2))
    h.cycle()
    assert h.count("job") == 6
    h.request("job2", "ml", 7, shape(cpu=1, mem_gb=1), gang=True,
              spread=Spread(max_per_node=1, domain_key="rack", max_per_domain=2), request_id="job2/0")
    plan = h.cycle()
    assert h.count("job2") == 0 and "gang of 7: only 6 fit" in plan.pending["job2/0"]
    assert rid not in plan.pending
