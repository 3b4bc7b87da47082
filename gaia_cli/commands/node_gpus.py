"""gaia node gpus NODE: the node's GPU link tree, and per GPU what runs on it and what is left.

The node's GPUs (model, memory, link path) and whether it shares them (libvcuda) come from
GetNode; what holds each GPU comes from the grants: every allocation on the node with its
GPU indices (ListApps). A GPU is counted as the scheduler counts it
(gaia_master/sfair/gpu_topology.py): a whole-GPU grant holds all of its share and memory, a
fraction holds its gpu_share and gpu_memory_bytes.
"""
import click

from gaia_common import quantity
from gaia_common.pb import master_pb2, types_pb2
from gaia_cli import output
from gaia_cli.context import pass_context

FULL = 100


def _spec_of(record: types_pb2.AppRecord, version: int) -> types_pb2.AppSpec:
    return record.versions[version] if version in record.versions else record.spec


def _holder(record: types_pb2.AppRecord, view: master_pb2.InstanceView) -> dict:
    alloc, spec = view.allocation, _spec_of(record, view.allocation.version)
    share = int(alloc.request.gpu_share)
    mode = spec.gpu_mode or "hard"
    return {
        "app": spec.name, "app_id": alloc.app_id, "instance_id": alloc.instance_id,
        "container_id": view.status.container_id if view.HasField("status") else "",
        "state": output.container_state(view.status.state) if view.HasField("status") else "pending",
        "gpu_share": share, "gpu_memory_bytes": int(alloc.request.gpu_memory_bytes),
        "gpu_mode": mode if 0 < share < FULL else "whole",
        "ceiling": (min(FULL, max(share, int(spec.resources.limit.gpu_share or share)))
                    if mode == "elastic" and 0 < share < FULL else share),
        "gpu_indices": [int(i) for i in alloc.gpu_indices],
    }


def gpu_view(node: master_pb2.NodeStatus, apps) -> dict:
    """The JSON document of `gaia node gpus` (keys in docs/cli.md), from GetNode and ListApps."""
    info = node.info
    gpus = {g.index: {"index": g.index, "model": g.model, "uuid": g.uuid, "link_path": g.link_path,
                      "memory_bytes": int(g.memory_bytes), "share_used": 0, "share_allocatable": FULL,
                      "memory_used_bytes": 0, "memory_allocatable_bytes": int(g.memory_bytes),
                      "containers": []} for g in info.gpus}
    unplaced = []      # GPU grants without device indices (a node that reported no topology)
    for status in apps:
        record = status.app
        for view in [status.am, *status.instances] if status.HasField("am") else status.instances:
            alloc = view.allocation
            if alloc.node_id != info.node_id or alloc.request.gpu_share <= 0:
                continue
            holder = _holder(record, view)
            if not alloc.gpu_indices:
                unplaced.append(holder)
            for index in alloc.gpu_indices:
                gpu = gpus.get(int(index))
                if gpu is None:         # a grant naming a GPU the node no longer reports
                    unplaced.append(holder)
                    continue
                gpu["containers"].append(holder)
                if holder["gpu_mode"] == "whole":
                    gpu["share_used"], gpu["memory_used_bytes"] = FULL, gpu["memory_bytes"]
                else:
                    gpu["share_used"] += holder["gpu_share"]
                    gpu["memory_used_bytes"] += holder["gpu_memory_bytes"]
    for gpu in gpus.values():
        gpu["share_allocatable"] = max(0, FULL - gpu["share_used"])
        gpu["memory_allocatable_bytes"] = max(0, gpu["memory_bytes"] - gpu["memory_used_bytes"])
        gpu["containers"].sort(key=lambda h: (h["app"], h["instance_id"]))
    return {"node_id": info.node_id, "alive": node.alive, "gpu_sharing": info.gpu_sharing,
            "gpus": [gpus[i] for i in sorted(gpus)], "unplaced": unplaced}


# ---- text ----

def render(doc: dict) -> str:
    gpus = doc["gpus"]
    head = (f"Node {doc['node_id']}: {len(gpus)} GPU(s), sharing "
            f"{'on (libvcuda)' if doc['gpu_sharing'] else 'off'}{'' if doc['alive'] else ', NOT ALIVE'}")
    if not gpus:
        return head + "\n(no GPUs reported)"
    lines = [head]
    _tree_lines(_tree(gpus), "", lines)
    if doc["unplaced"]:
        lines.append("GPU grants without device indices:")
        lines += [f"  {_holder_line(h)}" for h in doc["unplaced"]]
    return "\n".join(lines)


def _tree(gpus: list) -> dict:
    """{"steps": {step: subtree}, "gpus": [gpu]} from the GPUs' link paths."""
    root = {"steps": {}, "gpus": []}
    for gpu in gpus:
        here = root
        for step in filter(None, gpu["link_path"].split("/")):
            here = here["steps"].setdefault(step, {"steps": {}, "gpus": []})
        here["gpus"].append(gpu)
    return root


def _lowest(node: dict) -> int:
    return min([g["index"] for g in node["gpus"]] + [_lowest(n) for n in node["steps"].values()], default=0)


def _tree_lines(node: dict, prefix: str, lines: list):
    children = [(_lowest(sub), 0, step, sub) for step, sub in node["steps"].items()]
    children += [(g["index"], 1, "", g) for g in node["gpus"]]
    children.sort(key=lambda c: (c[0], c[1]))
    for n, (_, is_gpu, step, child) in enumerate(children):
        last = n == len(children) - 1
        branch, indent = ("└─ ", "   ") if last else ("├─ ", "│  ")
        if is_gpu:
            lines.append(prefix + branch + _gpu_line(child))
            holders = child["containers"]
            for k, holder in enumerate(holders):
                lines.append(prefix + indent + ("└─ " if k == len(holders) - 1 else "├─ ") + _holder_line(holder))
        else:
            lines.append(prefix + branch + step)
            _tree_lines(child, prefix + indent, lines)


def _gpu_line(gpu: dict) -> str:
    fmt = quantity.format_bytes
    return (f"GPU {gpu['index']} {gpu['model']}: share {gpu['share_used']}/{FULL} used, "
            f"{gpu['share_allocatable']} allocatable; memory {fmt(gpu['memory_used_bytes'])}/"
            f"{fmt(gpu['memory_bytes'])} used, {fmt(gpu['memory_allocatable_bytes'])} allocatable")


def _holder_line(h: dict) -> str:
    if h["gpu_mode"] == "whole":
        what = f"{h['gpu_share'] // FULL} whole GPU(s) {','.join(map(str, h['gpu_indices']))}"
    else:
        what = f"share {h['gpu_share']}" + (f" (elastic up to {h['ceiling']})" if h["gpu_mode"] == "elastic" else "")
        what += f", memory {quantity.format_bytes(h['gpu_memory_bytes'])}"
    return f"{h['app']}/{h['instance_id']} {h['container_id'] or '-'} [{h['state']}]: {what}"


@click.command()
@click.argument("node_id", metavar="NODE")
@output.output_option
@pass_context
def gpus(ctx, node_id, fmt):
    """Show a node's GPUs as their link tree, with the containers on each GPU and the share and
    memory used and still allocatable."""
    node = ctx.call("GetNode", master_pb2.GetNodeRequest(node_id=node_id))
    apps = ctx.call("ListApps", master_pb2.ListAppsRequest()).apps
    output.emit(fmt, gpu_view(node, apps), render)
