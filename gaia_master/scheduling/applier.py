"""Turning a plan into durable grants: checked against the table as it is now, then written in
batches of fenced transactions.

A plan is computed outside the table's lock, so by the time it lands an app may have been
killed, its AM replaced, or a node may have left or filled up (an AM released and re-asked).
Like Nomad's plan applier, each request's grants are re-checked and the ones that no longer
hold are refused (they stay pending for the next cycle); a refused gang member refuses the
whole gang. The rest is written while Sfair still decides (CycleApply): plain grants in
parts, then gangs, AMs and moves with their app's record, each record once, last.
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


class CycleApply:
    """One cycle's apply, in parts: Sfair hands over what it placed so far while it goes on
    deciding (so etcd writes while Python decides), and the rest of the plan last.

    A part writes plain requests' allocations alone; each app's record (next_instance, its
    message) is written once, by the last part, with whatever was kept for it (AMs, gangs and
    moves, granted whole). So no key is in two transactions in flight, and nothing waits for
    an earlier part's answer. The table's lock is taken at the first part and kept until every
    write is answered: grants in flight must not meet another writer of the same app."""

    def __init__(self, wanted: dict, version: int):
        self.wanted, self.version = wanted, version
        self.out = Applied()
        self.locked = False               # the table's lock, held from the first part on
        self.writer = None                # the table's GrantStream
        self.stale = False                # the table changed between snapshot and first part
        self.free: dict = {}              # node_id -> room left (stale only), across parts
        self.next_of: dict = {}           # request_id -> next instance id to grant
        self.changes: dict = {}           # app_id -> record changes kept for the last part
        self.gpus_taken: dict = {}        # (request_id, row) -> GPU sets used so far
        self.granted_ams: set = set()     # app ids whose AM was granted
        self.streamed_apps: set = set()   # app ids with allocations sent ahead of their record
        self.deferred: list = []          # chunks kept for the last part (AMs, gangs, moves)


class PlanApplier:
    def __init__(self, table, node_view, book, events=None):
        self.table = table
        self.node_view = node_view
        self.book = book
        self.events = events              # the master's event log: evictions are recorded there
        self._addresses: dict = {}

    def part(self, c: CycleApply, chunks: list, node_ids, gpu_sets: dict) -> None:
        """Write plain instance requests' grants placed so far, left in flight; AMs, gangs and
        moves wait for the last part (they are granted whole, with their record)."""
        plain = []
        for chunk in chunks:
            w = c.wanted.get(chunk[0])
            plain_request = w is not None and not (w.is_am or w.gang or w.move_ids)
            (plain if plain_request else c.deferred).append(chunk)
        if plain:
            self._begin(c)
            accepted = self._recheck(c, _by_request(plain), node_ids, gpu_sets or {})
            c.streamed_apps.update(accepted)
            self._send(c, [self._app_group(c, app_id, requests, last=False)
                           for app_id, requests in accepted.items()])

    def finish(self, c: CycleApply, plan) -> Applied:
        """The rest of the plan (evictions first) and every app's record, then wait for
        every write."""
        done = False
        try:
            self._begin(c)
            c.out.evicted += self._evict(plan.evictions or [])
            chunks = c.deferred + plan.chunks[getattr(plan, "streamed", 0):]
            accepted = self._recheck(c, _by_request(chunks), plan.node_ids, getattr(plan, "gpu_sets", None) or {})
            self._send(c, self._last_groups(c, accepted, plan.pending))
            done = True
        finally:
            self.close(c, failed=not done)
        for w in c.wanted.values():
            if w.is_am and w.app_id in c.granted_ams:
                self.book.drop_am(w.app_id, w.attempt)
        return c.out

    def close(self, c: CycleApply, failed: bool = False) -> None:
        """Wait for the writes in flight (raising the first failure), release the lock. After a
        failure, the records of apps whose allocations went ahead may never be written: memory
        then moves their next_instance past what committed, as a new leader's load would."""
        if not c.locked:
            return
        try:
            c.writer.flush()
        except BaseException:
            failed = True
            raise
        finally:
            if failed:
                for app_id in c.streamed_apps:
                    self.table.past_allocations(app_id)
            c.writer, c.locked = None, False
            self.table.lock.release()

    def _begin(self, c: CycleApply) -> None:
        if not c.locked:
            self.table.lock.acquire()
            c.locked = True
            c.stale = self.table.index.version != c.version
            c.writer = self.table.grant_stream()
        self._addresses = {}              # looked up once per part: a node may leave meanwhile

    def _send(self, c: CycleApply, groups: list) -> None:
        if groups:
            c.writer.send(groups, MAX_OPS_PER_TXN)
        c.out.granted += sum(len(g[1]) for g in groups)
        c.out.messages += sum(1 for g in groups if not g[1])

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

    def _recheck(self, c: CycleApply, by_request: dict, node_ids, gpu_sets: dict) -> dict:
        """app_id -> [(request_id, Wanted, [(node_id, instances)], [GPU indices per instance])]
        of the requests that still hold."""
        accepted: dict = {}
        for rid, placed in by_request.items():
            w = c.wanted[rid]
            if not (w.gang or w.is_am or w.move_ids):
                placed = self._on_live_nodes(placed, node_ids, c.out)
                if not placed:
                    continue
            nodes = [(node_ids[row], int(k)) for row, k in placed]
            first = c.next_of.get(rid, w.first_instance)
            if not self._app_current(w, first) or not self._nodes_fit(w, nodes, c.free, c.stale):
                c.out.refused += sum(k for _, k in nodes)
                continue
            gpus = _instance_gpus(rid, placed, gpu_sets, c.gpus_taken)
            accepted.setdefault(w.app_id, []).append((rid, w, nodes, gpus))
        return accepted

    def _on_live_nodes(self, placed: list, node_ids, out: Applied) -> list:
        """A plain request keeps its grants on the nodes still live; those on nodes that left
        meanwhile are refused alone (a gang, an AM or a move is refused whole, below)."""
        live = [(row, k) for row, k in placed if self._address(node_ids[row]) is not None]
        if len(live) < len(placed):
            out.refused += sum(k for _, k in placed) - sum(k for _, k in live)
        return live

    def _app_current(self, w, first: int) -> bool:
        record = self.table.by_id(w.app_id)
        if record is None or record.state in TERMINAL:
            return False
        if w.is_am:
            return record.am_attempt + 1 == w.attempt
        if w.move_ids:   # each still held where it was asked to move from, not already moving
            mine, origin = self.table.allocations.get(w.app_id, {}), dict(w.ask.origins)
            return record.am_attempt == w.attempt and all(
                i in mine and mine[i].node_id == origin[i] and not mine[i].from_node_id for i in w.move_ids)
        # `first`: where this part of the request starts (its earlier parts are ours)
        return record.am_attempt == w.attempt and record.next_instance <= first

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

    def _last_groups(self, c: CycleApply, accepted: dict, pending: dict) -> list:
        """One group per app granted something in this cycle (its record with it), and one per
        waiting app whose reason changed."""
        waiting = {}                         # app_id -> its first pending request's message
        for rid, why in pending.items():
            w = c.wanted.get(rid)
            if w is not None:
                waiting.setdefault(w.app_id, _waiting(w, why))
        granted = dict.fromkeys([*c.changes, *accepted])
        groups = [self._app_group(c, app_id, accepted.get(app_id, []), last=True, waiting=waiting.get(app_id))
                  for app_id in granted]
        for app_id, message in waiting.items():
            record = self.table.by_id(app_id)
            if app_id not in granted and record is not None \
                    and record.state not in TERMINAL and record.message != message:
                groups.append((record, [], {"message": message}, None))
        return groups

    def _app_group(self, c: CycleApply, app_id: str, requests: list, last: bool, waiting=None) -> tuple:
        """(record, allocations, record changes or None before the last part, their common
        request as a vector). Changes of earlier parts are kept in `c` until the last."""
        record = self.table.by_id(app_id)
        allocations, changes = [], c.changes.setdefault(app_id, {})
        for rid, w, nodes, gpus in requests:
            if w.is_am:                      # an AM is given no GPUs
                allocations.append(self._allocation(record, w, nodes[0][0], "am"))
                changes.update(am_attempt=w.attempt, am_why=w.ask.why)
                c.granted_ams.add(app_id)
            elif w.move_ids:
                allocations += self._moved(w, nodes, gpus)
            else:
                allocations += self._instances(c, record, rid, w, nodes, gpus)
                changes["next_instance"] = max(changes.get("next_instance", 0), c.next_of[rid])
        shapes = {w.shape.SerializeToString() for _, w, *_ in requests}
        # one common request (the usual case) lets the index add them per node; an AM placed
        # with instances in the same cycle differs in shape, so they are added one by one
        common = len(shapes) == 1 and not any(w.move_ids for _, w, *_ in requests)
        vector = as_vector(requests[0][1].shape) if common else None
        if not last:
            return record, allocations, None, vector
        return record, allocations, _record_changes(record, c.changes.pop(app_id), waiting), vector

    def _instances(self, c: CycleApply, record, rid: str, w, nodes: list, gpus: list) -> list:
        """New allocations of a plain or gang request, numbered on from its earlier parts.
        (Each is a copy of one base with three fields set: the cheapest way to a message.)"""
        first = instance = c.next_of.get(rid, w.first_instance)
        base = self._allocation(record, w, "", "")
        out = []
        for node_id, k in nodes:
            address = self._address(node_id)
            for _ in range(k):
                alloc = types_pb2.Allocation()
                alloc.CopyFrom(base)
                alloc.node_id, alloc.node_address, alloc.instance_id = node_id, address, str(instance)
                if gpus:
                    alloc.gpu_indices.extend(gpus[instance - first])
                out.append(alloc)
                instance += 1
        c.next_of[rid] = instance
        return out

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
                                    node_address=self._address(node_id) if node_id else "",
                                    request=w.shape, is_am=w.is_am,
                                    attempt=w.attempt if w.is_am else 0,
                                    version=record.version or 1)   # new instances run the current spec

    def _address(self, node_id: str):
        """The live node's address (None: it left), looked up once per apply."""
        if node_id not in self._addresses:
            node = self.node_view.node(node_id)
            self._addresses[node_id] = node.address if node is not None else None
        return self._addresses[node_id]


