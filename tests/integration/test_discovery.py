"""Discovery end to end: `gaia resolve` (and --watch), the Python client (gaia_common/discovery.py)
and the registry keys in etcd agree; endpoints answer from another network namespace; health
flips, killed nodes, master failover, etcd restart and compaction lose or repeat no change.

Every state the watching client reports is checked against the registry at that state's
revision (read from etcd, or from the test's own watch where a compaction erased it), so "no
change missed, none applied twice" is checked exactly, not by sampling.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
import yaml
from etcd3 import events as etcd_events

from gaia_common.config import NodeConfig
from gaia_common.discovery import Resolver
from gaia_common.etcd import EtcdServer
from gaia_common.pb import types_pb2
from gaia_master.node_view import resolvable
from tests.integration.harness import FLAG_SERVER, LocalCluster, ROOT, wait_for
from tests.integration.network_support import http_get_in, needs_netns, peer, teardown_network  # noqa: F401 (fixture)
from tests.integration.test_migration import kill_node

LEASE_TTL = 3      # the harness's node lease

def sleeper(name: str, instances: int, per_node: int = 0) -> dict:
    return {"name": name, "instances": instances, "command": ["sleep", "3600"], "max_per_node": per_node,
            "resources": {"request": {"cpu": "10m", "memory": "8Mi"}}}


def submit(cluster, tmp_path, spec: dict):
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    cluster.cli("submit", str(path))


# ---- the three views of one app's endpoints ----

def brief(e) -> tuple:
    return e.instance_id, e.host, tuple(sorted(e.ports.items())), e.node_id, e.container_id


def from_etcd(cluster, app: str, revision: int = None) -> set:
    """The resolvable registry entries of `app`, read from etcd (at `revision`)."""
    at = {"revision": revision} if revision else {}
    response = cluster.etcd.get_prefix_response(cluster.keys.app_services(app), **at)
    entries = [types_pb2.ServiceEndpoint.FromString(kv.value) for kv in response.kvs]
    return {brief(e) for e in entries if resolvable(e)}


def from_cli(cluster, app: str) -> set:
    doc = cluster.cli_json("resolve", app)
    return {(e["instance_id"], e["host"], tuple(sorted((k, int(v)) for k, v in e["ports"].items())), e["node_id"],
             e["container_id"]) for e in doc["endpoints"]}


def from_client(resolver, app: str) -> set:
    return {brief(e) for e in resolver.resolve(app)}


def all_agree(cluster, resolver, app: str, ids=None):
    """The one set all three show, once they agree (and it has instances `ids`), else None."""
    etcd = from_etcd(cluster, app)
    if ids is not None and {e[0] for e in etcd} != set(ids):
        return None
    return etcd if from_client(resolver, app) == etcd == from_cli(cluster, app) else None


class Recorder(threading.Thread):
    """Everything `Resolver.watch` yields, as it comes."""

    def __init__(self, resolver, app: str):
        super().__init__(daemon=True)
        self.resolver, self.app, self.seen = resolver, app, []
        self.start()

    def run(self):
        for change in self.resolver.watch(self.app):
            self.seen.append(change)

    def ids(self) -> set:
        return {e.instance_id for e in self.seen[-1].endpoints} if self.seen else None


def check_record(cluster, rec: Recorder, steps: list, at=None):
    """Revisions strictly increase; added/removed replay to each set; each set is etcd's at its
    revision (nothing missed, nothing twice); every step (a set etcd had) was seen, in order.
    `at(revision)`: the registry's set then (default: etcd read at that revision)."""
    at = at or (lambda revision: from_etcd(cluster, rec.app, revision))
    seen = list(rec.seen)
    revisions = [s.revision for s in seen]
    assert revisions == sorted(set(revisions)), f"revisions not strictly increasing: {revisions}"
    state = {}
    for s in seen:
        for i in s.removed:
            assert i in state, f"revision {s.revision}: removed {i}, which it did not have"
            del state[i]
        state.update((e.instance_id, e) for e in s.added)
        assert {brief(e) for e in state.values()} == {brief(e) for e in s.endpoints}, s.revision
        assert {brief(e) for e in s.endpoints} == at(s.revision), f"the set at revision {s.revision} is not etcd's"
    sets = iter({brief(e) for e in s.endpoints} for s in seen)
    for step in steps:
        assert any(found == step for found in sets), f"step {sorted(x[0] for x in step)} was not seen in order"


