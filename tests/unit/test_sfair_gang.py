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


def ps_and_workers(h: Harness, job: str, pool: str = "ml") -> tuple:
    # instances are numbered per app: ps 0-1, workers 2-5
    ps = h.request(job, pool, 2, shape(cpu=2, mem_gb=8), gang_id="g", request_id=f"{job}/ps", first_instance=0)
    workers = h.request(job, pool, 4, shape(cpu=1, mem_gb=2), gang_id="g", request_id=f"{job}/workers",
                        first_instance=2)
    return ps, workers


def test_gang_of_two_shapes_rolls_back_the_first_when_the_second_does_not_fit():
    h = Harness().pool("ml").node("n1", cpu=6, mem_gb=32)          # ps take 4 CPU; 4 workers need 4 more
    ps, workers = ps_and_workers(h, "job")
    plan = h.cycle()
    assert plan.grants == [] and h.count("job") == 0
    assert f"only 2 of 4 of {workers} fit" in plan.pending[workers]
    assert plan.pending[ps].startswith("2 of 2 pending")


def test_gang_of_two_shapes_is_placed_whole():
    h = Harness().pool("ml").node("n1", cpu=8, mem_gb=32)
    ps, workers = ps_and_workers(h, "job")
    plan = h.cycle()
    assert h.count("job") == 6 and not plan.pending
    assert sorted(g.instance for g in plan.grants) == [0, 1, 2, 3, 4, 5]


def test_volcano_five_jobs_with_ps_and_worker_shapes_all_complete():
    h = Harness().pool("ml")
    for i in range(2):
        h.node(f"n{i}", cpu=8, mem_gb=32)                          # one 8-CPU job per node
    jobs = [f"job{i}" for i in range(5)]
    for job in jobs:
        ps_and_workers(h, job)
    done, cycles = [], 0
    while len(done) < len(jobs):
        cycles += 1
        assert cycles <= 10, f"deadlock: done {done}"
        h.cycle()
        running = [j for j in jobs if h.count(j)]
        assert all(h.count(j) == 6 for j in running) and len(running) <= 2
        for j in running:
            h.finish(j)
            done.append(j)
    assert cycles == 3


def test_gang_members_must_agree_on_pool():
    h = Harness().pool("a").pool("b").node("n1", cpu=8, mem_gb=32)
    r1 = h.request("job", "a", 1, shape(cpu=1), gang_id="g")
    r2 = h.request("job", "b", 1, shape(cpu=1), gang_id="g")
    plan = h.cycle()
    assert h.count("job") == 0
    assert "disagree on pool" in plan.pending[r1] and "disagree on pool" in plan.pending[r2]
