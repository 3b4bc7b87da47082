"""`gaia bench tls` arithmetic and printing (the run itself: tests/integration/test_tls.py)."""
from gaia_cli.bench import tls as bench


def test_summary_reports_the_extra_cost_of_mtls():
    out = bench._summary({"plaintext": [0.010] * 9 + [0.020], "mtls": [0.011] * 9 + [0.030]})
    assert out["plaintext_ms"]["p50"] == 10.0 and out["mtls_ms"]["p50"] == 11.0
    assert out["extra_p50_pct"] == 10.0 and out["extra_p50_ms"] == 1.0


def figures(extra):
    side = {"plaintext_ms": {"p50": 2.0, "p99": 3.0}, "mtls_ms": {"p50": 2.1, "p99": 3.5},
            "extra_p50_pct": extra, "extra_p50_ms": 0.1}
    return {"submit": {"reused_channel": side, "new_channel": side},
            "container_start": {"reused_channel": side, "new_channel": side},
            "target_extra_pct": 10.0, "met": extra < 10, "fuzz": {"executions": 5000, "failures": 0}}


def test_render_prints_every_row_the_verdict_and_the_fuzz_figures():
    text = bench.render(figures(5.0))
    rows = [line.split()[:2] for line in text.splitlines()[1:5]]
    assert rows == [["submit", "reused"], ["submit", "new"], ["container_start", "reused"], ["container_start", "new"]]
    assert text.splitlines()[5].endswith("(submit p50): met")
    assert "executions:" in text and "failures:" in text
    assert "NOT met" in bench.render(figures(12.0))


def test_fuzz_figures_say_why_they_are_missing(monkeypatch):
    monkeypatch.setattr(bench, "FUZZ_MODULE", "gaia_cli.bench.no_such_module")
    assert "not measured" in bench.fuzz_figures()["error"]
