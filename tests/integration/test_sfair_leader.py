"""Sfair on the leading master, seen the way a user sees it: real etcd, a real master process,
40 hollow nodes (rack r0..r3: ten nodes each, zone z0/z1: every other node; 8 cpu, 32Gi each).

Hollow nodes report an AM RUNNING without running it, so each test asks for the instances
itself, exactly as gaia_am does (RequestContainers for the app's whole target, gang=spec.gang>0,
from the AM attempt the master placed). Everything asserted is read back through the CLI
(`gaia status`, `gaia nodes`) or, for "never visible", through an etcd watch on the grants.
"""
import collections
import threading
import time

import pytest

from gaia_common import quantity
from gaia_common.config import MasterConfig
from gaia_common.pb import master_pb2, types_pb2
from tests.integration.harness import LocalCluster, wait_for

NODES = 40
NODE_CPU = 8
LABELS = {"rack": "r{i/10}", "zone": "z{i%2}"}
AM_CPU_MILLIS = quantity.cpu_millis(MasterConfig().am_resources["cpu"])   # the master's default AM request


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    c = LocalCluster(etcd_server.endpoint, cluster_name, tmp_path)
    c.start_master()
    c.start_hollow(NODES, labels=LABELS, capacity={"cpu": NODE_CPU, "memory": "32Gi"})
    try:
        c.wait_ready(nodes=NODES)
        yield c
    finally:
        c.stop()


# ---- helpers ----

def submit(cluster, tmp_path, name: str, body: str) -> str:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: {name}\ncommand: ['sleep', '1000']\n{body}")
    return cluster.cli("submit", str(spec)).stdout.strip()


def status(cluster, name: str) -> dict:
    return cluster.cli_json("status", name)


def act_as_am(cluster, name: str) -> master_pb2.Grants:
    """What the app's AM would do if a hollow node ran it: register, then ask for the target."""
    client = cluster.client(retry_for=10)
    app = wait_for(lambda: (lambda a: a if a.am_attempt >= 1 else None)(
        client.call("GetApp", master_pb2.GetAppRequest(name=name)).app), 20, what=f"{name}'s AM placed")
    client.call("RegisterAM", master_pb2.RegisterAMRequest(app_id=app.app_id, attempt=app.am_attempt))
    return client.call("RequestContainers", master_pb2.ContainerRequest(
        app_id=app.app_id, attempt=app.am_attempt, target=app.spec.instances, resources=app.spec.resources,
        gang=app.spec.gang > 0, wait_seconds=1.0))


def held(cluster, name: str, count: int, timeout: float = 20):
    """Wait until `name` holds exactly `count` instances; its status."""
    return wait_for(lambda: (lambda s: s if len(s["instances"]) == count else None)(status(cluster, name)),
                    timeout, interval=0.3, what=f"{name} to hold {count} instances",
                    on_timeout=lambda: _brief(status(cluster, name)))


