"""gaia submit: local validation first (nothing is sent for a bad spec), one idempotency key per run."""
import json
import uuid

import grpc
import pytest
from click.testing import CliRunner

from gaia_common.client import GaiaError
from gaia_common.pb import master_pb2
from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)

GOOD = """
name: hello
instances: 2
command: ["python3", "-m", "http.server"]
resources:
  request: {cpu: 500m, memory: 64Mi}
ports: [http]
"""


def submit(tmp_path, text, *extra):
    path = tmp_path / "app.yaml"
    path.write_text(text)
    return CliRunner().invoke(cli, ["submit", str(path), *extra], catch_exceptions=False)


def test_submit_prints_the_app_id_and_sends_one_key(fake_master, tmp_path):
    fake_master.responses["SubmitApp"] = master_pb2.SubmitAppResponse(app_id="hello-7f3a")
    result = submit(tmp_path, GOOD)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hello-7f3a"
    [(method, request)] = fake_master.calls
    assert method == "SubmitApp"
    assert request.spec.name == "hello" and request.spec.instances == 2
    assert request.spec.resources.request.memory_bytes == 64 * 2**20
    assert uuid.UUID(request.idempotency_key).version == 4


def test_each_run_gets_a_new_key_unless_given(fake_master, tmp_path):
    fake_master.responses["SubmitApp"] = master_pb2.SubmitAppResponse(app_id="a")
    submit(tmp_path, GOOD)
    submit(tmp_path, GOOD)
    submit(tmp_path, GOOD, "--idempotency-key", "deploy-42")
    keys = [request.idempotency_key for _, request in fake_master.calls]
    assert keys[0] != keys[1] and keys[2] == "deploy-42"


def test_submit_json_is_the_response(fake_master, tmp_path):
    fake_master.responses["SubmitApp"] = master_pb2.SubmitAppResponse(app_id="a1", existed=True)
    result = submit(tmp_path, GOOD, "-o", "json")
    assert json.loads(result.stdout) == {"app_id": "a1", "existed": True}


@pytest.mark.parametrize("text, field", [
    ("name: [unclosed\n", "yaml"),
    (GOOD + "replicas: 3\n", "replicas"),
    (GOOD.replace("memory: 64Mi", "memory: -64Mi"), "resources.request.memory"),
    (GOOD.replace("cpu: 500m", "cpu: 1000000"), "resources.request.cpu"),
    (GOOD.replace("name: hello", "name: Hello_World"), "name"),
    ("- just\n- a list\n", "spec"),
])
def test_bad_spec_names_the_field_and_sends_nothing(fake_master, tmp_path, text, field):
    result = submit(tmp_path, text)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert f": {field}: " in result.stderr
    assert fake_master.calls == [] and fake_master.clients == []


def test_missing_file_is_a_bad_request(fake_master, tmp_path):
    result = CliRunner().invoke(cli, ["submit", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml" in result.stderr
    assert fake_master.calls == []


def test_spec_from_stdin(fake_master):
    fake_master.responses["SubmitApp"] = master_pb2.SubmitAppResponse(app_id="s1")
    result = CliRunner().invoke(cli, ["submit", "-"], input=GOOD)
    assert result.exit_code == 0 and result.stdout.strip() == "s1"


@pytest.mark.parametrize("code, exit_code", [
    (grpc.StatusCode.INVALID_ARGUMENT, 2),
    (grpc.StatusCode.ALREADY_EXISTS, 2),
    (grpc.StatusCode.NOT_FOUND, 3),
    (grpc.StatusCode.UNAVAILABLE, 1),
    (grpc.StatusCode.INTERNAL, 1),
])
def test_master_refusals_become_exit_codes(fake_master, tmp_path, code, exit_code):
    fake_master.responses["SubmitApp"] = GaiaError(code, "app 'hello' says no")
    result = submit(tmp_path, GOOD)
    assert result.exit_code == exit_code
    assert result.stderr == "error: app 'hello' says no\n"