class RegistryHistory:
    """Every change to the cluster's registry, from a watch of the test's own (a compaction does
    not touch a watch that keeps up, while it erases what a read at an old revision needs)."""

    def __init__(self, cluster):
        self.prefix = cluster.keys.services
        response = cluster.etcd.get_prefix_response(self.prefix)
        self.start = response.header.revision
        self.initial = {kv.key.decode(): kv.value for kv in response.kvs}
        self.events, self.broken = [], None    # (revision, key, value or None)
        cluster.etcd.add_watch_prefix_callback(self.prefix, self._on, start_revision=self.start + 1)

    def _on(self, response):
        if isinstance(response, Exception):
            self.broken = response
            return
        self.events.extend((e.mod_revision, e.key.decode(), None if isinstance(e, etcd_events.DeleteEvent) else e.value)
                           for e in response.events)

    def at(self, app: str, revision: int) -> set:
        assert self.broken is None and revision >= self.start, (self.broken, revision, self.start)
        time.sleep(0.05)                       # our own watch is a local hop behind at most
        values = dict(self.initial)
        for at, key, value in list(self.events):
            if at > revision:
                break
            values[key] = value
        entries = [types_pb2.ServiceEndpoint.FromString(v) for k, v in values.items()
                   if v is not None and k.startswith(f"{self.prefix}{app}/")]
        return {brief(e) for e in entries if resolvable(e)}


def scale_and_wait(cluster, resolver, rec, app: str, count: int, steps: list, timeout: float = 30):
    cluster.cli("scale", app, str(count))
    agreed = wait_for(lambda: (lambda s: s if len(s) == count and rec.seen and
                                {brief(e) for e in rec.seen[-1].endpoints} == s else None)(
                          all_agree(cluster, resolver, app)),
                      timeout, interval=0.2, what=f"{count} instances of {app} in etcd, the CLI, the client, its watch",
                      on_timeout=lambda: (from_etcd(cluster, app), rec.ids()))
    steps.append(agreed)


@pytest.fixture
def own_etcd():
    """An etcd of this test's own: it is restarted and compacted."""
    data_dir = tempfile.mkdtemp(prefix="gaia-test-discovery-etcd-")
    server = EtcdServer(data_dir=data_dir, name="gaia-discovery").start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def make_cluster(tmp_path, cluster_name):
    made = []

    def make(etcd_endpoint):
        c = LocalCluster(etcd_endpoint, cluster_name, tmp_path)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture
def resolvers():
    made = []

    def make(cluster):
        r = Resolver(cluster.name, etcd_endpoints=cluster.etcd_endpoints)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# ---- reached from elsewhere; health flips ----

