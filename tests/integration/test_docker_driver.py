"""The docker driver against the real Docker engine: cgroups under Gaia's parent, limits, exit
codes, stop, a missing image, logs, and re-adoption after a node-manager restart."""
import glob
import os
import time

import grpc
import psutil
import pytest

from gaia_cli.procs import cgroup_dirs
from gaia_common.pb import node_pb2, types_pb2
from gaia_node.drivers.docker import LABEL_NODE, LABEL_PARENT
from tests.integration.docker_support import busybox_image, docker_client, docker_node  # noqa: F401
from tests.integration.node_harness import REAL_V1, NodeHarness, node_cfg, wait_for  # noqa: F401

S = types_pb2
MiB = 1 << 20


@pytest.fixture
def dnode(node_cfg, etcd, docker_client, busybox_image):
    with docker_node(node_cfg, etcd, docker_client, busybox_image) as node:
        yield node


def bb(node, name="web", command=("sleep", "30"), host_network=True, **kw):
    """A busybox spec. The host's network unless asked: the subject here is the driver; its own
    namespace (network "none", wired by the network hook) has a test of its own below."""
    return node.spec(name=name, command=command, driver="docker", image=getattr(node, "image", "gaia-test/busybox"),
                     host_network=host_network, **kw)


def engine_containers(client, parent):
    return client.api.containers(all=True, filters={"label": f"{LABEL_PARENT}={parent}"})


def logs(node, container_id, **kw):
    chunks = node.stub.Logs(node_pb2.LogsRequest(container_id=container_id, **kw), timeout=20)
    out = {"stdout": b"", "stderr": b""}
    for c in chunks:
        out[c.stream] += c.data
    return out


def test_runs_under_gaias_cgroup_with_its_limits(dnode, docker_client):
    spec = bb(dnode)
    spec.resources.request.memory_bytes, spec.resources.limit.memory_bytes = 32 * MiB, 64 * MiB
    spec.resources.request.cpu_millis = 500
    status = dnode.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    assert dnode.report().info.drivers == ["docker", "process"]
    proc = psutil.Process(status.pid)
    assert proc.name() == "sleep"
    assert abs(status.started_at - proc.create_time()) < 1.0      # the engine's real start time
    if REAL_V1:
        own = dnode.cgroup_dir("memory", spec.container_id)      # <parent>/<container_id>, Gaia's
        leaves = glob.glob(os.path.join(own, "*", "memory.limit_in_bytes"))
        assert len(leaves) == 1, leaves                          # the engine's leaf under it
        assert int(open(leaves[0]).read()) == 64 * MiB
        assert int(open(os.path.join(own, "memory.limit_in_bytes")).read()) == 64 * MiB
        assert status.pid in [int(p) for p in open(os.path.join(os.path.dirname(leaves[0]), "cgroup.procs"))]
        cpu_leaf = glob.glob(os.path.join(dnode.cgroup_dir("cpu", spec.container_id), "*", "cpu.shares"))
        assert int(open(cpu_leaf[0]).read()) == 512
    assert dnode.etcd.get(dnode.keys.service("web", "0"))[0] is not None

    stopped = dnode.stop_container(spec.container_id, grace=1)
    assert stopped.state == S.CONTAINER_STATE_STOPPED
    assert not psutil.pid_exists(status.pid) or psutil.Process(status.pid).status() == psutil.STATUS_ZOMBIE
    assert engine_containers(docker_client, dnode.cfg.cgroup_parent) == []   # released
    if REAL_V1:   # in no hierarchy, the engine's own (cpuset, devices, freezer...) included
        assert not [d for d in cgroup_dirs(dnode.cfg.cgroup_parent) if (d / spec.container_id).exists()]


def test_exit_codes_env_command_and_logs(dnode):
    spec = bb(dnode, name="job", command=["sh", "-c", "echo hello $GAIA_APP from $PWD; echo oops >&2; exit 7"],
              env={"EXTRA": "x"}, workdir="/tmp")
    dnode.start_container(spec)
    done = wait_for(lambda: (s := dnode.container(spec.container_id)) and
                    s.state in (S.CONTAINER_STATE_FAILED, S.CONTAINER_STATE_EXITED) and s, timeout=15, what="exit")
    assert done.state == S.CONTAINER_STATE_FAILED and done.exit_code == 7, done
    assert done.finished_at >= done.started_at > 0
    out = logs(dnode, spec.container_id)   # kept by the node after the engine's container is gone
    assert out == {"stdout": b"hello job from /tmp\n", "stderr": b"oops\n"}
    assert logs(dnode, spec.container_id, tail_bytes=4)["stdout"] == b"tmp\n"

    ok = bb(dnode, name="ok", command=["true"])
    dnode.start_container(ok)
    done = wait_for(lambda: (s := dnode.container(ok.container_id)) and s.state == S.CONTAINER_STATE_EXITED and s,
                    timeout=15, what="a clean exit")
    assert done.exit_code == 0


def test_logs_of_a_running_container_follow_and_tail(dnode):
    spec = bb(dnode, name="talker", command=["sh", "-c", "echo first; echo e1 >&2; sleep 2; echo second; exit 0"])
    dnode.start_container(spec)
    wait_for(lambda: logs(dnode, spec.container_id)["stdout"] == b"first\n", timeout=10, what="first line")
    assert logs(dnode, spec.container_id, tail_bytes=3) == {"stdout": b"st\n", "stderr": b"e1\n"}
    started = time.monotonic()
    followed = logs(dnode, spec.container_id, follow=True)  # ends when the container does
    assert followed == {"stdout": b"first\nsecond\n", "stderr": b"e1\n"}
    assert time.monotonic() - started < 10


