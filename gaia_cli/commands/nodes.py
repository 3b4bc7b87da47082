"""gaia nodes / gaia node show NODE: the node managers the leader knows."""
import click

from gaia_common import quantity
from gaia_common.pb import master_pb2
from gaia_cli import output
from gaia_cli.context import pass_context


def _used(allocated: int, capacity: int, fmt) -> str:
    return f"{fmt(allocated)}/{fmt(capacity)}"


def render_nodes(response: master_pb2.ListNodesResponse) -> str:
    rows = []
    for n in sorted(response.nodes, key=lambda n: n.info.node_id):
        info, alloc = n.info, n.allocated
        rows.append([info.node_id, info.address, "yes" if n.alive else "no", n.containers,
                     _used(alloc.cpu_millis, info.capacity.cpu_millis, quantity.format_cpu),
                     _used(alloc.memory_bytes, info.capacity.memory_bytes, quantity.format_bytes),
                     ",".join(f"{k}={v}" for k, v in sorted(info.labels.items())) or "-"])
    return output.render_table(["NODE", "ADDRESS", "ALIVE", "CONTAINERS", "CPU", "MEMORY", "LABELS"], rows)


def render_node(n: master_pb2.NodeStatus) -> str:
    info = n.info
    return output.render_fields([
        ("Node", info.node_id),
        ("Address", info.address),
        ("Host IP", info.host_ip),
        ("Alive", "yes" if n.alive else "no"),
        ("Draining", "yes" if n.draining else "no"),
        ("Containers", n.containers),
        ("Capacity", output.resources_brief(info.capacity)),
        ("Allocated", output.resources_brief(n.allocated)),
        ("Drivers", ", ".join(info.drivers) or "-"),
        ("GPUs", (f"{len(info.gpus)} ({', '.join(sorted({g.model for g in info.gpus}))}"
                  f"{', shared' if info.gpu_sharing else ''}; gaia node gpus {info.node_id})") if info.gpus else "-"),
        ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(info.labels.items())) or "-"),
        ("Version", info.version or "-"),
        ("Registered", output.timestamp(info.registered_at)),
    ])


@click.command("nodes")
@output.output_option
@pass_context
def list_nodes(ctx, fmt):
    """List the cluster's nodes. CPU and MEMORY are allocated/capacity."""
    output.emit(fmt, ctx.call("ListNodes", master_pb2.ListNodesRequest()), render_nodes)


@click.command()
@click.argument("node_id", metavar="NODE")
@output.output_option
@pass_context
def show(ctx, node_id, fmt):
    """Show one node: capacity, allocation, drivers, labels."""
    output.emit(fmt, ctx.call("GetNode", master_pb2.GetNodeRequest(node_id=node_id)), render_node)


@click.command()
@click.argument("node_id", metavar="NODE")
@click.option("--undo", is_flag=True, help="Take new work on the node again.")
@output.output_option
@pass_context
def drain(ctx, node_id, undo, fmt):
    """Drain a node: no new placements, and every ApplicationMaster moves its instances off it
    (each starts elsewhere before the old copy stops, when its pool has room)."""
    output.emit(fmt, ctx.call("DrainNode", master_pb2.DrainNodeRequest(node_id=node_id, undo=undo)), render_node)
