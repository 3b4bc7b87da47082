"""Per-instance control, scaling by id and autoscaling, through the real CLI, master, node,
AM and etcd (process driver): the instances named change, the others keep running untouched."""
import sys
import time

import psutil
import pytest

from tests.integration.harness import running_cluster, wait_for

SLEEPER = "name: {name}\ninstances: {instances}\nretry_times: 0\ncommand: ['sleep', '1000']\n" \
          "resources: {{request: {{cpu: 50m, memory: 32Mi}}}}\n"
# Burns cpu while LOAD_FILE exists, in 0.2 s slices, so removing the file ends the load at once.
BURN = """\
import os, time
while True:
    end = time.time() + 0.2
    if os.path.exists(os.environ["LOAD_FILE"]):
        while time.time() < end:
            pass
    else:
        time.sleep(0.2)
"""
BURNER = """\
name: burner
instances: 1
command: ["{python}", "{script}"]
env: {{LOAD_FILE: "{load}"}}
resources:
  request: {{cpu: 200m, memory: 64Mi}}
  limit: {{cpu: 300m, memory: 128Mi}}
autoscale: {{min: 1, max: 3, target: 50, cooldown: 3}}
"""


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    with running_cluster(etcd_server.endpoint, cluster_name, tmp_path, nodes=1) as c:
        yield c


def submit(cluster, tmp_path, name, text):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    cluster.cli("submit", str(path))


def views(cluster, name) -> dict:
    """instance id -> its InstanceView (JSON) in `gaia status`."""
    return {v["allocation"]["instance_id"]: v for v in cluster.cli_json("status", name)["instances"]}


def containers(cluster, name) -> dict:
    """instance id -> (container id, pid) of every instance whose container runs."""
    return {i: (v["status"]["container_id"], v["status"]["pid"]) for i, v in views(cluster, name).items()
            if v.get("status", {}).get("state") == "CONTAINER_STATE_RUNNING"}


def all_running(cluster, name, ids):
    running = containers(cluster, name)
    return running if set(running) == set(ids) and set(views(cluster, name)) == set(ids) else None


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_scale_down_by_instance_id_removes_exactly_those(cluster, tmp_path):
    submit(cluster, tmp_path, "sleepy", SLEEPER.format(name="sleepy", instances=4))
    before = wait_for(lambda: all_running(cluster, "sleepy", "0123"), 60, what="4 running instances")

    bad = cluster.cli("scale", "sleepy", "2", "--instances", "0", check=False)
    assert bad.returncode == 2 and "instance_ids" in bad.stderr and "removes 2" in bad.stderr
    bad = cluster.cli("scale", "sleepy", "3", "--instances", "9", check=False)
    assert bad.returncode == 2 and "no instance 9" in bad.stderr

    cluster.cli("scale", "sleepy", "2", "--instances", "0,2")
    after = wait_for(lambda: all_running(cluster, "sleepy", "13"), 30, what="instances 1 and 3 only")
    assert after == {i: before[i] for i in "13"}      # same containers, same processes
    wait_for(lambda: gone(before["0"][1]) and gone(before["2"][1]), 15, what="instances 0 and 2 to stop")
    status = cluster.cli_json("status", "sleepy")
    assert status["app"]["spec"]["instances"] == 2 and status["app"]["remove_instances"] == []
    time.sleep(2)                                      # and the AM does not grow it back
    assert containers(cluster, "sleepy") == after


