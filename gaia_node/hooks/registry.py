"""Which task hooks and background managers a node runs, in order. One line per concern.

Hooks run around each container (see hooks/__init__.py); managers are node-wide loops (memory
reclaim, disk pressure) called every `interval` seconds by the agent.
"""
import dataclasses


@dataclasses.dataclass
class NodeParts:
    """What hooks and managers may use: built once by the agent."""
    cfg: object            # NodeConfig
    cgroups: object        # gaia_node.cgroups implementation, or None
    containers: object     # gaia_node.containers.Containers (set before managers are built)
    events: object         # gaia_node.events.EventLog


def build_hooks(parts: NodeParts) -> list:
    hooks = []
    return hooks


def build_managers(parts: NodeParts) -> list:
    """(name, interval_seconds, callable) for each node-wide loop."""
    managers = []
    return managers


def build_usage(parts: NodeParts) -> list:
    """Callables (spec, status) -> Resources with the dimensions each concern measures
    (memory and cpu from cgroups, disk from the scratch dir, bandwidth from tc); summed."""
    meters = []
    return meters
