"""A container's live use: the sum of what each meter (memory, cpu, disk, bandwidth) measures."""
import logging

from gaia_common import resources
from gaia_common.pb import types_pb2

log = logging.getLogger("gaia.node.usage")


def measure(meters: list, spec, status) -> types_pb2.Resources:
    total = types_pb2.Resources()
    for meter in meters:
        try:
            total = resources.add(total, meter(spec, status))
        except Exception as e:  # a container that just ended has no cgroup to read: report what we have
            log.debug("meter %s failed for %s: %s", getattr(meter, "__name__", meter), spec.container_id, e)
    return total
