"""The leader's loop and applier around Sfair, without etcd: resting after fruitless cycles,
and the re-check that drops only the grants on nodes that left."""
import types

from gaia_master.scheduling import applier as applier_mod
from gaia_master.scheduling import loop as loop_mod


class Master:
    """Just what SchedulingLoop's constructor reads."""
    table = node_view = book = None


def loop_with(cycles, monkeypatch):
    """A loop whose cycles return `cycles` in turn (then leadership ends); returns the loop and
    the rests it took."""
    loop = loop_mod.SchedulingLoop(Master(), interval=1.0)
    results = iter(cycles)
    rests = []
    monkeypatch.setattr(loop, "cycle", lambda sfair: next(results))
    monkeypatch.setattr(loop_mod.time, "sleep", rests.append)
    left = [len(cycles)]

    def current():
        left[0] -= 1
        return left[0] >= 0
    loop._wake.set()
    monkeypatch.setattr(loop._wake, "wait", lambda timeout=None: True)
    return loop, rests, current


def test_a_cycle_that_placed_nothing_is_followed_by_a_rest(monkeypatch):
    fruitless = {"placed": 0, "evicted": 0}
    loop, rests, current = loop_with([fruitless, {"placed": 5, "evicted": 0}, {}], monkeypatch)
    loop.run(current)
    assert len(rests) == 1                       # only after the fruitless one (not after idle ones)
    assert 0 <= rests[0] <= loop_mod.FRUITLESS_REST * loop.interval


class FakeNodes:
    def __init__(self, live):
        self.live = live

    def node(self, node_id):
        return types.SimpleNamespace(address=f"{node_id}:1") if node_id in self.live else None


def test_grants_on_a_node_that_left_are_refused_alone():
    applier = applier_mod.PlanApplier(table=None, node_view=FakeNodes({"a", "c"}), book=None)
    out = applier_mod.Applied()
    placed = applier._on_live_nodes([(0, 2), (1, 3), (2, 1)], ["a", "b", "c"], out)
    assert placed == [(0, 2), (2, 1)] and out.refused == 3


def test_the_cyclic_collector_pauses_for_a_cycles_decisions_and_comes_back_even_after_a_failure():
    import gc
    assert gc.isenabled()
    seen = []
    with loop_mod._collector_paused():
        seen.append(gc.isenabled())
    assert seen == [False] and gc.isenabled()
    try:
        with loop_mod._collector_paused():
            raise RuntimeError("Sfair failed")
    except RuntimeError:
        pass
    assert gc.isenabled()
    gc.disable()                                  # whoever disabled it before keeps it off
    try:
        with loop_mod._collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
