"""AM fencing end to end: a paused-then-resumed old ApplicationMaster changes nothing on any
node, and a restarted node manager keeps the highest epoch and attempts it saw.

(A paused-then-resumed old *leader*: tests/integration/test_failover.py.)
"""
import json
import os
import signal

import grpc
import psutil
import pytest

from gaia_common import fuzz_specs, rpc, spec as spec_mod
from gaia_common.masters import current_epoch
from gaia_common.pb import master_pb2, master_pb2_grpc, node_pb2, node_pb2_grpc, types_pb2
from gaia_node.fencing import FILE
from tests.integration.harness import LocalCluster, wait_for
from tests.integration.node_harness import node, node_cfg  # noqa: F401 (fixtures)

RUNNING = types_pb2.CONTAINER_STATE_RUNNING
APP = """name: fenced
instances: 1
command: ['sleep', '3600']
resources: {request: {cpu: 10m, memory: 8Mi}}
constraints: [{label: role, op: '=', value: work}]
"""


@pytest.fixture
def cluster(etcd_server, cluster_name, tmp_path):
    c = LocalCluster(etcd_server.endpoint, cluster_name, tmp_path)
    yield c
    c.stop()


def node_stub(cluster, node_id):
    info = types_pb2.NodeInfo()
    info.ParseFromString(cluster.etcd.get(cluster.keys.node(node_id))[0])
    return node_pb2_grpc.NodeStub(rpc.channel(info.address))


def app_status(client):
    return client.call("GetApp", master_pb2.GetAppRequest(name="fenced"))


def running_view(view):
    return view.HasField("status") and view.status.state == RUNNING


def test_resumed_old_am_cannot_start_or_stop_anything(cluster):
    # attempt 1 pauses itself right before the first StopContainer it sends
    cluster.start_master(env_extra={"GAIA_AM_FAULTS": "am.stop_container:sigstop@1"})
    am_node = cluster.start_node(labels={"role": "am"})
    n1 = next(iter(cluster.nodes))
    cluster.wait_ready(nodes=1)
    client = cluster.client(retry_for=30)
    client.call("SubmitApp", master_pb2.SubmitAppRequest(spec=spec_mod.load_yaml(APP), idempotency_key="fenced"))
    old = wait_for(lambda: (lambda s: s if running_view(s.am) else None)(app_status(client)), 30,
                   what="AM attempt 1 running on the only node")
    app_id, am_pid = old.app.app_id, old.am.status.pid
    # the instance's node: too small for an AM, so the next attempt cannot land there and the
    # only AM that ever commands it is attempt 1
    n3 = f"{cluster.name}-work"
    cluster.start_node(n3, labels={"role": "work"}, capacity={"cpu": "50m", "memory": "64Mi"})
    first = wait_for(lambda: (lambda s: s.instances[0] if s.instances and running_view(s.instances[0]) else None)(
        app_status(client)), 30, what="instance 0 running on the work node")
    assert first.allocation.node_id == n3
    n2 = f"{cluster.name}-spare"
    cluster.start_node(n2, labels={"role": "spare"})
    cluster.wait_ready(nodes=3)

    # The user stops instance 0: attempt 1 pauses on its way to stop it. The user changes their
    # mind (start), so the next attempt has nothing to do on the work node.
    control = master_pb2.InstanceControlRequest(name="fenced", instance_ids=["0"])
    control.action = master_pb2.INSTANCE_ACTION_STOP
    client.call("ControlInstances", control)
    wait_for(lambda: psutil.Process(am_pid).status() == psutil.STATUS_STOPPED, 20, what="AM attempt 1 to pause")
    control.action = master_pb2.INSTANCE_ACTION_START
    client.call("ControlInstances", control)
    # its node manager dies; the paused AM process itself lives on, as on a cut-off machine
    am_node.kill()
    am_node.wait(10)
    new = wait_for(lambda: (lambda s: s if s.am.allocation.attempt == 2 and running_view(s.am)
                            and s.app.state == types_pb2.APP_STATE_RUNNING else None)(app_status(client)),
                   60, what="AM attempt 2 running")
    assert new.am.allocation.node_id == n2 and psutil.Process(am_pid).status() == psutil.STATUS_STOPPED

    work = node_stub(cluster, n3)
    refused_before = work.Status(node_pb2.NodeStatusRequest(), timeout=5).refused_commands
    os.kill(am_pid, signal.SIGCONT)   # attempt 1 sends its StopContainer now
    report = wait_for(lambda: (lambda r: r if r.refused_commands > refused_before else None)(
        work.Status(node_pb2.NodeStatusRequest(), timeout=5)), 20, what="the work node to refuse attempt 1")
    stderr = os.path.join(cluster.workdir, n1, "containers", f"{app_id}.am.1", "stderr")
    wait_for(lambda: "stale AM attempt 1" in open(stderr).read(), 10, what="attempt 1 to be told why")

    # nothing changed: the instance runs on, the same process
    (still,) = [c for c in report.containers if c.container_id == first.status.container_id]
    assert (still.state, still.pid, still.started_at) == (RUNNING, first.status.pid, first.status.started_at)
    after = app_status(client).instances[0]
    assert after.status.container_id == first.status.container_id and not after.allocation.stopped

    # Neither node obeys attempt 1, whatever it asks; the master refuses it too (ABORTED).
    spec = types_pb2.ContainerSpec(container_id=f"{app_id}.9.0", app_id=app_id, app_name="fenced",
                                   instance_id="9", driver="process", command=["sleep", "60"])
    for node_id in (n2, n3):
        stub = node_stub(cluster, node_id)
        for call, request in ((stub.StartContainer, node_pb2.StartContainerRequest(
                epoch=new.epoch, spec=spec, am_attempt=1)),
                (stub.StopContainer, node_pb2.StopContainerRequest(
                    epoch=new.epoch, container_id=first.status.container_id, app_id=app_id, am_attempt=1))):
            with pytest.raises(grpc.RpcError) as e:
                call(request, timeout=10)
            assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, (node_id, e.value.details())
            assert "attempt 2 has replaced it" in e.value.details()
    master = master_pb2_grpc.MasterStub(rpc.channel(cluster.leader().address))
    with pytest.raises(grpc.RpcError) as e:
        master.RequestContainers(master_pb2.ContainerRequest(app_id=app_id, attempt=1, count=1), timeout=10)
    assert e.value.code() == grpc.StatusCode.ABORTED and "superseded" in e.value.details()
    assert [c.container_id for c in work.Status(node_pb2.NodeStatusRequest(), timeout=5).containers] == \
        [first.status.container_id]


