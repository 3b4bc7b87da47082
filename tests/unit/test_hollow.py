"""Hollow nodes in-process against the session's etcd: label patterns, registration, routing of
commands to the addressed node (metadata, grant, container id), epoch checks, lease recovery."""
import time

import grpc
import pytest

from gaia_common import rpc
from gaia_common.config import NodeConfig
from gaia_common.keys import Keys
from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2
from gaia_node import hollow
from tests.integration.harness import wait_for


def test_label_patterns():
    assert hollow.label_value("r{i/40}", 85) == "r2"
    assert hollow.label_value("z{i%3}", 85) == "z1"
    assert hollow.label_value("n{i}-{i%2}", 7) == "n7-1"
    assert hollow.label_value("plain", 3) == "plain"
    with pytest.raises(ValueError):
        hollow.label_value("{i%0}", 1)


@pytest.fixture
def fleet(etcd_server, etcd, cluster_name):
    keys = Keys(cluster_name)
    # a leader's election key: its create revision is the epoch nodes check commands against
    etcd.put(keys.election_key(1), types_pb2.MasterInfo(id="m").SerializeToString())
    cfg = NodeConfig(cluster=cluster_name, etcd=[etcd_server.endpoint], id="h", lease_ttl=2,
                     labels={"rack": "r{i/2}"}, capacity={"cpu": 8})
    f = hollow.start(cfg, 5)
    f.test_epoch = f.epoch.known_epoch
    yield f
    f.stop()
    etcd.delete_prefix(keys.root)


def node_ids(etcd, keys) -> set:
    return {types_pb2.NodeInfo.FromString(v).node_id for v, _ in etcd.get_prefix(keys.nodes)}


def stub(fleet):
    return node_pb2_grpc.NodeStub(rpc.channel(fleet.address))


def container(app_id="app-1", instance="0", attempt=1, ports=("http",)) -> types_pb2.ContainerSpec:
    spec = types_pb2.ContainerSpec(container_id=f"{app_id}.{instance}.{attempt}", app_id=app_id, app_name="app",
                                   instance_id=instance, driver="process", command=["sleep", "1"])
    spec.ports.extend(types_pb2.Port(name=p) for p in ports)
    return spec


def test_registers_every_node_under_its_own_lease(fleet, etcd):
    keys = fleet.keys
    assert node_ids(etcd, keys) == {f"h-hollow-{i}" for i in range(5)}
    leases = set()
    for value, meta in etcd.get_prefix(keys.nodes):
        info = types_pb2.NodeInfo.FromString(value)
        leases.add(meta.lease_id)
        assert info.address == fleet.address and info.capacity.cpu_millis == 8000
        assert info.labels["rack"] == f"r{int(info.node_id.rsplit('-', 1)[1]) // 2}"
    assert len(leases) == 5 and 0 not in leases
    time.sleep(3)            # past the 2 s TTL: the shared stream keeps all of them
    assert len(node_ids(etcd, keys)) == 5


