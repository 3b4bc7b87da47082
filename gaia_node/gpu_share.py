"""GPU containers on the node: their devices, and the vCUDA interposer's config, preload and region.

A container whose resources.request.gpu_share is above 0 gets, from this hook (`gpu`), before
its driver starts it:
  devices   the GPUs it was granted (ContainerSpec.gpu_indices, the scheduler's choice): docker
            passes a DeviceRequest(driver="nvidia", device_ids=...) where the engine has the
            nvidia runtime, else the /dev/nvidia* device nodes; the process driver denies the
            other GPUs in a v1 devices cgroup where it can make one. CUDA_VISIBLE_DEVICES, set
            by the AM to the host's indices, is renumbered 0..k-1 wherever the container sees
            only its own GPUs (the CUDA driver numbers the devices it can open); elsewhere it
            keeps the host's indices, and CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA number the
            GPUs as NVML (and so the node) does.
  vCUDA     only for a fraction of one GPU (gpu_share 1..99): whole GPUs are the container's
            alone, so nothing needs enforcing on them. Under <container dir>/gpu/:
              vcuda.conf      memory_limit (resources.limit.gpu_memory_bytes, else the
                              request), share, ceiling (elastic: resources.limit.gpu_share),
                              mode, region, gpu_dir, devices (see gaia_node/vcuda/src/config.c)
              shared/         the container's region (the library makes region, region.sm):
                              every process of the container accounts memory and GPU time there
              ld.so.preload   the library's path (after the host's own entries, for the
                              process driver), bound over the container's /etc/ld.so.preload
            and <state_dir>/gpu/, shared by every GPU container of the node (the library keeps
            gpu<index>.sm there: who runs on that GPU, and for elastic containers, who wants
            its share back).
            The process driver sets LD_PRELOAD and GAIA_VCUDA_CONFIG, and binds the preload
            file when the container has a mount namespace of its own; docker binds the library
            at LIBRARY_IN_CONTAINER, the config at /etc/gaia/vcuda.conf and the preload file at
            /etc/ld.so.preload. Either way a child whose shell drops the environment still loads
            the library and finds its config.
The drivers read what to do from <container dir>/gpu/plan.json (load_plan), written here.
A container without gpu_share gets none of this. The files go with the container's directory
when it is removed; its devices cgroup goes when it ends.
"""
import dataclasses
import logging
import os
import signal
import time
from typing import Optional

from gaia_common.spec import SpecError, validate_gpu_mode
from gaia_node import state
from gaia_node.drivers.base import StartFailed

log = logging.getLogger("gaia.node.gpu")

FULL = 100                                   # gpu_share of one whole GPU
DIR = "gpu"                                  # under the container's directory
PLAN = "plan.json"
CONFIG = "vcuda.conf"
PRELOAD_FILE = "ld.so.preload"
SHARED = "shared"                            # the region's directory (bound read-write into docker)
REGION = "region"
CONFIG_IN_CONTAINER = "/etc/gaia/vcuda.conf"
LIBRARY_IN_CONTAINER = "/usr/local/lib/gaia/libvcuda.so"
PRELOAD_IN_CONTAINER = "/etc/ld.so.preload"
HOST_PRELOAD = "/etc/ld.so.preload"          # the host's: read, and bound over in a mount namespace
CONFIG_ENV = "GAIA_VCUDA_CONFIG"
NVIDIA_MAJOR = 195                           # /dev/nvidia<minor>, when the node cannot stat it
DEV = "/dev"
CONTROL_DEVICES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")   # under DEV
CGROUP_REMOVE_WAIT = 2.0


@dataclasses.dataclass
class Plan:
    """What one GPU container gets; JSON in <container dir>/gpu/plan.json for the drivers."""
    indices: list                        # the node's GPUs granted (Gpu.index)
    devices: list                        # /dev/nvidia<minor> of those GPUs
    controls: list                       # nvidiactl, nvidia-uvm... present on the node
    library: str = ""                    # host path of libvcuda.so; "" = no interposer
    config: str = ""                     # host path of vcuda.conf
    preload: str = ""                    # host path of the ld.so.preload made for it
    shared: str = ""                     # the region's directory
    gpu_dir: str = ""                    # <state_dir>/gpu: every container on the node's GPUs
    cgroup: str = ""                     # its v1 devices cgroup, when the process driver has one

    @property
    def cgroup_procs(self) -> list:
        return [os.path.join(self.cgroup, "cgroup.procs")] if self.cgroup else []


