"""The node's GPU hook: what a GPU container is given (devices, vCUDA config, preload, region),
per driver, and that a container without a GPU is given nothing."""
import os
import shutil
import subprocess
import types

import pytest

from gaia_common.pb import types_pb2
from gaia_common.spec import SpecError
from gaia_node import gpu_share
from gaia_node.gpu_discovery import NodeGpus
from gaia_node.hooks import TaskContext

GiB = 1 << 30
CONFIG_C = os.path.join(os.path.dirname(gpu_share.__file__), "vcuda", "src", "config.c")


def node_gpus(n=4, minors=None) -> NodeGpus:
    gpus = [types_pb2.Gpu(index=i, model="A100", memory_bytes=40 * GiB, link_path=f"SYS:0/PIX:{i // 2}")
            for i in range(n)]
    return NodeGpus(gpus=gpus, minors=minors or {i: i for i in range(n)}, source="declared")


def spec(share=30, memory=8 * GiB, indices=(2,), driver="process", mode="", limit_share=0, limit_memory=0,
         **kw) -> types_pb2.ContainerSpec:
    s = types_pb2.ContainerSpec(container_id="app-id.0.1", app_id="app-id", app_name="app", instance_id="0",
                                driver=driver, gpu_mode=mode, **kw)
    s.resources.request.gpu_share, s.resources.request.gpu_memory_bytes = share, memory
    s.resources.limit.gpu_share, s.resources.limit.gpu_memory_bytes = limit_share or share, limit_memory or memory
    s.gpu_indices.extend(indices)
    return s


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A fake /dev with two GPUs' device nodes and nvidiactl, a host ld.so.preload, a library."""
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm"):
        (dev / name).write_text("")
    monkeypatch.setattr(gpu_share, "DEV", str(dev))
    preload = tmp_path / "etc-ld.so.preload"
    preload.write_text("/opt/host/libwatch.so  # the host's own\n")
    monkeypatch.setattr(gpu_share, "HOST_PRELOAD", str(preload))
    library = tmp_path / "lib" / "libvcuda.so"
    library.parent.mkdir()
    library.write_text("")
    return types.SimpleNamespace(root=tmp_path, dev=dev, preload=preload, library=str(library))


def run_hook(machine, s, gpus=None, library=True, env=None):
    directory = machine.root / "containers" / s.container_id
    directory.mkdir(parents=True, exist_ok=True)
    hook = gpu_share.GpuHook(node_gpus() if gpus is None else gpus, str(machine.root / "state"),
                             library=(lambda: machine.library) if library else (lambda: None))
    ctx = TaskContext(spec=s, status=types_pb2.ContainerStatus(), directory=str(directory), host_ports={},
                      env=dict(env or {"CUDA_VISIBLE_DEVICES": ",".join(map(str, s.gpu_indices))}))
    hook.prestart(ctx)
    return ctx


def conf(path) -> dict:
    return dict(line.split("=", 1) for line in open(path).read().splitlines() if line and not line.startswith("#"))


def test_a_fraction_in_a_process_container_gets_config_preload_region_and_env(machine):
    ctx = run_hook(machine, spec(mode="elastic", limit_share=60, limit_memory=10 * GiB),
                   env={"LD_PRELOAD": "/opt/user/libhook.so", "CUDA_VISIBLE_DEVICES": "2"})
    plan = gpu_share.load_plan(ctx.directory)
    assert plan.indices == [2] and plan.devices == [str(machine.dev / "nvidia2")]
    assert plan.controls == [str(machine.dev / "nvidiactl"), str(machine.dev / "nvidia-uvm")]
    gpu_dir = str(machine.root / "state" / "gpu")
    assert plan.gpu_dir == gpu_dir and os.path.isdir(gpu_dir)
    assert oct(os.stat(plan.shared).st_mode & 0o777) == oct(0o777)     # any container user makes its region
    assert conf(plan.config) == {"memory_limit": str(10 * GiB), "share": "30", "ceiling": "60", "mode": "elastic",
                                 "region": os.path.join(plan.shared, "region"), "gpu_dir": gpu_dir, "devices": "2"}
    # the host's own preloads stay; the library comes last, named once
    assert open(plan.preload).read().split() == ["/opt/host/libwatch.so", machine.library]
    env = ctx.env
    assert env["LD_PRELOAD"] == f"{machine.library}:/opt/user/libhook.so"
    assert env["GAIA_VCUDA_CONFIG"] == plan.config
    # no devices cgroup here: it sees every GPU, so the host's numbering, in NVML's order
    assert env["CUDA_VISIBLE_DEVICES"] == "2" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert ctx.status.message == ""


def test_hard_mode_and_the_request_when_no_limit_is_set(machine):
    s = spec(share=10, memory=2 * GiB, limit_share=50)        # hard: a higher limit is no ceiling
    s.resources.limit.gpu_memory_bytes = 0
    plan = gpu_share.load_plan(run_hook(machine, s).directory)
    got = conf(plan.config)
    assert (got["share"], got["ceiling"], got["mode"], got["memory_limit"]) == ("10", "10", "hard", str(2 * GiB))


