"""gaia master run / node run / am: settings reach the daemon's run(); their packages load lazily."""
import sys
import types

import pytest
from click.testing import CliRunner

from gaia_common.config import MasterConfig, NodeConfig
from gaia_cli.main import cli


@pytest.fixture
def fake_daemons(monkeypatch):
    """gaia_master.main, gaia_node.main and gaia_am.main replaced by recorders."""
    calls = []
    for module in ("gaia_master.main", "gaia_node.main", "gaia_am.main"):
        fake = types.ModuleType(module)
        fake.run = lambda *args, _m=module: calls.append((_m, args))
        monkeypatch.setitem(sys.modules, module, fake)
    return calls


def run(*args, **kwargs):
    return CliRunner().invoke(cli, list(args), **kwargs)


def test_master_run_file_then_flags(fake_daemons, tmp_path):
    path = tmp_path / "master.yaml"
    path.write_text("cluster: prod\netcd: [http://e1:2379]\nlisten: 0.0.0.0:7070\nlease_ttl: 5\n")
    result = run("master", "run", "--config", str(path), "--etcd", "http://e2:2379,http://e3:2379", "--id", "m1")
    assert result.exit_code == 0, result.output
    [(module, (cfg,))] = fake_daemons
    assert module == "gaia_master.main"
    assert cfg == MasterConfig(cluster="prod", etcd=["http://e2:2379", "http://e3:2379"], listen="0.0.0.0:7070",
                               lease_ttl=5, id="m1")


def test_master_run_cluster_flag_beats_the_file(fake_daemons, tmp_path):
    path = tmp_path / "master.yaml"
    path.write_text("cluster: prod\n")
    assert run("--cluster", "lab", "master", "run", "--config", str(path)).exit_code == 0
    assert run("--cluster", "lab", "master", "run", "--config", str(path), "--cluster", "stage").exit_code == 0
    assert [args[0].cluster for _, args in fake_daemons] == ["lab", "stage"]


def test_node_run_overrides_and_labels(fake_daemons, tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text("labels: {zone: a}\nport_range: [30000, 30100]\n")
    result = run("node", "run", "--config", str(path), "--cluster", "prod", "--state-dir", str(tmp_path / "s"),
                 "--cgroup-parent", "gaia-x", "--label", "gpu=v100", "--host-ip", "10.0.0.9")
    assert result.exit_code == 0, result.output
    [(module, (cfg,))] = fake_daemons
    assert module == "gaia_node.main"
    assert cfg == NodeConfig(cluster="prod", state_dir=str(tmp_path / "s"), cgroup_parent="gaia-x",
                             labels={"zone": "a", "gpu": "v100"}, port_range=[30000, 30100], host_ip="10.0.0.9")


def test_bad_daemon_config_is_a_bad_request(fake_daemons, tmp_path):
    path = tmp_path / "master.yaml"
    path.write_text("clustre: prod\n")
    result = run("master", "run", "--config", str(path))
    assert result.exit_code == 2 and "clustre" in result.stderr
    bad_name = run("master", "run", "--cluster", "Prod!")
    assert bad_name.exit_code == 2 and "Prod!" in bad_name.stderr
    bad_label = run("node", "run", "--label", "novalue")
    assert bad_label.exit_code == 2 and "novalue" in bad_label.stderr
    assert fake_daemons == []


def test_am_takes_its_cluster_from_the_environment(fake_daemons, monkeypatch):
    monkeypatch.setenv("GAIA_CLUSTER", "prod")
    assert run("am", "--app-id", "hello-1", "--attempt", "2").exit_code == 0
    assert fake_daemons == [("gaia_am.main", ("hello-1", 2, "prod"))]


def test_am_without_a_cluster(fake_daemons, monkeypatch):
    monkeypatch.delenv("GAIA_CLUSTER", raising=False)
    result = run("am", "--app-id", "hello-1", "--attempt", "1")
    assert result.exit_code == 2 and "GAIA_CLUSTER" in result.stderr


def test_a_daemon_that_cannot_load_is_a_clear_error(monkeypatch):
    broken = types.ModuleType("gaia_master.main")  # no run()
    monkeypatch.setitem(sys.modules, "gaia_master.main", broken)
    result = run("master", "run")
    assert result.exit_code == 1 and result.stderr == "error: gaia_master.main has no run()\n"
    monkeypatch.setitem(sys.modules, "gaia_node.main", None)  # import fails
    result = run("node", "run")
    assert result.exit_code == 1 and result.stderr.startswith("error: cannot load gaia_node.main: ModuleNotFoundError")


def test_other_commands_never_import_the_daemons():
    import subprocess
    code = ("import sys; from click.testing import CliRunner; from gaia_cli.main import cli; "
            "CliRunner().invoke(cli, ['--help']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gaia_master', 'gaia_node', 'gaia_am')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
