"""Preemption (a higher priority of the same pool) and reclaim (a pool below its guarantee takes
back what others borrowed): who is evicted, and that the preemptor is placed in the same plan."""
from collections.abc import Mapping

import numpy as np

from gaia_master.sfair import ClusterSnapshot, Eviction, LabelConstraint as L, Nodes, PoolSpec, RunningSummary, vec
from gaia_master.sfair import Sfair, SfairConfig, Spread
from gaia_master.sfair.state import ClusterState
from tests.unit.sfair_harness import Harness, shape

CPU = shape(cpu=1, mem_gb=1)


def evicted(plan) -> list:
    return sorted((e.app, e.instance) for e in plan.evictions)


# ---- preemption ----

def test_lowest_priority_then_newest_goes_first_and_the_preemptor_is_placed_in_the_same_plan():
    h = Harness().pool("p").node("n1", cpu=4, mem_gb=16)
    h.run("old0", "p", "n1", CPU, priority=0, started_at=1)
    h.run("new0", "p", "n1", CPU, priority=0, started_at=5)
    h.run("mid1", "p", "n1", CPU, priority=1, started_at=9)
    h.run("top9", "p", "n1", CPU, priority=9, started_at=9)
    rid = h.request("urgent", "p", 1, CPU, priority=9)
    plan = h.cycle()
    assert plan.evictions == [Eviction("new0", "0", "n1", "preempt",
                                       "preempted by urgent (priority 9 > 0) in pool p", rid)]
    assert [(g.request_id, g.node) for g in plan.grants] == [(rid, "n1")] and not plan.pending
    plan = h.cycle()
    assert plan.evictions == [] and plan.grants == []                 # nothing pending, nothing evicted
    h.request("urgent2", "p", 2, CPU, priority=9)
    plan = h.cycle()
    assert evicted(plan) == [("mid1", "0"), ("old0", "0")]            # then the next lowest
    assert h.count("urgent2") == 2


def test_never_a_victim_of_equal_or_higher_priority():
    h = Harness().pool("p").node("n1", cpu=2, mem_gb=16)
    h.run("same", "p", "n1", CPU, priority=5)
    h.run("higher", "p", "n1", CPU, priority=7)
    rid = h.request("x", "p", 1, CPU, priority=5)
    plan = h.cycle()
    assert plan.evictions == [] and plan.grants == [] and rid in plan.pending


def test_preemption_stays_within_the_pool():
    h = Harness().pool("p").pool("q").node("n1", cpu=2, mem_gb=16)
    h.run("other-pool", "q", "n1", CPU, priority=0, count=2)
    rid = h.request("x", "p", 1, CPU, priority=9)
    plan = h.cycle()
    assert plan.evictions == [] and rid in plan.pending


def test_no_eviction_while_free_capacity_suffices():
    h = Harness().pool("p").node("n1", cpu=2, mem_gb=16).node("n2", cpu=2, mem_gb=16)
    h.run("low", "p", "n1", CPU, priority=0, count=2)
    h.request("x", "p", 2, CPU, priority=9)
    plan = h.cycle()
    assert plan.evictions == [] and sorted(g.node for g in plan.grants) == ["n2", "n2"]


def test_the_node_with_the_fewest_victims_is_chosen():
    h = Harness().pool("p").node("n1", cpu=2, mem_gb=16).node("n2", cpu=2, mem_gb=16)
    h.run("small", "p", "n1", CPU, priority=0, count=2)
    h.run("big", "p", "n2", shape(cpu=2, mem_gb=2), priority=0)
    h.request("x", "p", 1, shape(cpu=2, mem_gb=1), priority=9)
    plan = h.cycle()
    assert evicted(plan) == [("big", "0")] and plan.grants[0].node == "n2"


def test_lower_priority_victims_are_preferred_to_fewer_ones():
    h = Harness().pool("p").node("n1", cpu=2, mem_gb=16).node("n2", cpu=2, mem_gb=16)
    h.run("small", "p", "n1", CPU, priority=0, count=2)
    h.run("big", "p", "n2", shape(cpu=2, mem_gb=2), priority=3)
    h.request("x", "p", 1, shape(cpu=2, mem_gb=1), priority=9)
    plan = h.cycle()
    assert evicted(plan) == [("small", "0"), ("small", "1")]


