"""CPU shares under contention on real cgroup v1: two busy containers pinned to the same CPU,
requests 250m and 750m, no cpu limit (no quota): their cpu time splits 1:3."""
import sys
import time

import pytest

from gaia_common.pb import types_pb2
from tests.integration.node_harness import CGROUP_ROOT, REAL_V1, node, node_cfg, wait_for  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not REAL_V1, reason="needs root and real cgroup v1 cpu/cpuacct controllers")
# Pins itself to cpu 0, then spins (bounded).
SPIN = ("import os, time\n"
        "os.sched_setaffinity(0, {0})\n"
        "end = time.time() + 60\n"
        "while time.time() < end:\n"
        "    pass\n")
WINDOW = 4.0


def read(path):
    with open(path) as f:
        return f.read().strip()


def test_shares_split_one_cpu_by_request(node):
    specs = []
    for name, millis in (("small", 250), ("large", 750)):
        spec = node.spec(name=name, command=[sys.executable, "-c", SPIN])
        spec.resources.request.cpu_millis = millis
        specs.append(spec)
        assert node.start_container(spec).state == types_pb2.CONTAINER_STATE_RUNNING
    small, large = (s.container_id for s in specs)
    assert read(f"{node.cgroup_dir('cpu', small)}/cpu.shares") == "256"
    assert read(f"{node.cgroup_dir('cpu', large)}/cpu.shares") == "768"
    assert read(f"{node.cgroup_dir('cpu', large)}/cpu.cfs_quota_us") == "-1"   # no limit: no quota
    cgroups = node.manager.cgroups
    time.sleep(1.0)  # both spinning, both pinned
    node.report()    # the cpu meter's reading starts its window here
    before = {cid: cgroups.cpu_usage_ns(cid) for cid in (small, large)}
    time.sleep(WINDOW)
    used = {cid: cgroups.cpu_usage_ns(cid) - before[cid] for cid in (small, large)}
    metered = {s.container_id: s.usage.cpu_millis for s in node.report().containers}
    ratio = used[large] / used[small]
    print(f"\ncpu over {WINDOW:g}s pinned to cpu 0: small {used[small] / 1e9:.2f}s, large {used[large] / 1e9:.2f}s, "
          f"ratio {ratio:.2f} (want 3 +- 10%); meter {metered[small]}m / {metered[large]}m")
    assert 2.7 <= ratio <= 3.3
    assert used[small] + used[large] > 0.5 * WINDOW * 1e9        # really contended for one whole cpu
    assert 2.4 <= metered[large] / max(1, metered[small]) <= 3.6   # the meter sees the same split
    assert metered[small] + metered[large] <= 1100                 # one cpu, whatever the rate window
