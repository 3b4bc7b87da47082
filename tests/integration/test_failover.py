"""Leader failover and fencing, with real master processes killed and paused for real."""
import os
import signal
import threading
import time
import uuid

import psutil
import pytest

from gaia_common.pb import master_pb2, node_pb2, node_pb2_grpc, types_pb2
from gaia_common import rpc, spec as spec_mod
from tests.integration.harness import LocalCluster, wait_for

SLEEPER = "name: {name}\ninstances: {n}\ncommand: ['sleep', '3600']\nresources: {{request: {{cpu: 10m, memory: 8Mi}}}}\n"


@pytest.fixture
def make_cluster(etcd_server, cluster_name, tmp_path):
    made = []

    def make():
        c = LocalCluster(etcd_server.endpoint, cluster_name, tmp_path)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def submit(client, name: str, instances: int = 0) -> str:
    spec = spec_mod.load_yaml(SLEEPER.format(name=name, n=instances))
    request = master_pb2.SubmitAppRequest(spec=spec, idempotency_key=str(uuid.uuid4()))
    return client.call("SubmitApp", request).app_id


def instance_processes(client, name: str) -> dict:
    status = client.call("GetApp", master_pb2.GetAppRequest(name=name))
    out = {}
    for view in [status.am, *status.instances]:
        if view.status.state != types_pb2.CONTAINER_STATE_RUNNING:
            return {}
        out[view.allocation.instance_id] = (view.status.pid, view.status.started_at)
    return out


class Submitter(threading.Thread):
    """Submits apps one after another; records the ids the masters acknowledged."""

    def __init__(self, client, prefix: str):
        super().__init__(daemon=True)
        self.client, self.prefix = client, prefix
        self.acked, self.errors = [], []
        self.stop_flag = threading.Event()

    def run(self):
        i = 0
        while not self.stop_flag.is_set() and i < 500:
            try:
                self.acked.append(submit(self.client, f"{self.prefix}{i}"))
            except Exception as e:  # recorded: an unacknowledged submit is allowed to be lost
                self.errors.append(e)
            i += 1


def test_leader_kill_loses_nothing_duplicates_nothing_restarts_nothing(make_cluster):
    cluster = make_cluster()
    for _ in range(3):
        cluster.start_master()
    cluster.start_node()
    cluster.wait_ready(nodes=1)
    client = cluster.client(retry_for=30)
    submit(client, "steady", instances=2)
    before = wait_for(lambda: (lambda p: p if len(p) == 3 else None)(instance_processes(client, "steady")),
                      60, what="steady app running")

    submitter = Submitter(cluster.client(retry_for=30), "burst")
    submitter.start()
    wait_for(lambda: len(submitter.acked) >= 5, 30, what="submissions before the kill")
    old = cluster.leader()
    cluster.leader_proc().send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: (lambda l: l and l.epoch != old.epoch)(cluster.leader()), 10, interval=0.05,
             what="a new leader")
    acked_at_kill = len(submitter.acked)
    wait_for(lambda: len(submitter.acked) >= acked_at_kill + 5, 30, what="submissions after failover")
    submitter.stop_flag.set()
    submitter.join(60)
    assert time.monotonic() - killed_at < 30

    apps = client.call("ListApps", master_pb2.ListAppsRequest()).apps
    stored = [a.app.app_id for a in apps if a.app.spec.name.startswith("burst")]
    assert len(stored) == len(set(stored)), "an app was stored twice"
    assert set(submitter.acked) <= set(stored), "an acknowledged app was lost"
    # A retried submit carries its idempotency key: it returns the app its first try made,
    # never "already exists" (which would mean the retry was taken for a second app).
    assert not [e for e in submitter.errors if "already" in str(e)], submitter.errors

    after = wait_for(lambda: (lambda p: p if len(p) == 3 else None)(instance_processes(client, "steady")),
                     30, what="steady app visible on the new leader",
                     on_timeout=lambda: client.call("GetApp", master_pb2.GetAppRequest(name="steady")))
    assert after == before, "a running container was restarted by the failover"


def test_sigterm_resigns_at_once(make_cluster):
    cluster = make_cluster()
    cluster.start_master(lease_ttl=10)
    wait_for(cluster.leader, 15, what="a leader")
    cluster.start_master(lease_ttl=10)
    wait_for(lambda: len(cluster.client().masters()) == 2, 15, what="two replicas")
    old = cluster.leader()
    cluster.leader_proc().send_signal(signal.SIGTERM)
    started = time.monotonic()
    wait_for(lambda: (lambda l: l and l.epoch != old.epoch)(cluster.leader()), 5, interval=0.02,
             what="the follower to lead")
    assert time.monotonic() - started < 3, "SIGTERM must resign, not wait out the 10 s lease"


def history(etcd, prefix: str, start_revision: int) -> list:
    """Every event under `prefix` from `start_revision` to now, from etcd's history."""
    end = etcd.get_response(prefix).header.revision
    events, done = [], threading.Event()

    def on_watch(response):
        if isinstance(response, Exception):
            done.set()
            return
        events.extend(response.events)
        if response.header.revision >= end or any(e.mod_revision >= end for e in response.events):
            done.set()

    if start_revision > end:
        return []
    watch_id = etcd.add_watch_prefix_callback(prefix, on_watch, start_revision=start_revision)
    done.wait(10)
    etcd.cancel_watch(watch_id)
    return [e for e in events if e.mod_revision <= end]


