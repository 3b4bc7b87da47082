"""Turning a plan into durable grants: checked against the table as it is now, then written in
batches of fenced transactions.

A plan is computed outside the table's lock, so by the time it lands an app may have been
killed, its AM replaced, or a node may have left or filled up (an AM released and re-asked).
Like Nomad's plan applier, each request's grants are re-checked and the ones that no longer
hold are refused (they stay pending for the next cycle); a refused gang member refuses the
whole gang. The rest is written app by app, a gang and its app record in one transaction.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from gaia_common.pb import types_pb2
from gaia_master.app_table import TERMINAL
from gaia_master.node_view import highest_counter
from gaia_master.scheduling.index import as_vector
from gaia_master.store import MAX_OPS_PER_TXN

log = logging.getLogger(__name__)
WAITING = "waiting for "              # messages the scheduler owns start with this


@dataclasses.dataclass
class Applied:
    granted: int = 0
    refused: int = 0                  # grants dropped by the re-check
    messages: int = 0
    evicted: int = 0


class PlanApplier:
    def __init__(self, table, node_view, book, events=None):
        self.table = table
        self.node_view = node_view
        self.book = book
        self.events = events              # the master's event log: evictions are recorded there
        self._addresses: dict = {}

    def apply(self, plan, wanted: dict, version: int) -> Applied:
        out = Applied()
        self._addresses = {}
        by_request = _by_request(plan)
        with self.table.lock:
            stale = self.table.index.version != version
            out.evicted = self._evict(plan.evictions or [])
            accepted = self._recheck(by_request, wanted, plan.node_ids, stale, out,
                                     getattr(plan, "gpu_sets", None) or {})
            groups = self._groups(accepted, wanted, plan.pending)
            if groups:
                self.table.grant_batch(groups, MAX_OPS_PER_TXN)
            out.granted = sum(len(g[1]) for g in groups)
            out.messages = sum(1 for g in groups if not g[1])
        for w in wanted.values():
            if w.is_am and w.app_id in accepted:
                self.book.drop_am(w.app_id, w.attempt)
        return out

    # ---- evictions (preemption, reclaim) ----

    def _evict(self, evictions: list) -> int:
        """Release the victims' allocations (before the grants that need their room). The
        reconciler then stops each container; its AM sees the instance gone and asks again
        (a migration: nothing is charged to the user's retries)."""
        by_app: dict = {}
        for e in evictions:
            alloc = self.table.allocations.get(e.app, {}).get(e.instance)
            if alloc is not None and alloc.node_id == e.node:
                by_app.setdefault(e.app, []).append(e)
        for app_id, victims in by_app.items():
            self.table.release(app_id, [e.instance for e in victims])
            for e in victims:
                fields = {"app": app_id, "instance": e.instance}     # structured log fields
                log.info("%s: instance %s of %s on %s", e.kind, e.instance, app_id, e.node, extra=fields)
                log.info("  %s", e.reason, extra=fields)
            if self.events is not None:
                self.events.record(app_id, [types_pb2.AppEvent(
                    at=time.time(), kind="evict", instance_id=e.instance, cause=e.kind, platform=True,
                    message=f"from {e.node}: {e.reason}") for e in victims])
        return sum(len(v) for v in by_app.values())

    # ---- the re-check ----

    def _recheck(self, by_request: dict, wanted: dict, node_ids, stale: bool, out: Applied,
                 gpu_sets: dict) -> dict:
        """app_id -> [(Wanted, [(node_id, instances)], [GPU indices per instance])] of the
        requests that still hold."""
        accepted: dict = {}
        free: dict = {}                     # node_id -> what is left now, as grants are taken
        for rid, placed in by_request.items():
            w = wanted[rid]
            if not (w.gang or w.is_am or w.move_ids):
                placed = self._on_live_nodes(placed, node_ids, out)
                if not placed:
                    continue
            nodes = [(node_ids[row], int(k)) for row, k in placed]
            if not self._app_current(w) or not self._nodes_fit(w, nodes, free, stale):
                out.refused += sum(k for _, k in nodes)
                continue
            accepted.setdefault(w.app_id, []).append((w, nodes, _instance_gpus(rid, placed, gpu_sets)))
        return accepted

    def _on_live_nodes(self, placed: list, node_ids, out: Applied) -> list:
        """A plain request keeps its grants on the nodes still live; those on nodes that left
        meanwhile are refused alone (a gang, an AM or a move is refused whole, below)."""
        live = [(row, k) for row, k in placed if self._address(node_ids[row]) is not None]
        if len(live) < len(placed):
            out.refused += sum(k for _, k in placed) - sum(k for _, k in live)
        return live

    def _app_current(self, w) -> bool:
        record = self.table.by_id(w.app_id)
        if record is None or record.state in TERMINAL:
            return False
        if w.is_am:
            return record.am_attempt + 1 == w.attempt
        if w.move_ids:   # each still held where it was asked to move from, not already moving
            mine, origin = self.table.allocations.get(w.app_id, {}), dict(w.ask.origins)
            return record.am_attempt == w.attempt and all(
                i in mine and mine[i].node_id == origin[i] and not mine[i].from_node_id for i in w.move_ids)
        return record.am_attempt == w.attempt and record.next_instance <= w.first_instance

    def _nodes_fit(self, w, nodes: list, free: dict, stale: bool) -> bool:
        """Every node is still live and, if anything changed since the snapshot, still has
        room; the room is taken only when the whole request fits (all or none per request)."""
        for node_id, _ in nodes:
            if self._address(node_id) is None:
                return False
        if not stale:
            return True
        shape = as_vector(w.shape)
        need = {}
        for node_id, k in nodes:
            need[node_id] = need.get(node_id, 0) + k * shape
        for node_id, amount in need.items():
            if node_id not in free:
                info = self.node_view.node(node_id)
                free[node_id] = as_vector(info.capacity) - self.table.index.node_allocated.get(node_id, 0)
            if np.any(free[node_id] < amount):
                return False
        for node_id, amount in need.items():
            free[node_id] = free[node_id] - amount
        return True

    # ---- what is written ----

    def _groups(self, accepted: dict, wanted: dict, pending: dict) -> list:
        """One group per app granted something, and one per waiting app whose reason changed."""
        waiting = {}                         # app_id -> its first pending request's message
        for rid, why in pending.items():
            w = wanted.get(rid)
            if w is not None:
                waiting.setdefault(w.app_id, _waiting(w, why))
        groups = [self._app_group(self.table.by_id(app_id), requests, waiting.get(app_id))
                  for app_id, requests in accepted.items()]
        for app_id, message in waiting.items():
            record = self.table.by_id(app_id)
            if app_id not in accepted and record is not None and record.state not in TERMINAL \
                    and record.message != message:
                groups.append((record, [], {"message": message}, None))
        return groups

    def _app_group(self, record, requests: list, waiting) -> tuple:
        """(record, allocations, record changes, their common request as a vector)."""
        allocations, changes = [], {}
        for w, nodes, gpus in requests:
            if w.is_am:                      # an AM is given no GPUs
                allocations.append(self._allocation(record, w, nodes[0][0], "am"))
                changes.update(am_attempt=w.attempt, message=w.ask.why)
                continue
            if w.move_ids:
                allocations += self._moved(w, nodes, gpus)
                continue
            instance = w.first_instance
            base = self._allocation(record, w, nodes[0][0], "")   # built once: nodes differ in two fields
            for node_id, k in nodes:
                template = _copy(base, node_id=node_id, node_address=self._address(node_id))
                for _ in range(k):
                    alloc = types_pb2.Allocation()
                    alloc.CopyFrom(template)
                    alloc.instance_id = str(instance)
                    if gpus:
                        alloc.gpu_indices.extend(gpus[instance - w.first_instance])
                    allocations.append(alloc)
                    instance += 1
            changes["next_instance"] = max(changes.get("next_instance", 0), instance)
            changes["message"] = waiting or ("" if record.message.startswith(WAITING) else record.message)
        shapes = {w.shape.SerializeToString() for w, *_ in requests}
        # one common request (the usual case) lets the index add them per node; an AM placed
        # with instances in the same cycle differs in shape, so they are added one by one
        common = len(shapes) == 1 and not any(w.move_ids for w, *_ in requests)
        return record, allocations, changes, as_vector(requests[0][0].shape) if common else None

    def _moved(self, w, nodes: list, gpus: list) -> list:
        """The moved instances' new allocations: the old ones on a new node, one move more;
        a drain's keeps the old place (held until the AM has stopped the old copy)."""
        mine = self.table.allocations[w.app_id]
        targets = [node_id for node_id, k in nodes for _ in range(k)]
        out = []
        for j, (instance_id, node_id) in enumerate(zip(w.move_ids, targets)):
            old = mine[instance_id]
            alloc = types_pb2.Allocation()
            alloc.CopyFrom(old)
            alloc.node_id, alloc.node_address = node_id, self._address(node_id)
            alloc.migrations = old.migrations + 1
            # the new copy's counter is above any container this instance ever had
            alloc.restart_from = max(old.restart_from, highest_counter(self.node_view, w.app_id, instance_id) + 1)
            alloc.from_node_id = old.node_id if w.ask.keep_old else ""
            alloc.from_node_address = old.node_address if w.ask.keep_old else ""
            del alloc.gpu_indices[:]
            if gpus:
                alloc.gpu_indices.extend(gpus[j])
            out.append(alloc)
        return out

    def _allocation(self, record, w, node_id: str, instance_id: str) -> types_pb2.Allocation:
        return types_pb2.Allocation(app_id=record.app_id, instance_id=instance_id, node_id=node_id,
                                    node_address=self._address(node_id), request=w.shape, is_am=w.is_am,
                                    attempt=w.attempt if w.is_am else 0,
                                    version=record.version or 1)   # new instances run the current spec

    def _address(self, node_id: str):
        """The live node's address (None: it left), looked up once per apply."""
        if node_id not in self._addresses:
            node = self.node_view.node(node_id)
            self._addresses[node_id] = node.address if node is not None else None
        return self._addresses[node_id]


def _copy(message, **fields):
    out = type(message)()
    out.CopyFrom(message)
    for name, value in fields.items():
        setattr(out, name, value)
    return out


def _by_request(plan) -> dict:
    """request_id -> [(node row, instances)] from the plan's chunks, without expanding them."""
    out: dict = {}
    for request_id, _app, _first, rows, n in plan.chunks:
        out.setdefault(request_id, []).extend(zip(rows.tolist(), n.tolist()))
    return out


def _instance_gpus(request_id: str, placed: list, gpu_sets: dict) -> list:
    """The GPU indices of each instance of a request, in instance order (the order its
    (row, instances) pairs are expanded in); [] when none of it got GPUs."""
    if not gpu_sets:
        return []
    taken: dict = {}
    out = []
    for row, k in placed:
        sets = gpu_sets.get((request_id, row), ())
        start = taken.get(row, 0)
        for j in range(start, start + k):
            out.append(tuple(sets[j]) if j < len(sets) else ())
        taken[row] = start + k
    return out if any(out) else []


def _waiting(w, why: str) -> str:
    what = "a node for the ApplicationMaster" if w.is_am else "capacity"
    return f"{WAITING}{what}: {why}"


