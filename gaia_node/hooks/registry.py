"""Which task hooks and background managers a node runs, in order. One line per concern.

Hooks run around each container (see hooks/__init__.py); managers are node-wide loops (memory
reclaim, disk pressure) called every `interval` seconds by the agent.
"""
import dataclasses

from gaia_node import gpu_share, health, partition
from gaia_node.isolation import cpu, disk, disk_io, memory
from gaia_node.network import hook as network


@dataclasses.dataclass
class NodeParts:
    """What hooks and managers may use: built once by the agent."""
    cfg: object            # NodeConfig
    cgroups: object        # gaia_node.cgroups implementation, or None
    containers: object     # gaia_node.containers.Containers (set before managers are built)
    events: object         # gaia_node.events.EventLog
    registration: object = None   # gaia_node.registration.Registration (the node's lease)
    health: object = None  # gaia_node.health.HealthChecks: made by build_hooks, ticked as a manager
    metrics: object = None  # gaia_node.metrics.NodeMetrics, or None
    gpus: object = None    # gaia_node.gpu_discovery.NodeGpus: the node's GPUs (declared or NVML's)


def build_hooks(parts: NodeParts) -> list:
    hooks = []
    hooks.append(disk.hook(parts))           # scratch dir, GAIA_SCRATCH
    hooks.append(disk_io.hook(parts))        # blkio throttle / io.max
    hooks.append(network.hook(parts))        # netns, veth, address, tc shaping, port DNAT
    hooks.append(gpu_share.hook(parts))      # GPU devices; vCUDA config, preload, region
    if parts.cgroups is not None:
        hooks.append(memory.hook(parts))     # a kernel OOM kill is reported as one
    hooks.append(health.hook(parts))         # last: probes start once everything else is set up
    return hooks


def build_managers(parts: NodeParts) -> list:
    """(name, interval_seconds, callable) for each node-wide loop."""
    managers = []
    managers.append(disk.manager(parts))     # disk pressure: evict furthest over quota first
    managers.append(health.manager(parts))   # start the health probes that are due
    if parts.registration is not None:
        managers.append(partition.manager(parts))  # cut off from etcd past the grace: stop what asked
    if parts.cgroups is not None:
        managers.append(memory.manager(parts))  # elastic memory: squeeze, then kill, borrowers
    return managers


def build_usage(parts: NodeParts) -> list:
    """Callables (spec, status) -> Resources with the dimensions each concern measures
    (memory and cpu from cgroups, disk from the scratch dir, bandwidth from tc); summed."""
    meters = []
    meters.append(disk.meter(parts))         # disk_bytes: the scratch dir's allocated blocks
    meters.append(network.meter(parts))      # net_in/out_bps: the veth's counters since the last reading
    if parts.cgroups is not None:
        meters.append(memory.meter(parts))   # memory_bytes: held now, page cache included
        meters.append(cpu.meter(parts))      # cpu_millis: rate since the previous reading
    return meters
