"""The Node API of every hollow node of a fleet, on one port: route, epoch check, act."""
import contextlib

import grpc

from gaia_common.pb import node_pb2_grpc
from gaia_common.rpc import NODE_METADATA  # the request metadata naming the hollow node meant
from gaia_node.registration import ETCD_ERRORS
from gaia_node.service import status_codes


@contextlib.contextmanager
def etcd_unavailable(context):
    """An etcd write or read that failed: the caller may retry (starts and stops are idempotent)."""
    try:
        yield
    except (grpc.RpcError, *ETCD_ERRORS) as e:
        context.abort(grpc.StatusCode.UNAVAILABLE, f"etcd: {type(e).__name__}: {e}")


class HollowService(node_pb2_grpc.NodeServicer):
    """The Node API for every hollow node of the fleet, on one port."""

    def __init__(self, fleet):
        self.fleet = fleet

    @staticmethod
    def _named(context) -> str:
        return next((v for k, v in context.invocation_metadata() if k == NODE_METADATA), "")

    def StartContainer(self, request, context):
        with status_codes(context), etcd_unavailable(context):
            self.fleet.epoch.admit(request.epoch)
            node = self.fleet.node_for_start(request.spec, self._named(context))
            return self.fleet.start_container(node, request.spec)

    def StopContainer(self, request, context):
        with status_codes(context), etcd_unavailable(context):
            self.fleet.epoch.admit(request.epoch)
            node = self.fleet.node_of_container(request.container_id, self._named(context))
            return self.fleet.stop_container(node, request.container_id, request.remove)

    def Status(self, request, context):
        return self.fleet.report(self.fleet.nodes.get(self._named(context)))

    def Logs(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "hollow nodes run nothing and keep no logs")
