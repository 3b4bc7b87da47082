"""The leader's writes to etcd: every one a transaction fenced by the election key.

A write commits only if our election key still has the create revision we were elected
with. A deposed leader that wakes up late (paused, partitioned) therefore cannot write: its
key was deleted with its lease, and even a new key of ours would have a newer revision.
"""
import logging

from etcd3 import utils as etcd_utils

from gaia_common import faults
from gaia_common.etcd import retry

log = logging.getLogger(__name__)
# etcd's default --max-txn-ops is 128; one slot is the fencing compare's.
MAX_OPS_PER_TXN = 120


class NotLeader(Exception):
    """We are not (or no longer) the leader: the caller must stop acting."""


class FencedStore:
    def __init__(self, etcd, election):
        self.etcd = etcd
        self.election = election

    def commit(self, ops: list, extra_compare: list = ()):
        """Apply `ops` (etcd3 transaction ops) atomically, iff we still lead. Raises NotLeader."""
        if not self.election.is_leader():
            raise NotLeader("not the leader")
        if len(ops) > MAX_OPS_PER_TXN:
            raise ValueError(f"{len(ops)} ops in one transaction; split the batch")
        key, epoch = self.election.key, self.election.epoch
        faults.point("leader.write")  # tests pause here: mid write path, lease already checked
        tx = self.etcd.transactions
        try:
            # Repeating is safe: the compare still fences it, and the ops put the same values.
            ok, _ = retry(lambda: self.etcd.transaction(compare=[tx.create(key) == epoch, *extra_compare],
                                                        success=ops, failure=[]))
        except Exception as e:  # unknown outcome; the caller treats it as not written
            log.error("fenced write by epoch %d failed: %s: %s", epoch, type(e).__name__, e)
            raise
        if not ok:
            log.error("fenced write refused: epoch %d no longer leads", epoch)
            raise NotLeader(f"fenced write refused for epoch {epoch}")

    def commit_batches(self, ops: list):
        """Commit a long list in transactions of at most MAX_OPS_PER_TXN ops each."""
        for i in range(0, len(ops), MAX_OPS_PER_TXN):
            self.commit(ops[i:i + MAX_OPS_PER_TXN])

    def put(self, key: str, message, lease=None):
        return self.etcd.transactions.put(key, message.SerializeToString(), lease=lease)

    def delete(self, key: str):
        return self.etcd.transactions.delete(key)

    def delete_range(self, start: str, end: str):
        """Every key in [start, end): one op however many keys (trimming an app's events)."""
        return self.etcd.transactions.delete(start, range_end=end)

    def delete_prefix(self, prefix: str):
        return self.delete_range(prefix, etcd_utils.prefix_range_end(prefix.encode()).decode())
