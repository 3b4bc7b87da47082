"""gaia masters against a real etcd: replicas read from the election keys, leader first."""
import json

from click.testing import CliRunner

from gaia_common import config
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_cli.main import cli


def masters(cluster_name, *extra):
    result = CliRunner().invoke(cli, ["--cluster", cluster_name, "masters", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_masters_json_lists_replicas_leader_first(etcd, etcd_server, client_config, cluster_name):
    config.save_client_config({"current": "", "clusters": {cluster_name: {"etcd": [etcd_server.endpoint]}}})
    keys = Keys(cluster_name)
    revisions = {}
    for lease, (mid, address) in enumerate([("m-a", "127.0.0.1:7001"), ("m-b", "127.0.0.1:7002")], start=1):
        info = types_pb2.MasterInfo(id=mid, address=address, started_at=1_700_000_000.5)
        response = etcd.put(keys.election_key(lease), info.SerializeToString())
        revisions[mid] = response.header.revision
    etcd.put(Keys(cluster_name + "x").election_key(9), types_pb2.MasterInfo(id="other").SerializeToString())

    doc = json.loads(masters(cluster_name, "-o", "json"))
    assert doc["cluster"] == cluster_name
    assert [(m["id"], m["address"], m["leader"], m["epoch"]) for m in doc["masters"]] == [
        ("m-a", "127.0.0.1:7001", True, str(revisions["m-a"])),
        ("m-b", "127.0.0.1:7002", False, str(revisions["m-b"]))]
    assert set(doc["masters"][0]) == {"id", "address", "started_at", "epoch", "leader"}

    lines = masters(cluster_name).splitlines()
    assert lines[0].split() == ["ID", "ADDRESS", "EPOCH", "LEADER", "UP"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["m-a", "127.0.0.1:7001", str(revisions["m-a"]), "yes"],
        ["m-b", "127.0.0.1:7002", str(revisions["m-b"]), "no"]]


def test_masters_of_an_empty_cluster(etcd_server, client_config, cluster_name):
    config.save_client_config({"current": cluster_name, "clusters": {cluster_name: {"etcd": [etcd_server.endpoint]}}})
    assert json.loads(masters(cluster_name, "-o", "json")) == {"cluster": cluster_name, "masters": []}
    assert "no master replica" in masters(cluster_name)


def test_masters_needs_etcd_in_the_config(client_config, cluster_name):
    config.save_client_config({"current": "", "clusters": {cluster_name: {"masters": ["127.0.0.1:1"]}}})
    result = CliRunner().invoke(cli, ["--cluster", cluster_name, "masters"])
    assert result.exit_code != 0 and "no etcd endpoints" in result.stderr


def test_masters_when_etcd_is_down(client_config, cluster_name):
    from gaia_common.etcd import free_port
    config.save_client_config({"current": "", "clusters": {cluster_name: {"etcd": [f"127.0.0.1:{free_port()}"]}}})
    result = CliRunner().invoke(cli, ["--cluster", cluster_name, "masters"])
    assert result.exit_code == 1 and result.stderr.startswith("error: etcd did not answer")
