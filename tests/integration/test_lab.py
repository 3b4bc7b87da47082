"""gaia lab: 3 etcd members, 3 masters and 3 node managers, each host a network namespace on a
bridge the lab made. A node cut off the network has its instances run elsewhere; a killed etcd
member loses no acknowledged write; `gaia lab down` leaves nothing behind, even after a crash.

One lab serves the module (bringing it up takes seconds); the tests run in file order and the
last ones take it down."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import grpc
import psutil
import pytest

from gaia_cli import procs
from gaia_cli.lab import net, render
from gaia_cli.lab.lab import TOKEN_ENV, Lab
from gaia_common import config
from gaia_common.client import MasterClient
from gaia_common.pb import master_pb2, types_pb2
from gaia_common.etcd import TRANSIENT, connect, read_password
from gaia_common.keys import Keys
from gaia_common.security.identity import Identity
from gaia_common.security.pki import identity_of
from gaia_node.network import NETNS_DIR, NetworkPlan
from tests.integration.harness import ROOT, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="gaia lab needs root (network namespaces)")

RUNNING = types_pb2.CONTAINER_STATE_RUNNING
SLEEPER = """\
name: {name}
instances: 4
command: ["{python}", "-c", "import time; time.sleep(600)"]
resources:
  request: {{cpu: 50m, memory: 16Mi}}
max_per_node: 2
retry_times: 0
migrate_times: 3
"""


class LabCli:
    """`gaia ...` against the lab, with the module's own lab home and client config."""

    def __init__(self, home, name: str):
        self.name = name
        self.home = home
        self.env = dict(os.environ, GAIA_LAB_HOME=str(home), GAIA_CONFIG=str(home / "client.yaml"),
                        PYTHONPATH=ROOT)
        self.env.pop("GAIA_CLUSTER", None)

    def run(self, *args, timeout: float = 90, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "gaia_cli", *args], env=self.env, cwd=ROOT,
                             capture_output=True, text=True, timeout=timeout)
        assert not check or out.returncode == 0, f"gaia {' '.join(args)}: {out.stdout}{out.stderr}"
        return out

    def lab(self, name: str = None) -> Lab:
        lab = Lab(name or self.name, home=self.home)
        lab.load()
        return lab

    def client(self) -> MasterClient:
        return self.lab().client(retry_for=30)      # user admin, the cluster's etcd client login


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    cli = LabCli(tmp_path_factory.mktemp("lab"), f"t{os.getpid() % 100000}")
    cli.run("lab", "up", "--name", cli.name, "--nodes", "3", "--timeout", "60")
    yield cli
    for name in (cli.name, cli.name + "-crash"):   # whatever a failed test left up
        if cli.lab(name).state:
            cli.run("lab", "down", "--name", name, check=False)


def leftovers(cli: LabCli, lab: Lab, node_tags) -> list:
    """Everything of `lab` still on this host: namespaces, links, processes, cgroups, records."""
    plan = lab.plan
    found = [n for n in os.listdir(NETNS_DIR) if n.startswith(plan.switch_netns)
             or any(n.startswith(f"gaia-{tag}-") for tag in node_tags)]
    found += [plan.host_link] if net.links.link_exists(plan.host_link) else []
    found += [f"pid {p.pid}" for p in procs.alive(procs.with_env(TOKEN_ENV, lab.state["token"]))]
    found += [f"pid {r['pid']}" for r in lab.records() if procs.find(r["pid"], r["started"])]
    for host in plan.hosts():
        found += [str(d) for d in procs.cgroup_dirs(render.cgroup_parent(plan, host))]
    doc = config.load_client_config(cli.home / "client.yaml")
    found += [f"client config entry {lab.name}"] if lab.name in doc["clusters"] else []
    return found


def node_tags(cli: LabCli, lab: Lab) -> list:
    return [NetworkPlan.from_config(config.load_daemon_config(
        config.NodeConfig, str(lab.host_dir(h) / "node.yaml"))).tag for h in lab.plan.hosts() if h.role == "node"]


def test_up_makes_every_host_a_namespace_on_the_lab_bridge(cli):
    lab = cli.lab()
    status = json.loads(cli.run("lab", "status", "--name", cli.name, "-o", "json").stdout)
    assert [h["host"] for h in status["hosts"]] == [f"gaia-master-{i}" for i in (1, 2, 3)] + \
        [f"gaia-node-{i}" for i in (1, 2, 3)]
    for host in lab.plan.hosts():
        roles = ["etcd", "master"] if host.role == "master" else ["node"]
        for role in roles:   # each daemon runs inside its own host's network namespace
            proc = lab.process(role, host.id)
            assert proc is not None, f"{role} on {host.id}"
            st = os.stat(f"/proc/{proc.pid}/ns/net")
            assert (st.st_dev, st.st_ino) == net.netns_id(host.netns)
    nodes = json.loads(cli.run("--cluster", cli.name, "nodes", "-o", "json").stdout)["nodes"]
    assert sorted((n["info"]["node_id"], n["info"]["host_ip"], n["alive"]) for n in nodes) == \
        [(f"gaia-node-{i}", f"{lab.plan.address(100 + i)}", True) for i in (1, 2, 3)]
    assert len(cli.client().masters()) == 3


