"""Elastic memory on a node: the reclaim loop, the memory meter, and the OOM-kill report.

The policy (who gives back what, in which order) is gaia_node/isolation/memory_reclaim.py;
this module measures the running containers through the cgroups implementation, applies the
plan, and records every squeeze, kill and restore in the node's event log. It keeps no state
of its own: a squeezed container is one whose ceiling is below its limit in the cgroup itself,
so a restarted node manager picks up where the last one left off.
"""
import logging

import psutil

from gaia_common import quantity
from gaia_common.config import ConfigError
from gaia_common.pb import types_pb2
from gaia_node.cgroups import psi_some_avg10
from gaia_node.isolation import memory_reclaim as policy

log = logging.getLogger("gaia.node.memory")

NODE_PSI = "/proc/pressure/memory"
EVICT_REASON = "evicted: memory reclaim"


def node_budget(cfg) -> int:
    """NodeConfig.memory_budget, or the machine's RAM less memory_reserve."""
    try:
        if cfg.memory_budget:
            return quantity.byte_count(cfg.memory_budget)
        return max(0, psutil.virtual_memory().total - quantity.byte_count(cfg.memory_reserve))
    except quantity.QuantityError as e:
        raise ConfigError(f"memory_budget/memory_reserve: {e}") from None


def _request_limit(spec):
    request = spec.resources.request.memory_bytes
    limit = spec.resources.limit.memory_bytes or None
    return request, limit


class MemoryReclaimer:
    """The node-wide loop (hooks/registry.build_managers): one `tick` per interval."""

    def __init__(self, cgroups, containers, events, budget: policy.Budget, node_psi: str = NODE_PSI):
        self.cgroups = cgroups
        self.containers = containers
        self.events = events
        self.budget = budget
        self.node_psi = node_psi

    def snapshot(self) -> list:
        members = []
        for spec, _status in self.containers.running():
            cid = spec.container_id
            request, limit = _request_limit(spec)
            try:
                stat = self.cgroups.memory_stat(cid)
                ceiling = self.cgroups.memory_ceiling(cid)
            except (OSError, ValueError):  # ending, or not in our cgroups (another driver's layout)
                continue
            members.append(policy.Member(container_id=cid, priority=spec.priority, request=request, limit=limit,
                                         usage=stat.usage, file=stat.file, ceiling=ceiling))
        return members

    def pressure_stall(self, members) -> float:
        """PSI: the node's, and (v2) that of every container within its request, the ones
        that would be waiting for memory the borrowers hold."""
        stalls = []
        try:
            with open(self.node_psi) as f:
                stalls.append(psi_some_avg10(f.read()))
        except OSError:
            pass
        for m in members:
            if m.borrowed == 0:
                try:
                    stall = self.cgroups.memory_pressure(m.container_id)
                except (OSError, ValueError):
                    stall = None
                if stall is not None:
                    stalls.append(stall)
        return max(stalls, default=0.0)

    def tick(self) -> None:
        members = self.snapshot()
        psi = self.pressure_stall(members)
        if policy.need(members, self.budget, psi) == 0:
            for action in policy.plan_restores(members, self.budget, psi):
                self._restore(action)
            return
        squeezes = policy.plan_squeezes(members, self.budget, psi)
        for action in squeezes:
            self._squeeze(action, members)
        after = self.snapshot() if squeezes else members
        for action in policy.plan_kills(after, self.budget, psi):
            self._kill(action, after)

    def _node(self, members) -> str:
        return f"node holds {policy.mib(policy.total(members))} of its {policy.mib(self.budget.budget)} budget"

    def _squeeze(self, action: policy.Action, members):
        cid = action.container_id
        try:
            before = self.cgroups.memory_usage(cid)
            reached = self.cgroups.set_memory_ceiling(cid, action.ceiling)
            after = self.cgroups.memory_usage(cid)
        except (OSError, ValueError) as e:
            log.info("could not squeeze %s: %s", cid, e)
            return
        result = "" if reached else "; the rest is not reclaimable (anonymous memory)"
        self.events.record("reclaim.squeeze", cid,
                           f"ceiling lowered to {policy.mib(action.ceiling)}: {policy.mib(before)} -> "
                           f"{policy.mib(after)} ({action.why}; {self._node(members)}){result}")

    def _kill(self, action: policy.Action, members):
        reason = f"{EVICT_REASON} ({action.why}; {self._node(members)})"
        try:
            self.containers.evict(action.container_id, reason)
        except KeyError:  # gone meanwhile
            return
        self.events.record("reclaim.kill", action.container_id, reason)

    def _restore(self, action: policy.Action):
        try:
            self.cgroups.set_memory_ceiling(action.container_id, action.ceiling)
        except (OSError, ValueError) as e:
            log.info("could not give %s its memory back: %s", action.container_id, e)
            return
        if action.ceiling is None or action.why.startswith("pressure over"):
            shown = "no limit" if action.ceiling is None else policy.mib(action.ceiling)
            self.events.record("reclaim.restore", action.container_id, f"ceiling back to {shown}")
        else:
            log.debug("%s: ceiling raised to %d (%s)", action.container_id, action.ceiling, action.why)


