"""The docker driver honours volumes, devices and privileged for real (and the node's allow-list
still decides): on the machine's engine when one answers, else on a private dockerd."""
import os
import shutil
import tempfile

import pytest

from gaia_common.pb import node_pb2, types_pb2
from tests.integration.docker_support import PrivateEngine, docker_node, engine, import_busybox
from tests.integration.node_harness import node_cfg, wait_for  # noqa: F401 (fixture)

EXITED = types_pb2.CONTAINER_STATE_EXITED


@pytest.fixture(scope="module")
def docker_engine():
    """(docker_host, client): the shared engine, else a private one; skipped without either."""
    shared = engine(os.environ.get("DOCKER_HOST", ""))
    if shared is not None:
        yield os.environ.get("DOCKER_HOST", ""), shared
        shared.close()
        return
    if not shutil.which("dockerd") or os.geteuid() != 0:
        pytest.skip("no Docker engine answers and no private dockerd can be started (needs root)")
    private = PrivateEngine(tempfile.mkdtemp(prefix="gaia-ha-", dir="/tmp"))   # short: a socket path
    try:
        private.start()
    except Exception as e:   # noqa: BLE001 - said why, then skipped
        private.destroy()
        pytest.skip(f"private dockerd unavailable: {e}")
    try:
        yield private.socket, private.client
    finally:
        private.destroy()


@pytest.fixture
def dnode(node_cfg, etcd, docker_engine, tmp_path):
    host, client = docker_engine
    image = import_busybox(client, f"gaia-test/busybox:{os.getpid()}")
    data = tmp_path / "data"
    data.mkdir()
    node_cfg.host_path_allow = [str(data), "/dev/fuse", "/dev/null"]
    with docker_node(node_cfg, etcd, client, image, docker_host=host) as node:
        node.data = data
        yield node


def run(node, name: str, script: str, **fields) -> str:
    """Run `script` in busybox with `fields`; its stdout once it exited."""
    return run_status(node, name, script, **fields)[1]


def run_status(node, name: str, script: str, **fields):
    """(its final ContainerStatus, its stdout)."""
    spec = node.spec(name=name, command=["sh", "-c", script], driver="docker", image=node.image,
                     host_network=True, **fields)
    node.stub.StartContainer(node_pb2.StartContainerRequest(epoch=1, spec=spec), timeout=60)
    status = wait_for(lambda: (lambda c: c if c is not None and c.state in (EXITED, types_pb2.CONTAINER_STATE_FAILED)
                               else None)(node.container(spec.container_id)), 60, what=f"{name} to finish")
    chunks = node.stub.Logs(node_pb2.LogsRequest(container_id=spec.container_id), timeout=20)
    return status, b"".join(c.data for c in chunks if c.stream == "stdout").decode()


def test_volume_is_bound_read_only_and_read_write(dnode):
    (dnode.data / "hello").write_text("from the host")
    ro = types_pb2.Volume(host_path=str(dnode.data), container_path="/in", read_only=True)
    out = run(dnode, "ro", "cat /in/hello; echo; touch /in/new 2>/dev/null && echo wrote || echo refused", volumes=[ro])
    assert out.split() == ["from", "the", "host", "refused"]
    rw = types_pb2.Volume(host_path=str(dnode.data), container_path="/in")
    run(dnode, "rw", "echo from-the-task > /in/back", volumes=[rw])
    assert (dnode.data / "back").read_text() == "from-the-task\n"


def test_a_device_reaches_the_task_only_when_asked(dnode):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("this machine has no /dev/fuse")
    assert run(dnode, "nodev", "test -c /dev/fuse && echo present || echo absent").strip() == "absent"
    assert run(dnode, "dev", "test -c /dev/fuse && echo present || echo absent", devices=["/dev/fuse"]).strip() \
        == "present"


def test_a_privileged_task_holds_every_capability(dnode):
    """An ordinary container runs with docker's default capabilities; a privileged one with all."""
    caps = "grep CapEff /proc/self/status"
    plain = int(run(dnode, "plain", caps).split()[1], 16)
    status, out = run_status(dnode, "priv", caps, privileged=True)
    if status.state != EXITED and "apply caps" in status.message:
        # the engine was asked (its runtime says so), but this machine, itself a container,
        # holds fewer capabilities than a privileged container must get
        pytest.skip(f"this machine's engine cannot run privileged containers: {status.message[-120:]}")
    privileged = int(out.split()[1], 16)
    assert privileged & plain == plain and privileged > plain, (hex(plain), hex(privileged))
