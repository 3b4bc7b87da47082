"""GPU containers on a real node manager: a fraction of a GPU gets the vCUDA config, the library
preloaded (also into a child that dropped its environment) and its region; the other GPUs are
denied; a container without GPU gets none of it; NodeInfo.gpu_sharing says whether the node
shares GPUs. The machine has no GPU: the node declares two in node.yaml, and as root their
device nodes are made (major 195, minors 0 and 1) under a directory of the test's, so the
devices cgroup and docker's device list act on something real (opening one with no driver
behind it answers ENXIO; a denied one EPERM)."""
import dataclasses
import json
import os
import sys

import pytest

from gaia_cli.procs import remove_cgroups
from gaia_common.pb import types_pb2
from gaia_node import gpu_discovery, gpu_share, state
from tests.integration.docker_support import busybox_image, docker_client, docker_node  # noqa: F401
from tests.integration.node_harness import IS_ROOT, REAL_V1, NodeHarness, node_cfg, wait_for  # noqa: F401

S = types_pb2
GiB = 1 << 30
GPUS = [{"model": "A100", "memory": "40Gi", "link_path": "SYS:0/PIX:0"},
        {"model": "A100", "memory": "40Gi", "link_path": "SYS:0/PIX:0"}]
# Run in the container: what it sees of vCUDA and of the GPUs' device nodes, as JSON in argv[1].
INTROSPECT = (
    "import errno, json, os, subprocess, sys\n"
    "out = {'env': dict(os.environ), 'loaded': 'libvcuda' in open('/proc/self/maps').read()}\n"
    "try:\n"
    "    out['preload'] = open('/etc/ld.so.preload').read()\n"
    "except OSError:\n"
    "    out['preload'] = None\n"
    "child = subprocess.run([sys.executable, '-S', '-c', \"print('libvcuda' in open('/proc/self/maps').read())\"],\n"
    "                       env={}, capture_output=True, text=True)\n"
    "out['child_loaded'] = child.stdout.strip() == 'True'\n"
    "for name in ('nvidia0', 'nvidia1'):\n"
    "    try:\n"
    "        os.close(os.open(os.path.join(sys.argv[2], name), os.O_RDWR))\n"
    "        out[name] = 'opened'\n"
    "    except OSError as e:\n"
    "        out[name] = errno.errorcode[e.errno]\n"
    "json.dump(out, open(sys.argv[1] + '.tmp', 'w'))\n"
    "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n")      # whole, once it is there


def library() -> str:
    from gaia_node import vcuda
    path = vcuda.library_path()
    assert path, "libvcuda is not available here (it builds with gcc)"
    return str(path)


@pytest.fixture
def devices(tmp_path, monkeypatch):
    """/dev/nvidia0 and /dev/nvidia1 of the declared GPUs, in a directory of the test's."""
    dev = tmp_path / "dev"
    dev.mkdir()
    if IS_ROOT:
        for minor in (0, 1):
            os.mknod(dev / f"nvidia{minor}", 0o666 | 0o020000, os.makedev(gpu_share.NVIDIA_MAJOR, minor))
    monkeypatch.setattr(gpu_share, "DEV", str(dev))   # the node manager runs in this process
    return dev


@pytest.fixture
def host_preload():
    """The node makes an empty /etc/ld.so.preload to bind over when the host has none: put
    the host back as it was."""
    existed = os.path.exists(gpu_share.HOST_PRELOAD)
    yield existed
    if not existed and os.path.exists(gpu_share.HOST_PRELOAD) and os.path.getsize(gpu_share.HOST_PRELOAD) == 0:
        os.remove(gpu_share.HOST_PRELOAD)


@pytest.fixture
def gpu_node(node_cfg, etcd, devices, host_preload):
    node_cfg.gpus = GPUS
    harness = NodeHarness(node_cfg, etcd)
    try:
        yield harness.start()
    finally:
        harness.clean_up()
        remove_cgroups(node_cfg.cgroup_parent)   # the devices hierarchy too (the harness knows its own)


def gpu_spec(node, command, share=30, indices=(1,), **kw):
    spec = node.spec(command=command, **kw)
    spec.resources.request.gpu_share, spec.resources.request.gpu_memory_bytes = share, GiB
    spec.resources.limit.gpu_share, spec.resources.limit.gpu_memory_bytes = share, GiB
    spec.gpu_indices.extend(indices)
    if indices:
        spec.env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, indices))   # as the AM sets it
    return spec