def test_nodes_enrolled_with_tokens_and_etcd_checks_who_asks(cli):
    """Every node joined with a one-time token: it runs with the certificate and etcd login
    enrolment gave it; etcd takes no client without a certificate of the lab's CA, nor an
    anonymous one, and the node login may not write the masters' keys."""
    lab = cli.lab()
    for host in lab.plan.hosts():
        if host.role != "node":
            continue
        cfg = config.load_daemon_config(config.NodeConfig, str(lab.config_path("node", host)))
        assert identity_of(pathlib.Path(cfg.tls["cert"]).read_bytes()) == Identity("node", host.id, cli.name)
        assert cfg.etcd_user == f"gaia-{cli.name}-node" and cfg.etcd_tls == cfg.tls
        assert " ".join(lab.process("node", host.id).cmdline()).endswith(str(lab.config_path("node", host)))
    endpoints = lab.plan.etcd_endpoints
    with pytest.raises(grpc.RpcError) as anonymous:  # a certificate but no login: its name is no user
        lab.security.etcd(endpoints).get(Keys(cli.name).leader)
    assert anonymous.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(TRANSIENT):                    # no client certificate: no TLS session
        connect(endpoints, timeout=2, ca_file=lab.security.admin_tls["ca"]).get(Keys(cli.name).leader)
    node = cfg                                        # the last node's settings
    as_node = connect(endpoints, timeout=5, ca_file=node.tls["ca"], cert_file=node.tls["cert"],
                      key_file=node.tls["key"], user=node.etcd_user, password=read_password(node.etcd_password_file))
    with pytest.raises(grpc.RpcError) as refused:
        as_node.put(Keys(cli.name).leader, b"me")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # the enrolment port takes no made-up token
    used = cli.run("node", "join", "--cluster", cli.name, "--master", lab.plan.join_addresses[0],
                   "--token", "0" * 12 + "." + "x" * 43, "--ca", lab.security.admin_tls["ca"],
                   "--state-dir", str(lab.dir / "intruder"), "--id", "intruder", check=False)
    assert used.returncode != 0 and "unknown" in used.stderr


def copies(app_id: str, instance: str) -> int:
    """Live processes of one instance, wherever they run (the real count, not etcd's)."""
    n = 0
    for p in psutil.process_iter():
        try:
            env = p.environ()
            if env.get("GAIA_APP_ID") == app_id and env.get("GAIA_INSTANCE") == instance and \
                    "sleep" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                n += 1
        except psutil.Error:
            continue
    return n


def spread(status, count: int, avoid: str = None):
    views = list(status.instances)
    ok = len(views) == count and all(v.status.state == RUNNING for v in views)
    return status if ok and not any(v.allocation.node_id == avoid for v in views) else None


def test_a_partitioned_nodes_instances_run_elsewhere(cli, tmp_path):
    lab = cli.lab()
    spec = tmp_path / "spread.yaml"
    spec.write_text(SLEEPER.format(name="spread", python=sys.executable))
    cli.run("--cluster", cli.name, "submit", str(spec))
    client = cli.client()
    get = lambda: client.call("GetApp", master_pb2.GetAppRequest(name="spread"))  # noqa: E731
    before = wait_for(lambda: spread(get(), 4), 45, what="4 instances running")
    assert len({v.allocation.node_id for v in before.instances}) >= 2, "instances not spread over nodes"
    victim = before.instances[0].allocation.node_id
    moved = {v.allocation.instance_id for v in before.instances if v.allocation.node_id == victim}

    cli.run("lab", "partition", victim, "--name", cli.name)
    try:
        assert not net.port_up(lab.plan, victim)
        # lease TTL 3 s, then the AM (or, were it on the victim, its next attempt) moves them
        after = wait_for(lambda: spread(get(), 4, avoid=victim), 30, what=f"{sorted(moved)} off {victim}",
                         on_timeout=lambda: [(v.allocation.instance_id, v.allocation.node_id, v.status.state)
                                             for v in get().instances])
        assert {v.allocation.instance_id for v in after.instances} == {v.allocation.instance_id
                                                                       for v in before.instances}
        assert all(v.allocation.migrations == 1 for v in after.instances if v.allocation.instance_id in moved)
        assert lab.process("node", victim) is not None, "the partitioned node manager runs on"
    finally:
        cli.run("lab", "partition", victim, "--undo", "--name", cli.name)
    # back on the network, the node hears its copies now run elsewhere and stops them
    app_id = before.app.app_id
    wait_for(lambda: all(copies(app_id, i) == 1 for i in moved), 30, what="one copy of each moved instance",
             on_timeout=lambda: {i: copies(app_id, i) for i in moved})
    wait_for(lambda: victim in {n.info.node_id for n in client.call(
        "ListNodes", master_pb2.ListNodesRequest()).nodes if n.alive}, 20, what=f"{victim} alive again")
    client.call("KillApp", master_pb2.KillAppRequest(name="spread"))


