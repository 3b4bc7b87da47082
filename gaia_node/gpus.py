"""The node's GPUs as the scheduler sees them: model, memory and place in the link tree.

Declared in node.yaml (`gpus:` a list of {model, memory, link_path}); without that list the
node discovers them through NVML (gaia_node/gpu_discovery.py), and a declared list wins. They
also set the node's gpu_share (100 per GPU) and gpu_memory capacity, unless `capacity:`
overrides those.
"""
import re

from gaia_common import quantity
from gaia_common.config import ConfigError
from gaia_common.pb import types_pb2

LEVELS = ("NV", "PIX", "PXB", "PHB", "NODE", "SYS")
_STEP = re.compile(r"^([A-Z]+)(\d*):[A-Za-z0-9_-]+$")
FIELDS = {"model", "memory", "link_path", "uuid"}


def declared(entries) -> list:
    """Gpu messages from node.yaml's `gpus`, indexed 0.. in order; ConfigError names the field."""
    if not isinstance(entries, list):
        raise ConfigError("gpus: must be a list of {model, memory, link_path}")
    return [_gpu(i, e) for i, e in enumerate(entries)]


def _gpu(i: int, entry) -> types_pb2.Gpu:
    where = f"gpus[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping with model, memory, link_path")
    unknown = set(entry) - FIELDS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown field (known: {', '.join(sorted(FIELDS))})")
    model = str(entry.get("model") or "")
    if not model:
        raise ConfigError(f"{where}.model: required")
    try:
        memory = quantity.byte_count(entry.get("memory", 0))
    except (ValueError, quantity.QuantityError) as e:
        raise ConfigError(f"{where}.memory: {e}") from None
    path = str(entry.get("link_path") or "")
    for step in filter(None, path.split("/")):
        m = _STEP.match(step)
        if m is None or m.group(1) not in LEVELS:
            raise ConfigError(f"{where}.link_path: {step!r} is not LEVEL:id with LEVEL one of {', '.join(LEVELS)}")
    return types_pb2.Gpu(index=i, model=model, memory_bytes=memory, link_path=path, uuid=str(entry.get("uuid", "")))


def with_gpus(capacity: types_pb2.Resources, gpus: list, overrides: dict) -> types_pb2.Resources:
    """Capacity with the GPUs' share and memory, where the operator did not set them."""
    out = types_pb2.Resources()
    out.CopyFrom(capacity)
    if gpus and "gpu_share" not in (overrides or {}):
        out.gpu_share = 100 * len(gpus)
    if gpus and "gpu_memory" not in (overrides or {}):
        out.gpu_memory_bytes = sum(g.memory_bytes for g in gpus)
    return out