def conf(path) -> dict:
    return dict(line.split("=", 1) for line in open(path).read().splitlines() if line and not line.startswith("#"))


def test_gpu_sharing_needs_the_library_and_gpus(gpu_node, etcd, tmp_path, monkeypatch):
    lib = library()
    info = gpu_node.etcd_message(gpu_node.keys.node(gpu_node.cfg.id), S.NodeInfo)
    assert info.gpu_sharing and [g.model for g in info.gpus] == ["A100", "A100"] and lib
    assert info.capacity.gpu_share == 200 and info.capacity.gpu_memory_bytes == 80 * GiB
    cfg = dataclasses.replace(gpu_node.cfg, id=gpu_node.cfg.id + "-bare", gpus=[], state_dir=str(tmp_path / "bare"),
                              cgroup_parent=gpu_node.cfg.cgroup_parent + "-bare")
    monkeypatch.setattr(gpu_discovery, "discover", lambda nvml=None: gpu_discovery.NodeGpus())  # NVML finds none
    bare = NodeHarness(cfg, etcd)
    try:
        bare.start()
        info = bare.etcd_message(bare.keys.node(cfg.id), S.NodeInfo)
        assert not info.gpu_sharing and not info.gpus       # the library alone is not sharing (no GPU here)
    finally:
        bare.clean_up()
        remove_cgroups(cfg.cgroup_parent)


def test_a_process_container_with_a_fraction_gets_vcuda_and_only_its_gpu(gpu_node, devices, tmp_path):
    lib = library()
    out = tmp_path / "seen.json"
    namespaces = ["mount"] if IS_ROOT else []
    spec = gpu_spec(gpu_node, [sys.executable, "-c", INTROSPECT, str(out), str(devices)], namespaces=namespaces,
                    gpu_mode="elastic")
    spec.resources.limit.gpu_share = 50
    status = gpu_node.start_container(spec)
    assert status.state in (S.CONTAINER_STATE_RUNNING, S.CONTAINER_STATE_EXITED), status.message
    wait_for(out.exists, timeout=20, what="the container's report")
    seen = json.loads(out.read_text())
    directory = gpu_node.manager.dirs.path(spec.container_id)
    plan = gpu_share.load_plan(directory)
    env = seen["env"]
    assert env["LD_PRELOAD"].split(":")[0] == lib and env["GAIA_VCUDA_CONFIG"] == plan.config
    assert seen["loaded"], "the library is not mapped into the container's process"
    got = conf(plan.config)
    assert (got["share"], got["ceiling"], got["mode"], got["memory_limit"], got["devices"]) == \
        ("30", "50", "elastic", str(GiB), "1")
    assert got["region"] == os.path.join(plan.shared, "region") and os.path.isdir(plan.shared)
    assert got["gpu_dir"] == os.path.join(gpu_node.cfg.state_dir, "gpu") and os.path.isdir(got["gpu_dir"])
    if IS_ROOT:
        # its own /etc/ld.so.preload names the library: a child with an empty environment loads it too
        assert lib in seen["preload"].split() and seen["child_loaded"]
        assert not os.path.exists(gpu_share.HOST_PRELOAD) or lib not in open(gpu_share.HOST_PRELOAD).read()
    if REAL_V1:
        # the other GPU is denied by its devices cgroup; its own opens (no driver behind it: ENXIO)
        assert (seen["nvidia0"], seen["nvidia1"]) == ("EPERM", "ENXIO")
        assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert os.path.isdir(plan.cgroup)
    gpu_node.stop_container(spec.container_id, remove=True)
    assert not os.path.exists(directory)                                  # config, preload and region went
    assert not plan.cgroup or not os.path.exists(plan.cgroup)


