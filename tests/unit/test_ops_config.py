"""Operators' side: `gaia master|node run --check-config` names the wrong setting and starts
nothing; the example configs document every setting; the packaged systemd units check the
config first and leave a node's containers running."""
import configparser
import dataclasses
import pathlib
import re
import shutil
import subprocess
import sys
import types

import pytest
import yaml
from click.testing import CliRunner

from gaia_cli import config_check
from gaia_cli.main import cli
from gaia_common.config import ConfigError, MasterConfig, NodeConfig, load_daemon_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
UNITS = ROOT / "packaging" / "systemd"


@pytest.fixture
def fake_daemons(monkeypatch):
    """The daemons' entry points replaced by recorders: nothing may start."""
    calls = []
    for module in ("gaia_master.main", "gaia_node.main", "gaia_node.hollow"):
        fake = types.ModuleType(module)
        fake.run = lambda *args, _m=module: calls.append(_m)
        monkeypatch.setitem(sys.modules, module, fake)
    return calls


def run(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("role, name", [("master", "master.yaml"), ("node", "node.yaml")])
def test_check_config_accepts_the_examples(fake_daemons, role, name):
    result = run(role, "run", "--config", str(ROOT / "examples" / name), "--check-config")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "config OK"
    assert fake_daemons == [], "--check-config starts no daemon"


@pytest.mark.parametrize("role, text, field", [
    ("master", "lease_ttl: 0\n", "lease_ttl"),
    ("master", "lease_ttl: two\n", "lease_ttl"),
    ("master", "etcd: [ftp://10.0.0.1:2379]\n", "etcd"),
    ("master", "etcd: http://10.0.0.1\n", "etcd"),
    ("master", "listen: 7070\n", "listen"),
    ("master", "metrics_listen: 0.0.0.0:99999\n", "metrics_listen"),
    ("master", "log_format: xml\n", "log_format"),
    ("master", "am_attempts: -1\n", "am_attempts"),
    ("master", "am_resources: {cpu: lots}\n", "am_resources"),
    ("node", "host_ip: somewhere\n", "host_ip"),
    ("node", "port_range: [32000, 20000]\n", "port_range"),
    ("node", "drivers: [lxc]\n", "drivers"),
    ("node", "capacity: {memroy: 1Gi}\n", "capacity.memroy"),
    ("node", "memory_pressure_high: 1.5\n", "memory_pressure_high"),
    ("node", "memory_reclaim_target: 0.99\n", "memory_reclaim_target"),
    ("node", "container_subnet: 10.0.0.0/8\n", "container_subnet"),
    ("node", "disk_pressure_free: 120%\n", "disk_pressure_free"),
    ("node", "gpus: [{memory: 16Gi}]\n", "gpus[0].model"),
    ("node", "labels: {rack: [1, 2]}\n", "labels"),
    ("node", "partition_grace: -5\n", "partition_grace"),
])
def test_check_config_names_the_wrong_setting(fake_daemons, tmp_path, role, text, field):
    path = tmp_path / f"{role}.yaml"
    path.write_text(text)
    result = run(role, "run", "--config", str(path), "--check-config")
    assert result.exit_code == 2, result.output
    assert f"{path}: {field}" in result.stderr, result.stderr
    assert "config OK" not in result.output
    assert fake_daemons == []


def test_flags_are_checked_too(fake_daemons):
    result = run("node", "run", "--check-config", "--host-ip", "not-an-ip")
    assert result.exit_code == 2 and "host_ip" in result.stderr


def test_a_bad_config_stops_a_real_start_as_well(fake_daemons, tmp_path):
    path = tmp_path / "master.yaml"
    path.write_text("lease_ttl: 0\n")
    assert run("master", "run", "--config", str(path)).exit_code == 2
    assert fake_daemons == []


@pytest.mark.parametrize("cls", [MasterConfig, NodeConfig])
def test_defaults_pass(cls):
    config_check.check(cls())


def test_every_field_has_a_rule_or_a_plain_type():
    """A new setting is checked at least for its type: one with no rule must have one."""
    for cls, rules in ((MasterConfig, config_check.MASTER), (NodeConfig, config_check.NODE)):
        for field in dataclasses.fields(cls):
            assert field.name in {**config_check.COMMON, **rules} or field.type in (str, int, float, list, dict), field


@pytest.mark.parametrize("cls, name", [(MasterConfig, "master.yaml"), (NodeConfig, "node.yaml")])
def test_example_documents_every_setting_with_its_default(cls, name):
    """Each setting in examples/ sits under a comment, and the comments give its default."""
    text = (ROOT / "examples" / name).read_text()
    assert set(yaml.safe_load(text)) == {f.name for f in dataclasses.fields(cls)}
    lines = text.splitlines()
    for field in dataclasses.fields(cls):
        row = next(i for i, line in enumerate(lines) if line.startswith(f"{field.name}:"))
        block = []
        for line in reversed(lines[:row]):
            if not line.startswith("#") and not re.match(r"^[a-z_]+:", line):
                break
            block.append(line)
        comments = [line for line in block if line.startswith("#")]
        assert comments, f"{name}: {field.name} has no comment"
        assert any("Default" in line for line in comments), f"{name}: {field.name}'s comment gives no default"


# ---- systemd units ----

def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("role", ["master", "node"])
def test_units_check_the_config_before_starting(role):
    service = unit(f"gaia-{role}.service")["Service"]
    start, pre = service["ExecStart"], service["ExecStartPre"]
    assert pre == f"{start} --check-config", "the check reads the same file the daemon will"
    assert f"gaia {role} run --config /etc/gaia/{role}.yaml" in start
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2", "a bad config (exit 2) is not restarted in a loop"


def test_node_unit_leaves_containers_running():
    service = unit("gaia-node.service")["Service"]
    assert service["KillMode"] == "process"
    assert service["Delegate"] == "yes"


def test_the_lab_installs_the_packaged_units():
    for role in ("master", "node"):
        script = (ROOT / "vagrant" / "provision" / f"{role}.sh").read_text()
        assert f"packaging/systemd/gaia-{role}.service" in script
        assert not (ROOT / "vagrant" / "templates" / f"gaia-{role}.service").exists(), "one source of truth"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_units_verify(tmp_path):
    """systemd's own parser finds no unknown key (paths point at something that exists here)."""
    for path in UNITS.glob("*.service"):
        (tmp_path / path.name).write_text(path.read_text().replace("/opt/gaia/venv/bin/gaia", shutil.which("true")))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, tmp_path.glob("*.service"))],
                         capture_output=True, text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "gaia-" in line]
    assert not problems, problems


def test_check_config_module_refuses_unknown_keys_before_rules(tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text("metrics_lisen: 0.0.0.0:9171\n")
    with pytest.raises(ConfigError, match="metrics_lisen"):
        load_daemon_config(NodeConfig, str(path))
