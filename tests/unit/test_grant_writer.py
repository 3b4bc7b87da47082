"""The leader's grant path without etcd: AppTable.grant_batch over scheduling/writer.py's
pipeline, with a fake transport that records each fenced transaction and answers it."""
import pytest
from etcd3 import etcdrpc

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master.app_table import AppTable
from gaia_master.scheduling import writer
from gaia_master.scheduling.index import as_vector
from gaia_master.store import NotLeader

SHAPE = types_pb2.Resources(cpu_millis=500, memory_bytes=1 << 30)


class Answered:
    def __init__(self, response):
        self.response = response

    def result(self):
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


class FakeTransport:
    """Answers in order; `refuse_from`: the n-th transaction on (1-based) fails its compare."""

    def __init__(self, refuse_from=None):
        self.sent = []
        self.refuse_from = refuse_from
        self.in_flight = 0
        self.most_in_flight = 0

    def send(self, request):
        self.sent.append(request)
        refused = self.refuse_from is not None and len(self.sent) >= self.refuse_from
        return Answered(etcdrpc.TxnResponse(succeeded=not refused))

    def resend(self, request):
        raise AssertionError("nothing failed: no resend")


class FakeElection:
    key = "/gaia/c1/masters/election/00000000000000aa"
    epoch = 7

    def is_leader(self):
        return True


class FakeStore:
    def __init__(self, transport):
        self.election = FakeElection()
        self.transport = transport


def table(transport):
    t = AppTable(Keys("c1"), FakeStore(transport))
    for name in ("a", "b"):
        record = types_pb2.AppRecord(app_id=f"{name}-1", spec=types_pb2.AppSpec(name=name, pool="p"))
        t.apps[name], t.names[record.app_id] = record, name
    return t


def grants(app_id, first, n):
    return [types_pb2.Allocation(app_id=app_id, instance_id=str(i), node_id=f"n{i % 3}", request=SHAPE)
            for i in range(first, first + n)]


def group(t, name, n, first=0):
    """What the applier hands over for one app: its record, grants, record changes, shape."""
    record = t.apps[name]
    return record, grants(record.app_id, first, n), {"next_instance": first + n}, as_vector(SHAPE)


def keys(request):
    return [op.request_put.key.decode() for op in request.success]


def test_every_transaction_is_fenced_and_values_parse_back():
    transport = FakeTransport()
    t = table(transport)
    t.grant_batch([group(t, "a", 3)], max_ops=120)
    (request,) = transport.sent
    (compare,) = request.compare
    assert compare.key.decode() == FakeElection.key and compare.create_revision == 7
    assert compare.target == etcdrpc.Compare.CREATE and compare.result == etcdrpc.Compare.EQUAL
    assert keys(request) == ["/gaia/c1/apps/a"] + [f"/gaia/c1/allocations/a-1/{i}" for i in range(3)]
    record = types_pb2.AppRecord.FromString(request.success[0].request_put.value)
    assert record.next_instance == 3 and record.epoch == 7
    alloc = types_pb2.Allocation.FromString(request.success[2].request_put.value)
    assert alloc.instance_id == "1" and alloc.node_id == "n1" and alloc.epoch == 7


def test_small_groups_share_a_transaction_and_a_large_one_is_split():
    transport = FakeTransport()
    t = table(transport)
    written = t.grant_batch([group(t, "b", 2), group(t, "a", 25)], max_ops=10)
    sizes = [len(r.success) for r in transport.sent]
    assert sizes == [3, 10, 10, 6]          # b fits; a (26 puts) opens a transaction of its own
    assert keys(transport.sent[1])[0] == "/gaia/c1/apps/a"
    instances = [k.rsplit("/", 1)[1] for r in transport.sent[1:] for k in keys(r) if "/allocations/" in k]
    assert instances == [str(i) for i in range(25)]
    assert len(t.allocations["a-1"]) == 25 and len(t.allocations["b-1"]) == 2
    assert t.apps["a"].next_instance == 25 and {r.app_id for r in written} == {"a-1", "b-1"}
    assert t.index.app_held["a-1"] == 25


def test_allocations_alone_leave_the_record_to_a_later_group():
    transport = FakeTransport()
    t = table(transport)
    record, allocations, _, vector = group(t, "a", 5)
    t.grant_batch([(record, allocations, None, vector)], max_ops=120)
    assert keys(transport.sent[0]) == [f"/gaia/c1/allocations/a-1/{i}" for i in range(5)]
    assert len(t.allocations["a-1"]) == 5 and t.index.app_held["a-1"] == 5
    assert t.apps["a"].next_instance == 0          # memory keeps the record etcd holds


def test_load_moves_next_instance_past_allocations_whose_record_was_lost():
    """Transactions in flight may commit in any order and a leader may die between them: a
    new leader must not grant an instance id that is already allocated."""
    record = types_pb2.AppRecord(app_id="a-1", next_instance=3, spec=types_pb2.AppSpec(name="a", pool="p"))
    stored = [types_pb2.Allocation(app_id="a-1", instance_id=i, node_id="n0", request=SHAPE)
              for i in ("am", "0", "1", "7")]

    class Etcd:
        def get_prefix(self, prefix):
            values = [record] if "/apps/" in prefix else stored
            return [(v.SerializeToString(), None) for v in values]

    t = AppTable(Keys("c1"), FakeStore(FakeTransport()))
    t.load(Etcd())
    assert t.apps["a"].next_instance == 8
    record.next_instance = 12                      # ahead of its allocations: kept
    t.load(Etcd())
    assert t.apps["a"].next_instance == 12


def test_a_refused_compare_is_not_leader_and_only_commits_are_remembered():
    transport = FakeTransport(refuse_from=2)
    t = table(transport)
    with pytest.raises(NotLeader):
        t.grant_batch([group(t, "b", 2), group(t, "a", 25)], max_ops=10, depth=1)
    assert len(t.allocations["b-1"]) == 2          # the first transaction committed
    assert "a-1" not in t.allocations and t.apps["a"].next_instance == 0


def test_transient_failure_in_flight_is_sent_again():
    import grpc

    class Unavailable(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

    class Flaky(FakeTransport):
        resent = 0

        def send(self, request):
            self.sent.append(request)
            return Answered(Unavailable())

        def resend(self, request):
            self.resent += 1
            return etcdrpc.TxnResponse(succeeded=True)

    transport = Flaky()
    t = table(transport)
    t.grant_batch([group(t, "a", 3)], max_ops=120)
    assert transport.resent == 1 and len(t.allocations["a-1"]) == 3


def test_pipeline_keeps_at_most_depth_unanswered():
    class Counting(FakeTransport):
        def send(self, request):
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            outer = self

            class Done(Answered):
                def result(self):
                    outer.in_flight -= 1
                    return super().result()
            self.sent.append(request)
            return Done(etcdrpc.TxnResponse(succeeded=True))

    transport = Counting()
    pipeline = writer.Pipeline(transport, FakeElection(), depth=3)
    for _ in range(10):
        txn = writer.Txn(etcdrpc.Compare())
        txn.put("/k", b"v")
        pipeline.send(txn)
    pipeline.flush()
    assert transport.most_in_flight == 3 and transport.in_flight == 0
