"""A node obeys neither a made-up epoch nor an ApplicationMaster's spec beyond its grant.

Real etcd, a real master and node manager over mutual TLS, and the app's own AM certificate
(what a tenant's code could reach): the forged commands are refused, and the real leader and AM
go on commanding the node.
"""
import itertools
import json
import os
import sys

import grpc
import pytest

from gaia_am.containers import container_spec
from gaia_common import rpc, spec as spec_mod
from gaia_common.pb import master_pb2, node_pb2, node_pb2_grpc, types_pb2
from gaia_common.security.identity import node_server_name
from gaia_common.security.tls import TlsFiles
from gaia_node.fencing import FILE
from tests.integration.harness import LocalCluster, wait_for

RUNNING = types_pb2.CONTAINER_STATE_RUNNING
APP = """name: granted
instances: 1
command: ["{python}", "-c", "import time; time.sleep(600)"]
resources: {{request: {{cpu: 20m, memory: 16Mi}}}}
"""
_seq = itertools.count()


@pytest.fixture(scope="module")
def cluster(etcd_server, tmp_path_factory):
    c = LocalCluster(etcd_server.endpoint, f"grant{os.getpid()}-{next(_seq)}", tmp_path_factory.mktemp("grant"),
                     tls=True)
    try:
        c.start_master()
        c.start_node()
        c.wait_ready(nodes=1)
        c.node_id = next(iter(c.nodes))
        c.master = c.client(retry_for=30)
        c.master.call("SubmitApp", master_pb2.SubmitAppRequest(
            spec=spec_mod.load_yaml(APP.format(python=sys.executable)), idempotency_key="granted"))
        wait_for(lambda: running_instances(c) == 1, 60, what="the app running")
        yield c
    finally:
        c.stop()


def status(c):
    return c.master.call("GetApp", master_pb2.GetAppRequest(name="granted"))


def running_instances(c) -> int:
    s = status(c)
    return sum(1 for v in s.instances if v.HasField("status") and v.status.state == RUNNING)


def node_as(c, role, name, **issue):
    """The node, dialed with a certificate of `role` (as the master and AMs dial it)."""
    info = types_pb2.NodeInfo()
    info.ParseFromString(c.etcd.get(c.keys.node(c.node_id))[0])
    tls = TlsFiles(**c.tls_files(role, name, **issue))
    return node_pb2_grpc.NodeStub(rpc.channel(info.address, tls=tls, server_name=node_server_name(c.name, c.node_id)))


def refused(call, request):
    with pytest.raises(grpc.RpcError) as e:
        call(request, timeout=10)
    return e.value.code(), e.value.details()


def test_a_forged_am_spec_is_refused_and_the_real_am_runs_on(cluster):
    s = status(cluster)
    app_id, attempt, epoch = s.app.app_id, s.am.allocation.attempt, s.epoch
    (view,) = s.instances
    am = node_as(cluster, "am", app_id, attempt=attempt, stem="forger")   # the app's own AM key

    def forged(change, counter):
        spec = container_spec(s.app, view.allocation, counter)   # what the AM would send...
        change(spec)                                              # ...plus what the master never granted
        return node_pb2.StartContainerRequest(epoch=epoch, spec=spec, am_attempt=attempt)

    for counter, (change, field) in enumerate([
            (lambda sp: setattr(sp, "privileged", True), "spec.privileged"),
            (lambda sp: sp.volumes.add(host_path="/etc", container_path="/host-etc"), "spec.volumes"),
            (lambda sp: setattr(sp.resources.request, "cpu_millis", 4000), "spec.resources.request"),
            (lambda sp: setattr(sp, "host_network", not sp.host_network), "spec.host_network")], start=50):
        code, details = refused(am.StartContainer, forged(change, counter))
        assert code == grpc.StatusCode.PERMISSION_DENIED and details.startswith(field + ":"), details

    ghost = forged(lambda sp: None, 60)
    ghost.spec.instance_id, ghost.spec.container_id = "77", f"{app_id}.77.0"
    code, details = refused(am.StartContainer, ghost)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "instance 77" in details and "no allocation" in details

    ids = {c.container_id for c in am.Status(node_pb2.NodeStatusRequest(), timeout=5).containers}
    forged_ids = {f"{app_id}.0.{n}" for n in range(50, 54)} | {ghost.spec.container_id}
    assert ids and not ids & forged_ids, ids      # nothing forged started
    # the genuine AM still starts what it was granted (a scale-up: its own StartContainer)
    cluster.master.call("ScaleApp", master_pb2.ScaleAppRequest(name="granted", instances=2))
    wait_for(lambda: running_instances(cluster) == 2, 60, what="the AM starting instance 1")


def test_a_forged_epoch_does_not_lock_out_the_leader(cluster):
    s = status(cluster)
    app_id, attempt, epoch = s.app.app_id, s.am.allocation.attempt, s.epoch
    am = node_as(cluster, "am", app_id, attempt=attempt, stem="epoch-forger")
    before = am.Status(node_pb2.NodeStatusRequest(), timeout=5)
    assert before.known_epoch == epoch
    stop = node_pb2.StopContainerRequest(epoch=2 ** 62, container_id=f"{app_id}.0.999", app_id=app_id,
                                         am_attempt=attempt)
    code, details = refused(am.StopContainer, stop)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "is not one etcd knows" in details, details
    after = am.Status(node_pb2.NodeStatusRequest(), timeout=5)
    assert after.known_epoch == epoch and after.refused_commands == before.refused_commands + 1
    with open(os.path.join(cluster.workdir, cluster.node_id, FILE)) as f:
        assert json.load(f)["epoch"] == epoch          # nothing made-up reached the disk either
    # the real leader and AM still command the node: a scale-up starts a new instance
    target = len(s.instances) + 1
    cluster.master.call("ScaleApp", master_pb2.ScaleAppRequest(name="granted", instances=target))
    wait_for(lambda: running_instances(cluster) == target, 60, what="a new instance after the forged epoch")


def test_an_am_cannot_ask_the_master_for_more_than_its_app_spec(cluster):
    """The master holds the app's shape: an AM asking for bigger containers is refused, before
    any capacity is held for them (the node would refuse to start them anyway)."""
    from gaia_common.pb import master_pb2_grpc
    s = status(cluster)
    tls = TlsFiles(**cluster.tls_files("am", s.app.app_id, attempt=s.am.allocation.attempt, stem="greedy"))
    master = master_pb2_grpc.MasterStub(rpc.channel(cluster.leader().address, tls=tls))
    greedy = types_pb2.ResourceRequirements()
    greedy.CopyFrom(s.app.spec.resources)
    greedy.request.cpu_millis = 4000
    code, details = refused(master.RequestContainers, master_pb2.ContainerRequest(
        app_id=s.app.app_id, attempt=s.am.allocation.attempt, target=len(s.instances) + 1, resources=greedy))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("resources"), details
    assert len(status(cluster).instances) == len(s.instances)      # nothing more was granted
