"""gaia node run --hollow N: the settings and N reach gaia_node.hollow.run, not the node manager."""
import sys
import types

from click.testing import CliRunner

from gaia_cli.main import cli


def test_hollow_goes_to_the_hollow_fleet(monkeypatch, tmp_path):
    calls = []
    for module in ("gaia_node.main", "gaia_node.hollow"):
        fake = types.ModuleType(module)
        fake.run = lambda *args, _m=module: calls.append((_m, args))
        monkeypatch.setitem(sys.modules, module, fake)
    path = tmp_path / "node.yaml"
    path.write_text("cluster: big\nlease_ttl: 30\ncapacity: {cpu: 8}\nlabels: {zone: 'z{i%3}'}\n")
    result = CliRunner().invoke(cli, ["node", "run", "--config", str(path), "--hollow", "1000",
                                      "--label", "rack=r{i/40}", "--id", "sim"])
    assert result.exit_code == 0, result.output
    [(module, (cfg, count))] = calls
    assert module == "gaia_node.hollow" and count == 1000
    assert cfg.cluster == "big" and cfg.lease_ttl == 30 and cfg.id == "sim"
    assert cfg.labels == {"zone": "z{i%3}", "rack": "r{i/40}"} and cfg.capacity == {"cpu": 8}


def test_hollow_needs_a_positive_count():
    result = CliRunner().invoke(cli, ["node", "run", "--hollow", "0"])
    assert result.exit_code == 2
