"""Long streams' places (gaia_common/edge.Slots) and the master's caps per caller (watch.StreamLimits):
a place is counted against the total and every cap of its caller at once, or refused naming the
limit; places come back when streams end."""
import threading

import grpc
import pytest

from gaia_common import edge
from gaia_master.access import ANONYMOUS, Principal
from gaia_master.watch import StreamLimits, Watches

LIMITS = StreamLimits(total=10, per_user=3, per_am=2, per_tenant=4)
ALICE = Principal("user", "alice", "tenant-a")
CAROL = Principal("user", "carol", "tenant-a")
BOB = Principal("user", "bob", "tenant-b")
ADMIN = Principal("user", "root", admin=True)
AM_A = Principal("am", "a-1", "tenant-a", app_id="a-1", attempt=2)
MASTER = Principal("master", "m1", admin=True)


class Aborted(Exception):
    pass


class Context:
    def abort(self, code, details):
        raise Aborted(code, details)


def take(slots, caller, times=1):
    return [slots.take(LIMITS.of(caller)) for _ in range(times)]


def test_caps_per_user_per_am_per_tenant_and_in_all():
    slots = edge.Slots(LIMITS.total, "max_streams")
    assert take(slots, ALICE, 3) == ["", "", ""]
    assert take(slots, ALICE) == ["user alice already has 3 streams open (limit max_streams_per_user)"]
    assert take(slots, AM_A) == [""]                  # the tenant's fourth: its AM
    assert take(slots, CAROL) == ["tenant tenant-a already has 4 streams open (limit max_streams_per_tenant)"]
    assert slots.held(("user", "carol")) == 0         # refused by one cap: counted against none
    assert take(slots, BOB, 3) == ["", "", ""]        # another tenant's user: caps of its own
    assert take(slots, ADMIN, 3) == ["", "", ""]      # (no tenant: only its user cap)
    assert take(slots, MASTER) == ["10 streams are already open on this server (limit max_streams)"]
    assert slots.refused == {"max_streams_per_user": 1, "max_streams_per_tenant": 1, "max_streams": 1}
    slots.give(LIMITS.of(ALICE))
    assert slots.held() == 9 and slots.held(("user", "alice")) == 2 and slots.held(("tenant", "tenant-a")) == 3
    assert take(slots, CAROL) == [""]


def test_an_am_is_capped_per_app_whatever_its_attempt():
    slots = edge.Slots(LIMITS.total)
    assert take(slots, AM_A, 2) == ["", ""]
    later = Principal("am", "a-1", "tenant-a", app_id="a-1", attempt=3)
    assert "limit max_streams_per_am" in take(slots, later)[0]


@pytest.mark.parametrize("caller", [None, ANONYMOUS, MASTER])
def test_masters_and_the_anonymous_caller_have_only_the_total(caller):
    assert LIMITS.of(caller) == []
    slots = edge.Slots(LIMITS.total)
    assert take(slots, caller, 10) == [""] * 10 and "limit total" in take(slots, caller)[0]


def test_zero_means_no_cap_of_that_kind():
    limits = StreamLimits(total=5, per_user=0, per_am=0, per_tenant=0)
    slots = edge.Slots(5)
    assert [slots.take(limits.of(ALICE)) for _ in range(5)] == [""] * 5
    assert slots.held(("user", "alice")) == 0         # uncapped: not counted either


def test_watches_slot_counts_its_caller_and_gives_the_place_back():
    caller = [ALICE]
    watches = Watches(limits=LIMITS, caller=lambda: caller[0])
    held = [watches.slot(Context(), "poll instead") for _ in range(3)]
    for slot in held:
        slot.__enter__()
    with pytest.raises(Aborted) as e:
        with watches.slot(Context(), "poll GetApp instead"):
            pass
    assert e.value.args == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                            "user alice already has 3 streams open (limit max_streams_per_user); poll GetApp instead")
    caller[0] = BOB                                   # the caller is read when the place is taken
    with watches.slot(Context(), "x"):
        assert watches.slots.held(("user", "bob")) == 1
    assert watches.slots.held(("user", "bob")) == 0
    for slot in held:
        slot.__exit__(None, None, None)
    assert watches.slots.held() == 0


def test_places_are_exact_under_contention():
    slots = edge.Slots(50)
    results, barrier = [], threading.Barrier(40)

    def worker():
        barrier.wait()
        results.append(slots.take(LIMITS.of(ALICE)))

    threads = [threading.Thread(target=worker) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("") == LIMITS.per_user and slots.held() == LIMITS.per_user


def test_more_limits_count_beside_the_callers():
    """Logs relays also count per node (watch.LOGS_PER_NODE): the node's workers are held too."""
    watches = Watches(limits=LIMITS, caller=lambda: MASTER)
    per_node = edge.Limit(("logs-node", "n1"), 2, "node n1", "LOGS_PER_NODE")
    with watches.slot(Context(), "x", more=[per_node]), watches.slot(Context(), "x", more=[per_node]):
        with pytest.raises(Aborted) as e:
            with watches.slot(Context(), "close another log stream first", more=[per_node]):
                pass
        assert "node n1 already has 2 streams open (limit LOGS_PER_NODE)" in e.value.args[1]
        with watches.slot(Context(), "x"):            # other streams are not held back by it
            pass
    assert watches.slots.held() == 0
