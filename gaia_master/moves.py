"""Moving instances off their nodes: lost nodes, drained nodes.

The AM decides what moves (it sees `node_lost` / `node_draining` on its instances) and asks
here; the leader re-places the instances through Sfair under the same instance ids. A drain's
move keeps the old place held (`from_node_id`) until the AM has started the new copy and
stopped the old one, so a drained instance runs somewhere all along. `migrate_times` bounds
how often one instance is moved; moves are the platform's doing and charge no retry.
"""
import logging
import threading
import time

from gaia_common import spec as spec_mod
from gaia_common.pb import types_pb2
from gaia_master.app_table import Conflict

log = logging.getLogger(__name__)
MAX_IDS = 10_000


class Drains:
    """The drained nodes, from etcd; only the leader writes them (fenced)."""

    def __init__(self, keys, store):
        self.keys = keys
        self.store = store
        self.lock = threading.Lock()
        self.nodes: frozenset = frozenset()

    def load(self, etcd):
        prefix = self.keys.drains
        with self.lock:
            self.nodes = frozenset(meta.key.decode()[len(prefix):] for _, meta in etcd.get_prefix(prefix))

    def mark(self, node_id: str, undo: bool):
        with self.lock:
            key = self.keys.drain(node_id)
            if undo:
                self.store.commit([self.store.delete(key)])
                self.nodes = self.nodes - {node_id}
            else:
                value = types_pb2.NodeEvent(at=time.time(), kind="drain", message="drained by operator")
                self.store.commit([self.store.put(key, value)])
                self.nodes = self.nodes | {node_id}


def ask_moves(master, record, request) -> list:
    """Validate a MoveRequest and queue it for the scheduler; returns the ids it will move.
    An instance moved migrate_times times already is refused with the reason. A drain move
    whose new node was lost before it finished goes back to the old node (still running the
    old copy) or, when both are gone, becomes a plain move."""
    ids = _unique_ids(request.instance_ids, record)
    with master.table.lock:
        mine = master.table.app_allocations(record.app_id)
        unknown = [i for i in ids if i not in mine or i == "am"]
        if unknown:
            raise spec_mod.SpecError("instance_ids", f"no instance {unknown[0]!r} in {record.spec.name!r}")
        _undo_broken_moves(master, record, [mine[i] for i in ids if mine[i].from_node_id])
        mine = master.table.app_allocations(record.app_id)
    used_up = [i for i in ids if mine[i].migrations >= record.spec.migrate_times]
    if used_up:
        raise Conflict("terminal", f"instance {used_up[0]} was moved {mine[used_up[0]].migrations} times "
                                   f"(migrate_times {record.spec.migrate_times})")
    origins = [(i, mine[i].node_id) for i in ids if not mine[i].from_node_id]
    if origins:
        master.book.ask_moves(record.app_id, record.am_attempt, origins, request.keep_old,
                              request.cause or "moved", record.spec.resources.request)
        master.scheduling.wake()
    return [i for i, _ in origins]


def _undo_broken_moves(master, record, moving: list) -> None:
    """Moving instances whose new node is gone: back to the old node if it lives, else the
    old place is forgotten too (the instance is then moved like any on a lost node)."""
    live = master.node_view.node
    changed = []
    for alloc in moving:
        if live(alloc.node_id) is not None:
            continue
        new = types_pb2.Allocation()
        new.CopyFrom(alloc)
        if live(alloc.from_node_id) is not None:
            new.node_id, new.node_address = alloc.from_node_id, alloc.from_node_address
        new.from_node_id = new.from_node_address = ""
        changed.append(new)
    if changed:
        master.table.replace_allocations(record, changed)


def finish_moves(table, record, instance_ids) -> list:
    """The old copies are stopped: release the old places. Returns the ids finished. Read
    and written under the table's lock: a stop or a charge meanwhile is kept."""
    ids = _unique_ids(instance_ids, record)
    with table.lock:
        mine = table.app_allocations(record.app_id)
        done = []
        for i in ids:
            alloc = mine.get(i)
            if alloc is None:
                raise spec_mod.SpecError("instance_ids", f"no instance {i!r} in {record.spec.name!r}")
            if alloc.from_node_id:
                new = types_pb2.Allocation()
                new.CopyFrom(alloc)
                new.from_node_id = new.from_node_address = ""
                done.append(new)
        if done:
            table.replace_allocations(record, done)
    return [a.instance_id for a in done]


def _unique_ids(ids, record) -> list:
    ids = list(ids)
    if not ids:
        raise spec_mod.SpecError("instance_ids", "name at least one instance")
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise spec_mod.SpecError("instance_ids", f"instance {twice!r} is named twice")
    if len(ids) > MAX_IDS:
        raise spec_mod.SpecError("instance_ids", f"at most {MAX_IDS} at once")
    return ids
