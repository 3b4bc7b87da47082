"""`gaia logs` end to end: CLI -> leading master -> the node that runs the instance."""
import queue
import subprocess
import sys
import threading
import time

import pytest

from gaia_node.drivers.docker import LABEL_PARENT
from tests.integration.docker_support import busybox_image, docker_client, remove_labelled  # noqa: F401
from tests.integration.harness import ROOT, LocalCluster, running_cluster, wait_for

TALKER = """\
name: talker
instances: 1
command: ["sh", "-c",
          "echo start; echo warned >&2; i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo line $i; sleep 0.2; done"]
resources:
  request: {cpu: 50m, memory: 32Mi}
"""


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=1) as c:
        yield c



def numbers(text: str) -> list:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("line ")]


def lines_of(stream, into: queue.Queue):
    for line in iter(stream.readline, b""):
        into.put(line.decode())
    into.put(None)


def test_logs_snapshot_tail_and_follow(cluster, tmp_path):
    spec = tmp_path / "talker.yaml"
    spec.write_text(TALKER)
    cluster.cli("submit", str(spec))
    wait_for(lambda: len(numbers(cluster.cli("logs", "talker", check=False).stdout)) >= 3, 40,
             what="the instance to print")

    snapshot = cluster.cli("logs", "talker")
    assert snapshot.stdout.startswith("start\nline 1\n")
    assert snapshot.stderr == "warned\n"              # each stream to its own
    assert cluster.cli("logs", "talker/0").stdout.startswith("start\n")

    tail = cluster.cli("logs", "talker/0", "--tail", "20")
    assert 0 < len(tail.stdout) <= 20 and tail.stderr == "warned\n"
    assert tail.stdout.endswith("\n")

    # -f: what there is, then new lines as they come, until the container ends
    last_seen = numbers(snapshot.stdout)[-1]
    follower = subprocess.Popen([sys.executable, "-m", "gaia_cli", "--cluster", cluster.name, "logs", "talker",
                                 "-f", "--tail", "10"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=cluster._env(), cwd=ROOT)
    lines = queue.Queue()
    threading.Thread(target=lines_of, args=(follower.stdout, lines), daemon=True).start()
    try:
        seen, deadline = [], time.monotonic() + 20
        while time.monotonic() < deadline and not (seen and seen[-1] >= last_seen + 5):
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            assert line is not None, "the follow ended while the container runs"
            seen += numbers(line)
        assert seen and seen[-1] >= last_seen + 5, f"no new lines followed: {seen}"
        assert seen == list(range(seen[0], seen[-1] + 1)), "lines lost or repeated"

        cluster.cli("kill", "talker")                # the container ends: so does the follow
        follower.wait(20)
        assert follower.returncode == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_logs_of_an_unknown_app(cluster):
    result = cluster.cli("logs", "nosuch", check=False)
    assert result.returncode == 3 and "nosuch" in result.stderr


DOCKER_TALKER = """\
name: boxed
driver: docker
image: {image}
command: ["sh", "-c", "echo from the box; echo box err >&2; sleep 300"]
resources:
  request: {{cpu: 50m, memory: 32Mi}}
"""


def test_logs_of_a_docker_instance(etcd_server, cluster_name, tmp_path, docker_client, busybox_image):
    c = LocalCluster(etcd_server.endpoint, cluster_name, tmp_path)
    try:
        c.start_master()
        c.start_node(drivers=["process", "docker"])
        c.wait_ready(nodes=1)
        spec = tmp_path / "boxed.yaml"
        spec.write_text(DOCKER_TALKER.format(image=busybox_image))
        c.cli("submit", str(spec))
        out = wait_for(lambda: (r := c.cli("logs", "boxed", check=False)).stdout == "from the box\n" and r, 60,
                       what="the docker instance's output")
        assert out.stderr == "box err\n"
        assert c.cli("logs", "boxed", "--tail", "4").stdout == "box\n"
    finally:
        remove_labelled(docker_client, LABEL_PARENT, f"gaia-{cluster_name}")  # first: then its cgroups can go
        c.stop()
