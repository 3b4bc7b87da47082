"""Fencing kept on disk and AM attempts checked against etcd (gaia_node/fencing.py, epoch.py,
and the node service's use of them)."""
import json
import os
import types

import grpc
import pytest

from gaia_common.pb import node_pb2, types_pb2
from gaia_node.containers import NotFound
from gaia_node.epoch import EpochGuard, StaleEpoch
from gaia_node.fencing import FILE, NO_AM, AttemptGuard, FencingStore, StaleAttempt
from gaia_node.service import NodeService


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Etcd:
    """app_id -> AM attempt (NO_AM: none); an Exception value: etcd is down."""

    def __init__(self, **attempts):
        self.attempts = dict(attempts)
        self.down = None
        self.reads = 0

    def read(self, app_id):
        self.reads += 1
        if self.down is not None:
            raise self.down
        return self.attempts.get(app_id, NO_AM)


def attempt_guard(tmp_path, etcd, **kw):
    return AttemptGuard(FencingStore(tmp_path), etcd.read, errors=(OSError,), **kw)


# ---- the store ----

def test_store_keeps_the_highest_values_across_restarts(tmp_path):
    store = FencingStore(tmp_path)
    assert store.raise_epoch(7) and store.raise_attempt("a1", 2)
    assert not store.raise_epoch(5) and not store.raise_attempt("a1", 1)
    again = FencingStore(tmp_path)
    assert again.epoch == 7 and again.attempt("a1") == 2 and again.attempt("other") == 0


def test_store_writes_atomically_leaving_no_temporary_file(tmp_path):
    store = FencingStore(tmp_path)
    store.raise_epoch(3)
    assert os.listdir(tmp_path) == [FILE]
    with open(tmp_path / FILE) as f:
        assert json.load(f) == {"epoch": 3, "attempts": []}


@pytest.mark.parametrize("content", ["{not json", '{"epoch": "x"}', "[1, 2]"])
def test_unreadable_store_starts_from_zero(tmp_path, content):
    (tmp_path / FILE).write_text(content)
    store = FencingStore(tmp_path)
    assert store.epoch == 0
    assert store.raise_epoch(1)   # and is replaced by a good record


def test_store_forgets_the_oldest_app_beyond_its_bound(tmp_path):
    store = FencingStore(tmp_path, max_apps=2)
    store.raise_attempt("a", 1)
    store.raise_attempt("b", 1)
    store.raise_attempt("a", 2)      # a is now the newest
    store.raise_attempt("c", 1)
    again = FencingStore(tmp_path, max_apps=2)
    assert (again.attempt("a"), again.attempt("b"), again.attempt("c")) == (2, 0, 1)


# ---- the epoch, on disk ----

def test_restarted_node_refuses_a_deposed_leader_while_etcd_is_away(tmp_path):
    leader = [4]
    first = EpochGuard(lambda: leader[0], errors=(OSError,), store=FencingStore(tmp_path), clock=Clock())
    first.admit(4)
    leader[0] = 9                     # a failover, confirmed by etcd on the new leader's first command
    first.admit(9)

    def down():
        raise OSError("etcd away")
    restarted = EpochGuard(down, errors=(OSError,), store=FencingStore(tmp_path), clock=Clock())
    assert restarted.known_epoch == 9
    with pytest.raises(StaleEpoch, match="8 < 9"):
        restarted.admit(8)
    restarted.admit(9)


def test_epoch_read_from_etcd_is_kept_on_disk_too(tmp_path):
    guard = EpochGuard(lambda: 12, errors=(OSError,), store=FencingStore(tmp_path))
    guard.refresh()
    assert FencingStore(tmp_path).epoch == 12


# ---- AM attempts ----

def test_current_attempt_is_admitted_and_remembered(tmp_path):
    etcd = Etcd(app=2)
    guard = attempt_guard(tmp_path, etcd)
    guard.admit("app", 2)
    assert FencingStore(tmp_path).attempt("app") == 2 and guard.refused_commands == 0


def test_old_attempt_refused_by_a_node_that_never_saw_the_new_one(tmp_path):
    """The new AM never talked to this node: etcd's allocation tells it."""
    etcd = Etcd(app=1)
    guard = attempt_guard(tmp_path, etcd)
    guard.admit("app", 1)
    etcd.attempts["app"] = 2          # the leader placed attempt 2 elsewhere
    with pytest.raises(StaleAttempt, match="stale AM attempt 1 of app: attempt 2 has replaced it"):
        guard.admit("app", 1)
    assert guard.refused_commands == 1


def test_every_am_command_reads_etcd_by_default(tmp_path):
    etcd = Etcd(app=1)
    guard = attempt_guard(tmp_path, etcd)
    for _ in range(3):
        guard.admit("app", 1)
    assert etcd.reads == 3


def test_a_fresh_read_of_the_same_attempt_is_reused_when_allowed(tmp_path):
    etcd, clock = Etcd(app=1), Clock()
    guard = attempt_guard(tmp_path, etcd, max_age=0.5, clock=clock)
    guard.admit("app", 1)
    clock.now += 0.2
    guard.admit("app", 1)
    assert etcd.reads == 1
    with pytest.raises(StaleAttempt, match="not one etcd knows"):
        guard.admit("app", 3)         # an attempt other than the one read: read again (and refused)
    assert etcd.reads == 2


