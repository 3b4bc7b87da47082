"""Rolling updates through real etcd, a real master, node managers and AMs (process driver)."""
import os
import signal
import threading
import time

import pytest

from gaia_common.pb import master_pb2, types_pb2
from gaia_am.containers import counter_of
from tests.integration.harness import running_cluster, wait_for

RUNNING = types_pb2.CONTAINER_STATE_RUNNING
# Each version prints itself and sleeps; $V tells the versions apart in the process's environment.
APP = """\
name: {name}
instances: {n}
command: ['sh', '-c', '{command}']
env: {{V: "{v}"}}
resources: {{request: {{cpu: 10m, memory: 8Mi}}}}
retry_times: 2
update: {{max_unavailable: {mu}, health_gate: {gate}, gate_timeout: 20s}}
{extra}"""
SLEEP = "echo version $V; exec sleep 3600"


def write(tmp_path, name, v, n=4, mu=1, gate="1s", command=SLEEP, extra="") -> str:
    path = tmp_path / f"{name}-v{v}.yaml"
    path.write_text(APP.format(name=name, n=n, v=v, mu=mu, gate=gate, command=command, extra=extra))
    return str(path)


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=2) as c:
        yield c


def get(client, name) -> master_pb2.AppStatus:
    return client.call("GetApp", master_pb2.GetAppRequest(name=name))


def all_running(client, name, n, version=None):
    status = get(client, name)
    ok = len(status.instances) == n and all(
        v.status.state == RUNNING and (version is None or (v.status.version or 1) == version)
        for v in status.instances)
    return status if ok else None


def rollout_state(client, name, *states):
    status = get(client, name)
    return status if status.app.rollout.state in states else None


def versions(status) -> dict:
    """instance -> (allocation's version, its container's version, its container's counter)."""
    return {v.allocation.instance_id: (v.allocation.version or 1, v.status.version or 1,
                                       counter_of(v.status.container_id)) for v in status.instances}


def start(cluster, tmp_path, name, **kw):
    client = cluster.client(retry_for=10)
    cluster.cli("submit", write(tmp_path, name, 1, **kw))
    wait_for(lambda: all_running(client, name, kw.get("n", 4)), 45, what=f"{name} running")
    return client


class DownSampler(threading.Thread):
    """Samples how many instances are not running, every 50 ms, while a rollout goes on."""

    def __init__(self, client, name):
        super().__init__(daemon=True)
        self.client, self.name = client, name
        self.most, self.samples = 0, 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                status = get(self.client, self.name)
            except Exception:
                continue
            down = sum(1 for v in status.instances if not (v.HasField("status") and v.status.state == RUNNING))
            self.most, self.samples = max(self.most, down), self.samples + 1
            time.sleep(0.05)


def test_rolling_update_moves_every_instance_never_more_than_max_unavailable_down(cluster, tmp_path):
    client = start(cluster, tmp_path, "roll", mu=2)
    sampler = DownSampler(client, "roll")
    sampler.start()
    out = cluster.cli("update", "roll", write(tmp_path, "roll", 2, mu=2)).stdout
    assert "version 2" in out
    status = wait_for(lambda: rollout_state(client, "roll", "done", "failed", "rolled_back"), 60,
                      what="the rollout to end", on_timeout=lambda: get(client, "roll").app.rollout)
    sampler.halt.set()
    sampler.join()
    assert status.app.rollout.state == "done", status.app.rollout
    assert status.app.version == 2 and status.app.previous_version == 1
    status = wait_for(lambda: all_running(client, "roll", 4, version=2), 20, what="all on version 2")
    assert {i: v[:2] for i, v in versions(status).items()} == {str(i): (2, 2) for i in range(4)}
    assert all(counter == 1 for *_, counter in versions(status).values())   # each restarted once
    assert sampler.samples > 20 and 1 <= sampler.most <= 2, (sampler.samples, sampler.most)
    shown = cluster.cli("status", "roll").stdout
    assert "done: version 1 -> 2" in shown


@pytest.mark.parametrize("how", ["exits", "never_healthy"])
def test_a_version_failing_its_gate_rolls_back_by_itself(cluster, tmp_path, how):
    client = start(cluster, tmp_path, "bad", n=3)
    if how == "exits":
        bad = write(tmp_path, "bad", 2, n=3, command="echo version $V; exit 1")
    else:   # runs, but its health check never passes
        bad = write(tmp_path, "bad", 2, n=3, extra="health_check: {kind: exec, command: 'false', interval: 200ms, "
                                                    "failure_threshold: 1}\n")
    cluster.cli("update", "bad", bad)
    status = wait_for(lambda: rollout_state(client, "bad", "rolled_back", "failed", "done"), 60,
                      what="the rollout to end", on_timeout=lambda: get(client, "bad").app.rollout)
    assert status.app.rollout.state == "rolled_back", status.app.rollout
    assert status.app.version == 1 and list(status.app.versions) == [1]   # the bad version is pruned
    status = wait_for(lambda: all_running(client, "bad", 3, version=1), 30, what="all back on version 1")
    assert {i: v[:2] for i, v in versions(status).items()} == {str(i): (1, 1) for i in range(3)}
    # max_unavailable 1: only the first instance ever tried version 2
    assert [i for i, (*_, counter) in versions(status).items() if counter > 0] == ["0"]