def decode_epoch(key: str, value: bytes, keys):
    for prefix, cls in ((keys.apps, types_pb2.AppRecord), (keys.allocations, types_pb2.Allocation),
                        (keys.leader, types_pb2.MasterInfo)):
        if key.startswith(prefix):
            msg = cls()
            msg.ParseFromString(value)
            return msg.epoch
    return None


def test_paused_leader_cannot_write_after_new_epoch(make_cluster):
    cluster = make_cluster()
    # write 1 is the leader key, writes 2.. are submits: pause inside the third write
    a = cluster.start_master(env_extra={"GAIA_FAULTS": "leader.write:sigstop@3"})
    first = wait_for(cluster.leader, 15, what="master A to lead")
    cluster.start_master()
    wait_for(lambda: len(cluster.client().masters()) == 2, 15, what="two replicas")

    submitter = Submitter(cluster.client(retry_for=30, deadline=3), "fenced")
    submitter.start()
    wait_for(lambda: psutil.Process(a.pid).status() == psutil.STATUS_STOPPED, 20, what="A to pause mid-write")
    new = wait_for(lambda: (lambda l: l if l and l.epoch != first.epoch else None)(cluster.leader()), 15,
                   what="B to lead while A is paused")
    wait_for(lambda: len(submitter.acked) >= 4, 30, what="submits served by B")
    os.kill(a.pid, signal.SIGCONT)  # A resumes inside its write path, with a stale epoch
    time.sleep(2)
    submitter.stop_flag.set()
    submitter.join(60)

    # B's epoch is the revision at which B *campaigned*; A legitimately led until its lease
    # ended (its election key deleted). Fencing means: no write of A's after that moment,
    # and none after B's first write.
    events = history(cluster.etcd, cluster.keys.root, 1)
    a_key = next(e.key for e in events if e.key.startswith(cluster.keys.election.encode())
                 and e.create_revision == first.epoch)
    a_ended = next(e.mod_revision for e in events if e.key == a_key and type(e).__name__ == "DeleteEvent")
    writes = [(e.mod_revision, e.key.decode(), decode_epoch(e.key.decode(), e.value, cluster.keys))
              for e in events if type(e).__name__ == "PutEvent"]
    a_writes = [w for w in writes if w[2] == first.epoch]
    b_writes = [w for w in writes if w[2] == new.epoch]
    assert a_writes and b_writes
    assert max(w[0] for w in a_writes) < a_ended, f"A wrote after its lease ended at {a_ended}: {a_writes}"
    assert max(w[0] for w in a_writes) < min(w[0] for w in b_writes), "A wrote after B's first write"
    assert all(w[2] in (first.epoch, new.epoch) for w in writes if w[2] is not None)
    wait_for(lambda: "fenced write refused" in cluster.log("master-1"), 10, what="A's resumed write to be refused")
    apps = [a.app.app_id for a in cluster.client().call("ListApps", master_pb2.ListAppsRequest()).apps]
    assert len(apps) == len(set(apps))
    assert set(submitter.acked) <= set(apps)


def test_node_refuses_commands_of_a_deposed_leader(make_cluster):
    cluster = make_cluster()
    # A pauses right before its first command to a node (starting the first app's AM)
    a = cluster.start_master(env_extra={"GAIA_FAULTS": "leader.node_command:sigstop@1"})
    first = wait_for(cluster.leader, 15, what="master A to lead")
    cluster.start_master()
    cluster.start_node()
    node_id = next(iter(cluster.nodes))
    wait_for(lambda: len(cluster.client().masters()) == 2, 15, what="two replicas")
    wait_for(lambda: cluster.etcd.get(cluster.keys.node(node_id))[0], 15, what="the node to register")

    client = cluster.client(retry_for=30)
    submit(client, "guarded", instances=1)
    wait_for(lambda: psutil.Process(a.pid).status() == psutil.STATUS_STOPPED, 20, what="A to pause")
    new = wait_for(lambda: (lambda l: l if l and l.epoch != first.epoch else None)(cluster.leader()), 15,
                   what="B to lead")
    running = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(instance_processes(client, "guarded")),
                       60, what="B to run the app")
    os.kill(a.pid, signal.SIGCONT)  # A now sends its StartContainer with the old epoch

    info = types_pb2.NodeInfo()
    info.ParseFromString(cluster.etcd.get(cluster.keys.node(node_id))[0])
    stub = node_pb2_grpc.NodeStub(rpc.channel(info.address))
    report = wait_for(lambda: (lambda r: r if r.refused_commands >= 1 else None)(
        stub.Status(node_pb2.NodeStatusRequest(), timeout=5)), 20, what="the node to refuse A's command")
    assert report.known_epoch > first.epoch
    assert instance_processes(client, "guarded") == running, "the deposed leader's command changed something"
    # and no write of A's landed in etcd once B wrote (the resumed A is fenced there too)
    time.sleep(1)
    writes = [(e.mod_revision, decode_epoch(e.key.decode(), e.value, cluster.keys))
              for e in history(cluster.etcd, cluster.keys.root, 1) if type(e).__name__ == "PutEvent"]
    b_first = min(rev for rev, epoch in writes if epoch == new.epoch)
    assert not [w for w in writes if w[1] == first.epoch and w[0] > b_first], "A wrote after B led"
