"""The referee of `gaia bench scheduler`, on grants built in memory (no etcd, no scheduler)."""
import types

import pytest

from gaia_cli.bench import grant_check as gc
from gaia_common.pb import types_pb2

GB = 2**30
CPU = 1000


def res(cpu=0, mem=0, **more):
    return types_pb2.Resources(cpu_millis=int(cpu * CPU), memory_bytes=int(mem * GB), **more)


def node(node_id, cpu=8, mem=32, labels=None, **more):
    return types_pb2.NodeInfo(node_id=node_id, capacity=res(cpu, mem, **more), labels=labels or {})


def app(name, pool="default", instances=1, **spec):
    return types_pb2.AppRecord(app_id=f"id-{name}", spec=types_pb2.AppSpec(
        name=name, pool=pool, instances=instances, **spec))


def alloc(app_record, instance, node_id, cpu=1, mem=1, is_am=False, **more):
    return types_pb2.Allocation(app_id=app_record.app_id, instance_id=str(instance), node_id=node_id,
                                request=res(cpu, mem, **more), is_am=is_am)


def grants(nodes, apps, allocations, pools=()):
    return gc.Grants(cluster="c", revision=7, nodes={n.node_id: n for n in nodes},
                     apps={a.app_id: a for a in apps}, allocations=list(allocations),
                     pools={p.path: p for p in pools})


def pool(path, weight=1.0, min=None, max=None, **more):
    return types_pb2.Pool(path=path, weight=weight, min=min or res(), max=max or res(), **more)


def one_violation(report, *words):
    assert len(report.violations) == 1, report.violations
    for w in words:
        assert w in report.violations[0], report.violations[0]
    return report.violations[0]


# ---- 1. capacity ----

def test_clean_grants_are_ok_and_all_accepted():
    web = app("web", instances=2)
    report = gc.check(grants([node("n1"), node("n2")], [web],
                             [alloc(web, "am", "n1", is_am=True), alloc(web, 0, "n1"), alloc(web, 1, "n2")]))
    assert report.ok and report.violations == []
    assert (report.allocations, report.checked, report.placements, report.accepted) == (3, 3, 2, 2)
    assert (report.nodes, report.apps, report.pools) == (2, 1, 1)     # `default` is implied


def test_over_capacity_in_one_dimension_flags_every_allocation_there():
    web = app("web", instances=3)
    # the AM's grant counts towards the node like any other
    report = gc.check(grants([node("n1", cpu=4), node("n2")], [web],
                             [alloc(web, "am", "n1", cpu=1, is_am=True), alloc(web, 0, "n1", cpu=2),
                              alloc(web, 1, "n1", cpu=1.5), alloc(web, 2, "n2", cpu=1)]))
    one_violation(report, "node n1", "cpu_millis", "4500", "4000")
    assert not report.ok and report.accepted == 1 and report.placements == 3


def test_over_capacity_in_an_other_dimension():
    job = app("gpu")
    report = gc.check(grants([node("n1", gpu_share=100)], [job],
                             [alloc(job, 0, "n1", gpu_share=100), alloc(job, 1, "n1", gpu_share=50)]))
    one_violation(report, "node n1", "gpu_share", "150")


def test_allocations_on_departed_nodes_are_counted_not_errors():
    web = app("web", instances=2)
    report = gc.check(grants([node("n1", cpu=1)], [web],
                             [alloc(web, 0, "n1", cpu=1), alloc(web, 1, "gone", cpu=64)]))
    assert report.ok and report.on_departed_nodes == 1
    assert (report.checked, report.placements, report.accepted) == (1, 1, 1)


def test_allocations_of_unknown_apps_are_counted_apart():
    ghost = app("ghost")
    report = gc.check(grants([node("n1")], [], [alloc(ghost, 0, "n1")]))
    assert report.ok and report.unknown_app == 1 and report.checked == 0


# ---- 2. constraints ----

LABELS = {"zone": "a", "disk": "ssd"}

CASES = [   # (label, op, values, holds on LABELS)
    ("zone", "=", ["a"], True), ("zone", "=", ["b"], False), ("rack", "=", ["a"], False),
    ("zone", "!=", ["b"], True), ("zone", "!=", ["a"], False), ("rack", "!=", ["a"], True),
    ("zone", "in", ["a", "b"], True), ("zone", "in", ["b", "c"], False), ("rack", "in", ["a"], False),
    ("zone", "not_in", ["b", "c"], True), ("zone", "not_in", ["a", "b"], False), ("rack", "not_in", ["a"], True),
    ("disk", "exists", [], True), ("rack", "exists", [], False),
    ("rack", "not_exists", [], True), ("disk", "not_exists", [], False),
    ("zone", "~", ["a"], False),
]


