"""The leader's grant writes: fenced etcd transactions built in place, several in flight.

FencedStore.commit goes through the etcd3 client, which builds every op as a Python object,
converts it into a RequestOp, parses every answer op back (about 10 us a put on the 2-core
development machine) and waits for each answer before the next write. A cycle's grants (tens
of thousands of puts) are written here instead:
  - each TxnRequest is built field by field from values serialised once (about 2 us a put);
  - up to `depth` transactions are in flight at once (gRPC futures on the client's channel),
    so building the next one, etcd's work on the last ones and the round trips overlap;
  - an answer is only checked for `succeeded`.
Fencing is the store's: every transaction compares the leader's election key with the create
revision it was elected with, so a deposed leader's writes all fail, in flight or not.
Commits are taken in the order sent (memory follows them in that order); etcd may apply the
transactions in flight in another order, so the caller never has one key in two of them.
"""
from __future__ import annotations

import collections
import logging

import etcd3
import grpc
from etcd3 import etcdrpc

from gaia_common import faults
from gaia_common.etcd import TRANSIENT, retry
from gaia_master.store import MAX_OPS_PER_TXN, NotLeader

log = logging.getLogger(__name__)
DEPTH = 4                  # transactions in flight; see gaia_cli/bench/scheduler.py's ceiling
_TRANSIENT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL)


def fence(store) -> etcdrpc.Compare:
    """The compare FencedStore.commit makes: our election key's create revision is our epoch."""
    election = store.election
    return etcdrpc.Compare(result=etcdrpc.Compare.EQUAL, target=etcdrpc.Compare.CREATE,
                           key=election.key.encode(), create_revision=election.epoch)


class Txn:
    """One fenced transaction, built in place."""

    __slots__ = ("request", "size", "_add")

    def __init__(self, compare: etcdrpc.Compare):
        self.request = etcdrpc.TxnRequest()
        self.request.compare.append(compare)
        self.size = 0                    # ops so far
        self._add = self.request.success.add

    def put(self, key: str, value: bytes) -> None:
        op = self._add().request_put
        op.key = key.encode()
        op.value = value
        self.size += 1


class EtcdTransport:
    """Sends TxnRequests on the etcd3 client's current channel; a failed one is sent again
    through the client's own error handling, which moves to the next endpoint like any
    FencedStore write."""

    def __init__(self, etcd):
        self.etcd = etcd

    def send(self, request):
        e = self.etcd
        return e.kvstub.Txn.future(request, e.timeout, credentials=e.call_credentials, metadata=e.metadata)

    def resend(self, request):
        return retry(lambda: _txn(self.etcd, request))


# the client's own handler: marks the endpoint failed, raises etcd3's (TRANSIENT) exceptions
@etcd3.MultiEndpointEtcd3Client._handle_errors
def _txn(etcd, request):
    return etcd.kvstub.Txn(request, etcd.timeout, credentials=etcd.call_credentials, metadata=etcd.metadata)


def transport(store):
    """The store's own transport when it has one (test fakes), else its etcd client's."""
    return getattr(store, "transport", None) or EtcdTransport(store.etcd)


class Pipeline:
    """Sends transactions, at most `depth` unanswered; `on_commit` runs (in the sending
    thread, in order) once its transaction committed. Raises NotLeader when etcd refused the
    fence; any other failure is raised after the transactions in flight have been answered
    (whatever they committed is remembered: memory never lags etcd for a known commit)."""

    def __init__(self, transport, election, depth: int = DEPTH):
        self.transport = transport
        self.election = election
        self.depth = max(1, depth)
        self._flight = collections.deque()       # (request, future, on_commit)
        self.failure = None
        self.sent = 0

    def send(self, txn: Txn, on_commit=None) -> None:
        if txn.size > MAX_OPS_PER_TXN:
            raise ValueError(f"{txn.size} ops in one transaction; split the batch")
        self._drain(self.depth - 1)
        if self.failure is not None:
            raise self.failure
        if not self.election.is_leader():
            raise NotLeader("not the leader")
        faults.point("leader.write")   # tests pause here: mid write path, lease already checked
        try:
            future = self.transport.send(txn.request)
        except TRANSIENT:
            future = None                # no channel now: _finish sends it again, failing over
        self._flight.append((txn.request, future, on_commit))
        self.sent += 1

    def flush(self) -> None:
        """Wait for every transaction sent; raise the first failure."""
        self._drain(0)
        if self.failure is not None:
            raise self.failure

    def _drain(self, keep: int) -> None:
        while len(self._flight) > keep:
            request, future, on_commit = self._flight.popleft()
            if self._finish(request, future) and on_commit is not None:
                on_commit()

    def _finish(self, request, future) -> bool:
        """Whether it committed; a failure is kept for the caller."""
        try:
            response = self._answer(request, future)
        except Exception as e:   # NotLeader, or an unknown outcome: the caller treats it as not written
            log.error("fenced write by epoch %d failed: %s: %s", self.election.epoch, type(e).__name__, e)
            self.failure = self.failure or e
            return False
        if not response.succeeded:
            log.error("fenced write refused: epoch %d no longer leads", self.election.epoch)
            self.failure = self.failure or NotLeader(f"fenced write refused for epoch {self.election.epoch}")
            return False
        return True

    def _answer(self, request, future):
        if future is not None:
            try:
                return future.result()
            except grpc.RpcError as e:
                if e.code() not in _TRANSIENT_CODES:
                    raise
        # Sending it again is safe: the compare still fences it, and the puts write the same values.
        return self.transport.resend(request)
