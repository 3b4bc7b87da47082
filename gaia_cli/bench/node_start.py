"""Container start latency through Gaia's node against the same container started directly.

Gaia:    Node.StartContainer over gRPC on an in-process node manager (its own etcd), timed from
         the request to the answer, which comes once the container runs (RUNNING, with a pid).
Direct:  the same container by the driver's own means, in the same run, samples interleaved:
         process  a bare subprocess put into a fresh cgroup (memory, cpu, pids) before exec
         docker   the docker SDK's containers.run(detach=True), same image, limits, cgroup parent
Both on the host network (the network hook's own cost is measured by the network figures).
Targets (issue 4): docker ratio p50 < 1.2; process absolute overhead p50 < 50 ms.
"""
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid

from gaia_cli.bench.stats import percentiles

BUSYBOX = "/bin/busybox"
CGROUP_ROOT = "/sys/fs/cgroup"
MiB = 1 << 20


def start_latency_figures(samples: int = 20) -> dict:
    """{"process": {...}, "docker": {...}}: p50/p99 (ms) of each path, and their ratio."""
    from gaia_common.config import NodeConfig
    from gaia_common.etcd import EtcdServer
    workdir = tempfile.mkdtemp(prefix="gaia-bench-start-")
    os.makedirs(os.path.join(workdir, "etcd"))
    etcd = EtcdServer(data_dir=os.path.join(workdir, "etcd"), name="gaia-bench").start()
    tag = uuid.uuid4().hex[:8]
    cfg = NodeConfig(cluster=f"bench-{tag}", etcd=[etcd.endpoint], id=f"bench-{tag}",
                     state_dir=os.path.join(workdir, "node"), cgroup_parent=f"gaia-bench-{tag}",
                     lease_ttl=3, drivers=["process", "docker"], docker_host=os.environ.get("DOCKER_HOST", ""))
    bench = _Bench(cfg, workdir)
    try:
        bench.start()
        figures = {"samples": samples, "process": bench.process(samples)}
        figures["docker"] = bench.docker(samples) if "docker" in bench.manager.drivers else {
            "error": "no Docker engine answers: docker not measured"}
        return figures
    finally:
        bench.close()
        etcd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def summary(gaia: list, direct: list) -> dict:
    """Milliseconds; ratio and overhead from the medians (and the p99s)."""
    g, d = percentiles([x * 1000 for x in gaia]), percentiles([x * 1000 for x in direct])
    out = {"gaia_ms": g, "direct_ms": d}
    if g["n"] and d["n"]:
        out["ratio_p50"] = round(g["p50"] / d["p50"], 3)
        out["ratio_p99"] = round(g["p99"] / d["p99"], 3)
        out["overhead_p50_ms"] = round(g["p50"] - d["p50"], 3)
    return out


