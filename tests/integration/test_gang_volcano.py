"""The Volcano case: several distributed training jobs that each need all their tasks at once,
on a cluster with room for only two of them at a time.

Five jobs, each 2 parameter servers + 4 workers (one batch app of 6 instances, gang: 6), on two
real node managers (process driver, real AMs) whose capacity is overridden so that exactly two
jobs fit: 2 x 6.5 cpu, less the five AMs' 5 x 100m, is 12 instances of 1 cpu. Without gangs
the jobs would each take part of the room and wait for the rest forever; with them, two jobs run,
finish, and make room for the next. An etcd watch on the grants checks, revision by revision,
that no job ever holds part of its set, and ListApps samples what `gaia status` shows meanwhile.
"""
import collections
import threading
import time

import pytest

from gaia_common.pb import master_pb2, types_pb2
from tests.integration.harness import LocalCluster, wait_for

JOBS = 5
TASKS = 6                  # 2 ps + 4 workers
JOB = """\
name: {name}
kind: batch
instances: 6
gang: 6
network: host
retry_times: 0
# instances 0 and 1 are the parameter servers, 2-5 the workers
command: ["sh", "-c", "case $GAIA_INSTANCE in 0|1) sleep 3;; *) sleep 2;; esac"]
resources:
  request: {{cpu: 1, memory: 32Mi}}
"""
TIME_LIMIT = 150.0


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    c = LocalCluster(etcd_server.endpoint, cluster_name, tmp_path)
    try:
        c.start_master()
        for _ in range(2):
            c.start_node(capacity={"cpu": "6500m", "memory": "4Gi"})
        c.wait_ready(nodes=2)
        yield c
    finally:
        c.stop()


class Grants:
    """Instance grants per app, after every etcd revision under allocations/."""

    def __init__(self, etcd, prefix: str):
        self.prefix = prefix
        self.lock = threading.Lock()
        self.events = []                  # (revision, app_id, instance_id, put?)
        self.errors = []
        self.etcd = etcd
        self.watch_id = etcd.add_watch_prefix_callback(prefix, self._on)

    def _on(self, response):
        if isinstance(response, Exception):
            self.errors.append(response)
            return
        with self.lock:
            for e in response.events:
                app_id, instance_id = e.key.decode()[len(self.prefix):].split("/", 1)
                if instance_id != "am":
                    self.events.append((e.mod_revision, app_id, instance_id, bool(e.value)))

    def history(self) -> list:
        """[(revision, {app_id: instances held after it})], in revision order."""
        with self.lock:
            events = sorted(self.events)
        held = collections.defaultdict(set)
        out = []
        for revision in sorted({e[0] for e in events}):
            for _, app_id, instance_id, put in (e for e in events if e[0] == revision):
                (held[app_id].add if put else held[app_id].discard)(instance_id)
            out.append((revision, {a: len(i) for a, i in held.items() if i}))
        return out

    def close(self):
        self.etcd.cancel_watch(self.watch_id)
        assert not self.errors, self.errors


def test_five_gang_jobs_on_room_for_two_all_succeed_without_partial_holds(cluster, tmp_path, etcd):
    started = time.monotonic()
    grants = Grants(etcd, cluster.keys.allocations)
    client = cluster.client(retry_for=10)
    samples = []                      # (seconds, {job: instances held}) as `gaia status` shows them
    try:
        names = [f"job{k}" for k in range(1, JOBS + 1)]
        for name in names:
            spec = tmp_path / f"{name}.yaml"
            spec.write_text(JOB.format(name=name))
            cluster.cli("submit", str(spec))

        def list_apps() -> dict:
            return {a.app.spec.name: a for a in client.call("ListApps", master_pb2.ListAppsRequest()).apps}

        # sample until all succeed; a partial hold or a failure fails at once (not "not yet")
        while True:
            apps = list_apps()
            held = {n: len(apps[n].instances) for n in names}
            samples.append((time.monotonic() - started, held))
            for name, count in held.items():
                assert count in (0, TASKS), f"{name} holds {count} of its {TASKS} tasks: {apps[name]}"
                assert apps[name].app.state != types_pb2.APP_STATE_FAILED, apps[name].app
            if all(apps[n].app.state == types_pb2.APP_STATE_SUCCEEDED for n in names):
                break
            assert time.monotonic() - started < TIME_LIMIT, (
                "jobs stuck (deadlock?): " + "; ".join(f"{n} {types_pb2.AppState.Name(a.app.state)} "
                                                       f"{len(a.instances)} held: {a.app.message}"
                                                       for n, a in sorted(apps.items())))
            time.sleep(0.25)
        wait_for(lambda: grants.history() and not grants.history()[-1][1], 10,
                 what="the watch to see every grant released")
    finally:
        grants.close()

    for name in names:
        status = cluster.cli_json("status", name)
        assert status["app"]["state"] == "APP_STATE_SUCCEEDED", status["app"]
        assert status["app"]["message"] == f"all {TASKS} instances exited 0"
        assert status["instances"] == []                        # a finished job holds nothing

    history = grants.history()
    # at no revision did any job hold part of its set, and never more than two jobs held theirs
    for revision, held in history:
        assert set(held.values()) <= {TASKS}, (revision, held)
        assert len(held) <= 2, (revision, held)
    with grants.lock:
        put_revisions = collections.defaultdict(set)
        for revision, app_id, _, put in grants.events:
            if put:
                put_revisions[app_id].add(revision)
    # each job's six grants were written once, together, in one transaction
    assert len(put_revisions) == JOBS and all(len(r) == 1 for r in put_revisions.values()), dict(put_revisions)
    assert max(len(held) for _, held in history) == 2            # and two ran side by side
    assert any(sum(1 for c in s.values() if c) == 2 for _, s in samples), samples
    assert time.monotonic() - started < TIME_LIMIT