def test_only_the_victims_needed_are_evicted():
    # in victim order the 1-CPU one comes first, but the 2-CPU one alone makes room: spared
    h = Harness().pool("p").node("n1", cpu=3, mem_gb=16)
    h.run("one", "p", "n1", CPU, priority=0)
    h.run("two", "p", "n1", shape(cpu=2, mem_gb=1), priority=1)
    h.request("x", "p", 1, shape(cpu=2, mem_gb=1), priority=9)
    plan = h.cycle()
    assert evicted(plan) == [("two", "0")]


def test_the_preemptors_constraints_and_spread_hold_on_the_node():
    h = Harness().pool("p")
    h.node("a", cpu=2, mem_gb=16, labels={"zone": "z1"}).node("b", cpu=2, mem_gb=16, labels={"zone": "z2"})
    h.node("c", cpu=2, mem_gb=16, labels={"zone": "z2"})
    for node in ("a", "b", "c"):
        h.run(f"low-{node}", "p", node, CPU, priority=0, count=2)
    h.request("x", "p", 3, CPU, priority=9, constraints=[L("zone", "=", ("z2",))], spread=Spread(max_per_node=1))
    plan = h.cycle()
    assert sorted(g.node for g in plan.grants) == ["b", "c"]          # one per node, zone z2 only
    assert sorted(e.node for e in plan.evictions) == ["b", "c"]
    assert "1 of 3 pending" in plan.pending["x/0"]


def test_one_victim_can_make_room_for_several_instances():
    h = Harness().pool("p").node("n1", cpu=4, mem_gb=16)
    h.run("fat", "p", "n1", shape(cpu=4, mem_gb=4), priority=0)
    h.request("x", "p", 4, CPU, priority=9)
    plan = h.cycle()
    assert evicted(plan) == [("fat", "0")] and h.count("x") == 4


def test_gang_preemption_is_all_or_nothing():
    h = Harness().pool("p").node("n1", cpu=4, mem_gb=16).node("n2", cpu=4, mem_gb=16)
    h.run("low", "p", "n1", shape(cpu=2, mem_gb=1), priority=0, count=2)
    h.run("peer", "p", "n2", shape(cpu=4, mem_gb=1), priority=5)
    rid = h.request("gang", "p", 2, shape(cpu=4, mem_gb=1), priority=5, gang=True)
    plan = h.cycle()
    # n1 could be emptied for one instance, but the other would need the equal-priority peer
    assert plan.evictions == [] and plan.grants == [] and rid in plan.pending
    assert h.count("low") == 2
    h.withdraw(rid)
    h.request("gang6", "p", 2, shape(cpu=4, mem_gb=1), priority=6, gang=True)
    plan = h.cycle()
    assert evicted(plan) == [("low", "0"), ("low", "1"), ("peer", "0")] and h.count("gang6") == 2


def test_a_gang_of_several_requests_preempts_for_all_of_them():
    h = Harness().pool("p").node("n1", cpu=8, mem_gb=32)
    h.run("batch", "p", "n1", CPU, priority=0, count=8)
    h.request("job", "p", 2, shape(cpu=2, mem_gb=1), priority=5, gang_id="g", request_id="job/ps",
              first_instance=0)
    h.request("job", "p", 3, CPU, priority=5, gang_id="g", request_id="job/w", first_instance=2)
    plan = h.cycle()
    assert len(plan.evictions) == 7 and h.count("job") == 5 and h.count("batch") == 1
    assert sorted(g.instance for g in plan.grants) == [0, 1, 2, 3, 4]


def test_preemption_can_be_turned_off():
    h = Harness(SfairConfig(preemption=False)).pool("p").node("n1", cpu=1, mem_gb=16)
    h.run("low", "p", "n1", CPU, priority=0)
    h.request("x", "p", 1, CPU, priority=9)
    assert h.cycle().evictions == []


def test_an_evicted_instance_asked_for_again_is_not_an_eviction_loop():
    # the AM migrates the evicted instance: it waits (same priority as its peers) instead of
    # evicting anyone back
    h = Harness().pool("p").node("n1", cpu=1, mem_gb=16)
    h.run("low", "p", "n1", CPU, priority=0)
    h.request("x", "p", 1, CPU, priority=9)
    h.cycle()
    rid = h.request("low", "p", 1, CPU, priority=0)
    plan = h.cycle()
    assert plan.evictions == [] and rid in plan.pending


# ---- reclaim ----

def borrowed() -> Harness:
    """Pool a is guaranteed 4 CPU and holds nothing; b has no guarantee and holds all 8."""
    h = Harness().pool("a", guaranteed=vec(cpu_millis=4000)).pool("b").node("n1", cpu=8, mem_gb=64)
    for t in range(8):
        h.run("b-app", "b", "n1", CPU, started_at=t)
    return h


