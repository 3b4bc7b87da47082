"""The Vagrant lab: the Vagrantfile validates, and the configs its provisioning renders are
ones `gaia master run` / `gaia node run` accept."""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from gaia_common import config

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAB = ROOT / "vagrant"
TEMPLATES = LAB / "templates"

# What the Vagrantfile passes a master machine's provisioning (a node gets the same minus
# the etcd cluster); the values are shaped like the real ones.
LAB_ENV = {
    "GAIA_CLUSTER": "lab",
    "GAIA_ETCD_ENDPOINTS": "https://192.168.56.11:2379,https://192.168.56.12:2379,https://192.168.56.13:2379",
    "GAIA_ETCD_INITIAL_CLUSTER": "gaia-master-1=http://192.168.56.11:2380,gaia-master-2=http://192.168.56.12:2380",
    "GAIA_ID": "gaia-master-1",
    "GAIA_IP": "192.168.56.11",
    "GAIA_PORT": "7070",
    "GAIA_ETCD_DATA_DIR": "/var/lib/etcd/gaia",
    "GAIA_PYTHON": "/opt/gaia/venv/bin/python",
    "GAIA_LAB": "vagrant",
    "GAIA_STATE_DIR": "/var/lib/gaia/node",
    "GAIA_CGROUP_PARENT": "gaia",
    "GAIA_TLS_DIR": "/etc/gaia/tls",
    "GAIA_SECRETS_DIR": "/etc/gaia/etcd",
    "GAIA_JOIN_PORT": "7072",
}


def render(template: str, dest: pathlib.Path, env: dict) -> subprocess.CompletedProcess:
    """Render with the provisioning scripts' own `render` (vagrant/provision/lib.sh)."""
    return subprocess.run(
        ["bash", "-c", f'. "{LAB}/provision/lib.sh" && render "$1" "$2"', "render", template, str(dest)],
        env=dict(os.environ, TEMPLATES=str(TEMPLATES), **env), capture_output=True, text=True)


def placeholders(path: pathlib.Path) -> set:
    return set(re.findall(r"@(GAIA_[A-Z_]+)@", path.read_text()))


@pytest.fixture
def vagrant_env(tmp_path):
    if not shutil.which("vagrant"):
        pytest.skip("vagrant is not installed (Debian: apt-get install vagrant)")
    return dict(os.environ, VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"), VAGRANT_CHECKPOINT_DISABLE="1",
                GAIA_LAB_SECRETS=str(tmp_path / "secrets"))   # the lab's CA and tokens: not in the checkout


def vagrant_validate(env: dict) -> subprocess.CompletedProcess:
    """`vagrant validate`; where no provider (VirtualBox, libvirt) is installed, as CI machines
    have none, the provider blocks are left out of the check."""
    run = dict(cwd=LAB, env=env, capture_output=True, text=True, timeout=120)
    out = subprocess.run(["vagrant", "validate"], **run)
    if out.returncode != 0 and "No usable default provider" in out.stdout + out.stderr:
        out = subprocess.run(["vagrant", "validate", "--ignore-provider"], **run)
    return out


@pytest.mark.parametrize("masters,nodes", [("", ""), ("3", "2"), ("1", "0")])
def test_vagrant_validate(vagrant_env, masters, nodes):
    out = vagrant_validate(dict(vagrant_env, GAIA_MASTERS=masters, GAIA_NODES=nodes))
    assert out.returncode == 0, out.stdout + out.stderr


def test_vagrant_rejects_bad_counts(vagrant_env):
    out = vagrant_validate(dict(vagrant_env, GAIA_MASTERS="0"))
    assert out.returncode != 0
    assert "GAIA_MASTERS" in out.stdout + out.stderr


def test_rendered_master_config(tmp_path):
    dest = tmp_path / "master.yaml"
    out = render("master.yaml", dest, LAB_ENV)
    assert out.returncode == 0, out.stderr
    cfg = config.load_daemon_config(config.MasterConfig, str(dest))
    assert cfg.cluster == "lab"
    assert cfg.etcd == LAB_ENV["GAIA_ETCD_ENDPOINTS"].split(",")
    assert cfg.advertise == "192.168.56.11:7070"
    assert cfg.listen == "0.0.0.0:7070"
    assert cfg.id == "gaia-master-1"
    assert cfg.tls["cert"] == "/etc/gaia/tls/master.crt" and cfg.ca_key == "/etc/gaia/tls/ca.key"
    assert cfg.join_listen == "0.0.0.0:7072" and cfg.etcd_user == "gaia-lab-master"
    assert cfg.etcd_password_file == "/etc/gaia/etcd/gaia-lab-master.password"


def test_rendered_node_config(tmp_path):
    dest = tmp_path / "node.yaml"
    env = dict(LAB_ENV, GAIA_ID="gaia-node-1", GAIA_IP="192.168.56.101", GAIA_PORT="7071")
    out = render("node.yaml", dest, env)
    assert out.returncode == 0, out.stderr
    cfg = config.load_daemon_config(config.NodeConfig, str(dest))
    assert (cfg.cluster, cfg.id, cfg.host_ip) == ("lab", "gaia-node-1", "192.168.56.101")
    assert cfg.advertise == "192.168.56.101:7071"
    assert len(cfg.etcd) == 3


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.iterdir()))
def test_every_template_renders_completely(tmp_path, template):
    dest = tmp_path / template
    out = render(template, dest, LAB_ENV)
    assert out.returncode == 0, out.stderr
    assert "@GAIA_" not in dest.read_text()


def test_render_refuses_an_unset_setting(tmp_path):
    env = {k: v for k, v in LAB_ENV.items() if k != "GAIA_ID"}
    env["GAIA_ID"] = ""
    dest = tmp_path / "master.yaml"
    out = render("master.yaml", dest, env)
    assert out.returncode != 0
    assert "GAIA_ID" in out.stderr
    assert not dest.exists()


def test_vagrantfile_passes_every_placeholder():
    """Each @GAIA_*@ in a template is a setting the Vagrantfile hands the provisioning."""
    vagrantfile = (LAB / "Vagrantfile").read_text()
    passed = set(re.findall(r'"(GAIA_[A-Z_]+)" =>', vagrantfile))
    used = set().union(*(placeholders(p) for p in TEMPLATES.iterdir()))
    assert used <= passed, f"templates use settings the Vagrantfile never passes: {used - passed}"


def test_provision_scripts_are_valid_bash():
    for script in (LAB / "provision").glob("*.sh"):
        out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert out.returncode == 0, f"{script.name}: {out.stderr}"