def plan_path(container_dir: str) -> str:
    return os.path.join(container_dir, DIR, PLAN)


def load_plan(container_dir: str) -> Optional[Plan]:
    """The container's plan, or None when it has no GPU (or an unreadable plan: then none)."""
    doc = state.read_json(plan_path(container_dir))
    if not doc:
        return None
    known = {f.name for f in dataclasses.fields(Plan)}
    return Plan(**{k: v for k, v in doc.items() if k in known})


# ---- the container's settings, from its spec ----

def wants_gpu(spec) -> bool:
    return spec.resources.request.gpu_share > 0


def is_fraction(spec) -> bool:
    return 0 < spec.resources.request.gpu_share < FULL


def memory_limit(spec) -> int:
    """Bytes the container may allocate on its GPU: the limit when set, else the request (0: none)."""
    return spec.resources.limit.gpu_memory_bytes or spec.resources.request.gpu_memory_bytes


def mode(spec) -> str:
    return spec.gpu_mode or "hard"


def ceiling(spec) -> int:
    """Elastic: the limit's share, between the share and one whole GPU; hard: the share."""
    share = spec.resources.request.gpu_share
    if mode(spec) != "elastic":
        return share
    return min(FULL, max(share, spec.resources.limit.gpu_share or share))


def render_config(spec, region: str, gpu_dir: str) -> str:
    """vcuda.conf for a fractional container."""
    return config_text(memory_limit=memory_limit(spec), share=spec.resources.request.gpu_share,
                       ceiling=ceiling(spec), mode=mode(spec), region=region, gpu_dir=gpu_dir,
                       devices=spec.gpu_indices, about=f"container {spec.container_id}")


def config_text(*, memory_limit: int, share: int, ceiling: int, mode: str, region: str, gpu_dir: str,
                devices=(), about: str = "") -> str:
    """key=value lines, as gaia_node/vcuda/src/config.c reads them (it names unknown keys)."""
    lines = [f"# written by Gaia{' for ' + about if about else ''}",
             f"memory_limit={int(memory_limit)}", f"share={int(share)}", f"ceiling={int(ceiling)}",
             f"mode={mode}", f"region={region}", f"gpu_dir={gpu_dir}",
             "devices=" + ",".join(str(int(i)) for i in devices)]
    return "\n".join(lines) + "\n"


def visible_devices(count: int) -> str:
    return ",".join(str(i) for i in range(count))


# ---- the hook ----

