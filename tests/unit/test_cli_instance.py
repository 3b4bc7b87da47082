"""`gaia scale --instances` and `gaia instance ...`: what they send; `gaia status` shows stopped instances."""
import pytest
from click.testing import CliRunner

from gaia_common.pb import master_pb2, types_pb2
from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)
from tests.unit.test_cli_read_commands import app_status, run


def test_scale_by_instance_ids(fake_master):
    fake_master.responses["ScaleApp"] = app_status()
    run("scale", "hello", "1", "--instances", "0, 3")
    assert fake_master.calls == [("ScaleApp", master_pb2.ScaleAppRequest(name="hello", instances=1,
                                                                         instance_ids=["0", "3"]))]


@pytest.mark.parametrize("verb, action", [("stop", master_pb2.INSTANCE_ACTION_STOP),
                                          ("start", master_pb2.INSTANCE_ACTION_START),
                                          ("restart", master_pb2.INSTANCE_ACTION_RESTART),
                                          ("delete", master_pb2.INSTANCE_ACTION_DELETE)])
def test_instance_commands_send_their_action(fake_master, verb, action):
    fake_master.responses["ControlInstances"] = app_status()
    assert "INSTANCE" in run("instance", verb, "hello", "1,2")
    assert fake_master.calls == [("ControlInstances", master_pb2.InstanceControlRequest(
        name="hello", action=action, instance_ids=["1", "2"]))]


def test_instance_command_needs_ids(fake_master):
    result = CliRunner().invoke(cli, ["instance", "stop", "hello", ","])
    assert result.exit_code == 2 and fake_master.calls == []


def test_status_shows_stopped_instances(fake_master):
    status = app_status(instances=3)
    status.instances[0].allocation.stopped = True       # still running: being stopped
    status.instances[1].allocation.stopped = True       # ended
    status.instances[1].status.CopyFrom(types_pb2.ContainerStatus(instance_id="1",
                                                                  state=types_pb2.CONTAINER_STATE_STOPPED))
    fake_master.responses["GetApp"] = status
    table = run("status", "hello")
    rows = {line.split()[0]: line.split() for line in table.splitlines()[-4:]}
    assert rows["0"][2] == "stopping" and rows["1"][2] == "stopped" and rows["2"][2] == "pending"
    assert "(2 stopped by the user)" in table