def _default_sigint():
    """Ctrl-C as a user's terminal delivers it: a test run started in the background by a
    non-interactive shell ignores SIGINT (bash does that to `cmd &` without job control), and
    its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class CliWatch:
    """`gaia resolve APP --watch -o json`, its lines collected as they come."""

    def __init__(self, cluster, app: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "gaia_cli", "--cluster", cluster.name, "resolve", app,
                                      "--watch", "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=cluster._env(), cwd=ROOT, preexec_fn=_default_sigint)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@needs_netns
def test_resolve_cli_client_and_etcd_agree_each_endpoint_answers_and_unhealthy_ones_leave(
        etcd_server, make_cluster, resolvers, peer, tmp_path):
    tag = uuid.uuid4().hex[:8]
    subnet = f"10.214.{peer.host_ip.split('.')[2]}.0/24"      # the peer's random number: apart from others'
    net = {"host_ip": peer.host_ip, "network_bridge": f"gtb{tag}", "container_subnet": subnet}
    cluster = make_cluster(etcd_server.endpoint)
    cluster.start_master()
    cluster.start_node(**net)
    node_cfg = NodeConfig(cluster=cluster.name, state_dir=os.path.join(cluster.workdir, f"{cluster.name}-n1"),
                          network_bridge=net["network_bridge"], container_subnet=net["container_subnet"])
    watch = None
    try:
        cluster.wait_ready(nodes=1)
        flags = tmp_path / "flags"
        flags.mkdir()
        for i in ("0", "1"):
            (flags / f"ok-{i}").touch()
        submit(cluster, tmp_path, {
            "name": "web", "instances": 2, "ports": ["http"], "retry_times": 0,   # unhealthy: left running
            "command": [sys.executable, "-c", FLAG_SERVER, f"{flags}/ok-$GAIA_INSTANCE", "$GAIA_PORT_HTTP"],
            "resources": {"request": {"cpu": "50m", "memory": "32Mi"}},
            "health_check": {"kind": "http", "port": "http", "interval": "300ms", "failure_threshold": 2}})
        resolver = resolvers(cluster)
        agreed = wait_for(lambda: all_agree(cluster, resolver, "web", ids={"0", "1"}), 45, interval=0.3,
                          what="2 healthy instances of web in etcd, the CLI and the client")
        rec = Recorder(resolver, "web")
        watch = CliWatch(cluster, "web")
        wait_for(lambda: watch.lines, 15, what="the first line of `gaia resolve web --watch`")
        assert {e["instance_id"] for e in watch.lines[0]["endpoints"]} == {"0", "1"}

        for instance_id, host, ports, node_id, _ in agreed:    # reached from "another machine"
            assert host == peer.host_ip and node_id == f"{cluster.name}-n1"
            wait_for(lambda: http_get_in(peer.name, f"http://{host}:{dict(ports)['http']}/"), 15,
                     what=f"instance {instance_id} over HTTP from {peer.name}")

        (flags / "ok-1").unlink()                              # its check fails from now on
        wait_for(lambda: all_agree(cluster, resolver, "web", ids={"0"}), 15, interval=0.2,
                 what="instance 1 gone from etcd's resolvable set, the CLI and the client")
        wait_for(lambda: rec.ids() == {"0"}, 5, what="the watch to drop instance 1")
        wait_for(lambda: any(line["removed"] == ["1"] for line in watch.lines), 5, what="--watch to print the removal")
        (flags / "ok-1").touch()
        back = wait_for(lambda: all_agree(cluster, resolver, "web", ids={"0", "1"}), 15, interval=0.2,
                        what="instance 1 back everywhere")
        wait_for(lambda: rec.ids() == {"0", "1"}, 5, what="the watch to add instance 1 again")
        wait_for(lambda: [e["instance_id"] for e in watch.lines[-1]["added"]] == ["1"], 5,
                 what="--watch to print the addition")
        check_record(cluster, rec, [agreed, {e for e in agreed if e[0] == "0"}, back])
        assert back == agreed                                  # the same container, still running
        assert watch.stop() == 0
    finally:
        if watch is not None and watch.proc.poll() is None:
            watch.proc.kill()
        cluster.stop()
        teardown_network(node_cfg)


# ---- a killed node ----

def test_a_killed_nodes_instances_leave_within_its_lease_ttl(etcd_server, make_cluster, resolvers, tmp_path):
    cluster = make_cluster(etcd_server.endpoint)
    cluster.start_master()
    cluster.start_node()
    cluster.start_node()
    cluster.wait_ready(nodes=2)
    submit(cluster, tmp_path, sleeper("spread", 4, per_node=2))
    resolver = resolvers(cluster)
    before = wait_for(lambda: all_agree(cluster, resolver, "spread", ids={"0", "1", "2", "3"}), 45, interval=0.3,
                      what="4 instances of spread everywhere")
    rec = Recorder(resolver, "spread")
    wait_for(lambda: rec.seen, 5, what="the watch's first set")
    am_node = cluster.cli_json("status", "spread")["am"]["allocation"]["node_id"]
    victim = next(e[3] for e in before if e[3] != am_node)     # the AM lives on: it moves them after
    lost = {e for e in before if e[3] == victim}

    kill_node(cluster, victim)
    killed_at = time.monotonic()

    def gone():
        everywhere = [from_etcd(cluster, "spread"), from_client(resolver, "spread"), from_cli(cluster, "spread"),
                      {brief(e) for e in rec.seen[-1].endpoints}]
        return all(not (view & lost) for view in everywhere)

    wait_for(gone, LEASE_TTL + 4, interval=0.2, what=f"{victim}'s instances gone from every view")
    print(f"{victim}'s instances left every view {time.monotonic() - killed_at:.1f}s after the kill")
    # two per node: the lost ones cannot move, so the set stays what the other node runs
    assert wait_for(lambda: all_agree(cluster, resolver, "spread"), 5, what="the views to agree") == before - lost
    check_record(cluster, rec, [before, before - lost])


# ---- the watch through failover, etcd restart and compaction ----

def test_watch_survives_a_master_failover_and_compactions_without_missing_or_repeating_a_change(
        own_etcd, make_cluster, resolvers, tmp_path):
    cluster = make_cluster(own_etcd.endpoint)
    cluster.start_master()
    cluster.start_master()
    cluster.start_node()
    cluster.wait_ready(nodes=1)
    history = RegistryHistory(cluster)
    at = lambda revision: history.at("steps", revision)  # noqa: E731
    submit(cluster, tmp_path, sleeper("steps", 1))
    resolver = resolvers(cluster)
    steps = [wait_for(lambda: all_agree(cluster, resolver, "steps", ids={"0"}), 45, interval=0.3,
                      what="steps running")]
    rec = Recorder(resolver, "steps")
    wait_for(lambda: rec.seen, 5, what="the watch's first set")

    def compact():   # to etcd's newest revision: past the client's, whatever it is
        revision = cluster.etcd.get_prefix_response(cluster.keys.services).header.revision
        cluster.etcd.compact(revision)
        return revision

    for count in (3, 1, 2):                      # compact while the app changes
        cluster.cli("scale", "steps", str(count))
        time.sleep(0.3)
        compact()
        scale_and_wait(cluster, resolver, rec, "steps", count, steps)
    check_record(cluster, rec, steps, at)

    cluster.cli("scale", "steps", "3")
    time.sleep(0.3)
    cluster.leader_proc().send_signal(signal.SIGKILL)    # while it changes
    cursor = resolver._followers["steps"].revision       # what the stream resumes from, once a
    assert compact() >= cursor                            # new leader is elected (>= 2 s): compacted
    scale_and_wait(cluster, resolver, rec, "steps", 3, steps, timeout=40)
    check_record(cluster, rec, steps, at)


def test_watch_survives_an_etcd_restart(own_etcd, make_cluster, resolvers, tmp_path):
    cluster = make_cluster(own_etcd.endpoint)
    cluster.start_master()
    cluster.start_node()
    cluster.wait_ready(nodes=1)
    submit(cluster, tmp_path, sleeper("steady", 2))
    resolver = resolvers(cluster)
    steps = [wait_for(lambda: all_agree(cluster, resolver, "steady", ids={"0", "1"}), 45, interval=0.3,
                      what="steady running")]
    rec = Recorder(resolver, "steady")
    wait_for(lambda: rec.seen, 5, what="the watch's first set")

    own_etcd.stop()                              # same data dir, same port
    time.sleep(1.0)
    own_etcd.start()
    scale_and_wait(cluster, resolver, rec, "steady", 3, steps, timeout=40)
    scale_and_wait(cluster, resolver, rec, "steady", 1, steps)
    check_record(cluster, rec, steps)
    assert "node view watch broke" in cluster.log("master-1")   # its mirror was reloaded: a full list came