class GpuHook:
    """Sets up (prestart) and takes down (poststop) a GPU container's devices and vCUDA files."""
    name = "gpu"

    def __init__(self, node_gpus, state_dir: str, library=None, devices_cgroup=None):
        self.node_gpus = node_gpus                  # gpu_discovery.NodeGpus
        self.state_dir = os.path.abspath(state_dir)
        self._library = library                     # callable -> path or None (the built libvcuda)
        self.devices_cgroup = devices_cgroup        # DevicesCgroup, or None where there is none

    def library(self) -> str:
        try:
            found = self._library() if self._library else _vcuda_library()
        except Exception as e:  # a build that fails: sharing is off, the container still runs
            log.warning("libvcuda unavailable: %s", e)
            return ""
        return str(found) if found else ""

    def prestart(self, ctx) -> None:
        spec = ctx.spec
        if not wants_gpu(spec):
            return
        validate_gpu_mode(spec.gpu_mode, spec.resources, "spec.")
        known = {g.index for g in self.node_gpus.gpus}
        if not known:
            _note(ctx, "gpu_share not given any device: this node reports no GPUs")
            return
        for i, index in enumerate(spec.gpu_indices):
            if index not in known:
                raise SpecError(f"spec.gpu_indices[{i}]", f"GPU {index} is not one of this node's "
                                                          f"({', '.join(map(str, sorted(known)))})")
        indices = sorted(set(int(i) for i in spec.gpu_indices))
        if not indices:
            _note(ctx, "no GPU granted (spec.gpu_indices is empty): every GPU of the node is visible")
        plan = Plan(indices=indices, devices=[os.path.join(DEV, f"nvidia{self.node_gpus.minor(i)}") for i in indices],
                    controls=[p for p in (os.path.join(DEV, name) for name in CONTROL_DEVICES) if os.path.exists(p)])
        directory = os.path.join(ctx.directory, DIR)
        os.makedirs(directory, exist_ok=True)
        if is_fraction(spec):
            self._vcuda(ctx, plan, directory)
        if spec.driver == "process" and indices and self.devices_cgroup is not None:
            plan.cgroup = self.devices_cgroup.create(spec.container_id, self._denied(indices))
        self._env(ctx, plan)
        state.write_json_atomic(plan_path(ctx.directory), dataclasses.asdict(plan))

    def _vcuda(self, ctx, plan: Plan, directory: str):
        spec = ctx.spec
        library = self.library()
        if not library:
            _note(ctx, "gpu_share not enforced: libvcuda is not available on this node")
            return
        shared = os.path.join(directory, SHARED)
        os.makedirs(shared, exist_ok=True)
        os.chmod(shared, 0o777)      # the container's user, whoever it is, makes the region here
        plan.gpu_dir = os.path.join(self.state_dir, DIR)
        os.makedirs(plan.gpu_dir, exist_ok=True)
        os.chmod(plan.gpu_dir, 0o777)   # every GPU container of the node, whoever its user, has a slot here
        plan.library, plan.shared = library, shared
        plan.config = os.path.join(directory, CONFIG)
        _write(plan.config, render_config(spec, os.path.join(shared, REGION), plan.gpu_dir))
        plan.preload = os.path.join(directory, PRELOAD_FILE)
        if spec.driver == "docker":
            _write(plan.preload, LIBRARY_IN_CONTAINER + "\n")
        else:
            _write(plan.preload, "".join(line + "\n" for line in _host_preload() if line != library)
                   + library + "\n")

    def _denied(self, indices: list) -> list:
        return [self.node_gpus.minor(g.index) for g in self.node_gpus.gpus if g.index not in indices]

    @staticmethod
    def _env(ctx, plan: Plan):
        env, spec = ctx.env, ctx.spec
        if plan.indices:
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"      # CUDA numbers GPUs as NVML and the node do
            if spec.driver == "docker" or plan.cgroup:  # it sees only its own GPUs
                env["CUDA_VISIBLE_DEVICES"] = visible_devices(len(plan.indices))
            else:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, plan.indices))
        if not plan.library:
            return
        if spec.driver == "docker":
            env[CONFIG_ENV] = CONFIG_IN_CONTAINER
        else:
            env[CONFIG_ENV] = plan.config
            others = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p != plan.library]
            env["LD_PRELOAD"] = ":".join([plan.library] + others)

    def poststart(self, ctx) -> None:
        pass

    def poststop(self, ctx) -> None:
        plan = load_plan(ctx.directory)
        if plan is not None and plan.cgroup and self.devices_cgroup is not None:
            self.devices_cgroup.remove(plan.cgroup)

    def recover(self, ctx) -> None:
        pass  # files and cgroup outlive the node manager; nothing to re-assert


def _note(ctx, message: str):
    log.warning("container %s: %s", ctx.spec.container_id, message)
    ctx.status.message = "; ".join(m for m in (ctx.status.message, message) if m)


def _write(path: str, text: str):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _host_preload() -> list:
    try:
        with open(HOST_PRELOAD) as f:
            return [w for line in f for w in line.split("#", 1)[0].split()]
    except OSError:
        return []


def _vcuda_library():
    from gaia_node import vcuda   # the package builds the library lazily
    return vcuda.library_path()


# ---- the process driver's devices cgroup (v1) ----