def test_docker_gets_binds_the_config_at_etc_gaia_and_renumbered_devices(machine):
    ctx = run_hook(machine, spec(indices=(1,), driver="docker", image="busybox"))
    env = ctx.env
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["GAIA_VCUDA_CONFIG"] == "/etc/gaia/vcuda.conf"
    assert "LD_PRELOAD" not in env                         # /etc/ld.so.preload inside does it
    plan = gpu_share.load_plan(ctx.directory)
    assert open(plan.preload).read() == gpu_share.LIBRARY_IN_CONTAINER + "\n"
    options = gpu_share.docker_options(ctx.directory, nvidia_runtime=False)
    assert options["devices"] == [f"{machine.dev}/nvidia1:{machine.dev}/nvidia1:rwm",
                                  f"{machine.dev}/nvidiactl:{machine.dev}/nvidiactl:rwm",
                                  f"{machine.dev}/nvidia-uvm:{machine.dev}/nvidia-uvm:rwm"]
    assert options["binds"] == {
        machine.library: {"bind": gpu_share.LIBRARY_IN_CONTAINER, "mode": "ro"},
        plan.config: {"bind": "/etc/gaia/vcuda.conf", "mode": "ro"},
        plan.preload: {"bind": "/etc/ld.so.preload", "mode": "ro"},
        plan.shared: {"bind": plan.shared, "mode": "rw"},
        plan.gpu_dir: {"bind": plan.gpu_dir, "mode": "rw"}}
    with_runtime = gpu_share.docker_options(ctx.directory, nvidia_runtime=True)
    assert "devices" not in with_runtime
    request = with_runtime["device_requests"][0]
    assert request["Driver"] == "nvidia" and request["DeviceIDs"] == ["1"]


def test_whole_gpus_get_devices_and_no_interposer(machine):
    ctx = run_hook(machine, spec(share=200, memory=0, indices=(0, 1), driver="docker", image="x"))
    plan = gpu_share.load_plan(ctx.directory)
    assert plan.library == "" and plan.config == "" and plan.indices == [0, 1]
    assert not os.path.exists(os.path.join(ctx.directory, "gpu", "vcuda.conf"))
    assert ctx.env["CUDA_VISIBLE_DEVICES"] == "0,1" and "GAIA_VCUDA_CONFIG" not in ctx.env
    options = gpu_share.docker_options(ctx.directory, nvidia_runtime=False)
    assert options["binds"] == {} and options["devices"][:2] == [f"{machine.dev}/nvidia0:{machine.dev}/nvidia0:rwm",
                                                                 f"{machine.dev}/nvidia1:{machine.dev}/nvidia1:rwm"]


def test_a_container_without_gpu_gets_nothing(machine):
    s = spec(share=0, memory=0, indices=())
    ctx = run_hook(machine, s, env={"PATH": "/bin"})
    assert ctx.env == {"PATH": "/bin"}
    assert not os.path.exists(os.path.join(ctx.directory, "gpu"))
    assert gpu_share.load_plan(ctx.directory) is None
    assert gpu_share.docker_options(ctx.directory, nvidia_runtime=True) == {}
    launch = {"cgroup_procs": ["/x/cgroup.procs"]}
    gpu_share.extend_launch(launch, ctx.directory, ["mount"])
    assert launch == {"cgroup_procs": ["/x/cgroup.procs"]}


def test_without_the_library_a_fraction_runs_unenforced_and_says_so(machine):
    ctx = run_hook(machine, spec(), library=False)
    assert "libvcuda is not available" in ctx.status.message
    assert "LD_PRELOAD" not in ctx.env and ctx.env["CUDA_VISIBLE_DEVICES"] == "2"
    assert gpu_share.load_plan(ctx.directory).devices == [str(machine.dev / "nvidia2")]


def test_a_node_without_gpus_says_so(machine):
    ctx = run_hook(machine, spec(), gpus=NodeGpus())
    assert "reports no GPUs" in ctx.status.message and gpu_share.load_plan(ctx.directory) is None


@pytest.mark.parametrize("bad, field", [
    (dict(indices=(7,)), "spec.gpu_indices[0]"),
    (dict(mode="soft"), "spec.gpu_mode"),
    (dict(mode="elastic", share=200, memory=0), "spec.gpu_mode"),
])
def test_bad_specs_name_the_field(machine, bad, field):
    with pytest.raises(SpecError) as e:
        run_hook(machine, spec(**bad))
    assert e.value.field == field


