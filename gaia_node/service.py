"""The Node gRPC service: fencing checks, then the container table; errors become status codes.

Every command carries the epoch of the leader that authorised it; one from an
ApplicationMaster also its attempt (StartContainerRequest.am_attempt, StopContainerRequest
app_id + am_attempt; 0 from a master). A stale epoch or attempt is FAILED_PRECONDITION and
counted in NodeReport.refused_commands (gaia_node/epoch.py, gaia_node/fencing.py). An AM's
StartContainer must also be what the master granted and accepted (gaia_node/spec_check.py).
"""
import contextlib

import grpc

from gaia_common import edge, resources
from gaia_common.pb import node_pb2, node_pb2_grpc, types_pb2
from gaia_common.spec import SpecError
from gaia_node import logs, usage
from gaia_node.containers import TERMINAL, NotFound
from gaia_node.drivers.base import StartFailed
from gaia_node.epoch import StaleEpoch
from gaia_node.fencing import StaleAttempt
from gaia_node.ports import PortUnavailable
from gaia_node.spec_check import CannotCheck, NoGrant, NotGranted
from gaia_node.validation import check_host_access


class NotYours(Exception):
    """An ApplicationMaster named a container of another app."""


MAX_APP_ID = 200   # app ids become etcd keys and file names
CODES = ((StaleEpoch, grpc.StatusCode.FAILED_PRECONDITION),
         (StaleAttempt, grpc.StatusCode.FAILED_PRECONDITION),
         (NotYours, grpc.StatusCode.PERMISSION_DENIED),
         (NoGrant, grpc.StatusCode.FAILED_PRECONDITION),
         (NotGranted, grpc.StatusCode.PERMISSION_DENIED),
         (CannotCheck, grpc.StatusCode.UNAVAILABLE),
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
        context.abort(code, edge.details(e.args[0] if e.args else e))


class NodeService(node_pb2_grpc.NodeServicer):
    def __init__(self, manager):
        self.manager = manager

    def StartContainer(self, request, context):
        with status_codes(context):
            self.manager.epoch.admit(request.epoch)
            if request.am_attempt:
                if request.spec.is_am:
                    raise NotYours("an ApplicationMaster cannot start an ApplicationMaster (the leader does)")
                self._admit_am(request.spec.app_id, request.am_attempt, "spec.app_id")
                # the AM runs tenant code: what it sends is checked against the grant in etcd
                self.manager.spec_check.check(request.spec)
            # this node's own allow-list, whatever the master let through
            check_host_access(request.spec, self.manager.cfg.host_path_allow)
            return self.manager.containers.start(request.spec)

    def StopContainer(self, request, context):
        with status_codes(context):
            self.manager.epoch.admit(request.epoch)
            if request.am_attempt:
                self._admit_am(request.app_id, request.am_attempt, "app_id")
                self._check_owner(request.app_id, request.container_id)
            return self.manager.containers.stop(request.container_id, request.grace_seconds, request.remove)

    def _admit_am(self, app_id: str, attempt: int, field: str):
        if attempt < 0:
            raise SpecError("am_attempt", f"{attempt} must not be negative")
        if not app_id or "/" in app_id or len(app_id) > MAX_APP_ID:
            raise SpecError(field, f"{app_id[:MAX_APP_ID]!r} must name the AM's app (no '/')")
        self.manager.attempts.admit(app_id, attempt)

    def _check_owner(self, app_id: str, container_id: str):
        """An AM stops only its own app's containers (an unknown one is NOT_FOUND, as ever)."""
        try:
            owner = self.manager.containers.get(container_id).spec.app_id
        except (NotFound, ValueError):
            return
        if owner != app_id:
            raise NotYours(f"container {container_id} is not of app {app_id}")

    def Status(self, request, context):
        containers = self.manager.containers.statuses()
        running = [s for s in containers if s.state == types_pb2.CONTAINER_STATE_RUNNING]
        specs = {spec.container_id: spec for spec, _ in self.manager.containers.running()}
        for status in running:
            if status.container_id in specs:
                status.usage.CopyFrom(usage.measure(self.manager.meters, specs[status.container_id], status))
        return node_pb2.NodeReport(
            info=self.manager.info, containers=containers, known_epoch=self.manager.epoch.known_epoch,
            refused_commands=self.manager.epoch.refused_commands + self.manager.attempts.refused_commands,
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
