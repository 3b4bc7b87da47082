"""Events, retry counting and the AM's watch stream, on real etcd, masters, nodes and AMs."""
import os
import signal
import sys
import threading
import time

import pytest

from gaia_common.pb import master_pb2, types_pb2
from tests.integration.harness import running_cluster, wait_for


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=1) as c:
        yield c


def submit(cluster, tmp_path, name, body):
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: {name}\n{body}")
    return cluster.cli("submit", str(spec)).stdout.strip()


def status(cluster, name):
    return cluster.cli_json("status", name)


def charged(s, instance="0"):
    return next((i["allocation"]["charged"] for i in s["instances"] if i["allocation"]["instance_id"] == instance), 0)


def kill_am(cluster, name, attempt):
    """SIGKILL the AM of `attempt` once it runs; returns its pid."""
    def running_am():
        am = status(cluster, name).get("am", {})
        st = am.get("status", {})
        ok = am.get("allocation", {}).get("attempt") == attempt and st.get("state") == "CONTAINER_STATE_RUNNING"
        return st.get("pid") if ok else None
    pid = wait_for(running_am, 30, what=f"AM attempt {attempt} running")
    os.kill(pid, signal.SIGKILL)
    return pid


def test_crash_loop_stops_at_retry_times_and_the_count_survives_an_am_kill(cluster, tmp_path):
    submit(cluster, tmp_path, "crashy", "instances: 1\nretry_times: 4\ncommand: ['sh', '-c', 'exit 1']\n")
    # midway (2 failures charged), the AM dies; the next attempt counts on from the persisted 2
    wait_for(lambda: charged(status(cluster, "crashy")) >= 2, 40, what="2 charged failures")
    kill_am(cluster, "crashy", 1)
    final = wait_for(lambda: (lambda s: s if any(e["kind"] == "failed" for e in s["events"]) else None)(
        status(cluster, "crashy")), 70, what="the instance out of retries",
        on_timeout=lambda: cluster.cli("events", "crashy").stdout)
    assert final["app"]["state"] == "APP_STATE_RUNNING"        # a service goes on; its instance stays failed
    assert final["app"]["am_attempt"] == 2
    instance = final["instances"][0]
    assert charged(final) == 5                                 # 1 run + 4 retries, each charged once
    assert instance["status"]["container_id"].endswith(".0.4")
    assert instance["status"]["state"] == "CONTAINER_STATE_FAILED"
    time.sleep(2)                                              # and it stays that way
    again = status(cluster, "crashy")
    assert charged(again) == 5 and again["instances"][0]["status"]["container_id"].endswith(".0.4")

    listed = cluster.cli_json("events", "crashy")["events"]
    charges = [e for e in listed if e["kind"] == "restart" and not e["platform"]]
    assert [e["message"].split(":")[0].rsplit(".", 1)[1] for e in charges] == ["0", "1", "2", "3", "4"]
    assert all(e["cause"] == "exit 1" for e in charges)
    kinds = [e["kind"] for e in listed]
    assert "am.restart" in kinds and kinds[-1] == "failed"
    restart = next(e for e in listed if e["kind"] == "am.restart")
    assert "AM attempt 1 ended" in restart["cause"] and restart["am_attempt"] == 2
    assert "failed 5 times, retry_times is 4" in listed[-1]["message"]
    # the table of `gaia status` shows the reason, `gaia events --instance` the instance's
    assert "failed 5 times, retry_times is 4" in cluster.cli("status", "crashy").stdout
    mine = cluster.cli_json("events", "crashy", "--instance", "0", "-n", "2")["events"]
    assert [e["kind"] for e in mine] == ["restart", "failed"]
    assert "charged 5, retry_times 4" in cluster.cli("events", "crashy").stdout


def test_an_am_that_keeps_dying_fails_the_app_at_am_attempts(cluster, tmp_path):
    submit(cluster, tmp_path, "fragile", "instances: 1\nam_attempts: 2\ncommand: ['sleep', '600']\n")
    kill_am(cluster, "fragile", 1)
    kill_am(cluster, "fragile", 2)
    final = wait_for(lambda: (lambda s: s if s["app"]["state"] == "APP_STATE_FAILED" else None)(
        status(cluster, "fragile")), 30, what="the app to fail")
    assert "ApplicationMaster failed 2 times; last: AM attempt 2 ended" in final["app"]["message"]
    events = [e for e in cluster.cli_json("events", "fragile")["events"] if e["kind"] != "scale"]
    assert [e["kind"] for e in events] == ["am.restart", "failed"]
    assert events[0]["am_attempt"] == 2 and not events[0]["platform"]
    assert "ApplicationMaster failed 2 times" in events[1]["message"]
    assert "ApplicationMaster failed 2 times" in cluster.cli("status", "fragile").stdout


