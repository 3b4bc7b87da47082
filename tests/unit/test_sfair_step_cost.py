"""The per-step shortcuts of the mixed workload (many single-instance requests of a few
shapes) must decide exactly what the general code would: row refreshes against a rebuild,
the one-row place/unplace, the vectorised pool charge, the grouped demand sums and the
cached pending reasons."""
import dataclasses

import numpy as np

from gaia_master.sfair import ClusterSnapshot, Nodes, PendingRequest, PoolSpec, Sfair, SfairConfig
from gaia_master.sfair.explain import explain_filters
from gaia_master.sfair.model import vec
from gaia_master.sfair.order import Work
from gaia_master.sfair.pools import PoolTree
from gaia_master.sfair.scheduler import _Cycle, _demand, _demand_by
from gaia_master.sfair.state import ClusterState

GB = 1 << 30
SHAPES = [vec(cpu_millis=c, memory_bytes=m * GB) for c, m in ((250, 1), (1000, 2), (2000, 8), (4000, 4))]


def _mixed(nodes: int, requests: int, seed: int = 0) -> ClusterSnapshot:
    rng = np.random.default_rng(seed)
    cap = np.tile(vec(cpu_millis=8000, memory_bytes=32 * GB), (nodes, 1))
    pools = [PoolSpec("g0", 2.0), PoolSpec("g0/a", 1.0), PoolSpec("g0/b", 3.0), PoolSpec("g1/c", 1.0)]
    leaves = ["g0/a", "g0/b", "g1/c"]
    pending = [PendingRequest(f"r{i}", f"r{i}", leaves[int(rng.integers(3))], 0, 1,
                              SHAPES[int(rng.integers(len(SHAPES)))], submitted_at=float(i))
               for i in range(requests)]
    return ClusterSnapshot(Nodes([f"n{i}" for i in range(nodes)], cap), pools, (), pending)


def test_row_refreshes_match_a_rebuild_after_many_single_placements():
    cycle = _Cycle(_mixed(400, 0), SfairConfig(), Sfair().plugins, Sfair().reservations)
    state, cache = cycle.state, cycle.cache
    reqs = [PendingRequest(f"x{i}", f"x{i}", "g0/a", 0, 1, s) for i, s in enumerate(SHAPES)]
    classes = [cache.refresh(cache.of(r, ())) for r in reqs]
    rng = np.random.default_rng(1)
    pool = state.pools.index["g0/a"]
    for step in range(60):                   # the same rows again and again: duplicates in the log
        row = int(rng.integers(5))
        state.place(np.array([row]), np.ones(1, dtype=np.int64), SHAPES[step % 2], f"a{step}", pool)
        cache.refresh(classes[step % len(classes)])
    assert cache.row_refreshes >= 50 and cache.full_rebuilds == len(classes)
    for eq in classes:
        cache.refresh(eq)
        fresh = cache.refresh(dataclasses.replace(eq, slots=None, score=None, pick=None, seen=-1))
        assert np.array_equal(eq.slots, fresh.slots)
        assert np.array_equal(eq.score, fresh.score)
        assert np.array_equal(eq.pick, fresh.pick)


def test_one_row_place_and_unplace_are_exact_inverses():
    state = ClusterState(_mixed(6, 0))
    pool = state.pools.index["g0/b"]
    free, usage, shares = state.free.copy(), state.pools.usage.copy(), list(state.pools._share)
    row, n = np.array([3]), np.array([2])
    state.place(row, n, SHAPES[2], "app", pool)
    assert np.array_equal(state.free[3], free[3] - 2 * SHAPES[2])
    assert np.array_equal(state.app_usage["app"], 2 * SHAPES[2])
    assert state.app_counts("app")[3] == 2                   # from the rows kept before counts existed
    assert state.changed[-1] == 3
    state.unplace(row, n, SHAPES[2], "app", pool)
    assert np.array_equal(state.free, free)
    assert np.array_equal(state.pools.usage, usage)
    assert state.pools._share == shares
    assert not state.app_usage["app"].any() and not state.app_counts("app").any()


def test_charge_updates_every_ancestor_share_and_guarantee_ratio():
    cap = vec(cpu_millis=100_000, memory_bytes=1000 * GB)
    tree = PoolTree([PoolSpec("a", 2.0, guaranteed=vec(cpu_millis=10_000)), PoolSpec("a/b/c", 1.0)], cap)
    leaf = tree.index["a/b/c"]
    tree.charge(leaf, vec(cpu_millis=5_000, memory_bytes=100 * GB))
    tree.charge(leaf, vec(cpu_millis=-1_000))
    for path in ("", "a", "a/b", "a/b/c"):
        i = tree.index[path]
        assert np.array_equal(tree.usage[i], vec(cpu_millis=4_000, memory_bytes=100 * GB))
        assert tree.dominant_share(i) == 0.1                 # memory: 100 of 1000 GB
    assert tree.key(tree.index["a"]) == (0, 0.4)             # 4,000 of its 10,000 guaranteed millis
    assert tree._guarantee_ratio[tree.index["a/b"]] == 0.0   # no guarantee of its own


def test_grouped_demand_equals_the_per_request_sum():
    snap = _mixed(4, 300, seed=3)
    works = [Work(r, i % 3, int(r.count), i) for i, r in enumerate(snap.pending)]
    works[5].remaining = 0
    gang = Work(snap.pending[0], 1, 3, 999)
    gang.members = [snap.pending[0], snap.pending[1]]
    works.append(gang)
    by_pool = _demand_by(works, lambda w: w.pool)
    for pool in range(3):
        expected = sum((_demand(w) for w in works if w.pool == pool), 0)
        assert np.array_equal(by_pool[pool], expected)
    assert np.array_equal(_demand_by(works, lambda w: None)[None], sum(_demand(w) for w in works))


def test_pending_reasons_stay_those_of_the_state_they_were_given_in():
    # 2 nodes fit 4 of the 2000-millis shape: the rest fail one after the other (one cached
    # reason), and a later failure after a placement of another class is computed afresh
    cap = np.tile(vec(cpu_millis=4000, memory_bytes=64 * GB), (2, 1))
    big, small = vec(cpu_millis=2000, memory_bytes=GB), vec(cpu_millis=250, memory_bytes=GB)
    pending = [PendingRequest(f"b{i}", f"b{i}", "p", 0, 1, big, submitted_at=i) for i in range(8)]
    snap = ClusterSnapshot(Nodes(["n0", "n1"], cap), [PoolSpec("p")], (), pending)
    plan = Sfair(SfairConfig()).schedule(snap)
    assert plan.count == 4
    reasons = {plan.pending[f"b{i}"] for i in range(4, 8)}
    assert len(reasons) == 1 and "fits: 2 removed" in reasons.pop()

    cycle = _Cycle(snap, SfairConfig(), Sfair().plugins, Sfair().reservations)
    eq = cycle.cache.refresh(cycle.cache.of(pending[0], ()))
    before = cycle._explain(eq)
    cycle.state.place(np.array([0]), np.array([16]), small, "s", cycle.state.pools.index["p"])
    after = cycle._explain(eq)
    assert "0 of 2 nodes left" not in before and after == explain_filters(cycle.state, eq, cycle.plugins)
    assert "fits: 1 removed" in after                       # n0 is now full
