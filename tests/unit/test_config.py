"""Daemon configs (master.yaml, node.yaml) and the client config (cluster names)."""
import dataclasses
import pathlib

import pytest
import yaml

from gaia_common import config
from gaia_common.config import ConfigError, MasterConfig, NodeConfig

ROOT = pathlib.Path(__file__).resolve().parents[2]


def write(tmp_path, text: str, name="daemon.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("cls", [MasterConfig, NodeConfig])
def test_defaults_without_file(cls):
    assert config.load_daemon_config(cls) == cls()


@pytest.mark.parametrize("cls", [MasterConfig, NodeConfig])
def test_empty_file_means_defaults(tmp_path, cls):
    assert config.load_daemon_config(cls, write(tmp_path, "")) == cls()


def test_unknown_setting_is_named(tmp_path):
    path = write(tmp_path, "cluster: prod\nlease_tll: 5\n")
    with pytest.raises(ConfigError) as info:
        config.load_daemon_config(MasterConfig, path)
    message = str(info.value)
    assert "'lease_tll'" in message
    assert path in message
    assert "lease_ttl" in message, "the known settings are listed"


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match="'colour'"):
        config.load_daemon_config(NodeConfig, overrides={"colour": "blue"})


def test_overrides_win_and_none_is_ignored(tmp_path):
    path = write(tmp_path, "cluster: prod\nlisten: 0.0.0.0:7070\n")
    cfg = config.load_daemon_config(MasterConfig, path, {"listen": "127.0.0.1:9", "cluster": None})
    assert cfg.cluster == "prod"
    assert cfg.listen == "127.0.0.1:9"


def test_etcd_comma_string_is_split(tmp_path):
    path = write(tmp_path, "etcd: http://a:2379,http://b:2379,\n")
    assert config.load_daemon_config(NodeConfig, path).etcd == ["http://a:2379", "http://b:2379"]
    cfg = config.load_daemon_config(NodeConfig, overrides={"etcd": "c:2379"})
    assert cfg.etcd == ["c:2379"]


def test_malformed_file(tmp_path):
    path = write(tmp_path, "cluster: [prod\n")
    with pytest.raises(ConfigError) as info:
        config.load_daemon_config(MasterConfig, path)
    assert path in str(info.value)


def test_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        config.load_daemon_config(MasterConfig, write(tmp_path, "- cluster\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError):
        config.load_daemon_config(MasterConfig, str(tmp_path / "nope.yaml"))


def test_defaults_do_not_share_mutables():
    a, b = NodeConfig(), NodeConfig()
    a.labels["x"] = "y"
    a.etcd.append("other:2379")
    assert b.labels == {} and b.etcd == ["http://127.0.0.1:2379"]


@pytest.mark.parametrize("cls,name", [(MasterConfig, "master.yaml"), (NodeConfig, "node.yaml")])
def test_example_configs_set_every_field(cls, name):
    """examples/master.yaml and node.yaml document every setting, and nothing else."""
    path = ROOT / "examples" / name
    cfg = config.load_daemon_config(cls, str(path))
    assert isinstance(cfg, cls)
    assert set(yaml.safe_load(path.read_text())) == {f.name for f in dataclasses.fields(cls)}


# ---- client config ----

def test_client_config_path_follows_env(client_config):
    assert config.client_config_path() == client_config


def test_client_config_default_path(monkeypatch, tmp_path):
    monkeypatch.delenv("GAIA_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.client_config_path() == tmp_path / ".gaia" / "config.yaml"


def test_missing_client_config_is_empty(client_config):
    assert config.load_client_config() == {"current": "", "clusters": {}}


def test_client_config_round_trip(client_config):
    doc = {"current": "prod", "clusters": {
        "prod": {"etcd": ["http://10.0.0.1:2379", "http://10.0.0.2:2379"],
                 "tls": {"ca": "/etc/gaia/ca.pem"}},
        "dev": {"masters": ["127.0.0.1:7070"]},
    }}
    config.save_client_config(doc)
    assert client_config.exists()
    assert config.load_client_config() == doc
    assert config.cluster_entry("prod") == doc["clusters"]["prod"]
    assert config.cluster_entry("dev") == {"masters": ["127.0.0.1:7070"]}
    assert not client_config.with_suffix(".tmp").exists()


def test_save_makes_parent_dirs(tmp_path):
    path = tmp_path / "a" / "b" / "config.yaml"
    config.save_client_config({"current": "", "clusters": {}}, path)
    assert config.load_client_config(path)["clusters"] == {}


def test_unknown_cluster_is_named(client_config):
    config.save_client_config({"current": "", "clusters": {"prod": {"etcd": ["x:1"]}, "dev": {}}})
    with pytest.raises(ConfigError) as info:
        config.cluster_entry("staging")
    message = str(info.value)
    assert "'staging'" in message
    assert "dev, prod" in message, "the known clusters are listed"


def test_unknown_cluster_with_no_config(client_config):
    with pytest.raises(ConfigError, match="'dev'.*known: none"):
        config.cluster_entry("dev")


def test_malformed_client_config(client_config):
    client_config.write_text("clusters: {prod: [\n")
    with pytest.raises(ConfigError) as info:
        config.load_client_config()
    assert str(client_config) in str(info.value)