@pytest.mark.parametrize("label,op,values,holds", CASES)
def test_each_constraint_op(label, op, values, holds):
    assert gc.constraint_holds(label, op, values, LABELS) is holds
    job = app("job", constraints=[types_pb2.Constraint(label=label, op=op, values=values)])
    report = gc.check(grants([node("n1", labels=LABELS)], [job], [alloc(job, 0, "n1")]))
    assert report.ok is holds and report.accepted == (1 if holds else 0)
    if not holds:
        one_violation(report, "app job instance 0 on node n1", f"{label} {op}")


def test_constraints_do_not_bind_the_am():
    job = app("job", constraints=[types_pb2.Constraint(label="zone", op="=", values=["b"])],
              gpu_model="A100", max_per_node=1, spread_by="rack")
    report = gc.check(grants([node("n1", labels=LABELS)], [job], [alloc(job, "am", "n1", is_am=True)]))
    assert report.ok and report.placements == 0


def test_gpu_model_of_the_app():
    job = app("train", gpu_model="A100")
    nodes = [node("a", labels={gc.GPU_MODEL_LABEL: "A100"}), node("v", labels={gc.GPU_MODEL_LABEL: "V100"}),
             node("cpu")]
    report = gc.check(grants(nodes, [job], [alloc(job, 0, "a"), alloc(job, 1, "v"), alloc(job, 2, "cpu")]))
    assert len(report.violations) == 2 and report.accepted == 1
    assert "node v: gpu_model A100 wanted, node has V100" in report.violations[0]
    assert "node has (none)" in report.violations[1]


def test_gpu_models_of_the_pool_bind_gpu_requests():
    job = app("train", pool="ml/train")
    pools = [pool("ml", gpu_models=["A100", "H100"]), pool("ml/train")]     # inherits the parent's list
    nodes = [node("v", gpu_share=800, labels={gc.GPU_MODEL_LABEL: "V100"})]
    report = gc.check(grants(nodes, [job], [alloc(job, 0, "v", gpu_share=100), alloc(job, 1, "v")], pools))
    one_violation(report, "instance 0 on node v", "pool ml/train allows GPU models ['A100', 'H100']")


# ---- 3. anti-affinity ----

def test_max_per_node():
    web = app("web", instances=3, max_per_node=1)
    report = gc.check(grants([node("n1"), node("n2")], [web],
                             [alloc(web, 0, "n1"), alloc(web, 1, "n1"), alloc(web, 2, "n2")]))
    one_violation(report, "app web", "2 instances on node n1", "max_per_node 1")
    assert report.accepted == 1


def test_spread_by_defaults_to_an_even_spread():
    web = app("web", instances=4, spread_by="rack")
    nodes = [node(f"n{i}", labels={"rack": f"r{i % 2}"}) for i in range(4)]
    even = [alloc(web, i, f"n{i}") for i in range(4)]
    assert gc.check(grants(nodes, [web], even)).ok
    # ceil(4 instances / 2 racks) = 2 per rack: three on r0 is one too many
    skewed = [alloc(web, 0, "n0"), alloc(web, 1, "n2"), alloc(web, 2, "n0"), alloc(web, 3, "n1")]
    report = gc.check(grants(nodes, [web], skewed))
    one_violation(report, "app web", "3 instances in rack=r0", "max_per_domain 2")
    assert report.accepted == 1


def test_spread_by_on_a_node_without_the_label():
    web = app("web", instances=2, spread_by="rack")
    report = gc.check(grants([node("n1", labels={"rack": "r1"}), node("n2")], [web],
                             [alloc(web, 0, "n1"), alloc(web, 1, "n2")]))
    one_violation(report, "instance 1 on node n2", "no such label")


def test_max_per_domain_explicit_or_even():
    spec = types.SimpleNamespace(instances=5, max_per_domain=0)
    assert gc.max_per_domain(spec, 2) == 3 and gc.max_per_domain(spec, 5) == 1
    spec.max_per_domain = 4
    assert gc.max_per_domain(spec, 2) == 4
    assert gc.max_per_domain(types.SimpleNamespace(instances=5), 2) == 3    # field not generated yet


# ---- 4. pool maxima ----

def test_pool_over_its_max():
    job = app("job", pool="ads")
    pools = [pool("ads", max=res(cpu=2))]
    report = gc.check(grants([node("n1")], [job], [alloc(job, 0, "n1", cpu=2), alloc(job, 1, "n1", cpu=1)], pools))
    one_violation(report, "pool ads", "cpu_millis 3000", "max 2000")
    assert report.accepted == 0