def test_stop_start_restart_delete_touch_only_the_named(cluster, tmp_path):
    submit(cluster, tmp_path, "ctl", SLEEPER.format(name="ctl", instances=3))   # retry_times 0
    before = wait_for(lambda: all_running(cluster, "ctl", "012"), 60, what="3 running instances")

    bad = cluster.cli("instance", "stop", "ctl", "7", check=False)
    assert bad.returncode == 2 and "instance_ids" in bad.stderr

    # stop 1: stopped, shown as stopped, not restarted; 0 and 2 untouched
    cluster.cli("instance", "stop", "ctl", "1")
    wait_for(lambda: views(cluster, "ctl")["1"]["status"]["state"] == "CONTAINER_STATE_STOPPED", 20,
             what="instance 1 stopped")
    wait_for(lambda: gone(before["1"][1]), 10, what="instance 1's process to end")
    table = cluster.cli("status", "ctl").stdout
    assert any(line.split()[:1] == ["1"] and "stopped" in line.split() for line in table.splitlines()), table
    time.sleep(2)
    assert containers(cluster, "ctl") == {i: before[i] for i in "02"}

    # start 1: runs again with the next counter
    cluster.cli("instance", "start", "ctl", "1")
    started = wait_for(lambda: all_running(cluster, "ctl", "012"), 20, what="instance 1 running again")
    assert started["1"][0].endswith(".1.1") and {i: started[i] for i in "02"} == {i: before[i] for i in "02"}

    # restart 0: a new container (not charged: retry_times is 0), 1 and 2 untouched
    cluster.cli("instance", "restart", "ctl", "0")
    restarted = wait_for(lambda: (lambda r: r if r.get("0", ("",))[0].endswith(".0.1") and len(r) == 3 else None)(
        containers(cluster, "ctl")), 20, what="instance 0 restarted")
    assert {i: restarted[i] for i in "12"} == {i: started[i] for i in "12"}
    assert gone(before["0"][1])
    assert views(cluster, "ctl")["0"]["allocation"]["charged"] == 0

    # delete 2: the app shrinks by one; 0 and 1 untouched
    cluster.cli("instance", "delete", "ctl", "2")
    after = wait_for(lambda: all_running(cluster, "ctl", "01"), 20, what="instances 0 and 1 only")
    assert after == {i: restarted[i] for i in "01"}
    assert cluster.cli_json("status", "ctl")["app"]["spec"]["instances"] == 2
    wait_for(lambda: gone(before["2"][1]), 15, what="instance 2's process to end")
    time.sleep(2)                                      # not grown back
    assert set(views(cluster, "ctl")) == {"0", "1"}

    # gaia events: the user's requests (master) and what the AM did, none of it charged
    wanted = {("instance.stop", "1"), ("stop", "1"), ("instance.start", "1"), ("start", "1"),
              ("instance.restart", "0"), ("restart", "0"), ("instance.delete", "2")}
    wait_for(lambda: wanted <= {(e["kind"], e["instance_id"]) for e in cluster.cli_json("events", "ctl")["events"]},
             15, what="the control events", on_timeout=lambda: cluster.cli("events", "ctl").stdout)


def test_autoscaling_follows_cpu_load(cluster, tmp_path):
    load, script = tmp_path / "load", tmp_path / "burn.py"
    load.write_text("on")
    script.write_text(BURN)
    submit(cluster, tmp_path, "burner", BURNER.format(python=sys.executable, script=script, load=load))
    wait_for(lambda: containers(cluster, "burner"), 30, what="the first instance running")
    # 1 instance at ~150% of its request, target 50%: to max (3) after the 3 s cooldown + window
    up = time.monotonic()
    wait_for(lambda: all_running(cluster, "burner", "012"), 25, what="3 running instances",
             on_timeout=lambda: cluster.cli_json("status", "burner")["app"]["spec"]["instances"])
    assert time.monotonic() - up < 25
    # still loaded: no flapping, past another cooldown and window the same three run on
    steady = wait_for(lambda: all_running(cluster, "burner", "012"), 5, what="3 running instances")
    time.sleep(7)
    assert containers(cluster, "burner") == steady
    # load gone: back to min
    load.unlink()
    wait_for(lambda: len(views(cluster, "burner")) == 1 and containers(cluster, "burner"), 30,
             what="1 instance after the load", on_timeout=lambda: sorted(views(cluster, "burner")))
    assert cluster.cli_json("status", "burner")["app"]["spec"]["instances"] == 1
