"""gaia node gpus NODE: the link tree, per GPU the containers on it and the share and memory used
and allocatable, as the scheduler counts them; text and -o json."""
import json

from click.testing import CliRunner

from gaia_common.pb import master_pb2, types_pb2
from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)

GiB = 1 << 30
GPU_KEYS = {"index", "model", "uuid", "link_path", "memory_bytes", "share_used", "share_allocatable",
            "memory_used_bytes", "memory_allocatable_bytes", "containers"}
HOLDER_KEYS = {"app", "app_id", "instance_id", "container_id", "state", "gpu_share", "gpu_memory_bytes",
               "gpu_mode", "ceiling", "gpu_indices"}


def node() -> master_pb2.NodeStatus:
    paths = ["SYS:0/PIX:0", "SYS:0/PIX:0", "SYS:0/PIX:1", "SYS:0/PIX:1"]
    info = types_pb2.NodeInfo(node_id="g1", gpu_sharing=True, gpus=[
        types_pb2.Gpu(index=i, model="A100", memory_bytes=40 * GiB, link_path=p, uuid=f"GPU-{i}")
        for i, p in enumerate(paths)])
    return master_pb2.NodeStatus(info=info, alive=True)


def app(name, instances, share, memory=0, mode="", ceiling=0) -> master_pb2.AppStatus:
    """instances: [(instance_id, node_id, gpu indices, running?)]"""
    spec = types_pb2.AppSpec(name=name, gpu_mode=mode)
    spec.resources.request.gpu_share, spec.resources.request.gpu_memory_bytes = share, memory
    spec.resources.limit.gpu_share = ceiling or share
    status = master_pb2.AppStatus(app=types_pb2.AppRecord(app_id=f"{name}-id", spec=spec))
    for instance_id, node_id, indices, running in instances:
        view = status.instances.add()
        view.allocation.CopyFrom(types_pb2.Allocation(
            app_id=f"{name}-id", instance_id=instance_id, node_id=node_id, gpu_indices=indices,
            request=types_pb2.Resources(gpu_share=share, gpu_memory_bytes=memory)))
        if running:
            view.status.CopyFrom(types_pb2.ContainerStatus(container_id=f"{name}-id.{instance_id}.1",
                                                           state=types_pb2.CONTAINER_STATE_RUNNING))
    return status


def apps() -> master_pb2.ListAppsResponse:
    return master_pb2.ListAppsResponse(apps=[
        app("train", [("0", "g1", [0, 1], True)], share=200, memory=60 * GiB),
        app("infer", [("0", "g1", [2], True), ("1", "g1", [2], False), ("2", "other", [2], True)],
            share=30, memory=8 * GiB, mode="elastic", ceiling=60),
        app("old", [("0", "g1", [], True)], share=20, memory=GiB),          # granted before topology
        app("web", [("0", "g1", [], True)], share=0),                        # no GPU: not listed
    ])


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_counts_each_gpu_as_the_scheduler_does(fake_master):
    fake_master.responses.update(GetNode=node(), ListApps=apps())
    doc = json.loads(run("node", "gpus", "g1", "-o", "json"))
    assert fake_master.calls[0] == ("GetNode", master_pb2.GetNodeRequest(node_id="g1"))
    assert (doc["node_id"], doc["gpu_sharing"], doc["alive"]) == ("g1", True, True)
    gpus = doc["gpus"]
    assert all(set(g) == GPU_KEYS for g in gpus) and [g["index"] for g in gpus] == [0, 1, 2, 3]
    # whole GPUs: all of the GPU, memory included; fractions: their share and memory each
    assert [(g["share_used"], g["share_allocatable"]) for g in gpus] == [(100, 0), (100, 0), (60, 40), (0, 100)]
    assert [g["memory_used_bytes"] // GiB for g in gpus] == [40, 40, 16, 0]
    assert [g["memory_allocatable_bytes"] // GiB for g in gpus] == [0, 0, 24, 40]
    on_two = gpus[2]["containers"]
    assert all(set(h) == HOLDER_KEYS for h in on_two)
    assert [(h["app"], h["instance_id"], h["state"], h["gpu_mode"], h["ceiling"]) for h in on_two] == [
        ("infer", "0", "running", "elastic", 60), ("infer", "1", "pending", "elastic", 60)]
    assert on_two[0]["container_id"] == "infer-id.0.1" and on_two[1]["container_id"] == ""
    assert [h["gpu_mode"] for h in gpus[0]["containers"]] == ["whole"] and gpus[3]["containers"] == []
    assert [(h["app"], h["gpu_share"]) for h in doc["unplaced"]] == [("old", 20)]


def test_text_is_the_link_tree_with_the_holders_under_each_gpu(fake_master):
    fake_master.responses.update(GetNode=node(), ListApps=apps())
    lines = run("node", "gpus", "g1").splitlines()
    assert lines[0] == "Node g1: 4 GPU(s), sharing on (libvcuda)"
    assert lines[1:4] == ["└─ SYS:0", "   ├─ PIX:0", "   │  ├─ GPU 0 A100: share 100/100 used, 0 allocatable; "
                                                      "memory 40Gi/40Gi used, 0 allocatable"]
    assert "   │  │  └─ train/0 train-id.0.1 [running]: 2 whole GPU(s) 0,1" in lines
    assert ("      ├─ GPU 2 A100: share 60/100 used, 40 allocatable; memory 16Gi/40Gi used, 24Gi allocatable"
            in lines)
    assert "      │  ├─ infer/0 infer-id.0.1 [running]: share 30 (elastic up to 60), memory 8Gi" in lines
    assert "      │  └─ infer/1 - [pending]: share 30 (elastic up to 60), memory 8Gi" in lines
    assert lines[-2:] == ["GPU grants without device indices:", "  old/0 old-id.0.1 [running]: share 20, memory 1Gi"]


def test_a_node_without_gpus(fake_master):
    fake_master.responses.update(GetNode=master_pb2.NodeStatus(info=types_pb2.NodeInfo(node_id="c1"), alive=True),
                                 ListApps=master_pb2.ListAppsResponse())
    assert run("node", "gpus", "c1") == "Node c1: 0 GPU(s), sharing off\n(no GPUs reported)\n"
    doc = json.loads(run("node", "gpus", "c1", "-o", "json"))
    assert doc == {"node_id": "c1", "alive": True, "gpu_sharing": False, "gpus": [], "unplaced": []}