def test_parent_max_caps_its_whole_subtree():
    a, b = app("a", pool="ads/a"), app("b", pool="ads/b")
    pools = [pool("ads", max=res(cpu=4)), pool("ads/a", max=res(cpu=3)), pool("ads/b")]
    allocs = [alloc(a, 0, "n1", cpu=3), alloc(b, 0, "n1", cpu=2)]
    report = gc.check(grants([node("n1")], [a, b], allocs, pools))
    one_violation(report, "pool ads:", "cpu_millis 5000", "max 4000")     # each child is within its own
    other = app("other", pool="default")
    report = gc.check(grants([node("n1")], [a, other], [alloc(a, 0, "n1", cpu=3), alloc(other, 0, "n1", cpu=3)],
                             pools))
    assert report.ok


def test_pool_max_gpus_caps_gpu_share():
    job = app("train", pool="ml")
    pools = [pool("ml", max_gpus=1)]
    nodes = [node("g", gpu_share=400)]
    report = gc.check(grants(nodes, [job], [alloc(job, 0, "g", gpu_share=100), alloc(job, 1, "g", gpu_share=50)],
                             pools))
    one_violation(report, "pool ml", "gpu_share 150", "max 100")


def test_departed_grants_do_not_count_towards_pools():
    job = app("job", pool="ads")
    report = gc.check(grants([node("n1")], [job], [alloc(job, 0, "n1", cpu=2), alloc(job, 1, "gone", cpu=2)],
                             [pool("ads", max=res(cpu=2))]))
    assert report.ok


# ---- 5. DRF ----

def drf_paper(a_tasks, b_tasks, weights=(1.0, 1.0)):
    """The DRF paper's example: 9 CPUs, 18 GB; A's tasks <1 CPU, 4 GB>, B's <3 CPU, 1 GB>."""
    a, b = app("a", pool="A", instances=10), app("b", pool="B", instances=10)
    nodes = [node("n1", cpu=9, mem=18)]
    allocs = [alloc(a, i, "n1", cpu=1, mem=4) for i in range(a_tasks)]
    allocs += [alloc(b, i, "n1", cpu=3, mem=1) for i in range(b_tasks)]
    pools = [pool("A", weight=weights[0]), pool("B", weight=weights[1])]
    demand = {"A": res(cpu=10, mem=40), "B": {"cpu_millis": 30 * CPU, "memory_bytes": 10 * GB}}
    return gc.check(grants(nodes, [a, b], allocs, pools), demand)


def test_drf_paper_example():
    report = drf_paper(3, 2)
    assert report.ok and report.drf_ok
    rows = {r.path: r for r in report.drf}
    for path in "AB":
        assert rows[path].fair_share == pytest.approx(2 / 3)
        assert rows[path].dominant_share == pytest.approx(2 / 3)
        assert rows[path].within and abs(rows[path].deviation) < 1e-9
    assert rows["A"].tolerance == pytest.approx(4 / 18)      # A's largest container: 4 GB of 18
    assert rows["default"].fair_share == 0 and rows["default"].within


def test_drf_paper_example_unfair_split_is_out_of_tolerance():
    report = drf_paper(4, 0)                                  # A holds 16 GB of 18, B nothing
    rows = {r.path: r for r in report.drf}
    assert report.ok and not report.drf_ok                    # legal grants, unfair ones
    # A is one container (4 GB of 18) over its fair share: within tolerance, just
    assert rows["A"].deviation == pytest.approx(16 / 18 - 2 / 3) == pytest.approx(rows["A"].tolerance)
    assert rows["A"].within
    assert rows["B"].deviation == pytest.approx(-2 / 3) and not rows["B"].within
    assert "1 outside tolerance" in gc.format_report(report)


def test_weighted_drf_on_one_resource():
    fair = fair_shares({"gold": 3, "bronze": 1}, {"gold": 100, "bronze": 100}, cpus=12)
    assert fair == pytest.approx({"gold": 0.75, "bronze": 0.25, "default": 0})


def test_weighted_drf_on_two_resources():
    """Weights 2:1 on the DRF paper's cluster: A's share = 2 x B's, until memory runs out."""
    report = drf_paper(0, 0, weights=(2.0, 1.0))
    rows = {r.path: r for r in report.drf}
    # A gets 9L tasks (share 2L), B 3L (share L); memory 36L + 3L = 18 binds first: L = 6/13
    assert rows["A"].fair_share == pytest.approx(12 / 13) and rows["B"].fair_share == pytest.approx(6 / 13)


