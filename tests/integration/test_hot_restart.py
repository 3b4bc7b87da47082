"""Hot restart at scale: a node manager (a separate process) killed with -9 and restarted ten
times, and its Docker engine restarted once with live-restore, never restarts a container;
the registry stays whole and a container that exited meanwhile is reported with its exit code.

The engine is a private dockerd of this test's own (the shared one is never restarted); with
no dockerd installed the docker part is skipped and the process part still runs.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psutil
import pytest
import yaml

from gaia_cli.procs import remove_cgroups
from gaia_common import rpc
from gaia_common.config import NodeConfig
from gaia_common.keys import Keys
from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2
from gaia_node import procs, state
from gaia_node.network import hook as network_hook
from tests.integration.docker_support import PrivateEngine, import_busybox
from tests.integration.harness import ROOT, wait_for
from tests.integration.node_harness import REAL_V1, NodeHarness

S = types_pb2
PROCESS_CONTAINERS = 20
DOCKER_CONTAINERS = 3
RESTARTS = 10
EXIT_DURING = 4            # the restart during which the chosen containers exit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def engine():
    if not shutil.which("dockerd") or os.geteuid() != 0:
        yield None
        return
    root = tempfile.mkdtemp(prefix="gaia-de-", dir="/tmp")   # short: the socket path has a length limit
    private = PrivateEngine(root)
    try:
        private.start()
        import_busybox(private.client, "gaia-test/busybox:hot")
    except Exception as e:  # reported, and the process part still runs
        print(f"private dockerd unavailable, docker part skipped: {e}")
        private.destroy()
        yield None
        return
    try:
        yield private
    finally:
        private.destroy()


class NodeProcess:
    """`gaia node run` as a process of its own, on a fixed port, so it can be killed -9."""

    def __init__(self, workdir, config: dict):
        self.workdir = str(workdir)
        self.config = config
        self.address = config["listen"]
        self.path = os.path.join(self.workdir, "node.yaml")
        with open(self.path, "w") as f:
            yaml.safe_dump(config, f)
        self.proc = None
        self.channel = rpc.channel(self.address)
        self.stub = node_pb2_grpc.NodeStub(self.channel)

    def start(self, timeout: float = 30.0):
        since = time.time()
        log = open(os.path.join(self.workdir, "node.log"), "ab")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   GAIA_TEST_CLUSTER=self.config["cluster"])
        self.proc = subprocess.Popen([sys.executable, "-m", "gaia_cli", "node", "run", "--config", self.path],
                                     stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)

        def serving():
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited {self.proc.returncode}: see {self.workdir}/node.log")
            try:
                return self.report(timeout=1).info.registered_at >= since - 1
            except Exception:
                return False
        wait_for(serving, timeout=timeout, interval=0.1, what="the node manager to serve")

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def report(self, timeout=5):
        return self.stub.Status(node_pb2.NodeStatusRequest(), timeout=timeout)

    def start_container(self, spec):
        return self.stub.StartContainer(node_pb2.StartContainerRequest(epoch=1, spec=spec), timeout=30)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()
        self.channel.close()


OWN_NETWORK = {"p0", "p1", "d0"}   # a few in network namespaces of their own, re-adopted with them


def spec(cluster, name, command, driver="process", image=""):
    """Mostly on the host network: the subject is restart (container networking has its own
    tests), and a node sets up namespaces one at a time."""
    app_id = f"{name}-id"
    return S.ContainerSpec(container_id=f"{app_id}.0.1", app_id=app_id, app_name=name, instance_id="0",
                           driver=driver, image=image, command=command, cluster=cluster,
                           host_network=name not in OWN_NETWORK)


def wait_until_flag(path: str, code: int) -> list:
    return ["sh", "-c", f"while [ ! -e {path} ]; do sleep 0.1; done; exit {code}"]


def test_kill9_ten_times_and_a_docker_restart(tmp_path, etcd_server, etcd, cluster_name, engine):
    parent = f"gaia-test-hot-{cluster_name}"
    drivers = ["process", "docker"] if engine else ["process"]
    cfg = {"cluster": cluster_name, "etcd": [etcd_server.endpoint], "listen": f"127.0.0.1:{free_port()}",
           "id": f"hot-{cluster_name}", "state_dir": str(tmp_path / "state"), "cgroup_parent": parent,
           "lease_ttl": 3, "drivers": drivers, "cgroup_root": "/sys/fs/cgroup" if REAL_V1 else str(tmp_path / "none")}
    if engine:
        cfg["docker_host"] = engine.socket
    node = NodeProcess(tmp_path, cfg)
    keys = Keys(cluster_name)
    flag = tmp_path / "exit-now"
    specs = [spec(cluster_name, f"p{i}", ["sleep", "600"]) for i in range(PROCESS_CONTAINERS - 1)]
    specs.append(spec(cluster_name, "pexit", wait_until_flag(str(flag), 3)))
    if engine:
        image = "gaia-test/busybox:hot"
        specs += [spec(cluster_name, f"d{i}", ["sleep", "600"], "docker", image) for i in range(DOCKER_CONTAINERS - 1)]
        specs.append(spec(cluster_name, "dexit", wait_until_flag("/tmp/exit-now", 4), "docker", image))
        specs.append(spec(cluster_name, "dlater", wait_until_flag("/tmp/exit-now", 6), "docker", image))
    exits = {"pexit-id.0.1": 3, "dexit-id.0.1": 4}
    try:
        node.start()
        assert node.report().info.drivers == sorted(drivers)
        first = {s.container_id: node.start_container(s) for s in specs}
        assert all(st.state == S.CONTAINER_STATE_RUNNING for st in first.values()), first
        assert all(first[s.container_id].container_ip for s in specs if not s.host_network)
        created = {cid: psutil.Process(st.pid).create_time() for cid, st in first.items()}

        def check(exited: set):
            now = {st.container_id: st for st in node.report().containers}
            for cid, before in first.items():
                st = now[cid]
                if cid in exited:
                    assert (st.state, st.exit_code) == (S.CONTAINER_STATE_FAILED, exits[cid]), st
                    continue
                assert st.state == S.CONTAINER_STATE_RUNNING, st
                assert (st.pid, st.started_at) == (before.pid, before.started_at), f"{cid} restarted"
                assert psutil.Process(st.pid).create_time() == created[cid]
                assert st.container_ip == before.container_ip
            for s in specs:   # the registry: container status and service entries, under the new lease
                value, _ = etcd.get(keys.container(s.app_id, s.container_id))
                assert value is not None, f"status key of {s.container_id} missing"
                in_etcd = S.ContainerStatus.FromString(value)
                assert in_etcd.state == now[s.container_id].state
                service, _ = etcd.get(keys.service(s.app_name, s.instance_id))
                assert (service is not None) == (s.container_id not in exited), s.container_id

        exited = set()
        for restart in range(RESTARTS):
            node.kill9()
            if restart == EXIT_DURING:   # these end while no node manager watches
                flag.touch()
                if engine:
                    _exec(engine, "dexit-id.0.1", ["touch", "/tmp/exit-now"])
                exited = {"pexit-id.0.1", "dexit-id.0.1"} if engine else {"pexit-id.0.1"}
                wait_for(lambda: not any(procs.alive((state.read_json(
                    str(tmp_path / "state" / "containers" / c / "state.json")) or {}).get("child"))
                    for c in exited if c.startswith("p")), timeout=10, what="the process container to exit")
                if engine:
                    wait_for(lambda: not engine.client.api.inspect_container("gaia-dexit-id.0.1")["State"]["Running"],
                             timeout=10, what="the docker container to exit")
            node.start()
            wait_for(lambda: check(exited) is None, timeout=10, interval=0.2, what=f"restart {restart + 1} to settle")

        if engine:   # the engine restarts under a running node manager (live-restore)
            engine.restart()
            time.sleep(1.0)   # a status pass or two against the restored engine
            check(exited)
            _exec(engine, "dlater-id.0.1", ["touch", "/tmp/exit-now"])   # and it still sees exits
            exits["dlater-id.0.1"] = 6
            exited.add("dlater-id.0.1")
            wait_for(lambda: check(exited) is None, timeout=10, interval=0.2, what="an exit after the engine restart")
    finally:
        node.close()
        harness = NodeHarness(NodeConfig(**cfg), etcd)
        network_hook.sweep(harness.cfg)   # the node was killed: no poststop unwired its namespaces
        if engine:
            for c in engine.client.api.containers(all=True):
                engine.client.api.remove_container(c["Id"], force=True)
        harness.clean_up()
        remove_cgroups(parent)


def _exec(engine, container_id, command):
    api = engine.client.api
    exec_id = api.exec_create(f"gaia-{container_id}", command)["Id"]
    api.exec_start(exec_id)


def test_node_restarted_while_the_engine_is_down_keeps_its_docker_containers(
        tmp_path, etcd_server, etcd, cluster_name, engine):
    if engine is None:
        pytest.skip("no private dockerd could be started here")
    parent = f"gaia-test-away-{cluster_name}"
    cfg = {"cluster": cluster_name, "etcd": [etcd_server.endpoint], "listen": f"127.0.0.1:{free_port()}",
           "id": f"away-{cluster_name}", "state_dir": str(tmp_path / "state"), "cgroup_parent": parent,
           "lease_ttl": 3, "drivers": ["process", "docker"], "docker_host": engine.socket,
           "cgroup_root": "/sys/fs/cgroup" if REAL_V1 else str(tmp_path / "none")}
    node = NodeProcess(tmp_path, cfg)
    box = spec(cluster_name, "d0", ["sleep", "600"], "docker", "gaia-test/busybox:hot")
    try:
        node.start()
        before = node.start_container(box)
        assert before.state == S.CONTAINER_STATE_RUNNING, before.message
        node.kill9()
        engine.stop()                       # live-restore: the container runs on without its engine
        node.start()                        # the node comes back first, with no engine to ask
        report = node.report()
        assert report.info.drivers == ["process"]
        waiting = next(c for c in report.containers if c.container_id == box.container_id)
        assert waiting.state == S.CONTAINER_STATE_RUNNING and "unavailable" in waiting.message  # not LOST

        engine.start()
        def readopted():
            r = node.report()
            c = next(c for c in r.containers if c.container_id == box.container_id)
            return c if "docker" in r.info.drivers and not c.message else None
        after = wait_for(readopted, timeout=30, interval=0.5, what="the node to re-adopt once the engine answers")
        assert after.state == S.CONTAINER_STATE_RUNNING
        assert (after.pid, after.started_at) == (before.pid, before.started_at)  # never restarted
    finally:
        node.close()
        harness = NodeHarness(NodeConfig(**cfg), etcd)
        network_hook.sweep(harness.cfg)
        for c in engine.client.api.containers(all=True):
            engine.client.api.remove_container(c["Id"], force=True)
        harness.clean_up()
        remove_cgroups(parent)
