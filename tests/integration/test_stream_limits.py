"""Long streams are bounded per caller and never take the workers unary calls need.

A real master over mutual TLS with small stream limits (MasterConfig max_streams*). User A
floods it with follow-log streams (`gaia logs -f`, relayed from the node: the old way to hold
every worker) and watches: past its caps it gets RESOURCE_EXHAUSTED naming the limit, and while
every stream place is held, user B's GetApp and SubmitApp and an ApplicationMaster's calls
answer promptly (a bounded wait), and B's app starts (its real AM talks to the master).
"""
import concurrent.futures
import os
import time

import grpc
import pytest

from gaia_common import spec as spec_mod
from gaia_common.client import GaiaError
from gaia_common.pb import master_pb2, types_pb2
from tests.integration.harness import LocalCluster, wait_for
from tests.integration.test_tenancy import setup_tenants

LIMITS = {"max_streams": 12, "max_streams_per_user": 4, "max_streams_per_am": 2, "max_streams_per_tenant": 6}
FLOOD = 40            # follow-log streams user A opens at once (more than the master's unary workers)
PROMPT = 3.0          # seconds a unary call may take while every stream place is held
TALKER = ["sh", "-c", "echo hello; while true; do sleep 1; echo tick; done"]


def app(name: str, pool: str):
    return spec_mod.from_dict({"name": name, "pool": pool, "command": TALKER,
                               "resources": {"request": {"cpu": "10m", "memory": "16Mi"}}})


@pytest.fixture(scope="module")
def world(etcd_server, tmp_path_factory):
    name = f"t{os.getpid()}-streams"
    cluster = LocalCluster(etcd_server.endpoint, name, tmp_path_factory.mktemp("streams"), tls=True)
    try:
        certs = {u: cluster.tls_files("user", u) for u in ("alice", "bob", "carol")}
        cluster.start_master(**LIMITS)
        cluster.start_node(f"{name}-n1")
        users = {u: cluster.client(tls=certs[u], retry_for=20) for u in certs}
        users["admin"] = cluster.client(retry_for=20)
        wait_for(lambda: users["admin"].call("ListNodes", master_pb2.ListNodesRequest()).nodes, 30,
                 what="the TLS cluster")
        setup_tenants(users["admin"])
        users["alice"].call("SubmitApp", master_pb2.SubmitAppRequest(spec=app("a-talk", "pool-a")))
        yield cluster, users
    finally:
        cluster.stop()


def open_stream(client, method: str, request):
    """('ok', call) with its first message read, or (code, details)."""
    try:
        call, head = client.open_stream(method, request, timeout=None)
    except GaiaError as e:
        return e.code, e.message
    assert head, f"{method}: the stream ended without a message"
    return "ok", call


def opened(results) -> list:
    return [r[1] for r in results if r[0] == "ok"]