def test_restarted_node_keeps_the_highest_epoch_and_attempts(node, etcd):
    """A leader's epoch and an AM attempt seen; then etcd is restored from an older backup (no
    master, an older attempt). The AM's start needs a grant (tests/integration/test_node_spec_check.py)."""
    spec = node.spec(name="kept", command=["sleep", "60"])
    alloc_key = node.keys.allocation(spec.app_id, "am")
    etcd.put(alloc_key, types_pb2.Allocation(app_id=spec.app_id, instance_id="am", attempt=3).SerializeToString())
    etcd.put(node.keys.allocation(spec.app_id, "0"), types_pb2.Allocation(
        app_id=spec.app_id, instance_id="0", node_id=node.cfg.id).SerializeToString())
    app = types_pb2.AppSpec(name="kept", driver="process", command=["sleep", "60"])
    etcd.put(node.keys.app("kept"), types_pb2.AppRecord(app_id=spec.app_id, spec=app).SerializeToString())
    leader = etcd.lease(30)
    etcd.put(node.keys.election_key(leader.id), b"", lease=leader)
    epoch = current_epoch(etcd, node.keys)     # only an epoch etcd confirms is ever remembered
    request = node_pb2.StartContainerRequest(epoch=epoch, spec=spec, am_attempt=3)
    assert node.stub.StartContainer(request, timeout=15).state == RUNNING
    etcd.revoke_lease(leader.id)

    node.stop()
    etcd.put(alloc_key, types_pb2.Allocation(app_id=spec.app_id, instance_id="am", attempt=1).SerializeToString())
    node.start()
    report = node.report()
    assert report.known_epoch == epoch
    with open(os.path.join(node.cfg.state_dir, FILE)) as f:
        assert json.load(f) == {"epoch": epoch, "attempts": [[spec.app_id, 3]]}
    stop = node_pb2.StopContainerRequest(epoch=epoch - 1, container_id=spec.container_id, app_id=spec.app_id,
                                         am_attempt=3)
    with pytest.raises(grpc.RpcError) as e:
        node.stub.StopContainer(stop, timeout=15)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"stale epoch {epoch - 1} < {epoch}" in e.value.details()
    stop.epoch, stop.am_attempt = epoch, 2
    with pytest.raises(grpc.RpcError) as e:
        node.stub.StopContainer(stop, timeout=15)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "stale AM attempt 2" in e.value.details() and "attempt 3 has replaced it" in e.value.details()
    assert node.report().refused_commands == 2
    assert node.container(spec.container_id).state == RUNNING
    stop.am_attempt = 3
    assert node.stub.StopContainer(stop, timeout=15).state == types_pb2.CONTAINER_STATE_STOPPED


def test_every_am_method_of_the_master_refuses_a_superseded_attempt(etcd_server):
    """Generated from the descriptors: each Master method whose request names an app_id and an
    attempt answers ABORTED to an attempt that is not the app's current one."""
    master_service = master_pb2.DESCRIPTOR.services_by_name["Master"]
    am_methods = [m for m in master_service.methods
                  if {"app_id", "attempt"} <= set(m.input_type.fields_by_name)]
    assert len(am_methods) >= 10, [m.name for m in am_methods]
    with fuzz_specs.fuzzed_master(etcd_server.endpoint) as stub:
        app_id = stub.GetApp(master_pb2.GetAppRequest(name="target"), timeout=10).app.app_id
        wrong = []
        for method in am_methods:
            request = getattr(master_pb2, method.input_type.name)(app_id=app_id, attempt=7)
            call = getattr(stub, method.name)
            try:
                answer = call(request, timeout=10)
                if method.server_streaming:
                    next(answer)
                wrong.append(f"{method.name}: accepted")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.ABORTED or "superseded" not in e.details():
                    wrong.append(f"{method.name}: {e.code().name} {e.details()}")
    assert not wrong, wrong
