"""gaia update / rollback, and what `gaia status` shows of versions and rollouts."""
from click.testing import CliRunner

from gaia_common.pb import master_pb2, types_pb2
from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)

SPEC = "name: web\ninstances: 2\ncommand: ['v2']\nupdate: {max_unavailable: 2}\n"


def answer(rollout=None, version=2) -> master_pb2.AppStatus:
    record = types_pb2.AppRecord(app_id="web-1", spec=types_pb2.AppSpec(name="web", instances=2), version=version,
                                 previous_version=1, state=types_pb2.APP_STATE_RUNNING)
    if rollout is not None:
        record.rollout.CopyFrom(rollout)
    status = master_pb2.AppStatus(app=record)
    for i, (want, runs) in enumerate([(2, 2), (2, 1)]):
        view = status.instances.add()
        view.allocation.CopyFrom(types_pb2.Allocation(instance_id=str(i), node_id="n1", version=want))
        view.status.CopyFrom(types_pb2.ContainerStatus(instance_id=str(i), state=types_pb2.CONTAINER_STATE_RUNNING,
                                                       version=runs))
    return status


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_update_sends_the_validated_spec_and_the_canary_ids(fake_master, tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text(SPEC)
    fake_master.responses["UpdateApp"] = answer(types_pb2.Rollout(to_version=2, from_version=1, state="rolling",
                                                                  instance_ids=["3", "7"]), version=1)
    result = run("update", "web", str(path), "--instances", "3, 7")
    assert result.exit_code == 0, result.output
    [(method, request)] = fake_master.calls
    assert method == "UpdateApp" and request.name == "web" and list(request.instance_ids) == ["3", "7"]
    assert list(request.spec.command) == ["v2"] and request.spec.update.max_unavailable == 2
    assert "rolling: version 1 -> 2 (instances 3,7)" in result.output


def test_update_with_a_bad_spec_sends_nothing(fake_master, tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text(SPEC.replace("max_unavailable: 2", "max_unavailable: 0"))
    result = run("update", "web", str(path))
    assert result.exit_code == 2 and "update.max_unavailable" in result.output
    assert fake_master.calls == []


def test_rollback(fake_master):
    fake_master.responses["RollbackApp"] = answer(types_pb2.Rollout(to_version=1, from_version=2, state="rolling"), 1)
    result = run("rollback", "web")
    assert result.exit_code == 0 and fake_master.calls == [("RollbackApp", master_pb2.RollbackAppRequest(name="web"))]
    assert "web: version 1; rollout rolling: version 2 -> 1" in result.output


def test_status_shows_the_rollout_and_each_instances_version(fake_master):
    fake_master.responses["GetApp"] = answer(types_pb2.Rollout(to_version=2, from_version=1, state="rolling_back",
                                                               message="instance 1 failed"))
    table = run("status", "web").output
    assert "Version:" in table and "2 (previous 1)" in table
    assert "rolling back: version 1 -> 2: instance 1 failed" in table
    rows = {line.split()[0]: line.split() for line in table.splitlines()[-2:]}
    assert rows["0"][4] == "2" and rows["1"][4] == "1->2"