def test_start_routes_by_metadata_and_stop_by_container(fleet, etcd):
    s = stub(fleet)
    status = s.StartContainer(node_pb2.StartContainerRequest(epoch=fleet.test_epoch, spec=container()),
                              metadata=((hollow.NODE_METADATA, "h-hollow-3"),))
    assert status.state == types_pb2.CONTAINER_STATE_RUNNING and status.node_id == "h-hollow-3"
    stored = types_pb2.ContainerStatus.FromString(etcd.get(fleet.keys.container("app-1", "app-1.0.1"))[0])
    assert stored.node_id == "h-hollow-3" and stored.host_ports["http"] > 0
    endpoint = types_pb2.ServiceEndpoint.FromString(etcd.get(fleet.keys.service("app", "0"))[0])
    assert endpoint.node_id == "h-hollow-3" and endpoint.ports["http"] == stored.host_ports["http"]
    # bound to that node's lease
    node_lease = etcd.get(fleet.keys.node("h-hollow-3"))[1].lease_id
    assert etcd.get(fleet.keys.container("app-1", "app-1.0.1"))[1].lease_id == node_lease
    # a repeated start is the same container
    again = s.StartContainer(node_pb2.StartContainerRequest(epoch=fleet.test_epoch, spec=container()),
                             metadata=((hollow.NODE_METADATA, "h-hollow-3"),))
    assert again.host_ports == status.host_ports
    report = s.Status(node_pb2.NodeStatusRequest(), metadata=((hollow.NODE_METADATA, "h-hollow-3"),))
    assert report.info.node_id == "h-hollow-3" and len(report.containers) == 1

    stopped = s.StopContainer(node_pb2.StopContainerRequest(epoch=fleet.test_epoch, container_id="app-1.0.1"))
    assert stopped.state == types_pb2.CONTAINER_STATE_STOPPED and stopped.node_id == "h-hollow-3"
    assert etcd.get(fleet.keys.service("app", "0"))[0] is None
    assert types_pb2.ContainerStatus.FromString(
        etcd.get(fleet.keys.container("app-1", "app-1.0.1"))[0]).state == types_pb2.CONTAINER_STATE_STOPPED
    s.StopContainer(node_pb2.StopContainerRequest(epoch=fleet.test_epoch, container_id="app-1.0.1", remove=True))
    assert etcd.get(fleet.keys.container("app-1", "app-1.0.1"))[0] is None
    with pytest.raises(grpc.RpcError) as info:
        s.StopContainer(node_pb2.StopContainerRequest(epoch=fleet.test_epoch, container_id="app-1.0.1"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_start_without_metadata_follows_the_grant(fleet, etcd):
    alloc = types_pb2.Allocation(app_id="app-2", instance_id="am", node_id="h-hollow-1")
    etcd.put(fleet.keys.allocation("app-2", "am"), alloc.SerializeToString())
    status = stub(fleet).StartContainer(node_pb2.StartContainerRequest(
        epoch=fleet.test_epoch, spec=container("app-2", "am", ports=())))
    assert status.node_id == "h-hollow-1"
    with pytest.raises(grpc.RpcError) as info:   # no grant, no metadata: no node was addressed
        stub(fleet).StartContainer(node_pb2.StartContainerRequest(epoch=fleet.test_epoch, spec=container("app-3")))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_stale_epoch_is_refused(fleet):
    with pytest.raises(grpc.RpcError) as info:
        stub(fleet).StartContainer(node_pb2.StartContainerRequest(epoch=fleet.test_epoch - 1, spec=container()),
                                   metadata=((hollow.NODE_METADATA, "h-hollow-0"),))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert fleet.epoch.refused_commands == 1


def test_a_lost_lease_is_replaced_and_its_keys_rewritten(fleet, etcd):
    stub(fleet).StartContainer(node_pb2.StartContainerRequest(epoch=fleet.test_epoch, spec=container("app-4")),
                               metadata=((hollow.NODE_METADATA, "h-hollow-2"),))
    old = etcd.get(fleet.keys.node("h-hollow-2"))[1].lease_id
    etcd.revoke_lease(old)              # as if it had expired
    assert etcd.get(fleet.keys.node("h-hollow-2"))[0] is None
    wait_for(lambda: etcd.get(fleet.keys.node("h-hollow-2"))[0], 5, what="the node registered again")
    assert etcd.get(fleet.keys.node("h-hollow-2"))[1].lease_id != old
    assert etcd.get(fleet.keys.container("app-4", "app-4.0.1"))[0] is not None
    assert etcd.get(fleet.keys.service("app", "0"))[0] is not None


def test_nodes_leave_and_rejoin(fleet, etcd):
    s = stub(fleet)
    s.StartContainer(node_pb2.StartContainerRequest(epoch=fleet.test_epoch, spec=container("app-5")),
                     metadata=((hollow.NODE_METADATA, "h-hollow-4"),))
    fleet.leave(["h-hollow-4", "h-hollow-0"])
    assert node_ids(etcd, fleet.keys) == {"h-hollow-1", "h-hollow-2", "h-hollow-3"}
    assert etcd.get(fleet.keys.container("app-5", "app-5.0.1"))[0] is None     # gone with the lease
    with pytest.raises(grpc.RpcError) as info:
        s.StartContainer(node_pb2.StartContainerRequest(epoch=fleet.test_epoch, spec=container("app-6")),
                         metadata=((hollow.NODE_METADATA, "h-hollow-0"),))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    time.sleep(2.5)    # keepalive rounds go on for the others and do not bring the two back
    assert len(node_ids(etcd, fleet.keys)) == 3
    fleet.rejoin(["h-hollow-4", "h-hollow-0"])
    assert len(node_ids(etcd, fleet.keys)) == 5
    time.sleep(2.5)    # past the TTL: the rejoined nodes' new leases are kept alive too
    assert len(node_ids(etcd, fleet.keys)) == 5
