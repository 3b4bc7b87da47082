"""The snapshot keeps each instance ask's requests from cycle to cycle (snapshot.RequestCache)
while nothing they are made of changed, and makes them afresh as soon as something did."""
import types

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_master.app_table import AppTable
from gaia_master.scheduling import snapshot
from gaia_master.scheduling.requests import RequestBook
from tests.unit.test_grant_writer import FakeStore, FakeTransport

SHAPE = types_pb2.Resources(cpu_millis=1000, memory_bytes=1 << 30)


class NodeView:
    def __init__(self, count):
        self.node_version = 1
        self.infos = [types_pb2.NodeInfo(node_id=f"n{i}", capacity=types_pb2.Resources(cpu_millis=8000),
                                         drivers=["process"], labels={"zone": f"z{i % 2}"})
                      for i in range(count)]

    def node_list(self):
        return list(self.infos)


def world(*names):
    t = AppTable(Keys("c1"), FakeStore(FakeTransport()))
    book = RequestBook()
    for name in names:
        spec = types_pb2.AppSpec(name=name, pool="p", priority=1, instances=3, driver="process",
                                 spread_by="zone")
        spec.resources.request.CopyFrom(SHAPE)
        record = types_pb2.AppRecord(app_id=f"{name}-1", am_attempt=1, state=types_pb2.APP_STATE_RUNNING,
                                     spec=spec)
        t.apps[name], t.names[record.app_id] = record, name
        book.ask_instances(record.app_id, 1, 3, SHAPE, gang=False)
    return t, book, NodeView(4), snapshot.NodeArrays(), snapshot.RequestCache()


def build(t, book, view, arrays, cache):
    snap, wanted, _ = snapshot.build(t, view, [], book, arrays, 0.0, requests=cache)
    return {r.request_id: r for r in snap.pending}, wanted


def test_unchanged_asks_reuse_their_requests_and_match_a_fresh_build():
    t, book, view, arrays, cache = world("a", "b")
    first, _ = build(t, book, view, arrays, cache)
    again, wanted = build(t, book, view, arrays, cache)
    fresh, fresh_wanted = build(t, book, view, arrays, snapshot.RequestCache())
    assert again.keys() == first.keys() == fresh.keys() == {"a-1/0", "b-1/0"}
    assert all(again[k] is first[k] for k in first)                  # kept, not made again
    for k in fresh:
        assert (again[k].count, again[k].first_instance, again[k].spread) == \
               (fresh[k].count, fresh[k].first_instance, fresh[k].spread)
        assert (wanted[k].first_instance, wanted[k].count) == (fresh_wanted[k].first_instance, fresh_wanted[k].count)


def test_a_new_record_a_new_ask_a_grant_or_new_nodes_make_them_afresh():
    t, book, view, arrays, cache = world("a", "b")
    first, _ = build(t, book, view, arrays, cache)
    # the record replaced (as every change does): next_instance moved on
    moved = types_pb2.AppRecord()
    moved.CopyFrom(t.apps["a"])
    moved.next_instance = 7
    t.apps["a"] = moved
    after, wanted = build(t, book, view, arrays, cache)
    assert after["a-1/0"] is not first["a-1/0"] and after["a-1/0"].first_instance == 7
    assert wanted["a-1/0"].first_instance == 7
    assert after["b-1/0"] is first["b-1/0"]
    # the app now holds an instance: one fewer is asked
    t.index.app_held["b-1"] = 1
    held, _ = build(t, book, view, arrays, cache)
    assert held["b-1/0"].count == 2
    # the AM asks again (a new ask, here a larger target)
    book.ask_instances("b-1", 1, 5, SHAPE, gang=False)
    asked, _ = build(t, book, view, arrays, cache)
    assert asked["b-1/0"].count == 4
    # a node set with a third zone: the spread's per-domain limit changes
    view.infos.append(types_pb2.NodeInfo(node_id="n9", capacity=types_pb2.Resources(cpu_millis=8000),
                                         drivers=["process"], labels={"zone": "z9"}))
    view.node_version += 1
    spread, _ = build(t, book, view, arrays, cache)
    assert spread["a-1/0"] is not asked["a-1/0"]
    assert spread["a-1/0"].spread.max_per_domain < asked["a-1/0"].spread.max_per_domain


def test_an_app_gone_or_satisfied_leaves_no_request_behind():
    t, book, view, arrays, cache = world("a", "b")
    build(t, book, view, arrays, cache)
    done = types_pb2.AppRecord()
    done.CopyFrom(t.apps["a"])
    done.state = types_pb2.APP_STATE_KILLED
    t.apps["a"] = done
    t.index.app_held["b-1"] = 3
    pending, wanted = build(t, book, view, arrays, cache)
    assert pending == {} and wanted == {}
    assert book.asks()[0] == {}                                       # both asks dropped
