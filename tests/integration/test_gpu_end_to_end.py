"""GPU sharing end to end, through the real CLI, master (Sfair), AM, node manager and etcd.

A node declares two GPUs in its config (no GPU on this machine: the node takes the declared
list as the truth, as an operator's node.yaml would). A fractional app (gpu_share 30, 1Gi, elastic
up to 60) submitted into a pool runs on one GPU: its ContainerSpec carries the granted index and
the mode, the node wrote the container's vcuda.conf with that share, ceiling and memory, the
process runs with libvcuda preloaded, and `gaia node gpus` shows it on the granted GPU with share
30 used. A whole-GPU app (gpu_share 100) then gets the other GPU (whole GPUs are exclusive, so not
the partly used one) and only its devices: no interposer, no config.
"""
import json
import os
import sys

import pytest

from tests.integration.harness import running_cluster, wait_for

GiB = 1 << 30
GPUS = [{"model": "A100", "memory": "40Gi", "link_path": "SYS:0/PIX:0"},
        {"model": "A100", "memory": "40Gi", "link_path": "SYS:0/PIX:1"}]
# The instance reports what it sees (its environment, whether libvcuda is mapped into it) into
# <argv[1]>/<instance id>.json, then stays up: the test reads the running container.
REPORT = (
    "import json, os, sys, time\n"
    "out = os.path.join(sys.argv[1], os.environ['GAIA_INSTANCE'] + '.json')\n"
    "doc = {'env': dict(os.environ), 'loaded': 'libvcuda' in open('/proc/self/maps').read()}\n"
    "json.dump(doc, open(out + '.tmp', 'w'))\n"
    "os.replace(out + '.tmp', out)\n"
    "time.sleep(600)\n")
APP = """\
name: {name}
pool: gpu
command: ["{python}", "-c", {script}, "{out}"]
resources:
  request: {{cpu: 100m, memory: 64Mi, gpu_share: {share}, gpu_memory: 1Gi}}
  limit: {{memory: 256Mi{limit}}}
{mode}"""


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=0) as c:
        c.start_node(gpus=GPUS)
        c.wait_ready(nodes=1)
        yield c


def library():
    from gaia_node import vcuda
    return vcuda.library_path()


def running_instance(cluster, name):
    status = cluster.cli_json("status", name)
    views = [i for i in status["instances"] if i.get("status", {}).get("state") == "CONTAINER_STATE_RUNNING"]
    return views[0] if views else None


def submit(cluster, tmp_path, name, share, mode="", limit=""):
    out = tmp_path / f"out-{name}"
    out.mkdir()
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(APP.format(name=name, python=sys.executable, script=json.dumps(REPORT), out=out, share=share,
                               limit=limit, mode=f"gpu_mode: {mode}\n" if mode else ""))
    cluster.cli("submit", str(spec))
    view = wait_for(lambda: running_instance(cluster, name), 40, what=f"{name} running")
    report = out / f"{view['allocation']['instance_id']}.json"
    wait_for(report.exists, 20, what=f"{name}'s report")
    return view, json.loads(report.read_text())


def container_dir(cluster, node_id, container_id) -> str:
    return os.path.join(cluster.workdir, node_id, "containers", container_id)


def conf(path) -> dict:
    return dict(line.split("=", 1) for line in open(path).read().splitlines() if "=" in line and not line.startswith("#"))


def test_a_fraction_and_a_whole_gpu_through_the_cli(cluster, tmp_path):
    node_id = next(iter(cluster.nodes))
    cluster.cli("pool", "create", "--path", "gpu")
    lib = library()

    view, seen = submit(cluster, tmp_path, "frac", 30, mode="elastic", limit=", gpu_share: 60")
    granted = [int(i) for i in view["allocation"].get("gpu_indices", [])]
    assert len(granted) == 1 and granted[0] in (0, 1), view["allocation"]
    directory = container_dir(cluster, node_id, view["status"]["container_id"])
    record = json.load(open(os.path.join(directory, "container.json")))["spec"]
    # what the AM sent the node: the scheduler's GPU and the app's mode
    assert [int(i) for i in record["gpu_indices"]] == granted and record["gpu_mode"] == "elastic"
    if lib:
        got = conf(os.path.join(directory, "gpu", "vcuda.conf"))
        assert (got["share"], got["ceiling"], got["mode"], got["memory_limit"], got["devices"]) == \
            ("30", "60", "elastic", str(GiB), str(granted[0]))
        assert got["region"].startswith(os.path.join(directory, "gpu", "shared"))
        assert seen["env"]["LD_PRELOAD"].split(":")[0] == str(lib) and seen["loaded"]
        assert seen["env"]["GAIA_VCUDA_CONFIG"] == os.path.join(directory, "gpu", "vcuda.conf")
    assert seen["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"

    doc = cluster.cli_json("node", "gpus", node_id)
    assert doc["gpu_sharing"] == bool(lib) and [g["index"] for g in doc["gpus"]] == [0, 1]
    gpu = doc["gpus"][granted[0]]
    assert [(h["app"], h["gpu_share"], h["gpu_mode"], h["ceiling"]) for h in gpu["containers"]] == \
        [("frac", 30, "elastic", 60)]
    assert (gpu["share_used"], gpu["share_allocatable"], gpu["memory_used_bytes"]) == (30, 70, GiB)
    assert gpu["containers"][0]["container_id"] == view["status"]["container_id"]
    other = doc["gpus"][1 - granted[0]]
    assert other["share_used"] == 0 and not other["containers"]
    assert "share 30 (elastic up to 60)" in cluster.cli("node", "gpus", node_id).stdout

    # a whole GPU: the free one, devices only
    whole, seen = submit(cluster, tmp_path, "whole", 100)
    assert [int(i) for i in whole["allocation"]["gpu_indices"]] == [1 - granted[0]]
    directory = container_dir(cluster, node_id, whole["status"]["container_id"])
    assert not os.path.exists(os.path.join(directory, "gpu", "vcuda.conf"))
    plan = json.load(open(os.path.join(directory, "gpu", "plan.json")))
    assert plan["indices"] == [1 - granted[0]] and plan["devices"] and not plan["library"]
    assert "LD_PRELOAD" not in seen["env"] and not seen["loaded"] and "GAIA_VCUDA_CONFIG" not in seen["env"]
    doc = cluster.cli_json("node", "gpus", node_id)
    held = doc["gpus"][1 - granted[0]]
    assert (held["share_used"], held["share_allocatable"], [h["gpu_mode"] for h in held["containers"]]) == \
        (100, 0, ["whole"])
    assert doc["gpus"][granted[0]]["share_used"] == 30          # the fraction is still where it was
