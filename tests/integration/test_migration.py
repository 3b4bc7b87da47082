"""Instances leave lost and drained nodes: the AM moves them, charging no retry."""
import os
import signal
import sys
import time

import grpc
import psutil
import pytest

from gaia_common.pb import master_pb2, types_pb2
from tests.integration.harness import running_cluster, wait_for

LEASE_TTL = 3     # the harness's node lease
SLEEPER = """\
name: {name}
instances: {instances}
command: ["{python}", "-c", "import time; time.sleep(600)"]
resources:
  request: {{cpu: 100m, memory: 32Mi}}
max_per_node: {per_node}
retry_times: 0
migrate_times: 3
"""
RUNNING = types_pb2.CONTAINER_STATE_RUNNING


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=3) as c:
        yield c


def submit(cluster, tmp_path, name, instances, per_node):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SLEEPER.format(name=name, instances=instances, per_node=per_node, python=sys.executable))
    cluster.cli("submit", str(path))
    client = cluster.client(retry_for=10)
    get = lambda: client.call("GetApp", master_pb2.GetAppRequest(name=name))  # noqa: E731
    wait_for(lambda: all_running(get(), instances), 60, what=f"{instances} running instances of {name}")
    return get


def all_running(status, count, avoid=None):
    views = list(status.instances)
    ok = len(views) == count and all(v.status.state == RUNNING for v in views)
    return ok and not any(v.allocation.node_id == avoid for v in views)


def kill_node(cluster, node_id):
    """kill -9 the node manager and everything it started: no lease revoke, no poststop."""
    os.killpg(cluster.nodes[node_id].pid, signal.SIGKILL)
    state_dir = os.path.join(cluster.workdir, node_id)
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("GAIA_NODE_ID") == node_id or any(state_dir in a for a in p.cmdline()):
                p.kill()
        except psutil.Error:
            continue


def test_lost_node_instances_run_elsewhere_within_lease_ttl_plus_5s(cluster, tmp_path):
    get = submit(cluster, tmp_path, "mover", instances=4, per_node=2)
    before = get()
    am_node = before.am.allocation.node_id
    victim = next(v.allocation.node_id for v in before.instances if v.allocation.node_id != am_node)
    moved = {v.allocation.instance_id for v in before.instances if v.allocation.node_id == victim}
    stayed = {v.allocation.instance_id: v.status.container_id for v in before.instances
              if v.allocation.node_id != victim}

    # an instance named twice is bad input, refused before anything is queued
    from gaia_common.client import GaiaError
    with pytest.raises(GaiaError, match="instance_ids") as refused:
        cluster.client(retry_for=2).call("MoveInstances", master_pb2.MoveRequest(
            app_id=before.app.app_id, attempt=before.app.am_attempt, instance_ids=["0", "0"]))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT

    kill_node(cluster, victim)
    t0 = time.monotonic()
    print(f"killed {victim} at {time.time():.3f}")
    after = wait_for(lambda: (lambda s: s if all_running(s, 4, avoid=victim) else None)(get()),
                     LEASE_TTL + 5, interval=0.1, what=f"instances {sorted(moved)} running off {victim}",
                     on_timeout=lambda: [(v.allocation.instance_id, v.allocation.node_id, v.node_lost,
                                          v.status.state) for v in get().instances])
    print(f"moved {len(moved)} instances in {time.monotonic() - t0:.1f}s")
    by_id = {v.allocation.instance_id: v for v in after.instances}
    assert set(by_id) == moved | set(stayed)                  # same instance ids, none added
    for i in moved:
        assert by_id[i].allocation.migrations == 1
    for i, container_id in stayed.items():                   # the others were not touched
        assert by_id[i].status.container_id == container_id
    assert all(v.allocation.charged == 0 for v in after.instances)   # a lost node charges nobody
    assert after.app.state == types_pb2.APP_STATE_RUNNING


def test_drained_node_instances_start_elsewhere_before_the_old_stop(cluster, tmp_path):
    get = submit(cluster, tmp_path, "drainee", instances=2, per_node=1)
    before = get()
    am_node = before.am.allocation.node_id
    view = next((v for v in before.instances if v.allocation.node_id != am_node), before.instances[0])
    victim, instance = view.allocation.node_id, view.allocation.instance_id
    old_container = view.status.container_id

    shown = cluster.cli_json("node", "drain", victim)
    assert shown["draining"] is True

    # sample the instance while it moves: some copy of it runs at every sample
    deadline, samples = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        v = next(v for v in get().instances if v.allocation.instance_id == instance)
        copies = [s for s in (v.status, v.from_status) if s.state == RUNNING]
        samples.append(len(copies))
        if v.allocation.node_id != victim and not v.allocation.from_node_id and v.status.state == RUNNING:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"instance {instance} did not leave {victim}: {v}")
    assert min(samples) >= 1, f"instance {instance} had no running copy during its move: {samples}"
    assert max(samples) == 2, "the new copy never ran beside the old one"
    assert v.status.container_id != old_container and v.allocation.migrations == 1
    assert v.allocation.charged == 0
    # the old copy is gone from the drained node, and nothing new goes there
    wait_for(lambda: not [c for c in cluster.cli_json("node", "show", victim)["running"]
                          if c["app_id"] == before.app.app_id and c["instance_id"] != "am"],
             15, what=f"the old copy off {victim}")
    # one per node and one node drained: a third instance waits, saying why, until the undo
    cluster.cli("scale", "drainee", "3")
    wait_for(lambda: "draining" in get().app.message, 15, what="the pending reason",
             on_timeout=lambda: get().app.message)
    assert len(get().instances) == 2
    assert cluster.cli_json("node", "drain", victim, "--undo")["draining"] is False
    grown = wait_for(lambda: (lambda s: s if all_running(s, 3) else None)(get()), 30, what="3 instances")
    assert victim in {v.allocation.node_id for v in grown.instances}