def test_missing_image_is_a_clear_error_and_leaves_nothing(dnode, docker_client):
    spec = dnode.spec(name="ghost", command=["true"], driver="docker", image="gaia-test/no-such-image:1")
    spec.resources.limit.memory_bytes = 64 * MiB
    status = dnode.start_container(spec)
    assert status.state == S.CONTAINER_STATE_FAILED
    assert "gaia-test/no-such-image:1" in status.message and "does not exist" in status.message
    assert engine_containers(docker_client, dnode.cfg.cgroup_parent) == []
    if REAL_V1:
        assert not os.path.exists(dnode.cgroup_dir("memory", spec.container_id))


def test_a_stale_engine_container_of_the_same_id_is_replaced(dnode, docker_client):
    """Left by a node manager that died between the engine's create and its own record."""
    spec = bb(dnode, name="stale")
    docker_client.api.create_container(dnode.image, ["sleep", "30"], name=f"gaia-{spec.container_id}",
                                       labels={LABEL_PARENT: dnode.cfg.cgroup_parent})
    status = dnode.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status.message
    assert len(engine_containers(docker_client, dnode.cfg.cgroup_parent)) == 1


def test_engine_containers_the_node_forgot_are_removed_at_start(dnode, docker_client):
    own_label = os.path.join(os.path.abspath(dnode.cfg.state_dir), "containers")
    orphan = docker_client.api.create_container(dnode.image, ["sleep", "30"], name=f"gaia-{dnode.cfg.id}-orphan",
                                                labels={LABEL_PARENT: dnode.cfg.cgroup_parent, LABEL_NODE: own_label,
                                                        "io.gaia.container-id": "gone-id.0.1"})
    # another node manager of this host, same cgroup parent (as in a dev cluster): not ours to remove
    neighbour = docker_client.api.create_container(
        dnode.image, ["sleep", "30"], name=f"gaia-{dnode.cfg.id}-neighbour",
        labels={LABEL_PARENT: dnode.cfg.cgroup_parent, LABEL_NODE: "/elsewhere/containers",
                "io.gaia.container-id": "theirs-id.0.1"})
    for made in (orphan, neighbour):
        docker_client.api.start(made["Id"])
    try:
        dnode.stop()
        dnode.start()
        assert [c["Id"] for c in engine_containers(docker_client, dnode.cfg.cgroup_parent)] == [neighbour["Id"]]
    finally:
        docker_client.api.remove_container(neighbour["Id"], force=True)


def test_refuses_what_it_cannot_honour(dnode):
    spec = bb(dnode, name="ns", namespaces=["pid"])
    with pytest.raises(grpc.RpcError) as err:
        dnode.start_container(spec)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec.namespaces" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        dnode.start_container(dnode.spec(name="noimage", driver="docker"))
    assert "spec.image" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        logs(dnode, "nosuch-id.0.1")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_recovered_after_a_node_manager_restart(dnode):
    spec = bb(dnode)
    before = dnode.start_container(spec)
    exiting = bb(dnode, name="short", command=["sh", "-c", "sleep 1; exit 5"])
    dnode.start_container(exiting)
    dnode.stop()
    time.sleep(2)  # `short` exits while no node manager watches
    dnode.start()
    after = dnode.container(spec.container_id)
    assert after.state == S.CONTAINER_STATE_RUNNING
    assert (after.pid, after.started_at) == (before.pid, before.started_at)
    gone = dnode.container(exiting.container_id)
    assert gone.state == S.CONTAINER_STATE_FAILED and gone.exit_code == 5
    assert dnode.stop_container(spec.container_id, grace=1).state == S.CONTAINER_STATE_STOPPED


def test_own_network_namespace_wired_by_pid(dnode, docker_client):
    """network_mode "none": the engine makes the namespace, the node's network hook wires it
    by the pid the driver reports."""
    spec = bb(dnode, name="netted", host_network=False)
    status = dnode.start_container(spec)
    assert status.state == S.CONTAINER_STATE_RUNNING, status
    inspect = docker_client.api.inspect_container(f"gaia-{spec.container_id}")
    assert inspect["HostConfig"]["NetworkMode"] == "none"
    assert status.container_ip
    exec_id = docker_client.api.exec_create(inspect["Id"], ["ip", "-o", "-4", "addr"])["Id"]
    assert status.container_ip in docker_client.api.exec_start(exec_id).decode()


def test_node_starts_without_an_engine(node_cfg, etcd, tmp_path):
    node_cfg.drivers = ["process", "docker"]
    node_cfg.docker_host = f"unix://{tmp_path}/no-engine.sock"
    harness = NodeHarness(node_cfg, etcd)
    try:
        harness.start()
        assert harness.report().info.drivers == ["process"]
        status = harness.start_container(harness.spec())
        assert status.state == S.CONTAINER_STATE_RUNNING
        with pytest.raises(grpc.RpcError) as err:
            harness.start_container(bb(harness, name="d"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "docker" in err.value.details()
    finally:
        harness.clean_up()


def test_scratch_is_the_nodes_measured_directory(dnode):
    spec = bb(dnode, name="scratch", command=["sh", "-c", "echo data > $GAIA_SCRATCH/out && echo $GAIA_SCRATCH"])
    dnode.start_container(spec)
    done = wait_for(lambda: (s := dnode.container(spec.container_id)) and s.state == S.CONTAINER_STATE_EXITED and s,
                    timeout=15, what="the write to scratch")
    assert done.exit_code == 0, done
    scratch = logs(dnode, spec.container_id)["stdout"].decode().strip()
    assert scratch.startswith(os.path.abspath(dnode.cfg.state_dir))  # a node path, mounted at the same place
    with open(os.path.join(scratch, "out")) as f:  # on the node, where the disk quota measures it
        assert f.read() == "data\n"
