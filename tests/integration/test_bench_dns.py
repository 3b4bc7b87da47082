"""`gaia bench dns` end to end, small: a private etcd, a real `gaia dns`, dnsperf when installed."""
import json
import shutil

import pytest
from click.testing import CliRunner

from gaia_cli.bench import dns as bench_dns
from gaia_cli.main import cli

SMALL = ["--apps", "3", "--instances", "2", "--seconds", "1", "--rate", "200", "--samples", "5"]


@pytest.mark.skipif(shutil.which("dnsperf") is None,
                    reason="dnsperf is not installed (Debian: dnsperf; .ci/run installs it)")
def test_bench_dns_measures_every_figure():
    result = CliRunner().invoke(cli, ["bench", "dns", *SMALL, "-o", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["throughput"]["qps"] > 0 and figures["latency"]["n"] > 0
    assert figures["latency"]["lost_pct"] == 0.0
    for key in ("appear_ms", "vanish_delete_ms", "vanish_lease_revoke_ms"):
        assert figures[key]["n"] == 5 and figures[key]["p99"] < 2000, key
    assert figures["vanish_lease_expiry_ms"]["n"] == bench_dns.EXPIRY_SAMPLES
    labels = [row["figure"] for row in figures["table"]]
    assert labels[0] == "max throughput (qps)" and labels[1].startswith("p99 latency at 200 qps")


def test_bench_dns_says_when_dnsperf_is_missing(monkeypatch):
    which = shutil.which
    monkeypatch.setattr(bench_dns.shutil, "which",
                        lambda name, *a, **kw: None if name == "dnsperf" else which(name, *a, **kw))
    result = CliRunner().invoke(cli, ["bench", "dns", *SMALL], catch_exceptions=False)
    assert result.exit_code == 1
    assert "dnsperf is not installed" in result.output          # in the table's notes and the error
    assert "registry put -> resolvable" in result.output        # the rest was measured
