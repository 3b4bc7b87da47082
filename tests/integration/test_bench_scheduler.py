"""`gaia bench scheduler` end to end, small: a private etcd, a leader in this process, hollow
fleets that leave and join mid-run, every grant read back and checked."""
import json

from click.testing import CliRunner

from gaia_cli.main import cli

NODES, CHURN = 40, 4


def test_bench_scheduler_churns_and_every_figure_is_of_checked_grants():
    result = CliRunner().invoke(cli, ["bench", "scheduler", "--nodes", str(NODES), "--pools", "4",
                                      "--instances", "20", "--churn", str(CHURN), "-o", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    placements = figures["placements"]
    # as many nodes joined as left, and the checker saw them all live
    assert figures["workload"]["nodes"] == NODES
    assert placements["violations"] == 0 and placements["accepted_by_checker"] > 0
    # Demand exceeds capacity: the cluster fills, though the leaving fleet took AMs along
    # (small AMs pack onto the first nodes, and "leaving-hollow-*" sort first): their
    # successors ask again, as a real AM does.
    assert placements["am_restarts"] > 0
    assert figures["utilisation"]["cpu_millis"] >= 0.95
    # (each pool's DRF deviation is printed; with a tenth of 40 nodes churning it is noise)
    assert figures["drf"]["pools_checked"] > 0
    for key in ("scheduler_only_per_s", "end_to_end_per_s", "etcd_ceiling_per_s"):
        assert figures[key] > 0, key