def test_process_launch_joins_the_devices_cgroup_and_binds_the_preload_in_a_mount_namespace(machine, monkeypatch):
    made = []

    class Devices:   # the cgroup itself needs root and cgroup v1: tests/integration covers it
        def create(self, container_id, minors):
            made.append((container_id, minors))
            return str(machine.root / "devices" / container_id)

        def remove(self, path):
            made.append(("removed", path))

    s = spec(indices=(1,))
    directory = machine.root / "containers" / s.container_id
    directory.mkdir(parents=True)
    hook = gpu_share.GpuHook(node_gpus(minors={0: 0, 1: 1, 2: 3, 3: 2}), str(machine.root / "state"),
                             library=lambda: machine.library, devices_cgroup=Devices())
    ctx = TaskContext(spec=s, status=types_pb2.ContainerStatus(), directory=str(directory), host_ports={}, env={})
    hook.prestart(ctx)
    assert made == [(s.container_id, [0, 3, 2])]          # every other GPU's minor is denied
    assert ctx.env["CUDA_VISIBLE_DEVICES"] == "0"           # it sees only its own GPU
    launch = {"cgroup_procs": ["/m/cgroup.procs"]}
    gpu_share.extend_launch(launch, str(directory), [])
    joined = str(machine.root / "devices" / s.container_id / "cgroup.procs")
    assert launch == {"cgroup_procs": ["/m/cgroup.procs", joined]}
    gpu_share.extend_launch(launch, str(directory), ["mount", "pid"])
    plan = gpu_share.load_plan(str(directory))
    assert launch["binds"] == [{"source": plan.preload, "target": str(machine.preload), "read_only": True}]
    hook.poststop(ctx)
    assert made[-1] == ("removed", str(machine.root / "devices" / s.container_id))


@pytest.mark.skipif(shutil.which("gcc") is None or not os.path.exists(CONFIG_C), reason="needs gcc and config.c")
def test_the_library_reads_the_config_as_written(machine, tmp_path):
    """The C parser (gaia_node/vcuda/src/config.c) reads every key this writes, without a complaint."""
    program = tmp_path / "read.c"
    program.write_text('#include <stdio.h>\n#include "config.h"\n'
                       'int main(int argc, char **argv) { struct vcuda_config c;\n'
                       '  if (vcuda_config_read(&c, argv[1]) != 0) return 3;\n'
                       '  printf("%lld %d %d %d %d %d %s %s\\n", c.memory_limit, c.share, c.ceiling, c.elastic,\n'
                       '         c.device_count, c.devices[0], c.region_path, c.gpu_region_dir); return 0; }\n')
    binary = tmp_path / "read"
    subprocess.run(["gcc", "-std=gnu11", "-I", os.path.dirname(CONFIG_C), "-o", str(binary), str(program), CONFIG_C],
                   check=True, capture_output=True)
    plan = gpu_share.load_plan(run_hook(machine, spec(mode="elastic", limit_share=45)).directory)
    done = subprocess.run([str(binary), plan.config], capture_output=True, text=True, check=True)
    assert done.stderr == ""
    assert done.stdout.split() == [str(8 * GiB), "30", "45", "1", "1", "2", os.path.join(plan.shared, "region"),
                                   plan.gpu_dir]


# ---- how the mode and the GPUs reach the node ----

def test_the_am_hands_the_node_its_gpus_and_mode():
    from gaia_am.containers import container_spec
    record = types_pb2.AppRecord(app_id="app-1")
    record.spec.gpu_mode = "elastic"
    alloc = types_pb2.Allocation(app_id="app-1", instance_id="3", gpu_indices=[5])
    out = container_spec(record, alloc, 1)
    assert list(out.gpu_indices) == [5] and out.gpu_mode == "elastic" and out.env["CUDA_VISIBLE_DEVICES"] == "5"
    assert list(container_spec(record, "4", 1).gpu_indices) == []


def test_the_app_spec_validates_gpu_mode():
    from gaia_common import spec as spec_mod
    doc = {"name": "infer", "command": "serve", "gpu_mode": "elastic",
           "resources": {"request": {"gpu_share": 30, "gpu_memory": "8Gi"}, "limit": {"gpu_share": 60}}}
    parsed = spec_mod.from_dict(doc)
    assert parsed.gpu_mode == "elastic" and parsed.resources.limit.gpu_share == 60
    assert spec_mod.from_dict({**doc, "gpu_mode": "hard"}).gpu_mode == "hard"
    for bad, field in (({"gpu_mode": "soft"}, "gpu_mode"),
                       ({"resources": {"request": {"cpu": 1}}}, "gpu_mode"),                 # no GPU to share
                       ({"resources": {"request": {"gpu_share": 100}}}, "gpu_mode"),         # whole GPUs
                       ({"resources": {"request": {"gpu_share": 30}, "limit": {"gpu_share": 150}}},
                        "resources.limit.gpu_share"),
                       ({"resources": {"request": {"gpu_share": 30}, "limit": {"gpu_share": 20}}},
                        "resources.limit.gpu_share")):
        with pytest.raises(SpecError) as e:
            spec_mod.from_dict({**doc, **bad})
        assert e.value.field == field, bad