def test_a_container_without_gpu_gets_nothing(gpu_node, devices, tmp_path):
    out = tmp_path / "seen.json"
    namespaces = ["mount"] if IS_ROOT else []
    spec = gpu_node.spec(command=[sys.executable, "-c", INTROSPECT, str(out), str(devices)], namespaces=namespaces)
    gpu_node.start_container(spec)
    wait_for(out.exists, timeout=20, what="the container's report")
    seen = json.loads(out.read_text())
    assert not {"LD_PRELOAD", "GAIA_VCUDA_CONFIG", "CUDA_VISIBLE_DEVICES"} & set(seen["env"])
    assert not seen["loaded"] and not seen["child_loaded"]
    host = open(gpu_share.HOST_PRELOAD).read() if os.path.exists(gpu_share.HOST_PRELOAD) else None
    assert seen["preload"] == host
    directory = gpu_node.manager.dirs.path(spec.container_id)
    assert gpu_share.load_plan(directory) is None and not os.path.exists(os.path.join(directory, "gpu"))
    if IS_ROOT:
        assert (seen["nvidia0"], seen["nvidia1"]) == ("ENXIO", "ENXIO")   # nothing denied either


def test_whole_gpus_get_devices_and_no_library(gpu_node, devices, tmp_path):
    out = tmp_path / "seen.json"
    spec = gpu_spec(gpu_node, [sys.executable, "-c", INTROSPECT, str(out), str(devices)], share=100, indices=(0,))
    gpu_node.start_container(spec)
    wait_for(out.exists, timeout=20, what="the container's report")
    seen = json.loads(out.read_text())
    assert "LD_PRELOAD" not in seen["env"] and not seen["loaded"]
    if REAL_V1:
        assert (seen["nvidia0"], seen["nvidia1"]) == ("ENXIO", "EPERM")


# ---- docker ----

@pytest.fixture
def gpu_docker_node(node_cfg, etcd, docker_client, busybox_image, devices, host_preload):
    node_cfg.gpus = GPUS
    with docker_node(node_cfg, etcd, docker_client, busybox_image) as node:
        yield node


def test_a_docker_container_with_a_fraction_gets_the_files_and_its_device(gpu_docker_node, devices):
    node = gpu_docker_node
    lib = library()
    script = ("cat /etc/ld.so.preload; echo ---; cat /etc/gaia/vcuda.conf; echo ---; "
              f"ls -l {gpu_share.LIBRARY_IN_CONTAINER}; echo ---; echo $GAIA_VCUDA_CONFIG $CUDA_VISIBLE_DEVICES; "
              f"ls {devices}; touch $REGION_DIR/probe && echo writable")
    spec = gpu_spec(node, ["sh", "-c", script], driver="docker", image=node.image, host_network=True)
    directory = node.manager.dirs.path(spec.container_id)
    spec.env["REGION_DIR"] = os.path.join(directory, gpu_share.DIR, gpu_share.SHARED)
    node.start_container(spec)
    wait_for(lambda: (s := node.container(spec.container_id)) and s.state == S.CONTAINER_STATE_EXITED,
             timeout=30, what="the container to exit")
    stdout = wait_for(lambda: os.path.exists(os.path.join(directory, state.STDOUT))
                      and open(os.path.join(directory, state.STDOUT)).read(), what="its output")
    preload, config, listing, rest = stdout.split("---\n")
    assert preload.split() == [gpu_share.LIBRARY_IN_CONTAINER]
    assert conf_text(config)["share"] == "30" and conf_text(config)["region"].startswith(spec.env["REGION_DIR"])
    assert str(os.path.getsize(lib)) in listing.split()
    lines = rest.splitlines()
    assert lines[0] == "/etc/gaia/vcuda.conf 0" and "writable" in lines
    if IS_ROOT:
        assert "nvidia1" in lines and "nvidia0" not in lines          # only its own device node
    assert os.path.exists(os.path.join(spec.env["REGION_DIR"], "probe"))


def conf_text(text) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_the_docker_container_without_gpu_has_no_preload(gpu_docker_node):
    node = gpu_docker_node
    spec = node.spec(command=["sh", "-c", "cat /etc/ld.so.preload /etc/gaia/vcuda.conf 2>&1; echo done"],
                     driver="docker", image=node.image, host_network=True)
    node.start_container(spec)
    directory = node.manager.dirs.path(spec.container_id)
    wait_for(lambda: (s := node.container(spec.container_id)) and s.state == S.CONTAINER_STATE_EXITED,
             timeout=30, what="the container to exit")
    stdout = wait_for(lambda: os.path.exists(os.path.join(directory, state.STDOUT))
                      and open(os.path.join(directory, state.STDOUT)).read(), what="its output")
    assert "No such file" in stdout and "done" in stdout