def test_a_pool_never_gets_more_than_its_demand_or_max():
    fair = fair_shares({"gold": 3, "bronze": 1}, {"gold": 3, "bronze": 100}, cpus=12)
    assert fair["gold"] == pytest.approx(0.25) and fair["bronze"] == pytest.approx(0.75)
    fair = fair_shares({"gold": 3, "bronze": 1}, {"gold": 100, "bronze": 100}, cpus=12,
                       pools=[pool("gold", weight=3, max=res(cpu=2)), pool("bronze")])
    assert fair["gold"] == pytest.approx(2 / 12) and fair["bronze"] == pytest.approx(10 / 12)


def test_guaranteed_minimums_come_first():
    pools = [pool("gold", weight=1), pool("bronze", weight=1, min=res(cpu=9))]
    fair = fair_shares({}, {"gold": 100, "bronze": 100}, cpus=12, pools=pools)
    assert fair["bronze"] == pytest.approx(0.75) and fair["gold"] == pytest.approx(0.25)
    # a guarantee beyond the demand gives only the demand
    fair = fair_shares({}, {"gold": 100, "bronze": 2}, cpus=12, pools=pools)
    assert fair["bronze"] == pytest.approx(2 / 12) and fair["gold"] == pytest.approx(10 / 12)


def test_siblings_share_their_parents_allotment():
    pools = [pool("ads"), pool("ads/online", weight=3), pool("ads/offline"), pool("batch")]
    fair = fair_shares({}, {"ads/online": 100, "ads/offline": 100, "batch": 100}, cpus=16, pools=pools)
    assert fair == pytest.approx({"ads/online": 6 / 16, "ads/offline": 2 / 16, "batch": 8 / 16, "default": 0})
    # batch wants little: ads takes the rest, split 3:1 inside
    fair = fair_shares({}, {"ads/online": 100, "ads/offline": 100, "batch": 4}, cpus=16, pools=pools)
    assert fair["batch"] == pytest.approx(4 / 16)
    assert fair["ads/online"] == pytest.approx(9 / 16) and fair["ads/offline"] == pytest.approx(3 / 16)
    # the parent's max caps its children together
    pools[0] = pool("ads", max=res(cpu=4))
    fair = fair_shares({}, {"ads/online": 100, "ads/offline": 100, "batch": 100}, cpus=16, pools=pools)
    assert fair["ads/online"] == pytest.approx(3 / 16) and fair["batch"] == pytest.approx(12 / 16)


def test_progressive_filling_goes_on_for_pools_that_do_not_need_the_exhausted_resource():
    """CPU runs out at level 1/2 (5% of each CPU demand); the memory-only pool keeps rising
    until memory runs out: 10 - 5% of the third pool's 1."""
    shares = gc.progressive_fill(
        capacity=gc.np.array([10.0, 10.0]), demand=gc.np.array([[100.0, 0.0], [0.0, 100.0], [100.0, 1.0]]),
        weight=gc.np.ones(3), minimum=gc.np.zeros((3, 2)), scale=gc.np.array([0.1, 0.1]))
    assert shares * 100 == pytest.approx([5, 9.95, 5])


def test_usage_counts_as_demand_when_none_is_given():
    job = app("job", pool="ads")
    report = gc.check(grants([node("n1", cpu=10)], [job], [alloc(job, 0, "n1", cpu=2)], [pool("ads")]),
                      demand={})
    rows = {r.path: r for r in report.drf}
    assert rows["ads"].fair_share == pytest.approx(0.2) and rows["ads"].within


def fair_shares(weights: dict, cpus_wanted: dict, cpus: int, pools=None) -> dict:
    pools = pools or [pool(p, weight=w) for p, w in weights.items()]
    demand = {p: res(cpu=c) for p, c in cpus_wanted.items()}
    report = gc.check(grants([node("n1", cpu=cpus, mem=1000)], [], [], pools), demand)
    return {r.path: r.fair_share for r in report.drf}


# ---- printing ----

def test_format_report():
    web = app("web", instances=2, max_per_node=1)
    report = gc.check(grants([node("n1")], [web], [alloc(web, 0, "n1"), alloc(web, 1, "n1")]),
                      demand={"default": res(cpu=2)})
    text = gc.format_report(report)
    assert "2 allocations, 1 nodes, 1 apps, 1 pools" in text
    assert "accepted 0 of 2 placements; 1 violations" in text and "max_per_node 1" in text
    assert "default" in text and "DRF over 1 leaf pools: 0 outside tolerance" in text
    assert "(ok)" in gc.format_report(gc.check(grants([node("n1")], [], [])))
