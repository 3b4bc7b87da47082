"""Elastic memory (EMC) on real cgroup v1, through the real node manager and process driver.

cgroup v1 semantics at hand: a soft limit only acts under global reclaim (never on this big,
idle machine), and with no swap anonymous memory cannot be squeezed, only killed. So the node
manager keeps its budget itself: page cache is squeezed out of borrowers by lowering their
memory.limit_in_bytes, anonymous borrowers are killed lowest priority first. The same scenario
with hard limits only shows the difference. The scenario itself is gaia_cli/bench/node_memory.py
(`gaia bench node` prints the same figures).
"""
import pytest

from gaia_cli.bench.node_memory import MI, Scenario, swap_bytes
from tests.integration.node_harness import REAL_V1

pytestmark = pytest.mark.skipif(not REAL_V1, reason="needs root and a real cgroup v1 memory controller")
ANON_BORROWERS = ["anon-p2", "anon-p4", "anon-p6"]


@pytest.fixture(scope="module")
def outcomes(etcd_server, tmp_path_factory):
    swap = swap_bytes()
    print(f"\nswap on this machine: {swap} bytes ({'none' if not swap else 'present'})")
    emc = Scenario(etcd_server.endpoint, str(tmp_path_factory.mktemp("emc")), emc=True).run()
    hard = Scenario(etcd_server.endpoint, str(tmp_path_factory.mktemp("hard")), emc=False).run()
    for figures in (emc, hard):
        print(f"{figures['mode']}: killed {figures['killed']} (reclaim kill order {figures['kill_order']}), "
              f"borrowed {figures['borrowed_bytes'] // MI}Mi, reclaim events {figures['reclaim_events']}")
        for name, c in figures["containers"].items():
            print(f"  {name}: {c['usage_borrowing'] // MI}Mi -> {c['usage_final'] // MI}Mi "
                  f"(request {c['request_bytes'] // MI}Mi) {c['state']} {c['ended_by']}")
    return {"emc": emc, "hard": hard, "swap": swap}


def test_emc_borrowers_borrow_then_give_back_under_pressure(outcomes):
    emc = outcomes["emc"]
    c = emc["containers"]
    assert emc["events_while_borrowing"] == 0            # while the owners idled, borrowing was free
    assert emc["borrowed_bytes"] > 400 * MI
    assert emc["reclaim_events"]["squeeze"] >= 1 and emc["reclaim_events"]["kill"] >= 1   # pressure happened
    # the page-cache borrower shrank to about its request and lives, though its priority is the lowest
    cache = c["cache-p1"]
    assert cache["state"] == "CONTAINER_STATE_RUNNING" and not cache["ended_by"]
    assert cache["usage_borrowing"] > cache["request_bytes"] + 64 * MI
    # (to within what a squeeze leaves: give-backs under 4Mi are not worth one)
    assert cache["usage_final"] <= cache["request_bytes"] + 8 * MI, cache
    assert cache["usage_borrowing"] - cache["usage_final"] >= 80 * MI
    # anonymous borrowers: killed by the node, lowest priority first, only as many as needed
    assert emc["kill_order"] == ["anon-p2", "anon-p4"]
    assert all(c[n]["ended_by"] == "reclaim" for n in emc["kill_order"])
    assert c["anon-p6"]["state"] == "CONTAINER_STATE_RUNNING"
    # once the owners leave, the squeezed headroom is given back
    assert "cache-p1" in emc["restored"]["containers"]
    assert emc["restored"]["cache-p1_ceiling_bytes"] == cache["limit_bytes"]


def test_emc_never_kills_a_container_within_its_request(outcomes):
    for figures in (outcomes["emc"], outcomes["hard"]):
        for name, c in figures["containers"].items():
            if name.startswith("owner"):
                assert c["state"] == "CONTAINER_STATE_RUNNING", (figures["mode"], name, c)
                assert 200 * MI < c["usage_final"] <= c["request_bytes"]   # they did grow to their requests
    for name in outcomes["emc"]["killed"]:
        c = outcomes["emc"]["containers"][name]
        assert c["usage_borrowing"] > c["request_bytes"]


def test_hard_limits_only_nobody_borrows_and_the_kernel_kills(outcomes):
    hard, emc = outcomes["hard"], outcomes["emc"]
    c = hard["containers"]
    assert hard["borrowed_bytes"] == 0
    assert sum(hard["reclaim_events"].values()) == 0      # never any node pressure: nothing to reclaim
    assert sorted(hard["killed"]) == ANON_BORROWERS       # every anonymous borrower, even the top priority
    assert all(c[n]["ended_by"] == "kernel-oom" for n in ANON_BORROWERS)
    assert c["cache-p1"]["state"] == "CONTAINER_STATE_RUNNING" and c["cache-p1"]["usage_final"] <= 64 * MI
    assert hard["kills"] > emc["kills"]


def test_swap_is_reported(outcomes):
    assert outcomes["swap"] >= 0   # printed above; with swap, anonymous memory could be squeezed too
