"""gaia dev / gaia dev down, without daemons: what is recorded is stopped, and nothing else."""
import json
import os
import signal
import subprocess
import time

import psutil
import pytest
import yaml
from click.testing import CliRunner

from gaia_cli import procs
from gaia_cli.main import cli


@pytest.fixture
def dev_home(tmp_path, monkeypatch, client_config):
    home = tmp_path / "dev-home"
    monkeypatch.setenv("GAIA_DEV_HOME", str(home))
    return home


@pytest.fixture
def spawned():
    """Start processes in sessions of their own; kill whatever is left at the end."""
    started = []

    def spawn(script: str) -> subprocess.Popen:
        proc = subprocess.Popen(["bash", "-c", script], start_new_session=True)
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass
        proc.wait()


def record(home, name, processes, etcd="http://127.0.0.1:1"):
    """A state.json as `gaia dev` writes it, for processes this test started."""
    directory = home / name
    directory.mkdir(parents=True)
    (directory / "state.json").write_text(json.dumps({
        "name": name, "etcd": etcd, "masters": 1, "nodes": 1, "cgroup_parent": f"gaia-{name}",
        "processes": [{"role": role, "pid": p.pid, "started": procs.start_time(p.pid), "log": "/dev/null"}
                      for role, p in processes]}))
    return directory / "state.json"


def descendants(pid):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        kids = psutil.Process(pid).children(recursive=True)
        if len(kids) >= 2:
            return kids
        time.sleep(0.05)
    raise AssertionError("children did not start")


def test_down_stops_the_recorded_processes_and_what_they_started(dev_home, spawned, client_config):
    # a "node" with a child in its process group and one in a session of its own (a container)
    node = spawned("sleep 600 & setsid sleep 600 & wait")
    kids = descendants(node.pid)
    etcd = spawned("exec sleep 600")
    bystander = spawned("exec sleep 600")
    state = record(dev_home, "t1", [("node", node), ("etcd", etcd)])
    client_config.write_text(yaml.safe_dump({"current": "t1", "clusters": {
        "t1": {"etcd": ["http://127.0.0.1:1"]}, "keep": {"etcd": ["e:1"]}}}))

    result = CliRunner().invoke(cli, ["dev", "down", "--name", "t1", "--grace", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "t1" in result.output and not state.exists()
    for p in [psutil.Process(node.pid), psutil.Process(etcd.pid), *kids]:
        assert not procs.alive([p]), f"pid {p.pid} survived"
    assert procs.alive([psutil.Process(bystander.pid)])
    assert yaml.safe_load(client_config.read_text()) == {"current": "", "clusters": {"keep": {"etcd": ["e:1"]}}}


def test_down_uses_sigkill_after_the_grace(dev_home, spawned):
    stubborn = spawned("trap '' TERM; while true; do sleep 0.1; done")
    time.sleep(0.2)  # let the trap be set
    record(dev_home, "t2", [("master", stubborn)])
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["dev", "down", "--name", "t2", "--grace", "0.5"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not procs.alive([psutil.Process(stubborn.pid)])
    assert time.monotonic() - started < 5


def test_down_with_nothing_recorded(dev_home):
    result = CliRunner().invoke(cli, ["dev", "down", "--name", "none"])
    assert result.exit_code == 3 and "'none'" in result.stderr


def test_dev_refuses_to_start_twice(dev_home, spawned):
    running = spawned("exec sleep 600")
    state = record(dev_home, "t3", [("etcd", running)])
    result = CliRunner().invoke(cli, ["dev", "--name", "t3", "--masters", "1", "--nodes", "0"])
    assert result.exit_code == 2 and "already up" in result.stderr and "gaia dev down --name t3" in result.stderr
    assert procs.alive([psutil.Process(running.pid)]) and state.exists()


def test_a_reused_pid_is_not_ours():
    me = psutil.Process()
    assert procs.find(me.pid, me.create_time()) is not None
    assert procs.find(me.pid, me.create_time() - 100) is None
    assert procs.find(me.pid, 0.0) is None


def test_stop_never_signals_this_process_or_its_parents():
    me = psutil.Process()
    assert procs.stop([me, me.parent()], grace=0.1) == []
    assert me.is_running()


def test_cgroup_processes_in_every_hierarchy(tmp_path, spawned):
    a, b = spawned("exec sleep 600"), spawned("exec sleep 600")
    v1 = tmp_path / "memory" / "gaia-x" / "c1"
    v2 = tmp_path / "gaia-x" / "c2"
    for d, p in ((v1, a), (v2, b)):
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text(f"{p.pid}\n")
        (d.parent / "cgroup.procs").write_text("")
    (tmp_path / "cpu" / "gaia-y").mkdir(parents=True)
    (tmp_path / "cpu" / "gaia-y" / "cgroup.procs").write_text(f"{os.getpid()}\n")
    found = {p.pid for p in procs.cgroup_processes("gaia-x", root=tmp_path)}
    assert found == {a.pid, b.pid}


def test_stop_signals_each_process_once(spawned, monkeypatch):
    """A daemon found twice (its own record, and as a marked process) gets one SIGTERM, not two:
    a second one can land inside the daemon's own signal handler."""
    proc = spawned("exec sleep 600")
    sent = []
    real = procs.signal_all
    monkeypatch.setattr(procs, "signal_all", lambda ps, sig: (sent.extend((p.pid, sig) for p in ps), real(ps, sig)))
    assert procs.stop([psutil.Process(proc.pid), psutil.Process(proc.pid)], grace=2) == []
    assert sent == [(proc.pid, signal.SIGTERM)]
