"""Resource pools: the YAML form, each pool's own checks, the tree's rules (pure functions) and
the pool table over a fake fenced store (no etcd)."""
import math

import pytest

from gaia_common import spec as spec_mod
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master.app_table import Conflict
from gaia_master.pools import PoolTable, check_in_tree, children_of, parent_of
from gaia_master.store import NotLeader
from tests.unit.test_app_table import FakeStore


def pool(path, **fields) -> types_pb2.Pool:
    return spec_mod.pool_from_dict({"path": path, **fields})


def field_of(call) -> str:
    with pytest.raises(spec_mod.SpecError) as info:
        call()
    return info.value.field


# ---- the YAML form and one pool's own checks ----

def test_yaml_form():
    p = spec_mod.load_pool_yaml("path: ads/ranking\nweight: 2.5\nmin: {cpu: 8, memory: 32Gi, gpu_share: 200}\n"
                                "max: {cpu: 64, net_in: 10Gbit}\ngpu_models: [A100, V100]\nmax_gpus: 8\n")
    assert p.path == "ads/ranking" and p.weight == 2.5
    assert p.min.cpu_millis == 8000 and p.min.memory_bytes == 32 * 2**30 and p.min.gpu_share == 200
    assert p.max.cpu_millis == 64000 and p.max.net_in_bps == 10**10
    assert list(p.gpu_models) == ["A100", "V100"] and p.max_gpus == 8


def test_defaults():
    p = pool("a")
    assert p.weight == 1 and not p.max_gpus and not p.gpu_models and not p.min.cpu_millis


@pytest.mark.parametrize("doc, field", [
    ({"path": "Ads"}, "path"),
    ({"path": "a//b"}, "path"),
    ({"path": "/a"}, "path"),
    ({}, "path"),
    ({"path": "a", "weight": 0}, "weight"),
    ({"path": "a", "weight": -1}, "weight"),
    ({"path": "a", "weight": math.nan}, "weight"),
    ({"path": "a", "weight": "heavy"}, "weight"),
    ({"path": "a", "weight": True}, "weight"),
    ({"path": "a", "min": {"cpu": 8}, "max": {"cpu": 4}}, "min.cpu"),
    ({"path": "a", "min": {"memory": "-1Gi"}}, "min.memory"),
    ({"path": "a", "max": {"fpga": 1}}, "max.fpga"),
    ({"path": "a", "max": "lots"}, "max"),
    ({"path": "a", "gpu_models": "A100"}, "gpu_models"),
    ({"path": "a", "gpu_models": ["A100", "A100"]}, "gpu_models"),
    ({"path": "a", "gpu_models": ["bad/model"]}, "gpu_models[0]"),
    ({"path": "a", "max_gpus": -1}, "max_gpus"),
    ({"path": "a", "colour": "red"}, "colour"),
])
def test_bad_pools_name_the_field(doc, field):
    assert field_of(lambda: spec_mod.pool_from_dict(doc)) == field


def test_malformed_yaml():
    assert field_of(lambda: spec_mod.load_pool_yaml("path: [")) == "yaml"


def test_validate_catches_raw_messages():
    assert field_of(lambda: spec_mod.validate_pool(types_pb2.Pool(path="a"))) == "weight"   # weight 0 over gRPC


# ---- the tree ----

def tree(*pools) -> dict:
    return {p.path: p for p in pools}


def test_parents_and_children():
    assert parent_of("a/b/c") == "a/b" and parent_of("a") == ""
    t = tree(pool("a"), pool("a/b"), pool("a/b/c"), pool("a/d"), pool("ab"))
    assert sorted(p.path for p in children_of("a", t)) == ["a/b", "a/d"]


def test_parent_must_exist():
    assert field_of(lambda: check_in_tree(pool("a/b"), {})) == "path"
    check_in_tree(pool("a"), {})    # top level: the implicit root


def test_children_minimums_fit_in_the_parent():
    t = tree(pool("a", min={"cpu": 10}), pool("a/b", min={"cpu": 6}))
    check_in_tree(pool("a/c", min={"cpu": 4}), t)
    assert field_of(lambda: check_in_tree(pool("a/c", min={"cpu": 5}), t)) == "min.cpu"
    # updating a child counts its new minimum, not old + new
    check_in_tree(pool("a/b", min={"cpu": 10}), t)


