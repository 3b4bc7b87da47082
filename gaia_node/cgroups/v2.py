"""cgroup v2: one unified hierarchy, <root>/<parent...>/<container_id>.

The kernel's rules this follows (and tests/fakes/cgroupfs.py enforces):
- a controller's files (memory.max, cpu.weight...) exist in a cgroup only when the controller
  is enabled in its parent's cgroup.subtree_control, and a cgroup may enable only what its own
  cgroup.controllers lists, i.e. what its parent enabled: so controllers are enabled top-down,
  at the root and at every level of the parent path, before a container's leaf is made;
- no internal processes: a non-root cgroup that enables controllers for its children holds no
  processes itself, so processes live only in the leaves (one per container);
- memory.{min,low,high,max} take bytes or "max", cpu.max "QUOTA PERIOD" or "max PERIOD",
  cpu.weight 1..10000.
Memory: min = low = request (the guarantee; the parent levels hold the sum of the requests,
since protection only reaches a leaf through its ancestors), high = max = limit; elastic memory
lowers memory.high toward the request to squeeze a borrower, which the kernel reclaims at once.
All file work goes through `fs` (cgroups.HostFS by default).
"""
import errno
import os
from typing import Optional

from gaia_node.cgroups import (CPU_PERIOD_US, HostFS, Limits, MemoryStat, cpu_quota_us, cpu_weight, parse_keyed,
                               psi_some_avg10)

WANTED = ("cpu", "memory", "pids", "io")   # io: for the disk-IO limits (io.max), set elsewhere


class CgroupV2:
    version = "v2"

    def __init__(self, root: str, parent: str, fs=None):
        self.root = os.path.normpath(root)
        self.parent = parent.strip("/")
        self.fs = fs or HostFS()

    def path(self, container_id: str) -> str:
        return os.path.join(self.root, self.parent, container_id)

    def _file(self, container_id: str, name: str) -> str:
        return os.path.join(self.path(container_id), name)

    def create(self, container_id: str, limits: Limits) -> list:
        controllers = self._prepare_parent()
        path = self.path(container_id)
        self._mkdir(path)
        if "memory" in controllers:
            self._memory(path, limits)
            self._protect_parents()
        if "cpu" in controllers:
            self._cpu(path, limits)
        return [os.path.join(path, "cgroup.procs")]

    def _prepare_parent(self) -> set:
        """Make every level from the root down to the parent, enabling at each the wanted
        controllers its own cgroup.controllers offers; return those the leaves will get."""
        level, enabled = self.root, set()
        steps = [p for p in self.parent.split("/") if p]
        for depth in range(len(steps) + 1):
            if depth:
                level = os.path.join(level, steps[depth - 1])
                self._mkdir(level)
            offered = set(self.fs.read(os.path.join(level, "cgroup.controllers")).split())
            enabled = self._enable(level, [c for c in WANTED if c in offered])
        return enabled

    def _enable(self, level: str, controllers: list) -> set:
        control = os.path.join(level, "cgroup.subtree_control")
        enabled = set(self.fs.read(control).split())
        missing = [c for c in controllers if c not in enabled]
        if missing:
            try:
                self.fs.write(control, " ".join("+" + c for c in missing))
            except OSError as e:
                if e.errno == errno.EBUSY:  # the no-internal-process rule: say where, not just EBUSY
                    raise OSError(e.errno, f"{level} holds processes, so it cannot enable "
                                           f"{', '.join(missing)} for its children; use a parent of "
                                           "Gaia's own (cgroup_parent)") from None
                raise
        return enabled | set(missing)

    def _protect_parents(self):
        """memory.min/low are hierarchical: a leaf is protected only up to what its parent is,
        so the parent holds the sum of its containers' requests, and every level above it (up
        to the root, which has no such files) at least that much (never lowered: those levels
        may protect others too)."""
        parent = os.path.join(self.root, self.parent)
        total = 0
        for name in self.fs.subdirs(parent):
            try:
                total += int(self.fs.read(os.path.join(parent, name, "memory.min")))
            except (OSError, ValueError):  # going away, or made by someone else without memory
                continue
        level = parent
        while level != self.root and self.fs.exists(os.path.join(level, "memory.min")):
            for knob in ("memory.min", "memory.low"):
                path = os.path.join(level, knob)
                current = self.fs.read(path).strip()
                if level == parent or (current != "max" and int(current) < total):
                    self.fs.write(path, total)
            level = os.path.dirname(level)

    def _mkdir(self, path: str):
        try:
            self.fs.mkdir(path)
        except FileExistsError:
            pass

    def _memory(self, path: str, limits: Limits):
        if limits.memory_request:
            self.fs.write(os.path.join(path, "memory.min"), limits.memory_request)
            self.fs.write(os.path.join(path, "memory.low"), limits.memory_request)
        if limits.memory_limit:
            # max first: high above max would be pointless. high starts at the limit; elastic
            # memory pulls it down toward the request under node pressure.
            self.fs.write(os.path.join(path, "memory.max"), limits.memory_limit)
            self.fs.write(os.path.join(path, "memory.high"), limits.memory_limit)
        group = os.path.join(path, "memory.oom.group")
        if self.fs.exists(group):
            self.fs.write(group, 1)  # an OOM kill takes the whole container, not one of its processes

    def _cpu(self, path: str, limits: Limits):
        self.fs.write(os.path.join(path, "cpu.weight"), cpu_weight(limits.cpu_request_millis))
        quota = cpu_quota_us(limits.cpu_limit_millis)
        self.fs.write(os.path.join(path, "cpu.max"), f"{quota if quota else 'max'} {CPU_PERIOD_US}")

    def pids(self, container_id: str) -> list:
        try:
            text = self.fs.read(self._file(container_id, "cgroup.procs"))
        except FileNotFoundError:
            return []
        return [int(line) for line in text.split()]

    def remove(self, container_id: str) -> bool:
        try:
            self.fs.rmdir(self.path(container_id))
        except FileNotFoundError:
            return True
        except OSError:  # EBUSY: processes left in it
            return False
        try:
            self._protect_parents()  # its request no longer needs protecting
        except OSError:
            pass
        return True

    # ---- live use and the elastic memory ceiling ----

    def memory_usage(self, container_id: str) -> int:
        return int(self.fs.read(self._file(container_id, "memory.current")))

    def memory_stat(self, container_id: str) -> MemoryStat:
        stat = parse_keyed(self.fs.read(self._file(container_id, "memory.stat")))
        return MemoryStat(usage=self.memory_usage(container_id), file=stat.get("file", 0), anon=stat.get("anon", 0))

    def memory_ceiling(self, container_id: str) -> Optional[int]:
        value = self.fs.read(self._file(container_id, "memory.high")).strip()
        return None if value == "max" else int(value)

    def set_memory_ceiling(self, container_id: str, ceiling: Optional[int]) -> bool:
        # Writing memory.high makes the kernel reclaim down to it before the write returns.
        self.fs.write(self._file(container_id, "memory.high"), "max" if ceiling is None else ceiling)
        return ceiling is None or self.memory_usage(container_id) <= ceiling

    def memory_pressure(self, container_id: str) -> Optional[float]:
        return psi_some_avg10(self.fs.read(self._file(container_id, "memory.pressure")))

    def oom_kills(self, container_id: str) -> int:
        return parse_keyed(self.fs.read(self._file(container_id, "memory.events"))).get("oom_kill", 0)

    def cpu_usage_ns(self, container_id: str) -> int:
        return parse_keyed(self.fs.read(self._file(container_id, "cpu.stat"))).get("usage_usec", 0) * 1000