class _Bench:
    def __init__(self, cfg, workdir):
        self.cfg = cfg
        self.workdir = workdir
        self.manager = None
        self.stub = None
        self.channel = None
        self.image = ""
        self.image_id = ""
        self.seq = 0

    def start(self):
        from gaia_common import rpc
        from gaia_common.pb import node_pb2_grpc
        from gaia_node import main
        self.manager = main.start(self.cfg)
        self.channel = rpc.channel(self.manager.address)
        self.stub = node_pb2_grpc.NodeStub(self.channel)

    # ---- through Gaia ----

    def _spec(self, driver: str, command: list, image: str = ""):
        from gaia_common.pb import types_pb2
        self.seq += 1
        app_id = f"b{self.seq}-id"
        spec = types_pb2.ContainerSpec(container_id=f"{app_id}.0.1", app_id=app_id, app_name=f"b{self.seq}",
                                       instance_id="0", driver=driver, image=image, command=command,
                                       cluster=self.cfg.cluster, host_network=True)
        spec.resources.request.memory_bytes, spec.resources.limit.memory_bytes = 32 * MiB, 64 * MiB
        spec.resources.request.cpu_millis = 100
        return spec

    def _through_gaia(self, spec) -> float:
        from gaia_common.pb import node_pb2, types_pb2
        began = time.perf_counter()
        status = self.stub.StartContainer(node_pb2.StartContainerRequest(epoch=1, spec=spec), timeout=60)
        took = time.perf_counter() - began
        if status.state != types_pb2.CONTAINER_STATE_RUNNING:
            raise RuntimeError(f"{spec.container_id} did not run: {status.message}")
        self.stub.StopContainer(node_pb2.StopContainerRequest(epoch=1, container_id=spec.container_id,
                                                              grace_seconds=1, remove=True), timeout=60)
        return took

    # ---- process ----

    def process(self, samples: int) -> dict:
        gaia, direct = [], []
        for _ in range(samples):
            gaia.append(self._through_gaia(self._spec("process", ["sleep", "60"])))
            direct.append(self._bare_process())
        return summary(gaia, direct)

    def _bare_process(self) -> float:
        """Popen into a fresh cgroup (made in the timed part, as the driver makes its own)."""
        self.seq += 1
        paths = []
        began = time.perf_counter()
        if os.geteuid() == 0 and os.path.isdir(os.path.join(CGROUP_ROOT, "memory")):
            for controller in ("memory", "cpu", "pids"):
                path = os.path.join(CGROUP_ROOT, controller, self.cfg.cgroup_parent + "-direct", str(self.seq))
                os.makedirs(path, exist_ok=True)
                paths.append(path)
            with open(os.path.join(paths[0], "memory.limit_in_bytes"), "w") as f:
                f.write(str(64 * MiB))
        procs_files = [os.path.join(p, "cgroup.procs") for p in paths]

        def join():
            for name in procs_files:
                with open(name, "w") as f:
                    f.write(str(os.getpid()))

        child = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=join)
        took = time.perf_counter() - began
        child.kill()
        child.wait()
        for path in paths:
            _rmdir(path)
        return took

    # ---- docker ----

    def docker(self, samples: int) -> dict:
        driver = self.manager.drivers["docker"]
        client = driver.client
        self.image = f"gaia-bench/busybox:{uuid.uuid4().hex[:8]}"
        repository, _, version = self.image.partition(":")
        client.api.import_image_from_data(busybox_rootfs(), repository=repository, tag=version)
        self.image_id = client.api.inspect_image(self.image)["Id"]
        gaia, direct = [], []
        for _ in range(samples):
            gaia.append(self._through_gaia(self._spec("docker", ["sleep", "60"], self.image)))
            direct.append(self._bare_docker(client))
        return summary(gaia, direct)

    def _bare_docker(self, client) -> float:
        self.seq += 1
        began = time.perf_counter()
        container = client.containers.run(self.image, ["sleep", "60"], detach=True, network_mode="host",
                                          name=f"gaia-bench-direct-{self.cfg.id}-{self.seq}",
                                          cgroup_parent=f"/{self.cfg.cgroup_parent}-direct",
                                          mem_limit=64 * MiB, mem_reservation=32 * MiB, cpu_shares=102,
                                          labels={"io.gaia.bench": self.cfg.id})
        took = time.perf_counter() - began
        container.remove(force=True)
        return took

    # ---- clean-up ----

    def close(self):
        if self.channel is not None:
            self.channel.close()
        docker_driver = self.manager.drivers.get("docker") if self.manager else None
        if self.manager is not None:
            self.manager.stop()
        if docker_driver is not None:
            api = docker_driver.client.api
            for c in api.containers(all=True, filters={"label": f"io.gaia.bench={self.cfg.id}"}):
                api.remove_container(c["Id"], force=True)
            if self.image_id:
                try:
                    api.remove_image(self.image_id, force=True)
                except Exception:
                    pass
        from gaia_cli.procs import remove_cgroups
        for parent in (self.cfg.cgroup_parent, self.cfg.cgroup_parent + "-direct"):
            remove_cgroups(parent)


def _rmdir(path: str):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


def busybox_rootfs() -> bytes:
    """A tar of a root filesystem holding only a static busybox and its applets' links: an
    image for `docker import` on a machine with no registry."""
    if not os.path.exists(BUSYBOX):
        raise FileNotFoundError(f"{BUSYBOX} is missing (install busybox-static)")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin", "tmp", "etc", "proc", "sys", "dev", "work"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
    return buf.getvalue()