def stays(cluster, name: str, count: int, seconds: float = 3.0):
    """Several scheduling cycles (1 s apart) later it still holds `count`: nothing more came."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s = status(cluster, name)
        assert len(s["instances"]) == count, _brief(s)
        time.sleep(0.5)
    return s


def _brief(s: dict) -> str:
    return f"{len(s['instances'])} instances; message: {s['app']['message']!r}"


def node_labels(cluster) -> dict:
    return {n["info"]["node_id"]: n["info"]["labels"] for n in cluster.cli_json("nodes")["nodes"]}


def instance_nodes(s: dict) -> list:
    return [i["allocation"]["node_id"] for i in s["instances"]]


class GrantWatch:
    """Every put/delete under allocations/ from before the test acts, with its etcd revision."""

    def __init__(self, etcd, keys):
        self.prefix = keys.allocations
        self.events = []                # (revision, "put" | "delete", app_id, instance_id, Allocation | None)
        self.lock = threading.Lock()
        self.errors = []
        self.etcd = etcd
        self.watch_id = etcd.add_watch_prefix_callback(self.prefix, self._on)

    def _on(self, response):
        if isinstance(response, Exception):
            self.errors.append(response)
            return
        with self.lock:
            for e in response.events:
                app_id, instance_id = e.key.decode()[len(self.prefix):].split("/", 1)
                if e.value:
                    alloc = types_pb2.Allocation()
                    alloc.ParseFromString(e.value)
                    self.events.append((e.mod_revision, "put", app_id, instance_id, alloc))
                else:
                    self.events.append((e.mod_revision, "delete", app_id, instance_id, None))

    def of(self, app_id: str, instances_only: bool = True) -> list:
        with self.lock:
            return [e for e in self.events if e[2] == app_id and not (instances_only and e[3] == "am")]

    def close(self):
        self.etcd.cancel_watch(self.watch_id)
        assert not self.errors, self.errors


# ---- 1. placement constraints ----

def test_constraints_and_spread_are_honoured(cluster, tmp_path):
    labels = node_labels(cluster)
    assert len(labels) == NODES

    # rack in [r1, r2] (20 nodes) and anti-affinity one per node: 15 instances on 15 distinct nodes
    submit(cluster, tmp_path, "pinned", "instances: 15\nmax_per_node: 1\n"
           "constraints: [{label: rack, op: in, values: [r1, r2]}]\n"
           "resources: {request: {cpu: 500m, memory: 256Mi}}\n")
    act_as_am(cluster, "pinned")
    nodes = instance_nodes(held(cluster, "pinned", 15))
    assert len(set(nodes)) == 15, nodes
    assert {labels[n]["rack"] for n in nodes} <= {"r1", "r2"}, {n: labels[n] for n in nodes}

    # spread over zones with at most 3 per zone: 3 in z0, 3 in z1, and the other 4 wait, saying why
    submit(cluster, tmp_path, "spread", "instances: 10\nspread_by: zone\nmax_per_domain: 3\n"
           "resources: {request: {cpu: 500m, memory: 256Mi}}\n")
    act_as_am(cluster, "spread")
    wait_for(lambda: "per zone" in status(cluster, "spread")["app"]["message"], 20, interval=0.3,
             what="spread's pending reason", on_timeout=lambda: _brief(status(cluster, "spread")))
    s = stays(cluster, "spread", len(status(cluster, "spread")["instances"]), 2.0)
    per_zone = collections.Counter(labels[n]["zone"] for n in instance_nodes(s))
    assert set(per_zone) <= {"z0", "z1"} and max(per_zone.values()) <= 3, per_zone
    assert sum(per_zone.values()) == 6, per_zone      # the AM takes no slot of the spread
    assert "waiting for capacity" in s["app"]["message"] and "spread-domain" in s["app"]["message"], s["app"]


def test_spread_counts_instances_not_the_am(cluster, tmp_path):
    """The AM's own allocation takes none of the app's spread slots: 3 + 3 over two zones."""
    labels = node_labels(cluster)
    submit(cluster, tmp_path, "even", "instances: 6\nspread_by: zone\nmax_per_domain: 3\n"
           "resources: {request: {cpu: 500m, memory: 256Mi}}\n")
    act_as_am(cluster, "even")
    s = held(cluster, "even", 6, timeout=6)
    assert collections.Counter(labels[n]["zone"] for n in instance_nodes(s)) == {"z0": 3, "z1": 3}


# ---- 2. gang: all or nothing, never half visible ----

def test_gang_is_all_or_nothing_and_never_half_granted(cluster, tmp_path, etcd):
    rack0 = "constraints: [{label: rack, op: in, values: [r0]}]\n"
    big = "resources: {request: {cpu: 7, memory: 1Gi}}\n"   # one per 8-cpu node, AMs or not
    # hog holds 7 of rack r0's 10 nodes
    submit(cluster, tmp_path, "hog", "instances: 7\n" + rack0 + big)
    act_as_am(cluster, "hog")
    held(cluster, "hog", 7)

    watch = GrantWatch(etcd, cluster.keys)
    try:
        app_id = submit(cluster, tmp_path, "train", "instances: 4\ngang: 4\n" + rack0 + big)
        grants = act_as_am(cluster, "train")
        assert list(grants.allocations) == [] and grants.pending == 4
        s = wait_for(lambda: (lambda s: s if "gang" in s["app"]["message"] else None)(status(cluster, "train")),
                     20, interval=0.3, what="the gang's pending reason",
                     on_timeout=lambda: _brief(status(cluster, "train")))
        message = s["app"]["message"]
        assert message.startswith("waiting for capacity: 4 of 4 pending: gang of 4: only 3 fit"), message
        assert "labels: 30 removed" in message and "3 of 40 nodes left" in message, message
        stays(cluster, "train", 0, 3.0)                          # several cycles: still nothing held
        assert watch.of(app_id) == [], watch.of(app_id)          # and no grant of it was ever written
        assert "gang of 4: only 3 fit" in cluster.cli("status", "train").stdout

        cluster.cli("kill", "hog")                               # frees 7 nodes of r0
        s = held(cluster, "train", 4)
        nodes = instance_nodes(s)
        assert len(set(nodes)) == 4 and s["app"]["message"] == "", s["app"]
        wait_for(lambda: len(watch.of(app_id)) >= 4, 10, what="the watch to see the grants")
        time.sleep(1.0)                                          # anything later would show too
    finally:
        watch.close()
    events = watch.of(app_id)
    assert all(kind == "put" for _, kind, *_ in events), events
    by_revision = collections.defaultdict(set)
    for revision, _, _, instance_id, _ in events:
        by_revision[revision].add(instance_id)
    # one etcd revision (one transaction) made all four visible at once; none before or after
    assert list(by_revision.values()) == [{"0", "1", "2", "3"}], dict(by_revision)


# ---- 3. max quota ----

def test_pool_max_quota_is_never_exceeded(cluster, tmp_path, etcd):
    cluster.cli("pool", "create", "--path", "capped", "--max", "cpu=4")
    watch = GrantWatch(etcd, cluster.keys)
    try:
        app_id = submit(cluster, tmp_path, "greedy", "instances: 10\npool: capped\n"
                        "resources: {request: {cpu: 1, memory: 256Mi}}\n")
        act_as_am(cluster, "greedy")
        # the pool's 4 cpu hold the AM too: (4000 - 100) // 1000 = 3 instances
        first = (4000 - AM_CPU_MILLIS) // 1000
        held(cluster, "greedy", first)
        s = stays(cluster, "greedy", first, 3.0)
        assert "quota: pool 'capped' max cpu_millis reached" in s["app"]["message"], s["app"]
        assert s["app"]["message"].startswith("waiting for capacity: "), s["app"]
        assert "quota: pool 'capped'" in cluster.cli("status", "greedy").stdout
        assert _peak_cpu(watch.of(app_id, instances_only=False)) <= 4000

        cluster.cli("pool", "update", "--path", "capped", "--max", "cpu=8")
        more = (8000 - AM_CPU_MILLIS) // 1000
        held(cluster, "greedy", more)
        s = stays(cluster, "greedy", more, 2.0)
        assert "quota: pool 'capped' max cpu_millis reached" in s["app"]["message"], s["app"]
    finally:
        watch.close()
    assert _peak_cpu(watch.of(app_id, instances_only=False)) <= 8000


def _peak_cpu(events: list) -> int:
    """The most cpu the app's grants (AM included) ever held at once, revision by revision."""
    held_now, peak = {}, 0
    for revision in sorted({e[0] for e in events}):
        for _, kind, _, instance_id, alloc in (e for e in events if e[0] == revision):
            if kind == "put":
                held_now[instance_id] = alloc.request.cpu_millis
            else:
                held_now.pop(instance_id, None)
        peak = max(peak, sum(held_now.values()))
    return peak