def etcd_leader(lab: Lab) -> str:
    for endpoint in lab.plan.etcd_endpoints:
        client = lab.security.etcd([endpoint], timeout=2)
        try:
            leader = client.status().leader
            if leader is not None:
                return leader.name
        except Exception:
            continue
        finally:
            client.close()
    raise AssertionError("no etcd member names a leader")


class PoolWriter(threading.Thread):
    """Creates pools one after another through the API (fenced etcd writes, and cheap: no AM
    to start); records the ones the master acknowledged."""

    def __init__(self, client, prefix: str):
        super().__init__(daemon=True)
        self.client, self.prefix = client, prefix
        self.acked, self.errors = [], []
        self.stop_flag = threading.Event()

    def run(self):
        for i in range(1000):
            if self.stop_flag.is_set():
                return
            path = f"{self.prefix}-{i}"
            try:
                self.client.call("CreatePool", master_pb2.PoolRequest(pool=types_pb2.Pool(path=path, weight=1)))
                self.acked.append(path)
            except Exception as e:  # an unacknowledged write may be lost (or be there)
                self.errors.append(e)


def test_killing_an_etcd_member_loses_no_acknowledged_write(cli, tmp_path):
    lab = cli.lab()
    client = cli.client()
    spec = tmp_path / "steady.yaml"
    spec.write_text(SLEEPER.format(name="steady", python=sys.executable))
    cli.run("--cluster", cli.name, "submit", str(spec))
    get = lambda: client.call("GetApp", master_pb2.GetAppRequest(name="steady"))  # noqa: E731
    before = wait_for(lambda: spread(get(), 4), 45, what="4 instances running")
    writer = PoolWriter(cli.client(), "burst")
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) >= 5, 30, what="writes before the kill")
        victim = etcd_leader(lab)                      # the raft leader: the worst one to lose
        lab.process("etcd", victim).send_signal(signal.SIGKILL)
        acked_at_kill = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= acked_at_kill + 20, 30, what="writes after the kill")
    finally:
        writer.stop_flag.set()
        writer.join(30)
    assert lab.process("etcd", victim) is None
    stored = {p.path for p in client.call("ListPools", master_pb2.ListPoolsRequest()).pools}
    assert set(writer.acked) <= stored, f"acknowledged pools lost: {sorted(set(writer.acked) - stored)}"
    # masters and nodes carry on: all campaigning, every node alive, nothing restarted, new work runs
    assert len(client.masters()) == 3
    listed = client.call("ListNodes", master_pb2.ListNodesRequest()).nodes
    assert sorted(n.info.node_id for n in listed if n.alive) == [f"gaia-node-{i}" for i in (1, 2, 3)]
    containers = lambda s: {v.allocation.instance_id: v.status.container_id for v in s.instances}  # noqa: E731
    assert containers(get()) == containers(before), "a container was restarted"


def test_after_an_etcd_member_loss_new_apps_run(cli, tmp_path):
    """Runs after the kill above: the leader still places AMs and instances."""
    client = cli.client()
    spec = tmp_path / "after.yaml"
    spec.write_text(SLEEPER.format(name="after", python=sys.executable))
    cli.run("--cluster", cli.name, "submit", str(spec))
    wait_for(lambda: spread(client.call("GetApp", master_pb2.GetAppRequest(name="after")), 4), 30,
             what="an app submitted after the kill running")


def test_down_leaves_no_namespace_link_or_process(cli):
    lab = cli.lab()
    tags = node_tags(cli, lab)
    assert any(n.startswith("gaia-") for n in os.listdir(NETNS_DIR))   # containers had their own
    started = time.monotonic()
    cli.run("lab", "down", "--name", cli.name)
    assert time.monotonic() - started < 30
    assert leftovers(cli, lab, tags) == []
    assert not cli.lab().state


def test_down_after_a_crashed_up_removes_what_it_made(cli):
    name = cli.name + "-crash"
    up = subprocess.Popen([sys.executable, "-m", "gaia_cli", "lab", "up", "--name", name, "--nodes", "1"],
                          env=cli.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:   # crash it once it has made the network and started a daemon
        wait_for(lambda: cli.lab(name).records(), 30, interval=0.05, what="a process recorded")
    finally:
        up.kill()
        up.wait()
    lab = cli.lab(name)
    assert net.netns_exists(lab.plan.switch_netns)
    cli.run("lab", "down", "--name", name)
    assert leftovers(cli, lab, node_tags(cli, lab)) == []
