"""Per-container cgroups, v1 or v2, behind one small interface.

Requests are guarantees and limits are ceilings (DESIGN.md, "Isolation on a node"):
  memory  soft limit / protection = request, hard limit = limit
  cpu     weight (shares) from the request; a CFS quota from the limit whenever a limit is set
          (the spec copies the request into an unset limit, so a container that wants to
          borrow idle cpu asks for a limit above its request, as in Kubernetes)
A zero amount means "not set": no file is written and the kernel default stays.

Beyond setting limits at creation, an implementation reads a container's live memory and cpu
use and moves its memory ceiling, which is what elastic memory (gaia_node/isolation/memory.py)
squeezes and gives back. v2 does all its file work through an `fs` object, so its tests run it
against a model of cgroupfs that refuses what the kernel refuses (tests/fakes/cgroupfs.py).

Only the standard library here: the shim and the node both import it.
"""
import dataclasses
import os
from typing import Optional, Protocol

CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000          # the kernel refuses a quota below 1 ms
MIN_SHARES, MAX_SHARES = 2, 262_144
MIN_WEIGHT, MAX_WEIGHT = 1, 10_000


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
    """v2 cpu.weight (1..10000): 100 (the kernel's default, what one task or one v1 cgroup of
    1024 shares weighs) per core requested. Proportional, unlike runc's affine map from shares
    (1024 -> 39), so 250m against 750m is 1:3 on v2 as on v1, and a container asking for one
    core weighs as much as a system slice."""
    return min(MAX_WEIGHT, max(MIN_WEIGHT, request_millis // 10))


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

    # ---- live use and the elastic memory ceiling (all raise OSError once the cgroup is gone) ----

    def memory_usage(self, container_id: str) -> int:
        """Bytes charged to the container now, page cache included."""

    def memory_stat(self, container_id: str) -> "MemoryStat": ...

    def memory_ceiling(self, container_id: str) -> Optional[int]:
        """The ceiling reclaim moves (v1 memory.limit_in_bytes, v2 memory.high); None = none."""

    def set_memory_ceiling(self, container_id: str, ceiling: Optional[int]) -> bool:
        """Move the ceiling (None: remove it); the kernel reclaims down to it at once where it
        can. True when usage is now at or below it; False when what is left cannot be reclaimed
        (anonymous memory without swap): v1 then keeps the old ceiling, v2 the new one."""

    def memory_pressure(self, container_id: str) -> Optional[float]:
        """The cgroup's PSI `some avg10` (v2), or None where the kernel has no per-cgroup PSI (v1)."""

    def oom_kills(self, container_id: str) -> int:
        """How many processes the kernel's OOM killer took in this cgroup."""

    def cpu_usage_ns(self, container_id: str) -> int:
        """Cpu time used by the container since it started, in nanoseconds."""


@dataclasses.dataclass(frozen=True)
class MemoryStat:
    usage: int            # bytes charged, all kinds
    file: int             # page cache: the kernel can drop (clean) or write back (dirty) it
    anon: int             # anonymous memory: without swap only a kill frees it


class HostFS:
    """The real cgroup filesystem, as the v2 implementation's file operations (read, write, mkdir,
    rmdir, exists, subdirs)."""

    @staticmethod
    def read(path: str) -> str:
        with open(path) as f:
            return f.read()

    @staticmethod
    def write(path: str, value) -> None:
        write(path, value)

    @staticmethod
    def mkdir(path: str) -> None:
        os.mkdir(path)

    @staticmethod
    def rmdir(path: str) -> None:
        os.rmdir(path)

    @staticmethod
    def exists(path: str) -> bool:
        return os.path.exists(path)

    @staticmethod
    def subdirs(path: str) -> list:
        """The child cgroups of `path`."""
        return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))


def parse_keyed(text: str) -> dict:
    """'key value' lines (memory.stat, cpu.stat, memory.events, oom_control) -> {key: int}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def psi_some_avg10(text: str) -> float:
    """`some avg10=` of a PSI file (/proc/pressure/memory, <cgroup>/memory.pressure)."""
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "avg10":
                    return float(value)
    return 0.0


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
