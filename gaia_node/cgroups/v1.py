"""cgroup v1: one hierarchy per controller, <root>/<controller>/<parent>/<container_id>.

Memory on v1: the soft limit (= request) only acts under global reclaim, when the whole machine
runs short, so the node's own budget is kept by gaia_node/isolation/memory.py, which squeezes a
borrower by lowering memory.limit_in_bytes: the kernel then reclaims its page cache at once, or
refuses (EBUSY) and keeps the old limit when what is left is anonymous memory it cannot swap.
"""
import errno
import os
from typing import Optional

from gaia_node.cgroups import (CPU_PERIOD_US, Limits, MemoryStat, cpu_quota_us, cpu_shares, parse_keyed,
                               read_pids, rmdir, write)

# pids is joined for accounting and so that stop can find every process of a container,
# including ones that left the process group; cpuacct (a hierarchy of its own on some hosts,
# co-mounted with cpu on others) for the container's cpu time.
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
# What memory.limit_in_bytes reads when no limit is set (PAGE_COUNTER_MAX pages); anything this
# large means "none".
UNLIMITED = 1 << 62


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


class CgroupV1:
    version = "v1"

    def __init__(self, root: str, parent: str):
        self.root = root
        self.parent = parent.strip("/")
        self.controllers = [c for c in CONTROLLERS if os.path.isdir(os.path.join(root, c))]

    def path(self, controller: str, container_id: str) -> str:
        return os.path.join(self.root, controller, self.parent, container_id)

    def create(self, container_id: str, limits: Limits) -> list:
        for controller in self.controllers:
            os.makedirs(self.path(controller, container_id), exist_ok=True)
        if "memory" in self.controllers:
            self._memory(self.path("memory", container_id), limits)
        if "cpu" in self.controllers:
            self._cpu(self.path("cpu", container_id), limits)
        return [os.path.join(self.path(c, container_id), "cgroup.procs") for c in self.controllers]

    @staticmethod
    def _memory(path: str, limits: Limits):
        if limits.memory_limit:
            write(os.path.join(path, "memory.limit_in_bytes"), limits.memory_limit)
        if limits.memory_request:
            write(os.path.join(path, "memory.soft_limit_in_bytes"), limits.memory_request)
        oom_control = os.path.join(path, "memory.oom_control")
        if os.path.exists(oom_control):
            # A new memcg inherits oom_kill_disable from its parent; a container at its hard
            # limit must be OOM-killed (and reported), never left hanging in the OOM handler.
            write(oom_control, 0)

    @staticmethod
    def _cpu(path: str, limits: Limits):
        write(os.path.join(path, "cpu.shares"), cpu_shares(limits.cpu_request_millis))
        quota = cpu_quota_us(limits.cpu_limit_millis)
        if quota is not None:
            write(os.path.join(path, "cpu.cfs_period_us"), CPU_PERIOD_US)
            write(os.path.join(path, "cpu.cfs_quota_us"), quota)

    def pids(self, container_id: str) -> list:
        found = set()
        for controller in self.controllers:
            found.update(read_pids(os.path.join(self.path(controller, container_id), "cgroup.procs")))
        return sorted(found)

    def remove(self, container_id: str) -> bool:
        return all([rmdir(self.path(c, container_id)) for c in self.controllers])

    # ---- live use and the elastic memory ceiling ----

    def _memory_file(self, container_id: str, name: str) -> str:
        return os.path.join(self.path("memory", container_id), name)

    def memory_usage(self, container_id: str) -> int:
        return int(_read(self._memory_file(container_id, "memory.usage_in_bytes")))

    def memory_stat(self, container_id: str) -> MemoryStat:
        stat = parse_keyed(_read(self._memory_file(container_id, "memory.stat")))
        return MemoryStat(usage=self.memory_usage(container_id),
                          file=stat.get("total_active_file", 0) + stat.get("total_inactive_file", 0),
                          anon=stat.get("total_active_anon", 0) + stat.get("total_inactive_anon", 0))

    def memory_ceiling(self, container_id: str) -> Optional[int]:
        value = int(_read(self._memory_file(container_id, "memory.limit_in_bytes")))
        return None if value >= UNLIMITED else value

    def set_memory_ceiling(self, container_id: str, ceiling: Optional[int]) -> bool:
        try:
            write(self._memory_file(container_id, "memory.limit_in_bytes"), -1 if ceiling is None else ceiling)
        except OSError as e:
            if e.errno == errno.EBUSY:  # reclaim made no progress: the old limit stays
                return False
            raise
        return True

    def memory_pressure(self, container_id: str) -> Optional[float]:
        return None

    def oom_kills(self, container_id: str) -> int:
        return parse_keyed(_read(self._memory_file(container_id, "memory.oom_control"))).get("oom_kill", 0)

    def cpu_usage_ns(self, container_id: str) -> int:
        return int(_read(os.path.join(self.path("cpuacct", container_id), "cpuacct.usage")))
