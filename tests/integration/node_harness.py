"""A node manager in-process against the test etcd, and a clean-up that leaves no process or cgroup."""
import os
import signal
import time
import uuid

import pytest

from gaia_common import rpc
from gaia_common.config import NodeConfig
from gaia_common.keys import Keys
from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2
from gaia_node import main, procs, state
from gaia_node.cgroups.v1 import CONTROLLERS

IS_ROOT = os.geteuid() == 0
CGROUP_ROOT = "/sys/fs/cgroup"
REAL_V1 = IS_ROOT and os.path.isdir(f"{CGROUP_ROOT}/memory") and not os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers")


def wait_for(predicate, timeout=5.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class NodeHarness:
    def __init__(self, cfg: NodeConfig, etcd):
        self.cfg = cfg
        self.etcd = etcd
        self.keys = Keys(cfg.cluster)
        self.manager = None
        self.channel = None
        self.stub = None

    def start(self):
        self.manager = main.start(self.cfg)
        self.channel = rpc.channel(self.manager.address)
        self.stub = node_pb2_grpc.NodeStub(self.channel)
        return self

    def stop(self):
        if self.channel:
            self.channel.close()
        if self.manager:
            self.manager.stop()
        self.manager = self.channel = self.stub = None

    def spec(self, name="web", command=("sleep", "30"), ports=(), instance="0", attempt=1, driver="process", **kw):
        app_id = f"{name}-id"
        return types_pb2.ContainerSpec(
            container_id=f"{app_id}.{instance}.{attempt}", app_id=app_id, app_name=name, instance_id=instance,
            driver=driver, command=list(command), cluster=self.cfg.cluster,
            ports=[types_pb2.Port(name=p, protocol="tcp") for p in ports], **kw)

    def start_container(self, spec, epoch=1):
        return self.stub.StartContainer(node_pb2.StartContainerRequest(epoch=epoch, spec=spec), timeout=15)

    def stop_container(self, container_id, epoch=1, grace=2.0, remove=False):
        return self.stub.StopContainer(node_pb2.StopContainerRequest(
            epoch=epoch, container_id=container_id, grace_seconds=grace, remove=remove), timeout=15)

    def report(self):
        return self.stub.Status(node_pb2.NodeStatusRequest(), timeout=5)

    def container(self, container_id):
        for status in self.report().containers:
            if status.container_id == container_id:
                return status
        return None

    def etcd_message(self, key, cls):
        value, _ = self.etcd.get(key)
        if value is None:
            return None
        msg = cls()
        msg.ParseFromString(value)
        return msg

    def cgroup_dir(self, controller, container_id):
        return os.path.join(CGROUP_ROOT, controller, self.cfg.cgroup_parent, container_id)

    def clean_up(self):
        """Kill whatever the test left running, then remove its cgroups."""
        self.stop()
        dirs = state.ContainerDirs(self.cfg.state_dir)
        for cid in dirs.ids():
            record = state.read_json(dirs.path(cid, state.SHIM_STATE)) or {}
            if procs.alive(record.get("child")):
                _kill(os.killpg, record["child"]["pid"])
            if procs.alive(record.get("shim")):
                _kill(os.kill, record["shim"]["pid"])
        if REAL_V1:
            for controller in CONTROLLERS:
                parent = os.path.join(CGROUP_ROOT, controller, self.cfg.cgroup_parent)
                for leaf in (os.listdir(parent) if os.path.isdir(parent) else ()):
                    path = os.path.join(parent, leaf)
                    if os.path.isdir(path):
                        for pid in open(os.path.join(path, "cgroup.procs")).read().split():
                            _kill(os.kill, int(pid))
                        wait_for(lambda: _rmdir(path), what=f"rmdir {path}")
                if os.path.isdir(parent):
                    os.rmdir(parent)
        if IS_ROOT:  # namespaces, veths, ifbs, nftables table and addresses of this node's containers
            from gaia_node.network.hook import sweep
            sweep(self.cfg)


def _kill(kill, pid):
    try:
        kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rmdir(path):
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


@pytest.fixture
def node_cfg(tmp_path, etcd_server, cluster_name):
    tag = uuid.uuid4().hex[:8]
    return NodeConfig(cluster=cluster_name, etcd=[etcd_server.endpoint], id=f"node-{tag}",
                      state_dir=str(tmp_path / "node"), cgroup_parent=f"gaia-test-{tag}", lease_ttl=2,
                      cgroup_root=CGROUP_ROOT if IS_ROOT else str(tmp_path / "no-cgroups"))


@pytest.fixture
def node(node_cfg, etcd):
    harness = NodeHarness(node_cfg, etcd)
    try:
        yield harness.start()
    finally:
        harness.clean_up()