class DevicesCgroup:
    """<root>/devices/<parent>/<container_id>, denying the GPUs not granted: a process of the
    container cannot open them, so CUDA sees only its own."""

    def __init__(self, root: str, parent: str):
        self.base = os.path.join(root, "devices", parent.strip("/"))

    @classmethod
    def detect(cls, cgroups, root: str, parent: str) -> Optional["DevicesCgroup"]:
        """One where the node runs v1 cgroups as root with a devices hierarchy, else None."""
        if cgroups is None or getattr(cgroups, "version", "") != "v1" or os.geteuid() != 0:
            return None
        if not os.path.isfile(os.path.join(root, "devices", "devices.deny")):
            return None
        return cls(root, parent)

    def create(self, container_id: str, minors: list) -> str:
        path = os.path.join(self.base, container_id)
        try:
            os.makedirs(path, exist_ok=True)
            for minor in minors:
                major, minor = device_number(minor)
                with open(os.path.join(path, "devices.deny"), "w") as f:
                    f.write(f"c {major}:{minor} rwm")
        except OSError as e:
            self.remove(path)
            raise StartFailed(f"cannot set up the devices cgroup {path}: {e}") from None
        return path

    def remove(self, path: str) -> None:
        deadline = time.monotonic() + CGROUP_REMOVE_WAIT
        while True:
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() >= deadline:
                    log.warning("devices cgroup %s still busy; left behind", path)
                    return
            for pid in _pids(path):   # strays the container left (the driver kills them too)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)


def device_number(minor: int) -> tuple:
    """(major, minor) of /dev/nvidia<minor>: as the node's device node says, else NVIDIA's 195."""
    try:
        st = os.stat(os.path.join(DEV, f"nvidia{minor}"))
        return os.major(st.st_rdev), os.minor(st.st_rdev)
    except OSError:
        return NVIDIA_MAJOR, minor


def _pids(path: str) -> list:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


# ---- what the drivers add ----

def docker_options(container_dir: str, nvidia_runtime: bool) -> dict:
    """create_host_config arguments for a docker GPU container: binds, and device_requests or
    devices. {} for a container without GPU."""
    plan = load_plan(container_dir)
    if plan is None:
        return {}
    out = {"binds": {}}
    if plan.indices and nvidia_runtime:
        import docker
        out["device_requests"] = [docker.types.DeviceRequest(
            driver="nvidia", device_ids=[str(i) for i in plan.indices], capabilities=[["gpu"]])]
    elif plan.indices:
        out["devices"] = [f"{p}:{p}:rwm" for p in plan.devices + plan.controls if os.path.exists(p)]
        missing = [p for p in plan.devices if not os.path.exists(p)]
        if missing:
            log.warning("%s: GPU device node(s) %s missing on this node", container_dir, ", ".join(missing))
    if plan.library:
        out["binds"].update({
            plan.library: {"bind": LIBRARY_IN_CONTAINER, "mode": "ro"},
            plan.config: {"bind": CONFIG_IN_CONTAINER, "mode": "ro"},
            plan.preload: {"bind": PRELOAD_IN_CONTAINER, "mode": "ro"},
            plan.shared: {"bind": plan.shared, "mode": "rw"},
            plan.gpu_dir: {"bind": plan.gpu_dir, "mode": "rw"},
        })
    return out


def extend_launch(launch: dict, container_dir: str, namespaces) -> None:
    """The process driver's launch.json: join the devices cgroup, and with a mount namespace of
    its own bind the preload file over /etc/ld.so.preload."""
    plan = load_plan(container_dir)
    if plan is None:
        return
    launch["cgroup_procs"] = list(launch.get("cgroup_procs") or []) + plan.cgroup_procs
    if plan.library and "mount" in namespaces:
        ensure_host_preload()
        launch.setdefault("binds", []).append({"source": plan.preload, "target": HOST_PRELOAD, "read_only": True})


def ensure_host_preload() -> None:
    """A bind needs its target: an empty /etc/ld.so.preload, where the host has none, preloads
    nothing for the host's own processes."""
    if not os.path.exists(HOST_PRELOAD):
        with open(HOST_PRELOAD, "a"):
            pass


def hook(parts) -> GpuHook:
    cfg = parts.cfg
    from gaia_node.gpu_discovery import NodeGpus
    return GpuHook(parts.gpus or NodeGpus(), cfg.state_dir,
                   devices_cgroup=DevicesCgroup.detect(parts.cgroups, cfg.cgroup_root, cfg.cgroup_parent))

