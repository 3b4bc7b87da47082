"""`gaia resolve APP[/PORT] --watch`: a line per change (table) or an object per change (JSON)."""
import json

import grpc
from click.testing import CliRunner

from gaia_common.client import GaiaError
from gaia_common.discovery import EndpointSet
from gaia_common.pb import types_pb2
from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)


def ep(instance_id, port, node="n1"):
    return types_pb2.ServiceEndpoint(app="hello", instance_id=instance_id, host="10.0.0.1", node_id=node,
                                     ports={"http": port, "admin": port + 1})


CHANGES = [EndpointSet(10, [ep("0", 20000), ep("1", 20002)], [ep("0", 20000), ep("1", 20002)], []),
           EndpointSet(14, [ep("1", 20002)], [], ["0"]),
           EndpointSet(17, [ep("1", 20004, "n2")], [ep("1", 20004, "n2")], [])]


def fake_resolver(monkeypatch, changes=CHANGES, error=None):
    asked = []

    class FakeResolver:
        def __init__(self, cluster, client=None):
            asked.append(cluster)

        def watch(self, app, port=None):
            asked.append((app, port))
            if error:
                raise error
            yield from changes

        def close(self):
            asked.append("closed")

    monkeypatch.setattr("gaia_cli.commands.resolve.Resolver", FakeResolver)
    return asked


def test_a_line_per_change(fake_master, monkeypatch):
    asked = fake_resolver(monkeypatch)
    result = CliRunner().invoke(cli, ["resolve", "hello/http", "--watch"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["10 + 0 n1 10.0.0.1:20000", "10 + 1 n1 10.0.0.1:20002",
                                          "14 - 0", "17 + 1 n2 10.0.0.1:20004"]
    assert asked == ["c1", ("hello", "http"), "closed"]


def test_an_object_per_change_in_json(fake_master, monkeypatch):
    fake_resolver(monkeypatch)
    result = CliRunner().invoke(cli, ["resolve", "hello", "-w", "-o", "json"])
    docs = [json.loads(line) for line in result.output.splitlines()]
    assert [d["revision"] for d in docs] == [10, 14, 17]
    assert set(docs[0]) == {"revision", "endpoints", "added", "removed"}
    assert [e["instance_id"] for e in docs[0]["endpoints"]] == ["0", "1"] and docs[1]["removed"] == ["0"]
    assert docs[2]["added"][0]["ports"] == {"http": 20004, "admin": 20005}


def test_an_unknown_app_exits_3(fake_master, monkeypatch):
    fake_resolver(monkeypatch, error=GaiaError(grpc.StatusCode.NOT_FOUND, "no application named 'nope'"))
    result = CliRunner().invoke(cli, ["resolve", "nope", "--watch"])
    assert result.exit_code == 3 and "nope" in result.output