def test_reclaim_waits_for_the_grace_period():
    h = borrowed()
    rid = h.request("a-app", "a", 2, CPU)
    h.now = 30.0                                            # not longer than the grace period yet
    plan = h.cycle()
    assert plan.evictions == [] and rid in plan.pending
    h.now = 31.0
    plan = h.cycle()
    assert [e.kind for e in plan.evictions] == ["reclaim", "reclaim"] and h.count("a-app") == 2
    assert evicted(plan) == [("b-app", "6"), ("b-app", "7")]      # the newest first
    assert "reclaimed by pool a (below its guarantee) for a-app" in plan.evictions[0].reason


def test_reclaim_stops_at_the_claimants_guarantee():
    h = borrowed()
    rid = h.request("a-app", "a", 6, CPU, submitted_at=-100)
    plan = h.cycle()
    assert len(plan.evictions) == 4 and h.count("a-app") == 4 and "2 of 6 pending" in plan.pending[rid]
    plan = h.cycle()                                        # at its guarantee: nothing more
    assert plan.evictions == [] and h.count("a-app") == 4


def test_reclaim_can_be_turned_off():
    h = borrowed()
    h.scheduler = Sfair(SfairConfig(reclaim=False))
    h.request("a-app", "a", 2, CPU, submitted_at=-100)
    assert h.cycle().evictions == []


def test_reclaim_never_takes_a_borrower_below_its_guarantee_and_takes_the_furthest_above_first():
    h = Harness().pool("a", guaranteed=vec(cpu_millis=6000)).pool("b", guaranteed=vec(cpu_millis=3000)).pool("c")
    h.node("n1", cpu=8, mem_gb=64)
    h.run("b-app", "b", "n1", CPU, count=5)                 # 2 above its guarantee
    h.run("c-app", "c", "n1", CPU, count=3)                 # all 3 borrowed: furthest above
    h.request("a-app", "a", 6, CPU, submitted_at=-100)
    plan = h.cycle()
    apps = [e.app for e in plan.evictions]
    # c is furthest above (3 borrowed to b's 2) so it gives first; b stops at its guarantee
    assert apps[0] == "c-app" and sorted(apps) == ["b-app"] * 2 + ["c-app"] * 3
    assert h.count("b-app") == 3 and h.count("c-app") == 0 and h.count("a-app") == 5


def test_reclaim_does_not_take_from_a_pool_at_its_guarantee():
    h = Harness().pool("a", guaranteed=vec(cpu_millis=2000)).pool("b", guaranteed=vec(cpu_millis=4000))
    h.node("n1", cpu=4, mem_gb=64)
    h.run("b-app", "b", "n1", CPU, count=4)
    rid = h.request("a-app", "a", 1, CPU, submitted_at=-100)
    plan = h.cycle()
    assert plan.evictions == [] and rid in plan.pending


def test_a_pool_at_its_guarantee_does_not_reclaim():
    h = Harness().pool("a", guaranteed=vec(cpu_millis=1000)).pool("b").node("n1", cpu=2, mem_gb=64)
    h.run("a-app", "a", "n1", CPU)
    h.run("b-app", "b", "n1", CPU)
    rid = h.request("a-more", "a", 1, CPU, submitted_at=-100)
    plan = h.cycle()
    assert plan.evictions == [] and rid in plan.pending


def test_reclaim_respects_a_guaranteed_parent_of_the_borrower():
    # b/x has no guarantee of its own, but its parent b is guaranteed 3 CPU
    h = Harness().pool("a", guaranteed=vec(cpu_millis=4000)).pool("b", guaranteed=vec(cpu_millis=3000)).pool("b/x")
    h.node("n1", cpu=4, mem_gb=64)
    h.run("x-app", "b/x", "n1", CPU, count=4)
    h.request("a-app", "a", 4, CPU, submitted_at=-100)
    plan = h.cycle()
    assert len(plan.evictions) == 1 and h.count("x-app") == 3


