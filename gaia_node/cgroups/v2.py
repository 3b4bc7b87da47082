"""cgroup v2: one unified hierarchy, <root>/<parent>/<container_id>.

Controllers must be enabled in cgroup.subtree_control of every ancestor below the root
before a leaf gets their files; the parent itself never holds processes (no-internal-process rule).
"""
import os

from gaia_node.cgroups import CPU_PERIOD_US, Limits, cpu_quota_us, cpu_weight, read_pids, rmdir, write

WANTED = ("cpu", "memory", "pids")


class CgroupV2:
    version = "v2"

    def __init__(self, root: str, parent: str):
        self.root = root
        self.parent = parent.strip("/")

    def path(self, container_id: str) -> str:
        return os.path.join(self.root, self.parent, container_id)

    def create(self, container_id: str, limits: Limits) -> list:
        controllers = self._available()
        parent = os.path.join(self.root, self.parent)
        os.makedirs(parent, exist_ok=True)
        for level in (self.root, parent):
            self._enable(level, controllers)
        path = self.path(container_id)
        os.makedirs(path, exist_ok=True)
        if "memory" in controllers:
            self._memory(path, limits)
        if "cpu" in controllers:
            self._cpu(path, limits)
        return [os.path.join(path, "cgroup.procs")]

    def _available(self) -> list:
        with open(os.path.join(self.root, "cgroup.controllers")) as f:
            present = f.read().split()
        return [c for c in WANTED if c in present]

    @staticmethod
    def _enable(level: str, controllers: list):
        control = os.path.join(level, "cgroup.subtree_control")
        try:
            with open(control) as f:
                enabled = set(f.read().split())
        except FileNotFoundError:
            enabled = set()
        missing = [c for c in controllers if c not in enabled]
        if missing:
            write(control, " ".join("+" + c for c in missing))

    @staticmethod
    def _memory(path: str, limits: Limits):
        if limits.memory_request:
            write(os.path.join(path, "memory.low"), limits.memory_request)
        if limits.memory_limit:
            # high starts at the hard limit; the elastic-memory reclaimer is meant to pull it
            # down toward the request under node pressure, which throttles instead of killing.
            write(os.path.join(path, "memory.high"), limits.memory_limit)
            write(os.path.join(path, "memory.max"), limits.memory_limit)

    @staticmethod
    def _cpu(path: str, limits: Limits):
        write(os.path.join(path, "cpu.weight"), cpu_weight(limits.cpu_request_millis))
        quota = cpu_quota_us(limits.cpu_limit_millis)
        write(os.path.join(path, "cpu.max"), f"{quota if quota else 'max'} {CPU_PERIOD_US}")

    def pids(self, container_id: str) -> list:
        return read_pids(os.path.join(self.path(container_id), "cgroup.procs"))

    def remove(self, container_id: str) -> bool:
        return rmdir(self.path(container_id))
