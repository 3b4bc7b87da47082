"""Turning an app's spec and a grant into a container on a node."""
import grpc

from gaia_common import rpc
from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2

COMMAND_DEADLINE = 15.0


def container_id(app_id: str, instance_id: str, counter: int) -> str:
    """Unique per start: the counter grows with every restart of the instance."""
    return f"{app_id}.{instance_id}.{counter}"


def counter_of(cid: str) -> int:
    tail = cid.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def container_spec(record: types_pb2.AppRecord, instance_id, counter: int,
                   gpu_indices=()) -> types_pb2.ContainerSpec:
    """The spec to start one instance. `instance_id` is its id, or its Allocation (whose
    instance id and GPU indices are then used); `gpu_indices`: the node's GPUs it was granted,
    given to the container as CUDA_VISIBLE_DEVICES."""
    if isinstance(instance_id, types_pb2.Allocation):
        gpu_indices = gpu_indices or instance_id.gpu_indices
        instance_id = instance_id.instance_id
    spec = record.spec
    out = types_pb2.ContainerSpec(
        container_id=container_id(record.app_id, instance_id, counter), app_id=record.app_id,
        app_name=spec.name, instance_id=instance_id, driver=spec.driver, image=spec.image,
        # user containers get a network namespace of their own on the node unless the app asks
        # for the host's (AMs, started by the master, always share the host's)
        workdir=spec.workdir, host_network=spec.network == "host", priority=spec.priority)
    out.command.extend(spec.command)
    out.env.update(spec.env)
    if gpu_indices:
        out.env["CUDA_VISIBLE_DEVICES"] = ",".join(str(int(i)) for i in gpu_indices)
    out.resources.CopyFrom(spec.resources)
    out.ports.extend(spec.ports)
    return out


class Nodes:
    """The AM's calls to node managers; each carries the leader's current epoch."""

    def __init__(self):
        self._channels = {}

    def _stub(self, address):
        if address not in self._channels:
            self._channels[address] = rpc.channel(address)
        return node_pb2_grpc.NodeStub(self._channels[address])

    def start(self, address: str, epoch: int, spec) -> types_pb2.ContainerStatus:
        request = node_pb2.StartContainerRequest(epoch=epoch, spec=spec)
        return self._stub(address).StartContainer(request, timeout=COMMAND_DEADLINE)

    def stop(self, address: str, epoch: int, cid: str, remove: bool = True):
        request = node_pb2.StopContainerRequest(epoch=epoch, container_id=cid, grace_seconds=5, remove=remove)
        try:
            return self._stub(address).StopContainer(request, timeout=COMMAND_DEADLINE)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise

    def close(self):
        for ch in self._channels.values():
            ch.close()
