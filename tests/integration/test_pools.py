"""Resource pools through the real CLI, master and etcd: CRUD, tree validation, submit checks."""
import pytest

from gaia_common.pb import types_pb2
from tests.integration.harness import running_cluster

APP = "name: {name}\ncommand: sleep 1000\npool: {pool}\n"


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=0) as c:
        yield c


def stored(cluster) -> dict:
    out = {}
    for value, _ in cluster.etcd.get_prefix(cluster.keys.pools):
        pool = types_pb2.Pool()
        pool.ParseFromString(value)
        out[pool.path] = pool
    return out


def test_pool_crud_and_tree_rules(cluster, tmp_path):
    spec = tmp_path / "ads.yaml"
    spec.write_text("path: ads\nweight: 3\nmin: {cpu: 100, memory: 1Ti}\nmax: {cpu: 400}\n"
                    "gpu_models: [A100, V100]\nmax_gpus: 64\n")
    created = cluster.cli_json("pool", "create", str(spec))
    assert created["path"] == "ads" and created["weight"] == 3 and created["min"]["cpu_millis"] == "100000"
    assert stored(cluster)["ads"].max_gpus == 64 and stored(cluster)["ads"].epoch > 0

    cluster.cli("pool", "create", "--path", "ads/ranking", "--min", "cpu=60", "--max", "cpu=200",
                "--gpu-model", "A100")
    # siblings' minimums add up within the parent's: 60 + 50 > 100
    bad = cluster.cli("pool", "create", "--path", "ads/search", "--min", "cpu=50", check=False)
    assert bad.returncode == 2 and "min.cpu" in bad.stderr and "'ads'" in bad.stderr
    bad = cluster.cli("pool", "create", "--path", "ads/search", "--max", "cpu=500", check=False)
    assert bad.returncode == 2 and "max.cpu" in bad.stderr
    bad = cluster.cli("pool", "create", "--path", "ads/search", "--gpu-model", "T4", check=False)
    assert bad.returncode == 2 and "gpu_models" in bad.stderr
    bad = cluster.cli("pool", "create", "--path", "nope/child", check=False)
    assert bad.returncode == 2 and "path" in bad.stderr and "'nope'" in bad.stderr
    bad = cluster.cli("pool", "create", "--path", "x", "--min", "cpu=8", "--max", "cpu=4", check=False)
    assert bad.returncode == 2 and "min.cpu" in bad.stderr
    assert cluster.cli("pool", "create", "--path", "ads", check=False).returncode == 2   # ALREADY_EXISTS

    # update: the parent may not drop below its children
    bad = cluster.cli("pool", "update", "--path", "ads", "--min", "cpu=10", check=False)
    assert bad.returncode == 2 and "children" in bad.stderr
    cluster.cli("pool", "update", "--path", "ads", "--weight", "5", "--min", "cpu=100,memory=2Ti")
    assert stored(cluster)["ads"].weight == 5 and not stored(cluster)["ads"].max_gpus   # replaced, not merged

    listed = cluster.cli_json("pool", "list")["pools"]
    assert [p["path"] for p in listed] == ["ads", "ads/ranking", "default"]
    assert "ads/ranking" in cluster.cli("pool", "list").stdout

    # delete: not while it has children; then children first
    bad = cluster.cli("pool", "delete", "ads", check=False)
    assert bad.returncode == 2 and "child" in bad.stderr
    cluster.cli("pool", "delete", "ads/ranking")
    cluster.cli("pool", "delete", "ads")
    assert stored(cluster) == {}
    assert cluster.cli("pool", "delete", "ads", check=False).returncode == 3   # NOT_FOUND


def test_submit_needs_an_existing_pool_and_delete_refuses_active_apps(cluster, tmp_path):
    app = tmp_path / "app.yaml"
    app.write_text(APP.format(name="web", pool="batch/nightly"))
    bad = cluster.cli("submit", str(app), check=False)
    assert bad.returncode == 2 and "pool" in bad.stderr and "batch/nightly" in bad.stderr

    cluster.cli("pool", "create", "--path", "batch")
    cluster.cli("pool", "create", "--path", "batch/nightly")
    cluster.cli("submit", str(app))
    bad = cluster.cli("pool", "delete", "batch/nightly", check=False)
    assert bad.returncode == 2 and "active app" in bad.stderr and "web" in bad.stderr
    cluster.cli("kill", "web")
    cluster.cli("pool", "delete", "batch/nightly")

    default = tmp_path / "default.yaml"
    default.write_text(APP.format(name="other", pool="default"))
    cluster.cli("submit", str(default))                          # `default` exists implicitly
    assert cluster.cli("pool", "delete", "default", check=False).returncode == 2


def test_a_new_leader_loads_the_pools(cluster):
    cluster.cli("pool", "create", "--path", "keep", "--weight", "2")
    cluster.start_master()
    old = cluster.leader_proc()
    old.kill()
    old.wait(10)
    listed = cluster.cli_json("pool", "list")["pools"]              # retried through the failover
    assert [(p["path"], p["weight"]) for p in listed] == [("default", 1), ("keep", 2)]


def test_raw_grpc_bad_pools_are_refused_and_nothing_is_stored(cluster):
    import grpc

    from gaia_common.client import GaiaError
    from gaia_common.pb import master_pb2
    client = cluster.client(retry_for=10)
    for bad, field in [(types_pb2.Pool(path="a"), "weight"),                       # weight 0
                       (types_pb2.Pool(path="a/", weight=1), "path"),
                       (types_pb2.Pool(path="a", weight=1, min=types_pb2.Resources(cpu_millis=2),
                                       max=types_pb2.Resources(cpu_millis=1)), "min.cpu"),
                       (types_pb2.Pool(path="a", weight=1, max_gpus=-1), "max_gpus")]:
        with pytest.raises(GaiaError) as info:
            client.call("CreatePool", master_pb2.PoolRequest(pool=bad))
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and info.value.message.startswith(field)
    assert stored(cluster) == {}


def test_placement_fields_are_stored_and_scale_keeps_the_gang(cluster, tmp_path):
    app = tmp_path / "gang.yaml"
    app.write_text("name: train\ncommand: sleep 1000\ninstances: 4\ngang: 4\nmax_per_node: 1\nspread_by: rack\n"
                   "gpu_model: A100\nconstraints: [{label: zone, op: in, values: [a, b]}]\n")
    cluster.cli("submit", str(app))
    spec = cluster.cli_json("status", "train")["app"]["spec"]
    assert (spec["gang"], spec["max_per_node"], spec["spread_by"], spec["gpu_model"]) == (4, 1, "rack", "A100")
    assert spec["constraints"] == [{"label": "zone", "op": "in", "values": ["a", "b"]}]
    bad = cluster.cli("scale", "train", "3", check=False)
    assert bad.returncode == 2 and "instances" in bad.stderr and "gang" in bad.stderr
    cluster.cli("scale", "train", "6")
