"""Per-container cgroups, v1 or v2, behind one small interface.

Requests are guarantees and limits are ceilings (DESIGN.md, "Isolation on a node"):
  memory  soft limit / protection = request, hard limit = limit
  cpu     weight (shares) from the request; a CFS quota from the limit whenever a limit is set
          (the spec copies the request into an unset limit, so a container that wants to
          borrow idle cpu asks for a limit above its request, as in Kubernetes)
A zero amount means "not set": no file is written and the kernel default stays.

Only the standard library here: the shim and the node both import it.
"""
import dataclasses
import os
from typing import Optional, Protocol

CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000          # the kernel refuses a quota below 1 ms
MIN_SHARES, MAX_SHARES = 2, 262_144


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_request: int = 0       # bytes
    memory_limit: int = 0
    cpu_request_millis: int = 0
    cpu_limit_millis: int = 0

    @classmethod
    def from_requirements(cls, req) -> "Limits":
        """From a types_pb2.ResourceRequirements (duck-typed: no protobuf import here)."""
        return cls(memory_request=req.request.memory_bytes, memory_limit=req.limit.memory_bytes,
                   cpu_request_millis=req.request.cpu_millis, cpu_limit_millis=req.limit.cpu_millis)


def cpu_shares(request_millis: int) -> int:
    """v1 cpu.shares: 1024 per core requested; a request of 0 is best effort (the minimum)."""
    return min(MAX_SHARES, max(MIN_SHARES, request_millis * 1024 // 1000))


def cpu_weight(request_millis: int) -> int:
    """v2 cpu.weight (1..10000), mapped from the v1 shares as runc does, so both agree."""
    return 1 + (cpu_shares(request_millis) - MIN_SHARES) * 9999 // (MAX_SHARES - MIN_SHARES)


def cpu_quota_us(limit_millis: int) -> Optional[int]:
    """CFS quota per CPU_PERIOD_US for a cpu limit, or None for no quota."""
    if limit_millis <= 0:
        return None
    return max(MIN_CPU_QUOTA_US, limit_millis * CPU_PERIOD_US // 1000)


class Cgroups(Protocol):
    version: str                  # "v1" | "v2"

    def create(self, container_id: str, limits: Limits) -> list:
        """Make the container's cgroup(s) with `limits`; return the cgroup.procs files to join."""

    def pids(self, container_id: str) -> list:
        """Every process in the container's cgroup(s)."""

    def remove(self, container_id: str) -> bool:
        """Remove the container's cgroup(s); False while processes are still in them."""


def write(path: str, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def read_pids(procs_file: str) -> list:
    try:
        with open(procs_file) as f:
            return [int(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:   # EBUSY: processes left in it
        return False
    return True


def detect(root: str, parent: str) -> Optional[Cgroups]:
    """v2 when `root` is a unified hierarchy, v1 when it holds a memory controller, else None."""
    from gaia_node.cgroups import v1, v2
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return v2.CgroupV2(root, parent)
    if os.path.isdir(os.path.join(root, "memory")):
        return v1.CgroupV1(root, parent)
    return None
