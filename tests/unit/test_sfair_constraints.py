"""Constraints: node labels, GPU model, anti-affinity per node and per failure domain, and
the filter counts that explain a pending request."""
import pytest

from gaia_master.sfair import LabelConstraint as L, Spread
from tests.unit.sfair_harness import Harness, shape


def labelled() -> Harness:
    h = Harness().pool("p")
    h.node("a", cpu=8, mem_gb=8, labels={"disk": "ssd", "zone": "z1"})
    h.node("b", cpu=8, mem_gb=8, labels={"disk": "hdd", "zone": "z1"})
    h.node("c", cpu=8, mem_gb=8, labels={"zone": "z2"})
    h.node("d", cpu=8, mem_gb=8, labels={"disk": "nvme", "zone": "z2"})
    return h


@pytest.mark.parametrize("constraint, nodes", [
    (L("disk", "=", ("ssd",)), {"a"}),
    (L("disk", "!=", ("ssd",)), {"b", "c", "d"}),
    (L("disk", "in", ("ssd", "nvme")), {"a", "d"}),
    (L("disk", "not_in", ("ssd", "nvme")), {"b", "c"}),
    (L("disk", "exists"), {"a", "b", "d"}),
    (L("disk", "not_exists"), {"c"}),
    (L("disk", "=", ("tape",)), set()),
])
def test_label_operators(constraint, nodes):
    h = labelled()
    h.request("x", "p", 8, shape(cpu=1, mem_gb=1), constraints=[constraint],
              spread=Spread(max_per_node=2))
    h.cycle()
    assert set(h.nodes_of("x")) == nodes


def test_constraints_combine():
    h = labelled()
    h.request("x", "p", 100, shape(cpu=1, mem_gb=1), constraints=[L("zone", "=", ("z2",)), L("disk", "exists")])
    h.cycle()
    assert set(h.nodes_of("x")) == {"d"} and h.count("x") == 8


def test_gpu_model_of_the_request_and_the_pool():
    h = Harness().pool("cv", gpu_models=("A100", "H100")).pool("any")
    h.node("v", cpu=8, mem_gb=8, gpu_model="V100", gpu_share=800)
    h.node("a", cpu=8, mem_gb=8, gpu_model="A100", gpu_share=800)
    h.node("h", cpu=8, mem_gb=8, gpu_model="H100", gpu_share=800)
    h.request("pool-limited", "cv", 30, shape(cpu=0.1, gpu_share=100))
    h.cycle()
    assert set(h.nodes_of("pool-limited")) == {"a", "h"}
    rid = h.request("wants-v100", "cv", 1, shape(cpu=0.1, gpu_share=100), gpu_models=("V100",))
    plan = h.cycle()
    assert h.count("wants-v100") == 0
    assert "gpu-model: 3 removed" in plan.pending[rid]
    h.request("free-choice", "any", 8, shape(cpu=0.1, gpu_share=100), gpu_models=("V100",))
    h.cycle()
    assert set(h.nodes_of("free-choice")) == {"v"}


def test_cpu_only_requests_ignore_gpu_models():
    h = Harness().pool("cv", gpu_models=("A100",)).node("plain", cpu=8, mem_gb=8)
    h.request("web", "cv", 2, shape(cpu=1, mem_gb=1))
    h.cycle()
    assert h.count("web") == 2


def test_anti_affinity_at_most_k_per_node():
    h = Harness().pool("p")
    for i in range(5):
        h.node(f"n{i}", cpu=16, mem_gb=16)
    rid = h.request("svc", "p", 20, shape(cpu=1, mem_gb=1), spread=Spread(max_per_node=2))
    plan = h.cycle()
    nodes = h.nodes_of("svc")
    assert len(nodes) == 10 and all(nodes.count(n) == 2 for n in set(nodes))
    assert "spread-node: 5 removed" in plan.pending[rid]
    # running instances count in the next cycle
    h.request("svc", "p", 1, shape(cpu=1, mem_gb=1), spread=Spread(max_per_node=2), request_id="svc/more")
    h.cycle()
    assert h.count("svc") == 10


def test_anti_affinity_per_rack():
    h = Harness().pool("p")
    for rack in ("r1", "r2", "r3"):
        for i in range(3):
            h.node(f"{rack}-{i}", cpu=16, mem_gb=16, labels={"rack": rack})
    h.node("unracked", cpu=16, mem_gb=16)
    rid = h.request("db", "p", 10, shape(cpu=1, mem_gb=1),
                    spread=Spread(domain_key="rack", max_per_domain=2))
    plan = h.cycle()
    racks = [n.split("-")[0] for n in h.nodes_of("db")]
    assert sorted(racks) == ["r1", "r1", "r2", "r2", "r3", "r3"]
    assert "spread-domain: 10 removed" in plan.pending[rid]


def test_prefer_spread_scores_emptier_nodes():
    h = Harness().pool("p")
    for i in range(4):
        h.node(f"n{i}", cpu=16, mem_gb=16)
    h.request("web", "p", 4, shape(cpu=1, mem_gb=1), spread=Spread(prefer_spread=True))
    h.cycle()
    assert sorted(h.nodes_of("web")) == ["n0", "n1", "n2", "n3"]


def test_pending_reason_counts_nodes_removed_by_each_filter():
    h = Harness().pool("p")
    for i in range(150):
        h.node(f"arm{i}", cpu=64, mem_gb=256, labels={"arch": "arm64"})
    for i in range(9800):
        h.node(f"small{i}", cpu=64, mem_gb=8, labels={"arch": "amd64"})
    for i in range(50):
        h.node(f"busy{i}", cpu=1, mem_gb=256, labels={"arch": "amd64"})
    rid = h.request("ml", "p", 1, shape(cpu=2, mem_gb=128), constraints=[L("arch", "=", ("amd64",))])
    plan = h.cycle()
    reason = plan.pending[rid]
    assert reason == ("1 of 1 pending: labels: 150 removed (labels do not match arch = amd64); "
                      "fits: 9,850 removed (short of cpu_millis, memory_bytes); 0 of 10,000 nodes left")
