"""gaia lab's plan (names, addresses, subnet choice) and its configs, rendered by the Vagrant
lab's own provisioning step (vagrant/provision/configure.sh)."""
import ipaddress
import pathlib
import sys

import pytest

from gaia_common import config
from gaia_cli.errors import CliError
from gaia_cli.lab import render
from gaia_cli.lab.plan import LabPlan, collision, pick_subnet

NET = ipaddress.IPv4Network


def test_hosts_are_named_and_addressed_like_the_vagrant_lab():
    plan = LabPlan("lab", NET("10.250.7.0/24"), masters=3, nodes=2)
    assert [(h.id, h.ip) for h in plan.hosts()] == [
        ("gaia-master-1", "10.250.7.11"), ("gaia-master-2", "10.250.7.12"), ("gaia-master-3", "10.250.7.13"),
        ("gaia-node-1", "10.250.7.101"), ("gaia-node-2", "10.250.7.102")]
    assert plan.gateway == "10.250.7.1"
    assert plan.etcd_endpoints == ["https://10.250.7.11:2379", "https://10.250.7.12:2379", "https://10.250.7.13:2379"]
    assert plan.join_addresses == ["10.250.7.11:7072", "10.250.7.12:7072", "10.250.7.13:7072"]
    assert plan.etcd_initial_cluster.split(",")[0] == "gaia-master-1=http://10.250.7.11:2380"


def test_names_fit_and_stay_clear_of_what_nodes_collect():
    plan = LabPlan("a-rather-long-lab-name-of-forty-characters", NET("10.250.0.0/24"), 3, 3)
    assert len(plan.host_link) <= 15                       # IFNAMSIZ - 1
    assert plan.host_link != LabPlan("other", NET("10.250.0.0/24")).host_link
    for name in [plan.switch_netns] + [h.netns for h in plan.hosts()]:
        assert name.startswith("gaialab-")                 # not gaia-<6 hex>-: a container's
    assert all(len(h.port) <= 15 for h in plan.hosts())


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="too small"):
        LabPlan("lab", NET("10.250.0.0/25"), 3, 30)
    with pytest.raises(ValueError, match="masters"):
        LabPlan("lab", NET("10.250.0.0/24"), 0, 1)
    LabPlan("lab", NET("10.250.0.0/24"), 3, 150)           # .250 is the last node


def test_subnet_choice_avoids_every_routed_network():
    taken = [NET("10.250.0.0/24"), NET("10.250.1.7/32"), NET("10.0.0.0/8")]
    assert pick_subnet(taken[:2]) == NET("10.250.2.0/24")
    with pytest.raises(ValueError, match="pass --subnet"):
        pick_subnet(taken)
    assert collision(NET("10.250.1.0/24"), taken[:2]) == NET("10.250.1.7/32")
    assert collision(NET("10.251.0.0/24"), taken[:2]) is None


@pytest.fixture
def plan():
    return LabPlan("lab", NET("10.250.3.0/24"), 3, 2)


def test_master_host_renders_loadable_configs(plan, tmp_path):
    host = plan.host("gaia-master-2")
    render.configure(plan, host, tmp_path)
    cfg = config.load_daemon_config(config.MasterConfig, str(tmp_path / "master.yaml"))
    assert (cfg.cluster, cfg.id, cfg.advertise) == ("lab", "gaia-master-2", "10.250.3.12:7070")
    assert cfg.etcd == plan.etcd_endpoints and cfg.python == sys.executable
    etcd = render.etcd_environment(tmp_path / "etcd.env")
    assert etcd["ETCD_NAME"] == "gaia-master-2"
    assert etcd["ETCD_DATA_DIR"] == str(tmp_path / "etcd")
    assert etcd["ETCD_INITIAL_CLUSTER"] == plan.etcd_initial_cluster
    assert etcd["ETCD_LISTEN_PEER_URLS"] == "http://10.250.3.12:2380"
    # TLS everywhere, etcd logins, enrolment: the lab's files, where the VM has /etc/gaia/...
    tls = tmp_path / "tls"
    assert cfg.tls == {"ca": f"{tls}/ca.crt", "cert": f"{tls}/master.crt", "key": f"{tls}/master.key"}
    assert cfg.ca_key == f"{tls}/ca.key" and cfg.join_listen == "0.0.0.0:7072"
    assert cfg.etcd_tls == cfg.tls and cfg.etcd_user == "gaia-lab-master"
    assert cfg.etcd_password_file == f"{tmp_path}/secrets/gaia-lab-master.password"
    assert etcd["ETCD_LISTEN_CLIENT_URLS"] == "https://10.250.3.12:2379,https://127.0.0.1:2379"
    assert (etcd["ETCD_CERT_FILE"], etcd["ETCD_CLIENT_CERT_AUTH"]) == (f"{tls}/etcd.crt", "true")


def test_node_host_renders_a_loadable_config(plan, tmp_path):
    host = plan.host("gaia-node-2")
    render.configure(plan, host, tmp_path)
    cfg = config.load_daemon_config(config.NodeConfig, str(tmp_path / "node.yaml"))
    assert (cfg.id, cfg.host_ip, cfg.advertise) == ("gaia-node-2", "10.250.3.102", "10.250.3.102:7071")
    assert cfg.state_dir == str(tmp_path / "state")
    assert cfg.cgroup_parent == "gaialab-lab-gaia-node-2"   # cgroups are not namespaced
    assert cfg.labels == {"lab": "netns"}
    assert cfg.tls is None and not cfg.etcd_user    # the base: `gaia node join` adds both


def test_a_missing_setting_fails_the_render(plan, tmp_path, monkeypatch):
    monkeypatch.setattr(render, "settings", lambda *a: {"GAIA_CLUSTER": "lab"})
    with pytest.raises(CliError, match="GAIA_"):
        render.configure(plan, plan.host("gaia-node-1"), tmp_path)
    assert not (tmp_path / "node.yaml").exists()


def test_the_lab_renders_with_the_vagrant_provisioning_script():
    script = pathlib.Path(render.CONFIGURE)
    assert script.parent.name == "provision" and script.parent.parent.name == "vagrant"
    for role in ("master", "node"):
        assert "configure.sh" in (script.parent / f"{role}.sh").read_text()
