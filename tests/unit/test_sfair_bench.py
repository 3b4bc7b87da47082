"""The micro-benchmark runs (small sizes: a smoke test, not a timing)."""
from gaia_master.sfair.bench import churn, placements_per_second


def test_c1m_shaped_smoke():
    r = placements_per_second(nodes=200, pools=20, workload="c1m", apps=30, instances=100, verbose=False)
    assert r["placements"] > 0 and r["placements_per_s"] > 0
    assert r["p99_ms"] >= r["p50_ms"]


def test_mixed_smoke():
    r = placements_per_second(nodes=200, pools=20, workload="mixed", requests=500, verbose=False)
    assert r["placements"] == 500 and r["pending_requests"] == 0


def test_churn_smoke():
    r = churn(nodes=300, pools=30, cycles=3, apps=40, instances=100, verbose=False)
    assert r["placements"] > 0
