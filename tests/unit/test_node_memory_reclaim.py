"""Elastic memory: the reclaim policy (pure), and the reclaim loop on cgroup v2 (the strict model)."""
from gaia_common.pb import types_pb2
from gaia_node.cgroups import Limits
from gaia_node.cgroups.v2 import CgroupV2
from gaia_node.events import EventLog
from gaia_node.isolation import memory_reclaim as policy
from gaia_node.isolation.memory import EVICT_REASON, MemoryReclaimer
from tests.fakes.cgroupfs import FakeCgroupFS

MI = 1 << 20
BUDGET = policy.Budget(budget=1000 * MI, high=0.95, target=0.90)


def member(cid, priority=0, request=100, limit=500, usage=100, file=0, ceiling=None):
    return policy.Member(cid, priority, request * MI, limit * MI if limit else None, usage * MI, file * MI,
                         (ceiling if ceiling is not None else limit) * MI if (ceiling or limit) else None)


def test_no_pressure_no_action():
    members = [member("a", usage=400), member("b", usage=400)]   # 800 of 1000: borrowing is fine
    assert policy.need(members, BUDGET) == 0
    assert policy.plan_squeezes(members, BUDGET) == [] and policy.plan_kills(members, BUDGET) == []


def test_squeezes_page_cache_first_lowest_priority_first_never_below_request():
    members = [member("owner", priority=0, request=300, usage=300, file=200),   # within its request
               member("cache-lo", priority=1, usage=350, file=300),
               member("cache-hi", priority=9, usage=350, file=300)]
    # 1000 held > 950: need 100, all from the low-priority borrower's cache
    squeezes = policy.plan_squeezes(members, BUDGET)
    assert [(a.container_id, a.ceiling, a.frees) for a in squeezes] == [("cache-lo", 250 * MI, 100 * MI)]
    big = [member("cache-lo", priority=1, usage=600, file=550), member("cache-hi", priority=9, usage=400, file=350)]
    squeezes = policy.plan_squeezes(big, BUDGET)           # need 100 but allowed ones... all from cache-lo
    assert squeezes[0].ceiling >= 100 * MI
    tight = [member("a", priority=1, usage=160, file=150), member("b", priority=2, usage=900, file=800)]
    # need 160: a gives its 60 above its request (never below 100), b the remaining 100
    assert [(s.container_id, s.frees // MI) for s in policy.plan_squeezes(tight, BUDGET)] == [("a", 60), ("b", 100)]


def test_kills_lowest_priority_first_then_furthest_over_and_never_within_request():
    members = [member("owner", priority=-5, request=400, usage=400),            # lowest priority, within request
               member("anon-p1-small", priority=1, usage=200),
               member("anon-p1-big", priority=1, usage=300),
               member("anon-p5", priority=5, usage=300)]
    # 1200 held: need 300; p1-big (furthest over at priority 1) frees 300
    kills = policy.plan_kills(members, BUDGET)
    assert [k.container_id for k in kills] == ["anon-p1-big"]
    more = members + [member("anon-p9", priority=9, usage=300)]                 # 1500: need 600
    assert [k.container_id for k in policy.plan_kills(more, BUDGET)] == ["anon-p1-big", "anon-p1-small", "anon-p5"]
    only_owners = [member("o1", request=600, usage=600), member("o2", request=500, usage=500)]
    assert policy.plan_kills(only_owners, BUDGET) == []                         # overcommitted, still no kill


def test_psi_counts_as_pressure_above_the_target_only():
    budget = policy.Budget(budget=1000 * MI, high=0.95, target=0.90, psi_threshold=10.0)
    members = [member("a", usage=920, file=900)]
    assert policy.need(members, budget, psi=5.0) == 0
    assert policy.need(members, budget, psi=20.0) == 20 * MI
    assert policy.need([member("a", usage=500)], budget, psi=50.0) == 0


def test_restore_gives_back_within_the_room():
    squeezed = [member("lo", priority=1, usage=150, ceiling=150), member("hi", priority=5, usage=150, ceiling=160)]
    actions = policy.plan_restores(squeezed, BUDGET)       # room 900-300 = 600: hi takes 340, lo the rest
    assert [(a.container_id, a.ceiling) for a in actions] == [("hi", 500 * MI), ("lo", 410 * MI)]
    crowded = squeezed + [member("big", request=500, usage=550, limit=600)]
    actions = policy.plan_restores(crowded, BUDGET)        # room 50: hi only, partly
    assert [(a.container_id, a.ceiling) for a in actions] == [("hi", 210 * MI)]


class FakeContainers:
    def __init__(self, specs):
        self.specs = {s.container_id: s for s in specs}
        self.evicted = []

    def running(self):
        return [(s, types_pb2.ContainerStatus(container_id=c, state=types_pb2.CONTAINER_STATE_RUNNING))
                for c, s in self.specs.items()]

    def evict(self, cid, reason, grace=0.0):
        self.evicted.append((cid, reason))
        del self.specs[cid]


def spec(cid, priority, request, limit):
    s = types_pb2.ContainerSpec(container_id=cid, priority=priority)
    s.resources.request.memory_bytes, s.resources.limit.memory_bytes = request * MI, limit * MI
    return s


def test_reclaimer_on_cgroup_v2_squeezes_with_memory_high_kills_and_restores():
    fs = FakeCgroupFS("/cg")
    cgroups = CgroupV2("/cg", "gaia", fs=fs)
    specs = [spec("owner", 0, 300, 300), spec("cache", 1, 100, 600), spec("anon-lo", 2, 50, 400),
             spec("anon-hi", 7, 50, 400)]
    for s in specs:
        cgroups.create(s.container_id, Limits(memory_request=s.resources.request.memory_bytes,
                                              memory_limit=s.resources.limit.memory_bytes))
    assert fs.read("/cg/gaia/owner/memory.min") == f"{300 * MI}\n"
    fs.charge("/cg/gaia/owner", anon=280 * MI)
    fs.charge("/cg/gaia/cache", anon=20 * MI, file=280 * MI)
    fs.charge("/cg/gaia/anon-lo", anon=250 * MI)
    fs.charge("/cg/gaia/anon-hi", anon=250 * MI)
    containers, events = FakeContainers(specs), EventLog()
    reclaimer = MemoryReclaimer(cgroups, containers, events, BUDGET, node_psi="/nonexistent")
    reclaimer.tick()   # 1080 held: need 180; the cache gives 180 (ceiling 120), nobody dies
    assert [e.kind for e in events.recent()] == ["reclaim.squeeze"]
    assert fs.read("/cg/gaia/cache/memory.high") == f"{120 * MI}\n" and containers.evicted == []
    fs.charge("/cg/gaia/owner", anon=300 * MI)      # the owner grows, still within its request
    fs.charge("/cg/gaia/anon-hi", anon=320 * MI)
    reclaimer.tick()   # 990 held: need 90; cache has 20 above its request, then anon-lo must go
    kinds = [(e.kind, e.container_id) for e in events.recent()]
    assert kinds[1:] == [("reclaim.squeeze", "cache"), ("reclaim.kill", "anon-lo")]
    assert [c for c, _ in containers.evicted] == ["anon-lo"] and containers.evicted[0][1].startswith(EVICT_REASON)
    assert fs.read("/cg/gaia/cache/memory.high") == f"{100 * MI}\n"   # at its request, not below
    fs.charge("/cg/gaia/anon-hi", anon=60 * MI)     # pressure over: the cache gets its ceiling back,
    reclaimer.tick()                                # 440 of room at a time
    assert fs.read("/cg/gaia/cache/memory.high") == f"{540 * MI}\n"
    reclaimer.tick()
    assert fs.read("/cg/gaia/cache/memory.high") == f"{600 * MI}\n"
    assert events.recent()[-1].kind == "reclaim.restore"


class OomCgroups:
    def __init__(self, kills, ceiling):
        self.kills, self.ceiling = kills, ceiling

    def oom_kills(self, cid):
        return self.kills

    def memory_ceiling(self, cid):
        return self.ceiling


def test_oom_report_tells_own_limit_from_squeezed_ceiling():
    from gaia_node.hooks import TaskContext
    from gaia_node.isolation.memory import OomReport
    for kills, ceiling, platform in ((0, None, False), (1, 500 * MI, False), (1, 120 * MI, True)):
        events = EventLog()
        status = types_pb2.ContainerStatus(state=types_pb2.CONTAINER_STATE_FAILED, message="killed by SIGKILL")
        ctx = TaskContext(spec=spec("c", 1, 100, 500), status=status, directory="", host_ports={}, env={})
        OomReport(OomCgroups(kills, ceiling), events).poststop(ctx)
        assert ("OOM-killed" in status.message) == bool(kills)
        assert bool(status.platform_reason) == platform
        assert status.platform_reason.startswith(EVICT_REASON) or not platform
        assert [e.kind for e in events.recent()] == (["memory.oom"] if kills else [])


def test_a_page_cache_borrower_is_never_killed_for_its_cache():
    # the kernel refused its lower ceiling for now (cache under writeback): still 150 over in cache
    cache = member("cache", priority=1, request=64, usage=214, file=160)
    anon = member("anon", priority=5, request=32, usage=160, file=0)
    owners = member("owner", priority=0, request=600, limit=600, usage=600)
    kills = policy.plan_kills([cache, anon, owners], policy.Budget(budget=800 * MI))
    assert [k.container_id for k in kills] == ["anon"]  # lower priority, but its excess is only cache
