"""Every read command: `-o json` is the documented shape, the table shows what matters."""
import json

import pytest
from click.testing import CliRunner

from gaia_common.pb import master_pb2, types_pb2
from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)

APP_STATUS_KEYS = {"app", "instances", "am", "epoch", "events"}
APP_RECORD_KEYS = {"app_id", "spec", "state", "message", "am_attempt", "created_unix_ms", "epoch",
                   "idempotency_key", "next_instance", "version", "versions", "previous_version",
                   "remove_instances", "next_event"}
NODE_STATUS_KEYS = {"info", "allocated", "containers", "alive", "running", "events", "draining"}


def app_status(name="hello", instances=2) -> master_pb2.AppStatus:
    spec = types_pb2.AppSpec(name=name, pool="default", instances=instances, kind=types_pb2.APP_KIND_SERVICE,
                             driver="process", command=["sleep", "1000"])
    status = master_pb2.AppStatus(
        app=types_pb2.AppRecord(app_id=f"{name}-1", spec=spec, state=types_pb2.APP_STATE_RUNNING,
                                am_attempt=1, created_unix_ms=1_700_000_000_000, epoch=7),
        epoch=7)
    status.am.allocation.CopyFrom(types_pb2.Allocation(app_id=f"{name}-1", instance_id="am", node_id="n1", is_am=True))
    status.am.status.CopyFrom(types_pb2.ContainerStatus(instance_id="am", node_id="n1",
                                                        state=types_pb2.CONTAINER_STATE_RUNNING, host_ip="10.0.0.1"))
    for i in range(instances):
        view = status.instances.add()
        view.allocation.CopyFrom(types_pb2.Allocation(app_id=f"{name}-1", instance_id=str(i), node_id=f"n{i + 1}"))
        if i == 0:  # the second instance has no status yet
            view.status.CopyFrom(types_pb2.ContainerStatus(
                instance_id="0", node_id="n1", state=types_pb2.CONTAINER_STATE_RUNNING, host_ip="10.0.0.1",
                host_ports={"http": 20001}))
    return status


def node_status(node_id="n1") -> master_pb2.NodeStatus:
    return master_pb2.NodeStatus(
        info=types_pb2.NodeInfo(node_id=node_id, address="10.0.0.1:7000", host_ip="10.0.0.1",
                                capacity=types_pb2.Resources(cpu_millis=8000, memory_bytes=16 * 2**30),
                                labels={"zone": "a"}, drivers=["process"]),
        allocated=types_pb2.Resources(cpu_millis=500, memory_bytes=2**30), containers=2, alive=True)


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_status(fake_master):
    fake_master.responses["GetApp"] = app_status()
    doc = json.loads(run("status", "hello", "-o", "json"))
    assert set(doc) == APP_STATUS_KEYS
    assert set(doc["app"]) == APP_RECORD_KEYS
    assert doc["app"]["state"] == "APP_STATE_RUNNING" and doc["epoch"] == "7"
    assert doc["instances"][0]["status"]["host_ports"] == {"http": 20001}
    assert "status" not in doc["instances"][1]  # not reported yet: absent, not empty
    assert fake_master.calls[-1] == ("GetApp", master_pb2.GetAppRequest(name="hello"))

    table = run("status", "hello")
    assert "1 running / 2 wanted" in table
    rows = {line.split()[0]: line.split() for line in table.splitlines()[-3:]}
    assert rows["0"][1:4] == ["n1", "running", "10.0.0.1:20001"]
    assert rows["1"][1:3] == ["n2", "pending"]
    assert rows["am"][2] == "running"


def test_list(fake_master):
    fake_master.responses["ListApps"] = master_pb2.ListAppsResponse(apps=[app_status("web"), app_status("batch", 0)])
    doc = json.loads(run("list", "-o", "json"))
    assert set(doc) == {"apps"}
    assert [set(a) for a in doc["apps"]] == [APP_STATUS_KEYS, APP_STATUS_KEYS]
    lines = run("list").splitlines()
    assert lines[0].split() == ["NAME", "ID", "STATE", "RUNNING", "POOL", "AGE"]
    assert [line.split()[:4] for line in lines[1:]] == [["batch", "batch-1", "running", "0/0"],
                                                        ["web", "web-1", "running", "1/2"]]