# ---- 4. why it waits ----

def test_pending_app_says_why_per_filter(cluster, tmp_path):
    submit(cluster, tmp_path, "huge", "instances: 2\nconstraints: [{label: rack, op: in, values: [r1]}]\n"
           "resources: {request: {cpu: 1, memory: 1Ti}}\n")
    act_as_am(cluster, "huge")
    expected = ("waiting for capacity: 2 of 2 pending: labels: 30 removed (labels do not match rack in r1); "
                "fits: 10 removed (short of memory_bytes); 0 of 40 nodes left")
    s = wait_for(lambda: (lambda s: s if s["app"]["message"].startswith("waiting for capacity") else None)(
        status(cluster, "huge")), 20, interval=0.3, what="huge's pending reason")
    assert s["app"]["message"] == expected, s["app"]["message"]
    assert s["instances"] == []
    table = cluster.cli("status", "huge").stdout
    assert "labels: 30 removed" in table and "fits: 10 removed (short of memory_bytes)" in table, table


# ---- 5. fair share between pools ----

def test_two_pools_share_a_contended_cluster_by_weight(cluster, tmp_path):
    cluster.cli("pool", "create", "--path", "heavy", "--weight", "3")
    cluster.cli("pool", "create", "--path", "light", "--weight", "1")
    small = "resources: {request: {cpu: 1, memory: 256Mi}}\n"
    submit(cluster, tmp_path, "a", "instances: 400\npool: heavy\n" + small)
    submit(cluster, tmp_path, "b", "instances: 400\npool: light\n" + small)
    # their AMs first, then a hog (pool default) takes the rest of the cluster
    for name in ("a", "b"):
        wait_for(lambda: status(cluster, name)["app"]["am_attempt"] >= 1, 20, interval=0.3, what=f"{name}'s AM")
    submit(cluster, tmp_path, "hog", "instances: 400\n" + small)
    act_as_am(cluster, "hog")
    wait_for(lambda: len(status(cluster, "hog")["instances"]) >= NODES * NODE_CPU - 3, 30, interval=0.5,
             what="hog to fill the cluster")
    # both ask while nothing is free, so both are pending in the cycle that follows the kill
    act_as_am(cluster, "a")
    act_as_am(cluster, "b")
    assert status(cluster, "a")["instances"] == [] and status(cluster, "b")["instances"] == []
    cluster.cli("kill", "hog")

    def settled():
        counts = (len(status(cluster, "a")["instances"]), len(status(cluster, "b")["instances"]))
        return counts if sum(counts) >= NODES * NODE_CPU - 2 else None
    a, b = wait_for(settled, 30, interval=0.5, what="the cluster to fill again",
                    on_timeout=lambda: (_brief(status(cluster, "a")), _brief(status(cluster, "b"))))
    total = a + b
    # weights 3 : 1 of 318 cpu: 238.5 : 79.5, within a few containers
    assert abs(a - 0.75 * total) <= 6, (a, b)
    assert stays(cluster, "a", a, 2.0) and len(status(cluster, "b")["instances"]) == b


