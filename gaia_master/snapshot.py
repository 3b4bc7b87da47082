"""The scheduler's input: live nodes and what is still free on each."""
from gaia_common import resources
from gaia_master.scheduler import NodeSnapshot


def free_nodes(node_view, table, driver: str = "process") -> list:
    """Live nodes that offer `driver`, each with its capacity minus what is granted on it."""
    granted = {}
    for alloc in table.all_allocations():
        granted[alloc.node_id] = resources.add(granted.get(alloc.node_id, resources.total([])), alloc.request)
    out = []
    for info in node_view.node_list():
        if driver not in info.drivers:
            continue
        used = granted.get(info.node_id)
        free = resources.sub(info.capacity, used) if used is not None else info.capacity
        out.append(NodeSnapshot(info.node_id, info.address, free, dict(info.labels)))
    return out


def allocated_on(node_id: str, table):
    return resources.total(a.request for a in table.all_allocations() if a.node_id == node_id)
