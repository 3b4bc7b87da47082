"""Commands from the leader to node managers; each carries the leader's epoch.

A node is named by its id and address together (a NodeInfo or node_channels.NodeRef): under
TLS the node's certificate must carry that id's server name (gaia_common/node_channels.py)."""
import logging

import grpc

from gaia_common import faults, rpc
from gaia_common.node_channels import NodeChannels
from gaia_common.pb import node_pb2

log = logging.getLogger(__name__)
COMMAND_DEADLINE = 10.0
LOGS_DEADLINE = 60.0          # a whole kept log (not a follow, which has none)


class NodeClient:
    def __init__(self, election, tls=None, cluster: str = ""):
        self.election = election
        self.tls = tls            # the master's own certificate (TlsFiles) or None: plaintext
        self._channels = NodeChannels(cluster, tls=tls)

    def _stub(self, node):
        return self._channels.stub(node)

    def start(self, node, spec):
        faults.point("leader.node_command")  # tests pause a leader right before it commands a node
        request = node_pb2.StartContainerRequest(epoch=self.election.epoch, spec=spec)
        return self._stub(node).StartContainer(request, timeout=COMMAND_DEADLINE)

    def stop(self, node, container_id: str, remove: bool = True, grace: float = 5.0):
        faults.point("leader.node_command")
        request = node_pb2.StopContainerRequest(epoch=self.election.epoch, container_id=container_id,
                                                grace_seconds=grace, remove=remove)
        try:
            return self._stub(node).StopContainer(request, timeout=COMMAND_DEADLINE)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None

    def report(self, node, timeout: float = 3.0):
        """The node's own Status (live use, events), or None when it does not answer in time."""
        try:
            return self._stub(node).Status(node_pb2.NodeStatusRequest(), timeout=timeout,
                                           metadata=((rpc.NODE_METADATA, node.node_id),))
        except grpc.RpcError as e:
            log.warning("node %s (%s) did not report: %s", node.node_id, node.address, e.details())
            return None

    def logs(self, node, container_id: str, follow: bool, tail_bytes: int):
        """The node's stream of LogChunk (a call object: iterate it, cancel() it). No epoch:
        reading changes nothing. A follow has no deadline; it ends with the container."""
        request = node_pb2.LogsRequest(container_id=container_id, follow=follow, tail_bytes=tail_bytes)
        return self._stub(node).Logs(request, timeout=None if follow else LOGS_DEADLINE)

    def close(self):
        self._channels.close()