def test_canary_on_two_instances(cluster, tmp_path):
    client = start(cluster, tmp_path, "can", mu=2)
    cluster.cli("update", "can", write(tmp_path, "can", 2, mu=2), "--instances", "1,3")
    status = wait_for(lambda: rollout_state(client, "can", "done", "failed", "rolled_back"), 45,
                      what="the canary to end", on_timeout=lambda: get(client, "can").app.rollout)
    assert status.app.rollout.state == "done" and status.app.version == 1
    status = wait_for(lambda: all_running(client, "can", 4), 20, what="all running")
    assert {i: v[:2] for i, v in versions(status).items()} == {"0": (1, 1), "1": (2, 2), "2": (1, 1), "3": (2, 2)}
    # promoting the canary's spec to every instance leaves the canaries alone
    cluster.cli("update", "can", write(tmp_path, "can", 2, mu=2))
    status = wait_for(lambda: rollout_state(client, "can", "done", "failed", "rolled_back"), 45, what="the promotion")
    status = wait_for(lambda: all_running(client, "can", 4, version=2), 20, what="all on version 2")
    assert {i: v[2] for i, v in versions(status).items()} == {"0": 1, "1": 1, "2": 1, "3": 1}


def test_am_killed_during_a_rolling_update_finishes_it_without_a_second_restart(cluster, tmp_path):
    client = start(cluster, tmp_path, "kam", n=4, mu=1, gate="2s")
    cluster.cli("update", "kam", write(tmp_path, "kam", 2, n=4, mu=1, gate="2s"))
    # kill the AM once the rollout is under way: one instance moved, others not yet
    wait_for(lambda: sum(1 for v in get(client, "kam").instances if v.allocation.version == 2) >= 2, 30,
             what="the rollout to be under way")
    status = get(client, "kam")
    assert status.app.rollout.state == "rolling"
    os.kill(status.am.status.pid, signal.SIGKILL)
    status = wait_for(lambda: rollout_state(client, "kam", "done", "failed", "rolled_back"), 75,
                      what="the rollout to end", on_timeout=lambda: get(client, "kam").app.rollout)
    assert status.app.rollout.state == "done", status.app.rollout
    assert status.app.am_attempt >= 2   # a new attempt finished it
    status = wait_for(lambda: all_running(client, "kam", 4, version=2), 20, what="all on version 2")
    assert {i: v[:2] for i, v in versions(status).items()} == {str(i): (2, 2) for i in range(4)}
    # every instance ran counter 0 (version 1), then counter 1 (version 2): restarted once
    assert {i: v[2] for i, v in versions(status).items()} == {str(i): 1 for i in range(4)}


def test_rollback_command_and_update_errors(cluster, tmp_path):
    client = start(cluster, tmp_path, "rb", n=2, mu=2)
    cluster.cli("update", "rb", write(tmp_path, "rb", 2, n=2, mu=2))
    wait_for(lambda: rollout_state(client, "rb", "done"), 45, what="the update")
    assert "rolling: version 2 -> 1" in cluster.cli("rollback", "rb").stdout
    status = wait_for(lambda: rollout_state(client, "rb", "done"), 45, what="the rollback")
    assert (status.app.version, status.app.previous_version) == (1, 2)
    wait_for(lambda: all_running(client, "rb", 2, version=1), 20, what="all on version 1")

    bad = cluster.cli("update", "rb", write(tmp_path, "rb", 3, n=2), "--instances", "0,9", check=False)
    assert bad.returncode == 2 and "instance_ids" in bad.stderr
    other = tmp_path / "other.yaml"
    other.write_text(open(write(tmp_path, "rb", 3, n=2)).read().replace("name: rb", "name: rb\npool: elsewhere"))
    bad = cluster.cli("update", "rb", str(other), check=False)
    assert bad.returncode == 2 and "pool" in bad.stderr
    cluster.cli("kill", "rb")
    bad = cluster.cli("update", "rb", write(tmp_path, "rb", 3, n=2), check=False)
    assert bad.returncode == 2 and "killed" in bad.stderr
