"""gaia pool create/update/delete/list: what is sent, what is printed, and local checks."""
import json

import pytest
from click.testing import CliRunner

from gaia_common.client import GaiaError
from gaia_common.pb import master_pb2, types_pb2
from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)

POOL_KEYS = {"path", "weight", "min", "max", "gpu_models", "max_gpus", "epoch", "updated_unix_ms", "tenant"}
EMPTY = types_pb2.Resources()


def run(*args, code=0, stdin=None):
    result = CliRunner().invoke(cli, list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result


def test_create_from_file(fake_master, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("path: ads\nweight: 2\nmin: {cpu: 4}\ngpu_models: [A100]\n")
    fake_master.responses["CreatePool"] = types_pb2.Pool(path="ads", weight=2, epoch=3, min=EMPTY, max=EMPTY)
    doc = json.loads(run("pool", "create", str(path), "-o", "json").stdout)
    assert set(doc) == POOL_KEYS and doc["path"] == "ads"
    method, request = fake_master.calls[-1]
    assert method == "CreatePool" and request.pool.min.cpu_millis == 4000 and list(request.pool.gpu_models) == ["A100"]


def test_create_from_flags_and_stdin(fake_master):
    fake_master.responses["CreatePool"] = types_pb2.Pool(path="a/b", weight=1)
    out = run("pool", "create", "--path", "a/b", "--max", "cpu=8, memory=16Gi", "--gpu-model", "T4",
              "--max-gpus", "2").stdout
    assert "a/b" in out
    request = fake_master.calls[-1][1]
    assert request.pool.max.memory_bytes == 16 * 2**30 and request.pool.max_gpus == 2 and request.pool.weight == 1
    fake_master.responses["UpdatePool"] = types_pb2.Pool(path="a", weight=5)
    run("pool", "update", "-", stdin="path: a\nweight: 5\n")
    assert fake_master.calls[-1] == ("UpdatePool", master_pb2.PoolRequest(pool=types_pb2.Pool(path="a", weight=5, min=EMPTY, max=EMPTY)))


@pytest.mark.parametrize("args, message", [
    (["--path", "A"], "path"),
    (["--path", "a", "--weight", "0"], "weight"),
    (["--path", "a", "--min", "cpu"], "--min"),
    (["--path", "a", "--min", "cpu=9", "--max", "cpu=8"], "min.cpu"),
    ([], "--path"),
])
def test_bad_input_is_caught_before_sending(fake_master, args, message):
    result = run("pool", "create", *args, code=2)
    assert message in result.output and not fake_master.calls


def test_file_and_flags_are_exclusive(fake_master, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("path: a\n")
    assert "not both" in run("pool", "create", str(path), "--weight", "2", code=2).output


def test_list_and_delete(fake_master):
    fake_master.responses["ListPools"] = master_pb2.ListPoolsResponse(pools=[
        types_pb2.Pool(path="ads", weight=2, min=types_pb2.Resources(cpu_millis=4000, memory_bytes=2**30),
                       max=EMPTY, gpu_models=["A100"], max_gpus=4),
        types_pb2.Pool(path="default", weight=1, min=EMPTY, max=EMPTY)])
    table = run("pool", "list").stdout.splitlines()
    assert table[0].split() == ["POOL", "WEIGHT", "MIN", "MAX", "GPU_MODELS", "MAX_GPUS", "TENANT"]
    assert table[1].split() == ["ads", "2", "cpu=4,memory=1Gi", "-", "A100", "4", "-"]
    doc = json.loads(run("pool", "list", "-o", "json").stdout)
    assert [p["path"] for p in doc["pools"]] == ["ads", "default"] and set(doc["pools"][1]) == POOL_KEYS
    fake_master.responses["DeletePool"] = types_pb2.Pool(path="ads")
    assert run("pool", "delete", "ads").stdout.strip() == "deleted ads"
    assert fake_master.calls[-1] == ("DeletePool", master_pb2.DeletePoolRequest(path="ads"))


def test_master_refusals_become_exit_codes(fake_master):
    import grpc
    fake_master.responses["DeletePool"] = GaiaError(grpc.StatusCode.INVALID_ARGUMENT, "path: pool 'a' has child pools")
    assert "child pools" in run("pool", "delete", "a", code=2).output
    fake_master.responses["DeletePool"] = GaiaError(grpc.StatusCode.NOT_FOUND, "no pool 'x'")
    run("pool", "delete", "x", code=3)
