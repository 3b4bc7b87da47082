"""What the node offers the scheduler: measured by psutil, overridable in node.yaml.

Overrides use the spec's resource names and quantities (cpu: 8, memory: 30Gi, net_in: 10Gbit...),
so an operator can hold back room for the system or declare what psutil cannot see.
"""
import os
import time

import psutil

import gaia_common
from gaia_common import quantity
from gaia_common.config import ConfigError
from gaia_common.pb import types_pb2
from gaia_common.spec import RESOURCE_FIELDS
from gaia_node import gpu_discovery, gpus
from gaia_node.isolation import disk


def measured(state_dir: str, disk_pressure_free=0) -> types_pb2.Resources:
    return types_pb2.Resources(cpu_millis=(psutil.cpu_count() or 1) * 1000,
                               memory_bytes=psutil.virtual_memory().total,
                               disk_bytes=disk.scratch_capacity(state_dir, disk_pressure_free),
                               net_in_bps=default_bandwidth(), net_out_bps=default_bandwidth())


DEFAULT_BANDWIDTH = 10_000_000_000   # bits/s, when no interface reports its speed


def default_bandwidth() -> int:
    """The fastest link's speed (psutil reports Mbit/s, 0 when unknown, e.g. virtio), else 10Gbit.
    Containers' traffic is shaped under this (gaia_node/network); override with capacity.net_in/out."""
    try:
        speeds = [s.speed for name, s in psutil.net_if_stats().items()
                  if s.isup and os.path.exists(f"/sys/class/net/{name}/device")]  # physical links only
    except OSError:
        speeds = []
    fastest = max((s for s in speeds if s > 0), default=0)
    return fastest * 1_000_000 if fastest else DEFAULT_BANDWIDTH


def with_overrides(capacity: types_pb2.Resources, overrides: dict) -> types_pb2.Resources:
    out = types_pb2.Resources()
    out.CopyFrom(capacity)
    for name, raw in (overrides or {}).items():
        if name not in RESOURCE_FIELDS:
            raise ConfigError(f"capacity.{name}: unknown resource (known: {', '.join(RESOURCE_FIELDS)})")
        attr, parse, _ = RESOURCE_FIELDS[name]
        try:
            setattr(out, attr, parse(raw))
        except (ValueError, TypeError, quantity.QuantityError) as e:
            raise ConfigError(f"capacity.{name}: {e}") from None
    return out


def node_info(cfg, node_id: str, address: str, drivers, found=None) -> types_pb2.NodeInfo:
    """`found`: the node's GPUs (gpu_discovery.NodeGpus); looked up (declared, else NVML) when None."""
    found = gpu_discovery.node_gpus(cfg) if found is None else found
    devices = list(found.gpus)
    capacity = with_overrides(measured(cfg.state_dir, cfg.disk_pressure_free), cfg.capacity)
    return types_pb2.NodeInfo(
        node_id=node_id, address=address, host_ip=cfg.host_ip,
        capacity=gpus.with_gpus(capacity, devices, cfg.capacity), gpus=devices,
        gpu_sharing=gpu_discovery.sharing_available(found),
        labels={str(k): str(v) for k, v in (cfg.labels or {}).items()},
        registered_at=time.time(), version=gaia_common.__version__, drivers=sorted(drivers))
