"""Disk capacity: per-container scratch space with a soft quota (DESIGN.md, "Isolation on a node").

  scratch   <container dir>/work: the default working directory, exported as GAIA_SCRATCH.
  quota     resources.request.disk_bytes. A soft quota: the container may write past it while
            the node's disk has room.
  ceiling   resources.limit.disk_bytes, but only when set above the request. The spec copies an
            unset limit from the request, so "limit == request" cannot mean a hard ceiling
            (the quota could then never be exceeded): it means "no ceiling beyond the quota".
  pressure  free space on the state dir's filesystem below NodeConfig.disk_pressure_free
            (bytes, or a percentage of the filesystem). The manager then evicts the containers
            furthest over their quota first and deletes their scratch, until the space it
            expects to free brings the filesystem back above the threshold. A container within
            its quota is never evicted for pressure; one over its ceiling is evicted at once.

Usage is the blocks allocated under the scratch dir (st_blocks * 512, hard links counted once,
mounts inside not crossed), found by walking it at most every disk_check_interval seconds.
Walking works on any filesystem; project quotas (ext4/xfs prjquota) would be cheaper but need
the filesystem prepared for them, which the node cannot assume.
"""
import dataclasses
import logging
import os
import shutil
import stat
import threading
import time

from gaia_common import quantity
from gaia_common.config import ConfigError
from gaia_common.pb import types_pb2
from gaia_node import state

log = logging.getLogger("gaia.node.disk")

SCRATCH = state.WORKDIR
SCRATCH_ENV = "GAIA_SCRATCH"
MAX_WALK_ENTRIES = 200_000     # a walk stops here and reports what it counted (a lower bound)


def scratch_dir(container_dir: str) -> str:
    return os.path.join(container_dir, SCRATCH)


# ---- measuring ----

@dataclasses.dataclass(frozen=True)
class Walked:
    allocated: int      # bytes
    entries: int
    complete: bool      # False when the walk stopped at its entry budget


def allocated_bytes(path: str, max_entries: int = MAX_WALK_ENTRIES) -> Walked:
    """Bytes allocated on disk under `path` (sparse files count what they hold)."""
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return Walked(0, 0, True)
    total, entries, seen = top.st_blocks * 512, 1, set()
    pending = [path] if stat.S_ISDIR(top.st_mode) else []
    while pending:
        try:
            listing = os.scandir(pending.pop())
        except OSError:  # removed or unreadable meanwhile: count what is left
            continue
        with listing:
            for entry in listing:
                if entries >= max_entries:
                    return Walked(total, entries, False)
                entries += 1
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_dev != top.st_dev:  # another filesystem mounted inside
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if st.st_nlink > 1 and not is_dir:
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                total += st.st_blocks * 512
                if is_dir:
                    pending.append(entry.path)
    return Walked(total, entries, True)


class ScratchUsage:
    """Each container's scratch usage, measured at most every `max_age` seconds; shared by the
    pressure manager (which refreshes it) and the usage meter (which reads it)."""

    def __init__(self, dirs: state.ContainerDirs, max_age: float):
        self.dirs = dirs
        self.max_age = max_age
        self._known = {}        # container_id -> (bytes, monotonic time measured)
        self._lock = threading.Lock()

    def refresh(self, container_id: str) -> int:
        walked = allocated_bytes(scratch_dir(self.dirs.path(container_id)))
        if not walked.complete:
            log.warning("scratch of %s has over %d entries; counted %d bytes of them",
                        container_id, walked.entries, walked.allocated)
        with self._lock:
            self._known[container_id] = (walked.allocated, time.monotonic())
        return walked.allocated

    def get(self, container_id: str) -> int:
        with self._lock:
            known = self._known.get(container_id)
        if known and time.monotonic() - known[1] < 2 * self.max_age:   # the manager refreshes every max_age
            return known[0]
        return self.refresh(container_id)

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._known.pop(container_id, None)

    def retain(self, container_ids) -> None:
        keep = set(container_ids)
        with self._lock:
            for cid in [c for c in self._known if c not in keep]:
                del self._known[cid]


def filesystem_space(path: str) -> tuple:
    """(free, total) bytes of the filesystem holding `path`; free is what non-root may use."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def pressure_threshold(setting, total: int) -> int:
    """NodeConfig.disk_pressure_free in bytes: a size ("2Gi", 1073741824) or a percentage ("10%")."""
    text = str(setting).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError(f"{text} is not between 0% and 100%")
            return int(total * percent / 100)
        return quantity.byte_count(text)
    except ValueError as e:
        raise ConfigError(f"disk_pressure_free: {e}") from None


def scratch_capacity(state_dir: str, reserve_setting=0) -> int:
    """What containers may hold on the state dir's filesystem: the free space plus what Gaia's
    containers already hold there (so a restarted node offers the same), less the pressure
    reserve (space the node keeps free and evicts to defend)."""
    path = os.path.abspath(state_dir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    free, total = filesystem_space(path)
    held = allocated_bytes(os.path.join(os.path.abspath(state_dir), "containers")).allocated
    return max(0, free + held - pressure_threshold(reserve_setting, total))


# ---- policy (pure) ----

@dataclasses.dataclass(frozen=True)
class Tenant:
    """One running container's position on the disk."""
    container_id: str
    used: int
    quota: int          # the soft quota (request)
    ceiling: int = 0    # 0: none
    priority: int = 0

    @property
    def over(self) -> int:
        return self.used - self.quota


