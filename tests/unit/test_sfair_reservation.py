"""Reservations against starvation: a large request or a gang that has waited past
reserve_after_s gets nodes held for it, across cycles, while small requests backfill the rest."""
from gaia_master.sfair import SfairConfig
from tests.unit.sfair_harness import Harness, shape

SMALL = shape(cpu=1, mem_gb=1)
BIG = shape(cpu=3, mem_gb=1)                                 # 3 of a 4-CPU node: large


def busy_cluster(config: SfairConfig = None) -> Harness:
    """Two 4-CPU nodes full of small containers that end in the order they started, one per
    node per cycle, each replaced by a new small request."""
    h = Harness(config).pool("batch").pool("web")
    for n in ("n0", "n1"):
        h.node(n, cpu=4, mem_gb=32)
    for t in range(4):
        for n in ("n0", "n1"):
            h.run("web", "web", n, SMALL, started_at=t)
    return h


def churn_smalls(h: Harness, per_cycle: int = 2) -> None:
    """The oldest small containers end and as many new small requests arrive."""
    smalls = sorted((r for r in h.running if r.app.startswith("web")), key=lambda r: r.started_at)
    h.stop(smalls[:per_cycle])
    for _ in range(per_cycle):
        h.request("web", "web", 1, SMALL)


def run_stream(h: Harness, cycles: int, big: str) -> list:
    """Cycles 10 s apart; returns the plans."""
    plans = []
    for _ in range(cycles):
        h.now += 10
        churn_smalls(h)
        plans.append(h.cycle())
        if big not in h.pending:
            break
    return plans


def test_without_reservations_a_large_request_starves_behind_small_ones():
    h = busy_cluster(SfairConfig(reserve_after_s=1e9))
    big = h.request("big", "batch", 1, BIG)
    plans = run_stream(h, 20, big)
    assert h.count("big") == 0 and len(plans) == 20
    assert all(p.reservations == {} for p in plans)


def test_a_starved_large_request_gets_a_reservation_and_is_placed_while_small_ones_backfill():
    h = busy_cluster()
    big = h.request("big", "batch", 1, BIG)
    plans = run_stream(h, 20, big)
    assert h.count("big") == 1
    reserved_at = next(i for i, p in enumerate(plans) if p.reservations)
    assert h.plans[reserved_at].reservations == {big: ["n0"]}
    assert 10 * (reserved_at + 1) > 60                       # only after reserve_after_s
    assert "capacity reserved on 1 node" in plans[reserved_at].pending[big]
    # while n0 was held, small requests kept being placed on n1
    held = plans[reserved_at + 1:-1]
    assert held and all(any(g.node == "n1" for g in p.grants) for p in held)
    assert all(g.node != "n0" for p in held for g in p.grants)
    # dropped once granted
    assert plans[-1].reservations == {} and h.scheduler.reservations.entries == {}
    assert any(g.request_id == big for g in plans[-1].grants)


def test_small_requests_backfill_what_the_reservation_cannot_use():
    h = Harness().pool("batch").pool("web")
    for n in ("n0", "n1"):
        h.node(n, cpu=4, mem_gb=32)
    h.run("long", "web", "n1", shape(cpu=3, mem_gb=1))       # n1 stays busy
    gang = h.request("gang", "batch", 2, BIG, gang=True, submitted_at=-100)
    plan = h.cycle()
    assert plan.reservations == {gang: ["n0", "n1"]} and plan.grants == []
    h.request("web", "web", 4, SMALL)
    plan = h.cycle()
    # n0 is free, but 3 of its 4 CPU are held for the gang and n1's 1 free CPU as well
    assert sorted(g.node for g in plan.grants) == ["n0"]
    assert "capacity reserved on 2 nodes" in plan.pending[gang]
    h.stop([r for r in h.running if r.app == "long"])
    plan = h.cycle()
    assert sorted((g.request_id, g.node) for g in plan.grants) == [(gang, "n0"), (gang, "n1"), ("web/1", "n1")]
    assert plan.reservations == {}


def test_no_reservation_before_reserve_after_s_or_for_small_requests():
    h = Harness().pool("p").node("n0", cpu=4, mem_gb=32)
    h.run("hog", "p", "n0", shape(cpu=4, mem_gb=1))
    big = h.request("big", "p", 1, BIG)
    small = h.request("small", "p", 1, SMALL)
    h.now = 60.0
    assert h.cycle().reservations == {}
    h.now = 61.0
    assert h.cycle().reservations == {big: ["n0"]}            # not for the small one
    assert small in h.plans[-1].pending


def test_many_small_instances_together_count_as_large():
    h = Harness().pool("p").node("n0", cpu=4, mem_gb=32)
    h.run("hog", "p", "n0", shape(cpu=4, mem_gb=1))
    rid = h.request("wide", "p", 5, SMALL, submitted_at=-100)   # 5 CPU: more than a node
    plan = h.cycle()
    assert plan.reservations == {}                            # no node set can ever hold 5
    h.node("n1", cpu=4, mem_gb=32)
    h.run("hog", "p", "n1", shape(cpu=4, mem_gb=1))
    plan = h.cycle()
    assert sorted(plan.reservations[rid]) == ["n0", "n1"]


def test_at_most_max_reservations_oldest_first():
    h = Harness(SfairConfig(max_reservations=2)).pool("p")
    for i in range(4):
        h.node(f"n{i}", cpu=4, mem_gb=32)
        h.run("hog", "p", f"n{i}", shape(cpu=4, mem_gb=1))
    young = h.request("young", "p", 1, BIG, submitted_at=-70)
    old = h.request("old", "p", 1, BIG, submitted_at=-90)
    mid = h.request("mid", "p", 1, BIG, submitted_at=-80)
    plan = h.cycle()
    assert sorted(plan.reservations) == sorted([old, mid])
    assert len(set(plan.reservations[old]) | set(plan.reservations[mid])) == 2   # distinct nodes
    assert "reserved" not in plan.pending[young]
    h.withdraw(old)                                           # gone from the snapshot: dropped
    plan = h.cycle()
    assert sorted(plan.reservations) == sorted([mid, young])


def test_reserved_nodes_are_where_it_would_fit_soonest():
    h = Harness().pool("p")
    for i in range(3):
        h.node(f"n{i}", cpu=4, mem_gb=32)
    h.run("hog", "p", "n0", shape(cpu=4, mem_gb=1))
    h.run("hog", "p", "n1", shape(cpu=2, mem_gb=1))
    h.run("hog", "p", "n1", shape(cpu=1, mem_gb=1))
    h.run("hog", "p", "n2", shape(cpu=2, mem_gb=1))
    h.run("hog", "p", "n2", shape(cpu=2, mem_gb=1))
    big = h.request("big", "p", 1, BIG, submitted_at=-100)
    assert h.cycle().reservations == {big: ["n1"]}            # 1 CPU free there: the most


def test_reservation_does_not_outlive_a_quota_block():
    from gaia_master.sfair import vec
    h = Harness().pool("p", max_quota=vec(cpu_millis=2000)).node("n0", cpu=4, mem_gb=32)
    rid = h.request("big", "p", 1, BIG, submitted_at=-100)
    plan = h.cycle()
    assert plan.reservations == {} and "quota" in plan.pending[rid]
