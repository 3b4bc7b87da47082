"""First fit: each request goes to the first node (by id) with room. The skeleton's policy."""
from gaia_common import resources
from gaia_master.scheduler.base import NodeSnapshot, Placement


class FirstFit:
    def place(self, requests: list, nodes: list, gang: bool = False) -> Placement:
        free = {n.node_id: n.free for n in nodes}
        order = sorted(free)
        chosen, missing = [], []
        for request in requests:
            node_id = next((n for n in order if resources.fits(request, free[n])), None)
            if node_id is None:
                missing.append(request)
                continue
            free[node_id] = resources.sub(free[node_id], request)
            chosen.append(node_id)
        if not missing:
            return Placement(chosen)
        reason = _explain(missing[0], nodes, len(missing), len(requests))
        return Placement([] if gang else chosen, reason)


def _explain(request, nodes: list, missing: int, asked: int) -> str:
    if not nodes:
        return "no live nodes"
    short = sorted({d for n in nodes for d in resources.shortfall(request, n.free)})
    return f"{missing} of {asked} containers do not fit on any of {len(nodes)} nodes (short of {', '.join(short)})"
