"""`gaia events` and the events `gaia status` shows."""
import json

from click.testing import CliRunner

from gaia_common.pb import master_pb2, types_pb2
from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)
from tests.unit.test_cli_read_commands import app_status

EVENT_KEYS = {"at", "kind", "instance_id", "cause", "message", "platform", "am_attempt", "seq"}


def events():
    return [types_pb2.AppEvent(at=1_700_000_000, kind="restart", instance_id="0", cause="exit 1",
                               message="hello-1.0.0: failed; charged 1, retry_times 2", seq=4),
            types_pb2.AppEvent(at=1_700_000_001, kind="restart", instance_id="0", cause="evicted: memory reclaim",
                               platform=True, seq=5),
            types_pb2.AppEvent(at=1_700_000_002, kind="am.restart", cause="AM node n1 lost", am_attempt=2, seq=6)]


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_events_table_and_json(fake_master):
    fake_master.responses["ListEvents"] = master_pb2.ListEventsResponse(events=events())
    lines = run("events", "hello", "--instance", "0", "-n", "5").splitlines()
    assert fake_master.calls[-1] == ("ListEvents", master_pb2.ListEventsRequest(name="hello", limit=5, instance_id="0"))
    assert lines[0].split() == ["TIME", "KIND", "INSTANCE", "CAUSE", "CHARGED", "MESSAGE"]
    assert "yes" in lines[1] and "charged 1, retry_times 2" in lines[1]
    assert " - " in lines[2] and "evicted: memory reclaim" in lines[2]
    assert "am.restart" in lines[3]
    doc = json.loads(run("events", "hello", "-o", "json"))
    assert set(doc) == {"events"} and set(doc["events"][0]) == EVENT_KEYS and doc["events"][0]["seq"] == "4"


def test_no_events(fake_master):
    fake_master.responses["ListEvents"] = master_pb2.ListEventsResponse()
    assert run("events", "hello").strip() == "no events"


def test_status_shows_the_latest_events(fake_master):
    status = app_status()
    status.events.extend(events())
    fake_master.responses["GetApp"] = status
    out = run("status", "hello")
    assert "Events" in out and "charged 1, retry_times 2" in out and "AM node n1 lost" in out
    fake_master.responses["GetApp"] = app_status()
    assert "Events" not in run("status", "hello")