def test_batch_success_and_failure(cluster, tmp_path):
    submit(cluster, tmp_path, "once", "kind: batch\ninstances: 2\ncommand: ['sh', '-c', 'exit 0']\n")
    submit(cluster, tmp_path, "flaky", "kind: batch\ninstances: 1\nretry_times: 1\ncommand: ['sh', '-c', 'exit 3']\n")
    wait_for(lambda: status(cluster, "once")["app"]["state"] == "APP_STATE_SUCCEEDED", 40, what="once to succeed")
    failed = wait_for(lambda: (lambda s: s if s["app"]["state"] == "APP_STATE_FAILED" else None)(
        status(cluster, "flaky")), 40, what="flaky to fail")
    assert "instance 0 failed 2 times (exit 3)" in failed["app"]["message"]
    once = cluster.cli_json("events", "once")["events"]
    assert [(e["kind"], e["message"]) for e in once] == [("scale", "granted instances 0,1 (of 2)")]   # no restart
    events = wait_for(lambda: (lambda e: e if e and e[-1]["kind"] == "failed" else None)(
        cluster.cli_json("events", "flaky")["events"]), 10, what="flaky's failed event")
    assert [(e["kind"], e["cause"]) for e in events] == [
        ("scale", "scale up"), ("restart", "exit 3"), ("restart", "exit 3"), ("failed", "exit 3")]
    table = cluster.cli("events", "flaky").stdout
    assert table.splitlines()[0].split() == ["TIME", "KIND", "INSTANCE", "CAUSE", "CHARGED", "MESSAGE"]


def test_watch_app_delivers_a_container_change_within_a_second(cluster, tmp_path):
    app_id = submit(cluster, tmp_path, "watched",
                    f"instances: 1\nretry_times: 5\ncommand: ['{sys.executable}', '-c', 'import time; time.sleep(600)']\n")
    pid = wait_for(lambda: (lambda s: s["instances"][0]["status"]["pid"]
                            if s["instances"] and s["instances"][0].get("status", {}).get("state") == "CONTAINER_STATE_RUNNING"
                            else None)(status(cluster, "watched")), 40, what="the instance running")
    written = {}

    def on_etcd(response):   # when the node's FAILED status reaches etcd
        for event in getattr(response, "events", []):
            value = types_pb2.ContainerStatus()
            value.ParseFromString(event.value)
            if value.state == types_pb2.CONTAINER_STATE_FAILED:
                written.setdefault("at", time.monotonic())

    watch_id = cluster.etcd.add_watch_prefix_callback(cluster.keys.containers + app_id + "/", on_etcd)
    client = cluster.client()
    received = {}
    stream = client.stream("WatchApp", master_pb2.WatchAppRequest(app_id=app_id))

    def follow():
        for s in stream:
            if s.instances and s.instances[0].status.state == types_pb2.CONTAINER_STATE_FAILED:
                received.setdefault("at", time.monotonic())
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(0.5)   # the stream is open and has sent the current status
    try:
        os.kill(pid, signal.SIGKILL)
        thread.join(20)
        assert "at" in received and "at" in written, (received, written)
        assert received["at"] - written["at"] < 1.0
    finally:
        cluster.etcd.cancel_watch(watch_id)
        stream.close()


@pytest.mark.parametrize("how", ["kill", "pause"])
def test_the_am_follows_a_new_leader(etcd_server, cluster_name, tmp_path, how):
    """After the leader dies (or hangs: its streams go silent), the AM's watch finds the new
    leader: a failed instance is still restarted, and its failure charged once."""
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, masters=2, nodes=1) as cluster:
        submit(cluster, tmp_path, "steady", "instances: 1\nretry_times: 3\ncommand: ['sleep', '600']\n")
        first = wait_for(lambda: (lambda s: s if s["instances"] and s["instances"][0].get("status", {}).get("state")
                                  == "CONTAINER_STATE_RUNNING" else None)(status(cluster, "steady")), 40,
                         what="the instance running")
        old = cluster.leader_proc()
        os.killpg(old.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        try:
            wait_for(lambda: cluster.leader() and cluster.leader_proc() is not old, 30, what="a new leader")
            os.kill(first["instances"][0]["status"]["pid"], signal.SIGKILL)
            # kill: the stream breaks at once; pause: it is silent until the AM's watchdog (12 s)
            restarted = wait_for(lambda: (lambda s: s if s["instances"][0].get("status", {}).get("container_id", "")
                                          .endswith(".0.1") else None)(status(cluster, "steady")), 40,
                                 what="the instance restarted by the AM")
            assert charged(restarted) == 1 and restarted["app"]["am_attempt"] == 1   # the same AM
        finally:
            if how == "pause":
                os.killpg(old.pid, signal.SIGCONT)
