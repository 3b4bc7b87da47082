"""Turning an app's spec and a grant into a container on a node."""
import concurrent.futures

import grpc

from gaia_common import faults
from gaia_common.node_channels import NodeChannels
from gaia_common.pb import node_pb2, types_pb2

COMMAND_DEADLINE = 15.0
START_CONCURRENCY = 16


def container_id(app_id: str, instance_id: str, counter: int) -> str:
    """Unique per start: the counter grows with every restart of the instance."""
    return f"{app_id}.{instance_id}.{counter}"


def counter_of(cid: str) -> int:
    tail = cid.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def spec_version(record: types_pb2.AppRecord, version: int) -> types_pb2.AppSpec:
    """The app's spec at `version` (0 means 1); records from before versions hold only `spec`."""
    version = version or 1
    if version in record.versions:
        return record.versions[version]
    return record.spec


def container_spec(record: types_pb2.AppRecord, instance_id, counter: int,
                   gpu_indices=()) -> types_pb2.ContainerSpec:
    """The spec to start one instance. `instance_id` is its id, or its Allocation (whose
    instance id and GPU indices are then used); `gpu_indices`: the node's GPUs it was granted,
    given to the container as CUDA_VISIBLE_DEVICES."""
    version = record.version or 1
    if isinstance(instance_id, types_pb2.Allocation):
        gpu_indices = gpu_indices or instance_id.gpu_indices
        version = instance_id.version or 1    # the version its allocation says it must run
        instance_id = instance_id.instance_id
    spec = spec_version(record, version)
    out = types_pb2.ContainerSpec(
        container_id=container_id(record.app_id, instance_id, counter), app_id=record.app_id, version=version,
        app_name=spec.name, instance_id=instance_id, driver=spec.driver, image=spec.image,
        # user containers get a network namespace of their own on the node unless the app asks
        # for the host's (AMs, started by the master, always share the host's)
        workdir=spec.workdir, host_network=spec.network == "host", priority=spec.priority)
    out.command.extend(spec.command)
    out.env.update(spec.env)
    if gpu_indices:
        out.env["CUDA_VISIBLE_DEVICES"] = ",".join(str(int(i)) for i in gpu_indices)
        out.gpu_indices.extend(int(i) for i in gpu_indices)   # the node gives it these devices
    out.gpu_mode = spec.gpu_mode
    out.resources.CopyFrom(spec.resources)
    out.ports.extend(spec.ports)
    if spec.health_check.kind:
        out.health_check.CopyFrom(spec.health_check)
    out.stop_on_partition = stop_on_partition(spec)
    out.private = spec.private        # the node marks its service entry: no DNS, own tenant only
    out.volumes.extend(spec.volumes)  # host access the master allowed; the node checks it again
    out.devices.extend(spec.devices)
    out.privileged = spec.privileged
    return out


def stop_on_partition(spec: types_pb2.AppSpec) -> bool:
    """A cut-off node stops the instance after its grace period: "stop", or by default gang and
    batch apps (a replacement must never run beside a zombie); "keep" keeps it running."""
    if spec.on_partition:
        return spec.on_partition == "stop"
    return spec.gang > 0 or spec.kind == types_pb2.APP_KIND_BATCH


class Nodes:
    """The AM's calls to node managers; each carries the leader's current epoch and this AM's
    app and attempt, so a node refuses them once a newer attempt leads the app. A node is named
    by id and address together (node_channels.NodeRef): under TLS its certificate must carry
    that id's server name."""

    def __init__(self, app_id: str = "", attempt: int = 0, cluster: str = ""):
        self.app_id = app_id
        self.attempt = attempt
        self._channels = NodeChannels(cluster)
        # starts go out in parallel: a lost node's thousand instances must not start one by one
        self._starts = concurrent.futures.ThreadPoolExecutor(max_workers=START_CONCURRENCY,
                                                             thread_name_prefix="am-start")

    def _stub(self, node):
        return self._channels.stub(node)

    def start_later(self, node, epoch: int, spec, on_error) -> None:
        """Start in the background; `on_error(RpcError)` if the node refuses or is unreachable."""
        def go():
            try:
                self.start(node, epoch, spec)
            except grpc.RpcError as e:
                on_error(e)
            except ValueError:
                pass   # the AM is closing: its channels are gone
        self._starts.submit(go)

    def start(self, node, epoch: int, spec) -> types_pb2.ContainerStatus:
        request = node_pb2.StartContainerRequest(epoch=epoch, spec=spec, am_attempt=self.attempt)
        faults.point("am.start_container")
        return self._stub(node).StartContainer(request, timeout=COMMAND_DEADLINE)

    def stop(self, node, epoch: int, cid: str, remove: bool = True):
        request = node_pb2.StopContainerRequest(epoch=epoch, container_id=cid, grace_seconds=5, remove=remove,
                                                app_id=self.app_id, am_attempt=self.attempt)
        faults.point("am.stop_container")
        try:
            return self._stub(node).StopContainer(request, timeout=COMMAND_DEADLINE)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise

    def report(self, node, timeout: float = 3.0) -> node_pb2.NodeReport:
        """The node's containers with their live use (the autoscaler's measure)."""
        return self._stub(node).Status(node_pb2.NodeStatusRequest(), timeout=timeout)

    def close(self):
        self._starts.shutdown(wait=True, cancel_futures=True)
        self._channels.close()
