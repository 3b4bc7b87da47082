"""Docker engine fixtures: a busybox image made locally (no registry), and clean-up of every
engine container a test left behind. Tests using them skip, saying why, when no engine answers."""
import contextlib
import os
import subprocess
import time

import pytest

from gaia_cli.bench.node_start import BUSYBOX, busybox_rootfs
from gaia_cli.procs import remove_cgroups
from gaia_node.drivers.docker import LABEL_PARENT
from gaia_node.network import hook as network_hook
from tests.integration.node_harness import NodeHarness

IMAGE = "gaia-test/busybox:latest"


def engine(base_url: str = ""):
    """A docker SDK client that answered a ping, or None."""
    try:
        import docker
        client = docker.DockerClient(base_url=base_url, timeout=30) if base_url else docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception:
        return None


def import_busybox(client, tag: str = IMAGE) -> str:
    """`docker import` of the busybox rootfs, tagged `tag`; returns the tag."""
    if not os.path.exists(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is missing (install busybox-static): no image to run")
    repository, _, version = tag.partition(":")
    client.api.import_image_from_data(busybox_rootfs(), repository=repository, tag=version or "latest")
    return tag


def remove_labelled(client, label: str, value: str = None, timeout: float = 30.0):
    """Force-remove every engine container carrying `label` (=value); bounded wait."""
    selector = f"{label}={value}" if value else label
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.api.containers(all=True, filters={"label": selector})
        if not found:
            return
        for c in found:
            try:
                client.api.remove_container(c["Id"], force=True)
            except Exception:
                pass
        time.sleep(0.2)


@contextlib.contextmanager
def docker_node(node_cfg, etcd, client, image: str, docker_host: str = None):
    """A started NodeHarness with the process and docker drivers, on the engine at `docker_host`
    ($DOCKER_HOST unless given) that `client` speaks to, `image` as its .image. Afterwards its
    engine containers, processes, cgroups and network namespaces are gone."""
    node_cfg.drivers = ["process", "docker"]
    node_cfg.docker_host = os.environ.get("DOCKER_HOST", "") if docker_host is None else docker_host
    harness = NodeHarness(node_cfg, etcd)
    harness.image = image
    try:
        yield harness.start()
    finally:
        harness.stop()
        remove_labelled(client, LABEL_PARENT, node_cfg.cgroup_parent)
        harness.clean_up()
        remove_cgroups(node_cfg.cgroup_parent)   # the hierarchies only the engine uses (cpuset...)
        network_hook.sweep(node_cfg)             # namespaces the node named after its containers


@pytest.fixture(scope="session")
def docker_client():
    client = engine(os.environ.get("DOCKER_HOST", ""))
    if client is None:
        pytest.skip("no Docker engine answers at $DOCKER_HOST or /var/run/docker.sock "
                    "(start one: dockerd --bridge=none --iptables=false --live-restore)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client):
    tag = import_busybox(docker_client, f"gaia-test/busybox:{os.getpid()}")  # sessions never share it
    image_id = docker_client.api.inspect_image(tag)["Id"]
    yield tag
    try:
        docker_client.api.remove_image(image_id, force=True)
    except Exception:
        pass


class PrivateEngine:
    """A dockerd of the test's own (own data and exec roots, pidfile and socket, live-restore),
    so a test may restart an engine without touching the machine's shared one."""

    def __init__(self, root: str):
        self.root = root
        self.socket = f"unix://{root}/docker.sock"
        self.proc = None
        self.client = None

    def args(self):
        return ["dockerd", f"--data-root={self.root}/data", f"--exec-root={self.root}/exec",
                f"--pidfile={self.root}/docker.pid", f"-H={self.socket}", "--bridge=none", "--iptables=false",
                "--ip-masq=false", "--live-restore", f"--config-file={self.root}/daemon.json"]

    def start(self, timeout: float = 40.0):
        os.makedirs(self.root, exist_ok=True)
        with open(f"{self.root}/daemon.json", "w") as f:
            f.write("{}")
        log = open(f"{self.root}/dockerd.log", "ab")
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private dockerd exited {self.proc.returncode}; see {self.root}/dockerd.log")
            self.client = engine(self.socket)
            if self.client is not None:
                return self
            time.sleep(0.3)
        raise RuntimeError(f"private dockerd did not answer within {timeout}s; see {self.root}/dockerd.log")

    def stop(self, timeout: float = 30.0):
        """SIGTERM and wait: with live-restore its containers keep running."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def destroy(self):
        """Remove every container, stop the engine, end what it left (its containerd, by the
        exec root in its command line), and delete its directories."""
        import psutil
        import shutil
        if self.client is not None:
            for c in self.client.api.containers(all=True):
                try:
                    self.client.api.remove_container(c["Id"], force=True)
                except Exception:
                    pass
        self.stop()
        for p in psutil.process_iter(["pid", "cmdline"]):
            if any(self.root in (arg or "") for arg in (p.info["cmdline"] or ())):
                try:
                    p.kill()
                except psutil.Error:
                    pass
        for sub in ("exec", "data"):   # mounts the engine left: its overlay and netns files
            subprocess.run(["sh", "-c", f"grep -o ' {self.root}/{sub}[^ ]*' /proc/mounts | sort -r | "
                                        "xargs -r -n1 umount -l"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