# ---- 6. preemption: a higher priority takes from a lower one of the same pool ----

def test_higher_priority_preempts_the_newest_lower_priority_instances(cluster, tmp_path):
    seven = "resources: {request: {cpu: 7, memory: 1Gi}}\n"          # one per 8-cpu node
    submit(cluster, tmp_path, "low", f"instances: {NODES}\npriority: 0\n{seven}")
    act_as_am(cluster, "low")
    held(cluster, "low", NODES)
    submit(cluster, tmp_path, "high", f"instances: 3\npriority: 5\n{seven}")
    act_as_am(cluster, "high")
    s = held(cluster, "high", 3)
    low = held(cluster, "low", NODES - 3)
    kept = {i["allocation"]["instance_id"] for i in low["instances"]}
    assert kept == {str(i) for i in range(NODES - 3)}, sorted(set(map(str, range(NODES))) - kept)
    # each preemptor sits where a victim was: no node holds two 7-cpu instances
    assert not set(instance_nodes(s)) & set(instance_nodes(low))


# ---- 7. grants written while Sfair decides ----

def test_grants_streamed_in_parts_land_numbered_with_the_record_last(etcd_server, cluster_name, tmp_path, etcd):
    """A master that hands Sfair's placements to the writer every 4 instances: an app's 60
    grants reach etcd in transactions of their own, instance ids 0-59 each once, and the
    record (next_instance 60) in another (written whole, the record would share theirs; the
    two may commit in either order)."""
    c = LocalCluster(etcd_server.endpoint, cluster_name, tmp_path)
    c.start_master(schedule_stream_every=4)
    c.start_hollow(NODES, labels=LABELS, capacity={"cpu": NODE_CPU, "memory": "32Gi"})
    try:
        c.wait_ready(nodes=NODES)
        watch = GrantWatch(etcd, c.keys)
        try:
            app_id = submit(c, tmp_path, "wide", "instances: 60\nresources: {request: {cpu: 1, memory: 1Gi}}\n"
                            "max_per_node: 2\n")
            act_as_am(c, "wide")
            s = held(c, "wide", 60)
            wait_for(lambda: len(watch.of(app_id)) >= 60, 10, what="the watch to see the grants")
        finally:
            watch.close()
        assert sorted((i["allocation"]["instance_id"] for i in s["instances"]), key=int) == [str(i) for i in range(60)]
        assert max(collections.Counter(instance_nodes(s)).values()) <= 2
        events = watch.of(app_id)
        assert sorted(int(e[3]) for e in events) == list(range(60))        # each granted once
        revisions = {e[0] for e in events}
        value, meta = etcd.get(c.keys.app("wide"))
        record = types_pb2.AppRecord.FromString(value)
        assert record.next_instance == 60 and meta.mod_revision not in revisions, (meta.mod_revision, revisions)
    finally:
        c.stop()