def copies(app_id, instance):
    """Live processes of one instance, wherever they run (the real count, not etcd's)."""
    n = 0
    for p in psutil.process_iter(["pid"]):
        try:
            env = p.environ()
        except psutil.Error:
            continue
        if env.get("GAIA_APP_ID") == app_id and env.get("GAIA_INSTANCE") == instance and \
                "sleep" in " ".join(p.cmdline()):
            n += 1
    return n


@pytest.mark.parametrize("on_partition", ["keep", "stop"])
def test_partitioned_node_comes_back_and_one_copy_of_each_instance_survives(cluster, tmp_path, on_partition):
    name = f"part-{on_partition}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(SLEEPER.format(name=name, instances=2, per_node=1, python=sys.executable)
                    + f"on_partition: {on_partition}\n")
    cluster.cli("submit", str(path))
    client = cluster.client(retry_for=10)
    get = lambda: client.call("GetApp", master_pb2.GetAppRequest(name=name))  # noqa: E731
    before = wait_for(lambda: (lambda s: s if all_running(s, 2) else None)(get()), 60, what="2 instances")
    am_node = before.am.allocation.node_id
    view = next((v for v in before.instances if v.allocation.node_id != am_node), None)
    if view is None:
        pytest.skip("both instances share the AM's node")   # max_per_node 1 on 3 nodes: not expected
    victim, instance, app_id = view.allocation.node_id, view.allocation.instance_id, before.app.app_id

    node = cluster.nodes[victim]
    os.kill(node.pid, signal.SIGSTOP)        # the node manager only: its containers run on
    try:
        wait_for(lambda: all_running(get(), 2, avoid=victim), LEASE_TTL + 10, what="a replacement elsewhere")
        assert copies(app_id, instance) == 2   # the zombie and its replacement, for now
    finally:
        os.kill(node.pid, signal.SIGCONT)
    wait_for(lambda: copies(app_id, instance) == 1, 30, what=f"one copy of instance {instance}",
             on_timeout=lambda: copies(app_id, instance))
    after = get()
    moved = next(v for v in after.instances if v.allocation.instance_id == instance)
    assert moved.allocation.node_id != victim and moved.status.state == RUNNING
    assert all(v.allocation.charged == 0 for v in after.instances)
    time.sleep(2)                              # and it stays one: nothing starts it again
    assert copies(app_id, instance) == 1


class CuttableProxy:
    """A TCP forwarder to etcd that the test can cut: the node behind it loses etcd while
    everything else (masters, the AM) keeps it. Loopback only."""

    def __init__(self, target: str):
        import socket
        import threading
        host, port = target.rsplit("//", 1)[-1].rsplit(":", 1)
        self.target = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.cut = threading.Event()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while not self.cut.is_set():
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def sever(self):
        self.cut.set()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass

    def restore(self):
        self.socks = []
        self.cut.clear()


@pytest.fixture
def one_node(etcd_server, cluster_name, tmp_path):
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=1) as c:
        yield c


def test_a_node_cut_off_from_etcd_stops_its_fencing_instances_before_they_are_replaced(one_node, tmp_path):
    cluster = one_node
    path = tmp_path / "fenced.yaml"
    # it ignores SIGTERM, so stopping it takes the node's whole stop grace: the worst case
    stubborn = SLEEPER.replace('"import time; time.sleep(600)"',
                               '"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"')
    path.write_text(stubborn.format(name="fenced", instances=2, per_node=1, python=sys.executable)
                    + "on_partition: stop\n")
    cluster.cli("submit", str(path))
    client = cluster.client(retry_for=10)
    get = lambda: client.call("GetApp", master_pb2.GetAppRequest(name="fenced"))  # noqa: E731
    wait_for(lambda: sum(v.status.state == RUNNING for v in get().instances) == 1, 60, what="1 of 2 placed")
    proxy = CuttableProxy(cluster.etcd_endpoint)
    victim = f"{cluster.name}-cut"
    cluster.start_node(victim, etcd=[proxy.url])          # the second instance lands here
    status = wait_for(lambda: (lambda s: s if all_running(s, 2) else None)(get()), 60, what="2 instances")
    cluster.start_node()                                  # and its replacement will land here
    cluster.wait_ready(nodes=3)
    view = next(v for v in status.instances if v.allocation.node_id == victim)
    instance, app_id = view.allocation.instance_id, status.app.app_id

    proxy.sever()
    deadline, most = time.monotonic() + 30, 0
    while time.monotonic() < deadline:              # sample the real processes all along
        most = max(most, copies(app_id, instance))
        now = get()
        v = next(v for v in now.instances if v.allocation.instance_id == instance)
        if v.allocation.node_id != victim and v.status.state == RUNNING:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"instance {instance} was not replaced off {victim}")
    for _ in range(20):                              # a little longer: the replacement runs alone
        most = max(most, copies(app_id, instance))
        time.sleep(0.05)
    assert most == 1, f"instance {instance} ran {most} copies at once"
    assert copies(app_id, instance) == 1
    proxy.restore()                                   # the node comes back: still one copy
    wait_for(lambda: cluster.etcd.get(cluster.keys.node(victim))[0] is not None, 20, what="the node back")
    time.sleep(1)
    assert copies(app_id, instance) == 1