def budget_from_config(cfg) -> policy.Budget:
    return policy.Budget(budget=node_budget(cfg), high=cfg.memory_pressure_high, target=cfg.memory_reclaim_target,
                         psi_threshold=cfg.memory_psi_threshold)


def memory_meter(cgroups):
    """A usage meter (hooks/registry.build_usage): bytes the container holds now."""
    def memory(spec, _status) -> types_pb2.Resources:
        return types_pb2.Resources(memory_bytes=cgroups.memory_usage(spec.container_id))
    return memory


class OomReport:
    """A task hook: a container the kernel OOM-killed says so, in its status message and the
    node's events, instead of a bare "killed by SIGKILL". At its own limit that is the user's
    doing (retries are charged); at a ceiling elastic memory had lowered, the platform's
    (platform_reason set: the AM retries it without charging retry_times)."""
    name = "memory"

    def __init__(self, cgroups, events):
        self.cgroups = cgroups
        self.events = events

    def prestart(self, ctx) -> None:
        pass

    def poststart(self, ctx) -> None:
        pass

    def recover(self, ctx) -> None:
        pass

    def poststop(self, ctx) -> None:
        cid = ctx.spec.container_id
        try:  # runs before the driver removes the cgroup
            kills = self.cgroups.oom_kills(cid)
            ceiling = self.cgroups.memory_ceiling(cid) if kills else None
        except (OSError, ValueError):
            return
        if not kills:
            return
        _, limit = _request_limit(ctx.spec)
        squeezed = ceiling is not None and (limit is None or ceiling < limit)
        if squeezed:  # it died at a ceiling the node lowered: the node's doing, not the user's
            note = f"OOM-killed by the kernel at its squeezed memory ceiling of {policy.mib(ceiling)}"
            if not ctx.status.platform_reason:
                ctx.status.platform_reason = f"{EVICT_REASON} ({note})"
        else:
            note = f"OOM-killed by the kernel at its memory limit ({kills} process(es))"
        ctx.status.message = f"{ctx.status.message}; {note}" if ctx.status.message else note
        self.events.record("memory.oom", cid, note)


# ---- what hooks/registry.py registers (only where the node has cgroups) ----

def hook(parts) -> OomReport:
    return OomReport(parts.cgroups, parts.events)


def manager(parts) -> tuple:
    reclaimer = MemoryReclaimer(parts.cgroups, parts.containers, parts.events, budget_from_config(parts.cfg))
    return "memory", parts.cfg.memory_reclaim_interval, reclaimer.tick


def meter(parts):
    return memory_meter(parts.cgroups)
