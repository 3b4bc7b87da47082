"""Elastic memory policy: pure functions from a snapshot of the node's containers to actions.

Requests are guarantees, limits are ceilings, and the gap between them is elastic: a container
may hold memory above its request (it "borrows") while the node's budget has room. When the sum
of what the containers hold passes `high` of the budget, borrowers give back enough to bring it
to `target`, in this order:
  1. squeeze: lower the ceilings of borrowers holding page cache above their request, so the
     kernel drops that cache (cheap: nobody dies);
  2. kill: only if squeezing was not enough, end borrowers still above their request.
Both phases take borrowers lowest priority first, then furthest over their request first. A
container at or below its request is never squeezed below it nor killed. When the pressure is
over, squeezed ceilings are raised back toward the limit as the room allows.
No I/O here: gaia_node/isolation/memory.py measures, applies and records.
"""
import dataclasses
from typing import Optional

MIB = 1 << 20
MIN_SQUEEZE = 4 * MIB        # smaller give-backs are not worth a squeeze (or an event)
KILL_TOLERANCE = 2 * MIB     # usage this close to the request counts as within it (accounting noise)


@dataclasses.dataclass(frozen=True)
class Member:
    """One running container's memory at one moment."""
    container_id: str
    priority: int
    request: int                  # bytes; 0 = none: everything it holds is borrowed
    limit: Optional[int]          # its own hard limit; None = none
    usage: int                    # bytes held now, page cache included
    file: int                     # of which page cache
    ceiling: Optional[int]        # the ceiling now (the limit, or lower when squeezed); None = none

    @property
    def borrowed(self) -> int:
        return max(0, self.usage - self.request)

    @property
    def unreclaimable(self) -> int:
        """What it holds above its request that no squeeze can take back (anonymous memory:
        without swap it can only be freed by ending the process)."""
        return max(0, self.usage - self.file - self.request)

    @property
    def squeezed(self) -> bool:
        return self.ceiling is not None and (self.limit is None or self.ceiling < self.limit)


@dataclasses.dataclass(frozen=True)
class Budget:
    budget: int                   # bytes the node's containers may hold together
    high: float = 0.95            # pressure above this fraction of the budget...
    target: float = 0.90          # ...is relieved down to this one
    psi_threshold: float = 0.0    # PSI some avg10 (%) that is pressure too, above `target`; 0 = off


@dataclasses.dataclass(frozen=True)
class Action:
    kind: str                     # "squeeze" | "kill" | "restore"
    container_id: str
    ceiling: Optional[int] = None  # squeeze, restore: the new ceiling (restore None: no limit)
    frees: int = 0                 # bytes the action should give back (squeeze, kill)
    why: str = ""


def total(members) -> int:
    return sum(m.usage for m in members)


def need(members, budget: Budget, psi: float = 0.0) -> int:
    """Bytes the node must get back now; 0 when there is no pressure."""
    held = total(members)
    over_high = held > budget.budget * budget.high
    stalled = budget.psi_threshold > 0 and psi >= budget.psi_threshold
    if not (over_high or stalled):
        return 0
    return max(0, int(held - budget.budget * budget.target))


def reclaim_order(members) -> list:
    """Borrowers, lowest priority first, then furthest over their request first."""
    return sorted((m for m in members if m.borrowed > 0), key=lambda m: (m.priority, -m.borrowed, m.container_id))


def plan_squeezes(members, budget: Budget, psi: float = 0.0) -> list:
    """Phase 1: take page cache above requests, never going below a request."""
    wanted, actions = need(members, budget, psi), []
    for m in reclaim_order(members):
        if wanted <= 0:
            break
        give = min(wanted, m.borrowed, m.file)
        if give < MIN_SQUEEZE:
            continue
        actions.append(Action("squeeze", m.container_id, ceiling=m.usage - give, frees=give,
                              why=f"{mib(m.borrowed)} over its request of {mib(m.request)}, "
                                  f"{mib(m.file)} of it page cache"))
        wanted -= give
    return actions


def plan_kills(members, budget: Budget, psi: float = 0.0) -> list:
    """Phase 2, on a snapshot taken after the squeezes: end borrowers until the need is met.

    Only for memory squeezing cannot take back: a borrower whose excess is page cache still
    being written back (the kernel refused the lower ceiling for now) is squeezed again next
    pass, never killed for it."""
    wanted, actions = need(members, budget, psi), []
    for m in reclaim_order(members):
        if wanted <= 0:
            break
        if m.unreclaimable <= KILL_TOLERANCE:
            continue
        actions.append(Action("kill", m.container_id, frees=m.usage,
                              why=f"priority {m.priority}, {mib(m.borrowed)} over its request of "
                                  f"{mib(m.request)} that squeezing could not take back"))
        wanted -= m.usage
    return actions


def plan_restores(members, budget: Budget, psi: float = 0.0) -> list:
    """No pressure: give squeezed ceilings back, highest priority first, within the room left
    under `target` (so the give-back does not itself cause the next squeeze)."""
    if need(members, budget, psi) > 0:
        return []
    room, actions = int(budget.budget * budget.target) - total(members), []
    for m in sorted((m for m in members if m.squeezed), key=lambda m: (-m.priority, m.container_id)):
        if room <= 0:
            break
        full = m.limit
        raised = m.ceiling + room
        if full is None or raised >= full:
            actions.append(Action("restore", m.container_id, ceiling=full, why="pressure over: back to its limit"))
            room -= (full - m.ceiling) if full is not None else room
        else:
            actions.append(Action("restore", m.container_id, ceiling=raised, why="pressure easing: partly given back"))
            room = 0
    return actions


def mib(n: int) -> str:
    return f"{n / MIB:.0f}Mi"