@dataclasses.dataclass(frozen=True)
class Eviction:
    container_id: str
    reason: str         # becomes the container's platform_reason (or message, for its own fault)
    frees: int          # bytes its scratch holds, deleted with it
    own_fault: bool = False   # over its own hard limit: charged to the user's retry_times


def quota_of(resources) -> tuple:
    """(quota, ceiling) from a ResourceRequirements."""
    quota, limit = resources.request.disk_bytes, resources.limit.disk_bytes
    return quota, (limit if limit > quota else 0)


def plan_evictions(tenants: list, free: int, threshold: int) -> list:
    """Who to evict, in order: everyone over their ceiling; then, while the free space (plus
    what the evictions so far free) is below `threshold`, the tenant furthest over its quota,
    the lowest priority first among equals. Tenants within their quota are never chosen."""
    fmt = quantity.format_bytes
    plan = [Eviction(t.container_id, f"evicted: disk limit exceeded (scratch holds {fmt(t.used)}, "
                                     f"limit {fmt(t.ceiling)})", t.used, own_fault=True)
            for t in tenants if t.ceiling and t.used > t.ceiling]
    expected_free = free + sum(e.frees for e in plan)
    chosen = {e.container_id for e in plan}
    borrowers = sorted((t for t in tenants if t.over > 0 and t.container_id not in chosen),
                       key=lambda t: (-t.over, t.priority, t.container_id))
    for t in borrowers:
        if expected_free >= threshold:
            break
        plan.append(Eviction(t.container_id, f"evicted: disk pressure (free {fmt(free)} below "
                                             f"{fmt(threshold)}; scratch holds {fmt(t.used)}, "
                                             f"{fmt(t.over)} over its quota of {fmt(t.quota)})", t.used))
        expected_free += t.used
    return plan


# ---- the node's parts: a task hook, a manager loop, a usage meter ----

class ScratchHook:
    """Makes the scratch dir before the task starts and tells the task where it is."""
    name = "disk"

    def __init__(self, usage: ScratchUsage):
        self.usage = usage

    def prestart(self, ctx) -> None:
        path = scratch_dir(ctx.directory)
        os.makedirs(path, exist_ok=True)
        ctx.env[SCRATCH_ENV] = path

    def poststart(self, ctx) -> None:
        pass

    def poststop(self, ctx) -> None:
        self.usage.forget(ctx.spec.container_id)

    def recover(self, ctx) -> None:
        pass


class DiskPressure:
    """The node-wide loop: measure every running container's scratch, evict as planned."""

    def __init__(self, cfg, containers, events, usage: ScratchUsage):
        self.state_dir = cfg.state_dir
        self.setting = cfg.disk_pressure_free
        pressure_threshold(self.setting, 0)  # a bad setting fails the node's start, not the loop
        self.containers = containers
        self.events = events
        self.usage = usage
        self.under_pressure = False

    def check(self) -> list:
        """One pass; returns the evictions it carried out."""
        running = self.containers.running()
        tenants = []
        for spec, _ in running:
            quota, ceiling = quota_of(spec.resources)
            tenants.append(Tenant(spec.container_id, self.usage.refresh(spec.container_id), quota, ceiling,
                                  spec.priority))
        self.usage.retain(t.container_id for t in tenants)
        free, total = filesystem_space(self.state_dir)
        threshold = pressure_threshold(self.setting, total)
        plan = plan_evictions(tenants, free, threshold)
        self._note_pressure(free, threshold, plan)
        done = []
        for eviction in plan:
            try:
                status = self.containers.evict(eviction.container_id, eviction.reason,
                                               platform=not eviction.own_fault)
            except KeyError:  # removed since the plan was made: nothing to evict, go on
                continue
            if eviction.reason not in (status.platform_reason, status.message):
                continue  # it ended on its own meanwhile
            shutil.rmtree(scratch_dir(self.usage.dirs.path(eviction.container_id)), ignore_errors=True)
            self.usage.forget(eviction.container_id)
            self.events.record("disk.evict", eviction.container_id, eviction.reason)
            done.append(eviction)
        return done

    def _note_pressure(self, free: int, threshold: int, plan: list):
        pressed = free < threshold
        if pressed and not self.under_pressure:
            relief = sum(e.frees for e in plan)
            hint = "" if free + relief >= threshold else "; no other container is over its quota"
            self.events.record("disk.pressure", "", f"free {quantity.format_bytes(free)} below "
                                                    f"{quantity.format_bytes(threshold)}{hint}")
        self.under_pressure = pressed


_USAGE_BY_STATE_DIR = {}   # one ScratchUsage per node (state dir), shared by its manager and meter
_USAGE_LOCK = threading.Lock()


def scratch_usage(cfg) -> ScratchUsage:
    key = os.path.abspath(cfg.state_dir)
    with _USAGE_LOCK:
        usage = _USAGE_BY_STATE_DIR.get(key)
        if usage is None or usage.max_age != cfg.disk_check_interval:
            usage = _USAGE_BY_STATE_DIR[key] = ScratchUsage(state.ContainerDirs(cfg.state_dir),
                                                            cfg.disk_check_interval)
        return usage


def hook(parts) -> ScratchHook:
    return ScratchHook(scratch_usage(parts.cfg))


def manager(parts) -> tuple:
    pressure = DiskPressure(parts.cfg, parts.containers, parts.events, scratch_usage(parts.cfg))
    return "disk", parts.cfg.disk_check_interval, pressure.check


def meter(parts):
    usage = scratch_usage(parts.cfg)

    def disk_usage(spec, status) -> types_pb2.Resources:
        return types_pb2.Resources(disk_bytes=usage.get(spec.container_id))
    return disk_usage
