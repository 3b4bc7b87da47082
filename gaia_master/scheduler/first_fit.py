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
        reason = _explain(missing[0], free, len(missing), len(requests))
        return Placement([] if gang else chosen, reason)


def _explain(request, free: dict, missing: int, asked: int) -> str:
    """Which dimensions ran out, judged on what was left after this placement's own picks."""
    if not free:
        return "no live node offers this driver"
    short = sorted({d for left in free.values() for d in resources.shortfall(request, left)})
    return f"{missing} of {asked} containers do not fit on any of {len(free)} nodes (short of {', '.join(short)})"