def test_list_empty_json_still_has_the_key(fake_master):
    fake_master.responses["ListApps"] = master_pb2.ListAppsResponse()
    assert json.loads(run("list", "-o", "json")) == {"apps": []}


@pytest.mark.parametrize("argv, method, sent", [
    (["scale", "hello", "3"], "ScaleApp", master_pb2.ScaleAppRequest(name="hello", instances=3)),
    (["kill", "hello"], "KillApp", master_pb2.KillAppRequest(name="hello")),
])
def test_scale_and_kill(fake_master, argv, method, sent):
    fake_master.responses[method] = app_status()
    doc = json.loads(run(*argv, "-o", "json"))
    assert set(doc) == APP_STATUS_KEYS
    assert fake_master.calls == [(method, sent)]
    assert run(*argv).startswith("hello: running, 1/2 running")


def test_scale_refuses_negative_before_sending(fake_master):
    result = CliRunner().invoke(cli, ["scale", "hello", "--", "-1"])
    assert result.exit_code == 2 and fake_master.calls == []


def test_nodes_and_node_show(fake_master):
    fake_master.responses["ListNodes"] = master_pb2.ListNodesResponse(nodes=[node_status("n2"), node_status("n1")])
    doc = json.loads(run("nodes", "-o", "json"))
    assert set(doc) == {"nodes"} and [set(n) for n in doc["nodes"]] == [NODE_STATUS_KEYS] * 2
    assert doc["nodes"][0]["info"]["capacity"]["cpu_millis"] == "8000"
    assert doc["nodes"][0]["alive"] is True
    lines = run("nodes").splitlines()
    assert [line.split()[:6] for line in lines[1:]] == [
        ["n1", "10.0.0.1:7000", "yes", "2", "500m/8", "1Gi/16Gi"],
        ["n2", "10.0.0.1:7000", "yes", "2", "500m/8", "1Gi/16Gi"]]

    fake_master.responses["GetNode"] = node_status("n1")
    doc = json.loads(run("node", "show", "n1", "-o", "json"))
    assert set(doc) == NODE_STATUS_KEYS and doc["info"]["labels"] == {"zone": "a"}
    assert fake_master.calls[-1] == ("GetNode", master_pb2.GetNodeRequest(node_id="n1"))
    assert "zone=a" in run("node", "show", "n1")


def test_resolve(fake_master):
    fake_master.responses["Resolve"] = master_pb2.ResolveResponse(endpoints=[
        types_pb2.ServiceEndpoint(app="hello", instance_id="10", host="10.0.0.2", ports={"http": 20010, "admin": 20011},
                                  node_id="n2"),
        types_pb2.ServiceEndpoint(app="hello", instance_id="2", host="10.0.0.1", ports={"http": 20002, "admin": 20003},
                                  node_id="n1")])
    doc = json.loads(run("resolve", "hello", "-o", "json"))
    assert set(doc) == {"endpoints"}
    assert set(doc["endpoints"][0]) == {"app", "instance_id", "host", "ports", "node_id", "container_id", "health", "private"}
    assert fake_master.calls[-1] == ("Resolve", master_pb2.ResolveRequest(app="hello"))

    lines = run("resolve", "hello/http").splitlines()
    assert fake_master.calls[-1] == ("Resolve", master_pb2.ResolveRequest(app="hello", port="http"))
    assert [line.split() for line in lines[1:]] == [["2", "n1", "10.0.0.1:20002"], ["10", "n2", "10.0.0.2:20010"]]
    both = run("resolve", "hello").splitlines()[1].split()[2]
    assert both == "admin=10.0.0.1:20003,http=10.0.0.1:20002"