def _by_request(chunks: list) -> dict:
    """request_id -> [(node row, instances)] from a plan's chunks, without expanding them."""
    out: dict = {}
    for request_id, _app, _first, rows, n in chunks:
        out.setdefault(request_id, []).extend(zip(rows.tolist(), n.tolist()))
    return out


def _instance_gpus(request_id: str, placed: list, gpu_sets: dict, taken: dict = None) -> list:
    """The GPU indices of each instance of a request, in instance order (the order its
    (row, instances) pairs are expanded in); [] when none of it got GPUs. `taken`: (request,
    row) -> sets used by the request's earlier parts, advanced here."""
    if not gpu_sets:
        return []
    taken = {} if taken is None else taken
    out = []
    for row, k in placed:
        sets = gpu_sets.get((request_id, row), ())
        start = taken.get((request_id, row), 0)
        for j in range(start, start + k):
            out.append(tuple(sets[j]) if j < len(sets) else ())
        taken[(request_id, row)] = start + k
    return out if any(out) else []


def _record_changes(record, kept: dict, waiting) -> dict:
    """An app's record changes for the cycle: a new AM's attempt and reason, next_instance,
    and its message (why it still waits, or the scheduler's old reason cleared)."""
    changes = {k: v for k, v in kept.items() if k != "am_why"}
    if "next_instance" in kept:
        changes["message"] = waiting or ("" if record.message.startswith(WAITING) else record.message)
    if "am_why" in kept:
        changes["message"] = kept["am_why"]
    return changes


def _waiting(w, why: str) -> str:
    what = "a node for the ApplicationMaster" if w.is_am else "capacity"
    return f"{WAITING}{what}: {why}"