def test_parent_minimum_may_not_drop_below_its_children():
    t = tree(pool("a", min={"memory": "8Gi"}), pool("a/b", min={"memory": "6Gi"}))
    assert field_of(lambda: check_in_tree(pool("a", min={"memory": "4Gi"}), t)) == "min.memory"


def test_child_maximum_within_the_parent():
    t = tree(pool("a", max={"cpu": 10}))
    check_in_tree(pool("a/b", max={"cpu": 10}), t)
    check_in_tree(pool("a/b"), t)    # no ceiling of its own: the parent's applies
    assert field_of(lambda: check_in_tree(pool("a/b", max={"cpu": 11}), t)) == "max.cpu"
    t = tree(pool("a", max={"cpu": 10}), pool("a/b", max={"cpu": 8}))
    assert field_of(lambda: check_in_tree(pool("a", max={"cpu": 6}), t)) == "max.cpu"


def test_gpu_models_and_count_within_the_parent():
    t = tree(pool("a", gpu_models=["A100"], max_gpus=8))
    check_in_tree(pool("a/b", gpu_models=["A100"], max_gpus=8), t)
    check_in_tree(pool("a/b"), t)    # inherits
    assert field_of(lambda: check_in_tree(pool("a/b", gpu_models=["T4"]), t)) == "gpu_models"
    assert field_of(lambda: check_in_tree(pool("a/b", max_gpus=9), t)) == "max_gpus"
    t = tree(pool("a"), pool("a/b", gpu_models=["T4"], max_gpus=4))
    assert field_of(lambda: check_in_tree(pool("a", gpu_models=["A100"]), t)) == "gpu_models"
    assert field_of(lambda: check_in_tree(pool("a", max_gpus=2), t)) == "max_gpus"


# ---- the table ----

@pytest.fixture
def table():
    return PoolTable(Keys("c1"), FakeStore())


def app(name, pool_path, state=types_pb2.APP_STATE_RUNNING):
    return types_pb2.AppRecord(app_id=f"{name}-1", state=state,
                               spec=types_pb2.AppSpec(name=name, pool=pool_path))


def test_create_writes_fenced_with_epoch(table):
    created = table.create(pool("a", weight=2))
    assert created.epoch == 7 and created.updated_unix_ms > 0
    [[(op, key, _)]] = table.store.committed
    assert (op, key) == ("put", "/gaia/c1/pools/a")
    assert table.exists("a") and table.get("a").weight == 2


def test_default_is_implicit(table):
    assert table.exists("default")
    assert [p.path for p in table.list()] == ["default"]
    with pytest.raises(Conflict):
        table.create(pool("default"))
    table.update(pool("default", weight=3))          # configuring it stores it
    assert table.get("default").weight == 3
    assert field_of(lambda: table.delete("default", [])) == "path"


def test_update_and_delete_need_the_pool(table):
    with pytest.raises(Conflict) as info:
        table.update(pool("a"))
    assert info.value.code == "not_found"
    with pytest.raises(Conflict):
        table.delete("a", [])


def test_delete_refuses_children_and_active_apps(table):
    table.create(pool("a"))
    table.create(pool("a/b"))
    assert field_of(lambda: table.delete("a", [])) == "path"
    assert field_of(lambda: table.delete("a/b", [app("web", "a/b")])) == "path"
    table.delete("a/b", [app("old", "a/b", types_pb2.APP_STATE_KILLED), app("web", "a")])
    table.delete("a", [])
    assert [p.path for p in table.list()] == ["default"]


def test_nothing_changes_in_memory_when_the_write_is_refused(table):
    table.store.leading = False
    with pytest.raises(NotLeader):
        table.create(pool("a"))
    assert not table.exists("a")


def test_ensure_loaded_reloads_per_epoch(table, monkeypatch):
    loads = []
    monkeypatch.setattr(table, "load", lambda etcd, epoch: (loads.append(epoch), setattr(table, "_loaded_epoch", epoch)))
    table.ensure_loaded(None, 5)
    table.ensure_loaded(None, 5)
    table.ensure_loaded(None, 9)
    assert loads == [5, 9]
