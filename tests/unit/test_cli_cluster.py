"""gaia cluster add / list / use / remove, and how a command picks its cluster."""
import json

import yaml
from click.testing import CliRunner

from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)


def run(*args, **kwargs):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kwargs)


def test_add_list_use_round_trip(client_config):
    assert run("cluster", "add", "prod", "--etcd", "http://10.0.0.1:2379,http://10.0.0.2:2379").exit_code == 0
    assert run("cluster", "add", "lab", "--master", "10.1.0.5:7070", "--master", "10.1.0.6:7070").exit_code == 0

    doc = yaml.safe_load(client_config.read_text())
    assert doc == {"current": "prod", "clusters": {
        "prod": {"etcd": ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]},
        "lab": {"masters": ["10.1.0.5:7070", "10.1.0.6:7070"]}}}

    listed = json.loads(run("cluster", "list", "-o", "json").output)
    assert listed == {"current": "prod", "clusters": doc["clusters"]}

    result = run("cluster", "use", "lab")
    assert result.exit_code == 0 and "lab" in result.output
    table = run("cluster", "list").output.splitlines()
    assert table[0].split() == ["CURRENT", "NAME", "ETCD", "MASTERS"]
    assert [line.split()[:2] for line in table[1:] if line.startswith("*")] == [["*", "lab"]]

    assert run("cluster", "remove", "lab").exit_code == 0
    assert json.loads(run("cluster", "list", "-o", "json").output)["current"] == ""


def test_add_keeps_tls_paths_absolute(client_config, tmp_path, monkeypatch):
    for name in ("ca.pem", "me.pem", "me-key.pem"):
        (tmp_path / name).write_text("pem")
    monkeypatch.chdir(tmp_path)
    result = run("cluster", "add", "sec", "--etcd", "https://e:2379", "--ca", "ca.pem",
                 "--cert", "me.pem", "--key", "me-key.pem")
    assert result.exit_code == 0, result.output
    tls = yaml.safe_load(client_config.read_text())["clusters"]["sec"]["tls"]
    assert tls == {"ca": str(tmp_path / "ca.pem"), "cert": str(tmp_path / "me.pem"),
                   "key": str(tmp_path / "me-key.pem")}


def test_add_refuses_what_cannot_work(client_config):
    no_way = run("cluster", "add", "x")
    assert no_way.exit_code == 2 and "--etcd" in no_way.output
    bad_url = run("cluster", "add", "x", "--etcd", "no-port-here")
    assert bad_url.exit_code == 2 and "no-port-here" in bad_url.output
    bad_name = run("cluster", "add", "Prod_1", "--etcd", "e:2379")
    assert bad_name.exit_code == 2 and "Prod_1" in bad_name.output
    assert not client_config.exists()


def test_use_unknown_cluster_names_it(client_config):
    run("cluster", "add", "prod", "--etcd", "e:2379")
    result = run("cluster", "use", "staging")
    assert result.exit_code == 2
    assert "error: unknown cluster 'staging'" in result.output and "prod" in result.output


def test_unknown_cluster_on_a_command_names_it(client_config):
    run("cluster", "add", "prod", "--etcd", "e:2379")
    result = run("--cluster", "nope", "list")
    assert result.exit_code == 2
    assert "unknown cluster 'nope'" in result.output


def test_no_cluster_chosen_says_how_to_choose(client_config, monkeypatch):
    monkeypatch.delenv("GAIA_CLUSTER", raising=False)
    result = run("list")
    assert result.exit_code == 2 and "--cluster" in result.output


def test_cluster_chosen_by_flag_then_env_then_current(fake_master, monkeypatch):
    from gaia_common import config
    from gaia_common.pb import master_pb2
    doc = config.load_client_config()
    doc["clusters"].update({"c2": {"etcd": ["e:1"]}, "c3": {"etcd": ["e:1"]}})
    config.save_client_config(doc)
    fake_master.responses["ListApps"] = master_pb2.ListAppsResponse()
    monkeypatch.delenv("GAIA_CLUSTER", raising=False)
    run("list")
    monkeypatch.setenv("GAIA_CLUSTER", "c2")
    run("list")
    run("--cluster", "c3", "list")
    assert fake_master.clients == ["c1", "c2", "c3"]