def refused(results, limit: str) -> int:
    """How many of `results` were RESOURCE_EXHAUSTED naming `limit`; nothing else is allowed."""
    other = [r for r in results if r[0] != "ok" and not (r[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
                                                         and f"(limit {limit})" in r[1])]
    assert not other, other[:3]
    return sum(1 for r in results if r[0] != "ok")


def timed(call):
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def open_when_free(client, method: str, request, timeout: float = 10.0):
    """A stream of `request` once one opens (places come back as streams end)."""
    return wait_for(lambda: (lambda r: r[1] if r[0] == "ok" else None)(open_stream(client, method, request)),
                    timeout, what=f"a {method} stream")


def state_of(client, name: str) -> str:
    return types_pb2.AppState.Name(client.call("GetApp", master_pb2.GetAppRequest(name=name)).app.state)


def test_streams_are_capped_per_caller_and_unary_calls_still_answer(world):
    cluster, users = world
    alice, carol, bob, admin = users["alice"], users["carol"], users["bob"], users["admin"]
    follow = master_pb2.AppLogsRequest(app="a-talk", follow=True)
    a_watch = master_pb2.WatchEndpointsRequest(app="a-talk")
    open_when_free(alice, "Logs", follow, timeout=30).cancel()       # a-talk runs and talks
    held = []
    try:
        # user A floods follow-log streams (more than the unary workers): its cap opens, the
        # rest are refused at once
        time.sleep(0.2)                                                # (that first one's place back)
        with concurrent.futures.ThreadPoolExecutor(FLOOD) as pool:
            results = list(pool.map(lambda _: open_stream(alice, "Logs", follow), range(FLOOD)))
        held += opened(results)
        assert len(opened(results)) == LIMITS["max_streams_per_user"]
        assert refused(results, "max_streams_per_user") == FLOOD - LIMITS["max_streams_per_user"]
        # another user of tenant A: the tenant's cap (its users and its apps' AMs: a-talk's
        # WatchApp) leaves it one or two
        results = [open_stream(carol, "WatchEndpoints", a_watch) for _ in range(4)]
        held += opened(results)
        assert 1 <= len(opened(results)) <= 2 and refused(results, "max_streams_per_tenant") >= 2
        # the cluster admin (no tenant) to its user cap, then user B (tenant B) to the total
        results = [open_stream(admin, "WatchEndpoints", a_watch) for _ in range(4)]
        held += opened(results)
        assert len(opened(results)) == 4
        _, took = timed(lambda: bob.call("SubmitApp", master_pb2.SubmitAppRequest(spec=app("b-web", "pool-b"))))
        assert took < PROMPT, f"SubmitApp took {took:.2f}s"
        results = [open_stream(bob, "WatchEndpoints", master_pb2.WatchEndpointsRequest(app="b-web"))
                   for _ in range(4)]
        held += opened(results)
        assert 1 <= len(opened(results)) <= 3 and refused(results, "max_streams") >= 1

        # every stream place is held: B's and an AM's unary calls still answer promptly
        status, get_took = timed(lambda: bob.call("GetApp", master_pb2.GetAppRequest(name="b-web")))
        more = master_pb2.SubmitAppRequest(spec=app("b-more", "pool-b"))
        _, submit_took = timed(lambda: bob.call("SubmitApp", more))
        app_id = status.app.app_id
        am = cluster.client(tls=cluster.tls_files("am", app_id, attempt=1), retry_for=5)
        got, am_took = timed(lambda: am.call("GetApp", master_pb2.GetAppRequest(name="b-web")))
        print(f"\nevery stream place held ({FLOOD} follow-log streams of one user asked): GetApp "
              f"{get_took * 1000:.0f} ms, SubmitApp {submit_took * 1000:.0f} ms, an AM's GetApp {am_took * 1000:.0f} ms")
        assert get_took < PROMPT and submit_took < PROMPT and got.app.app_id == app_id and am_took < PROMPT
        am_watch = master_pb2.WatchAppRequest(app_id=app_id, attempt=1)
        code, message = open_stream(am, "WatchApp", am_watch)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "(limit max_streams)" in message, message
        # B's app starts meanwhile: its real AM registers and asks for containers (polling
        # GetApp while the watch places are full)
        wait_for(lambda: state_of(bob, "b-web") == "APP_STATE_RUNNING", 20, what="b-web running")

        # A's streams end: its places come back
        for call in held[:LIMITS["max_streams_per_user"]]:
            call.cancel()
        held.append(open_when_free(alice, "Logs", follow, timeout=5))
    finally:
        for call in held:
            call.cancel()
    # an AM's streams have a cap of their own (its real AM may hold one of them)
    held = [open_when_free(am, "WatchApp", am_watch)]
    try:
        results = [open_stream(am, "WatchApp", am_watch) for _ in range(LIMITS["max_streams_per_am"])]
        held += opened(results)
        assert refused(results, "max_streams_per_am") >= 1
    finally:
        for call in held:
            call.cancel()
