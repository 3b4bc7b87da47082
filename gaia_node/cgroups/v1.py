"""cgroup v1: one hierarchy per controller, <root>/<controller>/<parent>/<container_id>."""
import os

from gaia_node.cgroups import (CPU_PERIOD_US, Limits, cpu_quota_us, cpu_shares, read_pids,
                               rmdir, write)

# pids is joined for accounting and so that stop can find every process of a container,
# including ones that left the process group.
CONTROLLERS = ("memory", "cpu", "pids")


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
