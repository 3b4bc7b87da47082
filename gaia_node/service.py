"""The Node gRPC service: epoch check, then the container table; errors become status codes."""
import contextlib

import grpc

from gaia_common import resources
from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2
from gaia_common.spec import SpecError
from gaia_node import logs, usage
from gaia_node.containers import TERMINAL, NotFound
from gaia_node.drivers.base import StartFailed
from gaia_node.epoch import StaleEpoch
from gaia_node.ports import PortUnavailable

CODES = ((StaleEpoch, grpc.StatusCode.FAILED_PRECONDITION),
         (SpecError, grpc.StatusCode.INVALID_ARGUMENT),
         (NotFound, grpc.StatusCode.NOT_FOUND),
         (PortUnavailable, grpc.StatusCode.RESOURCE_EXHAUSTED),
         # a hook could not set the container up (e.g. no free address): nothing was left behind
         (StartFailed, grpc.StatusCode.UNAVAILABLE))


@contextlib.contextmanager
def status_codes(context):
    try:
        yield
    except tuple(kind for kind, _ in CODES) as e:
        code = next(code for kind, code in CODES if isinstance(e, kind))
        context.abort(code, e.args[0] if e.args else str(e))


class NodeService(node_pb2_grpc.NodeServicer):
    def __init__(self, manager):
        self.manager = manager

    def StartContainer(self, request, context):
        with status_codes(context):
            self.manager.epoch.admit(request.epoch)
            return self.manager.containers.start(request.spec)

    def StopContainer(self, request, context):
        with status_codes(context):
            self.manager.epoch.admit(request.epoch)
            return self.manager.containers.stop(request.container_id, request.grace_seconds, request.remove)

    def Status(self, request, context):
        containers = self.manager.containers.statuses()
        running = [s for s in containers if s.state == types_pb2.CONTAINER_STATE_RUNNING]
        specs = {spec.container_id: spec for spec, _ in self.manager.containers.running()}
        for status in running:
            if status.container_id in specs:
                status.usage.CopyFrom(usage.measure(self.manager.meters, specs[status.container_id], status))
        return node_pb2.NodeReport(
            info=self.manager.info, containers=containers, known_epoch=self.manager.epoch.known_epoch,
            refused_commands=self.manager.epoch.refused_commands,
            used=resources.total(s.usage for s in running),
            allocated=resources.total(specs[s.container_id].resources.request for s in running
                                      if s.container_id in specs),
            events=self.manager.events.recent())

    def Logs(self, request, context):
        """The container's stdout/stderr; no epoch: reading changes nothing."""
        try:
            container = self.manager.containers.get(request.container_id)
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, e.args[0])
        containers = self.manager.containers
        chunks = logs.read(directory=containers.dirs.path(request.container_id),
                           driver=containers.drivers.get(container.spec.driver), handle=container.handle,
                           ended=lambda: container.status.state in TERMINAL, active=context.is_active,
                           follow=request.follow, tail_bytes=max(0, request.tail_bytes))
        for stream, data in chunks:
            yield types_pb2.LogChunk(stream=stream, data=data, container_id=request.container_id)