def test_forged_future_attempt_is_refused_and_does_not_lock_out_the_am(tmp_path):
    guard = attempt_guard(tmp_path, Etcd(app=2))
    with pytest.raises(StaleAttempt, match="AM attempt 99 of app is not one etcd knows"):
        guard.admit("app", 99)
    guard.admit("app", 2)
    assert FencingStore(tmp_path).attempt("app") == 2 and guard.refused_commands == 1


def test_app_without_an_am_refuses_am_commands(tmp_path):
    guard = attempt_guard(tmp_path, Etcd())
    with pytest.raises(StaleAttempt, match="no ApplicationMaster"):
        guard.admit("gone", 1)


def test_etcd_away_falls_back_to_what_the_disk_says(tmp_path):
    etcd, clock = Etcd(app=3), Clock()
    attempt_guard(tmp_path, etcd).admit("app", 3)
    etcd.down = OSError("away")
    restarted = attempt_guard(tmp_path, etcd, clock=clock)
    with pytest.raises(StaleAttempt, match="attempt 3 has replaced it"):
        restarted.admit("app", 2)
    restarted.admit("app", 3)
    restarted.admit("other", 1)       # nothing known of it: etcd being away blocks nothing
    assert etcd.reads == 2            # once before the restart, once after: not again right after a failure
    clock.now += 2
    with pytest.raises(StaleAttempt):
        restarted.admit("app", 1)
    assert etcd.reads == 3


# ---- the node service ----

class Aborted(Exception):
    pass


class Context:
    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted(code)


class FakeContainers:
    def __init__(self):
        self.started, self.stopped = [], []
        self.owners = {"b1.0.0": "b1"}

    def start(self, spec):
        self.started.append(spec.container_id)
        return types_pb2.ContainerStatus(container_id=spec.container_id)

    def stop(self, cid, grace, remove):
        self.stopped.append(cid)
        return types_pb2.ContainerStatus(container_id=cid)

    def get(self, cid):
        if cid not in self.owners:
            raise NotFound(cid)
        return types.SimpleNamespace(spec=types_pb2.ContainerSpec(app_id=self.owners[cid]))


@pytest.fixture
def service(tmp_path):
    etcd = Etcd(a1=2, b1=1)
    store = FencingStore(tmp_path)
    manager = types.SimpleNamespace(
        cfg=types.SimpleNamespace(host_path_allow=[]),
        epoch=EpochGuard(lambda: 5, errors=(OSError,), store=store),
        attempts=AttemptGuard(store, etcd.read, errors=(OSError,)), containers=FakeContainers(),
        spec_check=types.SimpleNamespace(check=lambda spec: None))   # tests/unit/test_node_spec_check.py
    return NodeService(manager), manager


def call(method, request):
    context = Context()
    try:
        method(request, context)
    except Aborted:
        return context.code, context.details
    return grpc.StatusCode.OK, ""


def start(app_id="a1", attempt=0, epoch=5, is_am=False):
    spec = types_pb2.ContainerSpec(container_id=f"{app_id}.0.0", app_id=app_id, is_am=is_am)
    return node_pb2.StartContainerRequest(epoch=epoch, spec=spec, am_attempt=attempt)


def test_service_refuses_a_superseded_am_and_counts_it(service):
    svc, manager = service
    assert call(svc.StartContainer, start(attempt=1)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "stale AM attempt 1 of a1: attempt 2 has replaced it")
    stop = node_pb2.StopContainerRequest(epoch=5, container_id="a1.0.0", app_id="a1", am_attempt=1)
    assert call(svc.StopContainer, stop)[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert manager.containers.started == manager.containers.stopped == []
    assert call(svc.StartContainer, start(attempt=2))[0] == grpc.StatusCode.OK
    assert manager.attempts.refused_commands == 2


def test_service_master_commands_carry_no_attempt(service):
    svc, manager = service
    assert call(svc.StartContainer, start(app_id="unknown", attempt=0))[0] == grpc.StatusCode.OK
    assert call(svc.StartContainer, start(epoch=4))[0] == grpc.StatusCode.FAILED_PRECONDITION


def test_service_am_stops_only_its_own_apps_containers(service):
    svc, manager = service
    stop = node_pb2.StopContainerRequest(epoch=5, container_id="b1.0.0", app_id="a1", am_attempt=2)
    assert call(svc.StopContainer, stop) == (grpc.StatusCode.PERMISSION_DENIED, "container b1.0.0 is not of app a1")
    assert manager.containers.stopped == []


@pytest.mark.parametrize("request_, field", [
    (node_pb2.StopContainerRequest(epoch=5, container_id="a1.0.0", am_attempt=2), "app_id"),
    (node_pb2.StopContainerRequest(epoch=5, container_id="a1.0.0", app_id="a/../b", am_attempt=2), "app_id"),
    (node_pb2.StopContainerRequest(epoch=5, container_id="a1.0.0", app_id="a1", am_attempt=-1), "am_attempt"),
])
def test_service_names_the_bad_field_of_an_am_command(service, request_, field):
    code, details = call(service[0].StopContainer, request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith(field)


def test_service_an_am_cannot_start_an_am(service):
    code, details = call(service[0].StartContainer, start(attempt=2, is_am=True))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "cannot start an ApplicationMaster" in details
