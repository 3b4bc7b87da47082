"""Hot restart: a node manager that stops and starts again re-adopts its containers untouched."""
import json
import os
import signal
import sys
import time

import psutil

from gaia_common.pb import types_pb2
from tests.integration.node_harness import node, node_cfg, wait_for  # noqa: F401 (fixtures)

S = types_pb2
# Records any signal it gets (a restart must deliver none), then sleeps.
SIGNAL_RECORDER = (
    "import signal, sys, time\n"
    "def note(signum, frame):\n"
    "    open(sys.argv[1], 'a').write(f'{signum}\\n')\n"
    "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
    "    signal.signal(s, note)\n"
    "open(sys.argv[2], 'w').close()\n"
    "time.sleep(60)\n")


def test_restart_keeps_the_same_process(node, tmp_path):
    signals, ready = tmp_path / "signals", tmp_path / "ready"
    spec = node.spec(command=[sys.executable, "-c", SIGNAL_RECORDER, str(signals), str(ready)], ports=["http"])
    before = node.start_container(spec)
    wait_for(ready.exists, what="the child to install its handlers")
    created = psutil.Process(before.pid).create_time()

    node.stop()
    assert psutil.Process(before.pid).is_running()
    node.start()

    after = node.container(spec.container_id)
    assert after.state == S.CONTAINER_STATE_RUNNING
    assert (after.pid, after.started_at, after.host_ports["http"]) == (before.pid, before.started_at,
                                                                       before.host_ports["http"])
    assert psutil.Process(before.pid).create_time() == created
    in_etcd = node.etcd_message(node.keys.container(spec.app_id, spec.container_id), S.ContainerStatus)
    assert in_etcd.state == S.CONTAINER_STATE_RUNNING and in_etcd.pid == before.pid
    assert node.etcd.get(node.keys.service("web", "0"))[0] is not None
    assert not signals.exists(), f"the restart signalled the container: {signals.read_text()}"

    # still managed: the new node manager can stop it
    assert node.stop_container(spec.container_id, remove=True).state == S.CONTAINER_STATE_STOPPED
    assert signals.read_text().split() == ["15"]


def test_exit_while_the_node_is_down_is_recorded(node):
    spec = node.spec(command=[sys.executable, "-c", "import sys, time; time.sleep(0.5); sys.exit(4)"])
    node.start_container(spec)
    node.stop()
    time.sleep(1.0)
    node.start()
    status = node.container(spec.container_id)
    assert status.state == S.CONTAINER_STATE_FAILED and status.exit_code == 4
    in_etcd = node.etcd_message(node.keys.container(spec.app_id, spec.container_id), S.ContainerStatus)
    assert in_etcd.state == S.CONTAINER_STATE_FAILED and in_etcd.exit_code == 4


def test_container_whose_shim_vanished_is_lost(node):
    spec = node.spec()
    status = node.start_container(spec)
    node.stop()
    record = json.load(open(os.path.join(node.cfg.state_dir, "containers", spec.container_id, "state.json")))
    os.kill(record["shim"]["pid"], signal.SIGKILL)     # the monitor dies first, so no exit is recorded
    os.killpg(status.pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(status.pid) or
             psutil.Process(status.pid).status() == psutil.STATUS_ZOMBIE, what="the child to die")
    node.start()
    assert node.container(spec.container_id).state == S.CONTAINER_STATE_LOST