def test_a_leader_with_running_in_is_asked_only_for_pools_that_can_supply_victims():
    h = Harness(lazy=True).pool("a", guaranteed=vec(cpu_millis=4000)).pool("b").pool("c").pool("empty")
    h.node("n1", cpu=4, mem_gb=64)
    h.run("b-app", "b", "n1", CPU, count=2)
    h.run("c-app", "c", "n1", CPU, count=2)
    h.request("quiet", "c", 1, CPU)                         # pending, but no lower priority in c
    h.request("a-app", "a", 1, CPU, submitted_at=-100)
    h.cycle()
    assert h.count("a-app") == 1 and len(h.evicted) == 1
    assert sorted(set(h.running_in_calls)) == ["b", "c"]


def test_lazy_preemption_gives_the_same_plan():
    for lazy in (False, True):
        h = Harness(lazy=lazy).pool("p").node("n1", cpu=2, mem_gb=16)
        h.run("low", "p", "n1", CPU, priority=0, started_at=1)
        h.run("low", "p", "n1", CPU, priority=0, started_at=2)
        h.request("x", "p", 1, CPU, priority=9)
        assert evicted(h.cycle()) == [("low", "1")]


def test_among_equals_the_later_listed_container_goes_first():
    h = Harness().pool("p").node("n1", cpu=2, mem_gb=16)
    h.run("low", "p", "n1", CPU, priority=0, count=2, started_at=0)
    h.request("x", "p", 1, CPU, priority=9)
    assert evicted(h.cycle()) == [("low", "1")]


# ---- scale: nothing per running container unless the cycle needs it ----

class CountingNodes(Mapping):
    def __init__(self, data):
        self.data, self.asked = data, []

    def __getitem__(self, app):
        self.asked.append(app)
        return self.data[app]

    def __iter__(self):
        raise AssertionError("app_nodes must not be walked")

    def __len__(self):
        return len(self.data)


def test_app_nodes_of_the_summary_are_resolved_only_for_apps_the_cycle_touches():
    nodes = Nodes([f"n{i}" for i in range(4)], np.array([vec(cpu_millis=8000)] * 4))
    app_nodes = CountingNodes({f"app{i}": ["n0", "n1"] for i in range(1000)})
    summary = RunningSummary(pool_usage={"p": vec(cpu_millis=2000)}, app_nodes=app_nodes)
    state = ClusterState(ClusterSnapshot(nodes, [PoolSpec("p")], summary=summary))
    assert app_nodes.asked == []
    assert state.app_counts("app7").tolist() == [1, 1, 0, 0]
    assert app_nodes.asked == ["app7"]


# ---- randomised: every plan passes the independent checker ----

def random_cluster(seed: int, lazy: bool) -> Harness:
    rng = np.random.default_rng(seed)
    h = Harness(lazy=lazy)
    h.pool("g/a", guaranteed=vec(cpu_millis=6000)).pool("g/b", guaranteed=vec(cpu_millis=3000, memory_bytes=8 << 30))
    h.pool("free").pool("other", guaranteed=vec(cpu_millis=2000))
    for i in range(6):
        h.node(f"n{i}", cpu=int(rng.integers(2, 9)), mem_gb=16, labels={"zone": f"z{i % 2}"})
    pools = ["g/a", "g/b", "free", "other"]
    for i in range(6):
        room = int(h._nodes[i][1][0]) // 1000
        for k in range(int(rng.integers(0, 4))):
            cpu = int(rng.integers(1, 3))
            if cpu <= room:
                room -= cpu
                h.run(f"r{i}-{k}", pools[int(rng.integers(0, 4))], f"n{i}", shape(cpu=cpu, mem_gb=1),
                      priority=int(rng.integers(0, 4)), started_at=float(rng.integers(0, 50)))
    return h


def add_random_requests(h: Harness, rng, cycle: int) -> None:
    pools = ["g/a", "g/b", "free", "other"]
    for k in range(int(rng.integers(1, 4))):
        h.request(f"q{cycle}-{k}", pools[int(rng.integers(0, 4))], int(rng.integers(1, 4)),
                  shape(cpu=int(rng.integers(1, 4)), mem_gb=1), priority=int(rng.integers(0, 6)),
                  gang=bool(rng.random() < 0.3), spread=Spread(max_per_node=2) if rng.random() < 0.3 else None,
                  constraints=[L("zone", "=", ("z0",))] if rng.random() < 0.2 else (),
                  submitted_at=h.now - float(rng.integers(0, 100)))


def test_random_clusters_evict_consistently():
    evictions = 0
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        h = random_cluster(seed, lazy=bool(seed % 2))
        for cycle in range(4):
            h.now += 20
            add_random_requests(h, rng, cycle)
            evictions += len(h.cycle().evictions)           # the harness checks every plan
    assert evictions > 0
