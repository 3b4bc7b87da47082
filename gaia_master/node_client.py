"""Commands from the leader to node managers; each carries the leader's epoch."""
import logging

import grpc

from gaia_common import faults, rpc
from gaia_common.pb import node_pb2, node_pb2_grpc

log = logging.getLogger(__name__)
COMMAND_DEADLINE = 10.0
LOGS_DEADLINE = 60.0          # a whole kept log (not a follow, which has none)


class NodeClient:
    def __init__(self, election, tls=None):
        self.election = election
        self.tls = tls            # the master's own certificate (TlsFiles) or None: plaintext
        self._channels = {}

    def _stub(self, address: str):
        if address not in self._channels:
            self._channels[address] = rpc.channel(address, tls=self.tls)
        return node_pb2_grpc.NodeStub(self._channels[address])

    def start(self, address: str, spec):
        faults.point("leader.node_command")  # tests pause a leader right before it commands a node
        request = node_pb2.StartContainerRequest(epoch=self.election.epoch, spec=spec)
        return self._stub(address).StartContainer(request, timeout=COMMAND_DEADLINE)

    def stop(self, address: str, container_id: str, remove: bool = True, grace: float = 5.0):
        faults.point("leader.node_command")
        request = node_pb2.StopContainerRequest(epoch=self.election.epoch, container_id=container_id,
                                                grace_seconds=grace, remove=remove)
        try:
            return self._stub(address).StopContainer(request, timeout=COMMAND_DEADLINE)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None

    def report(self, address: str, node_id: str, timeout: float = 3.0):
        """The node's own Status (live use, events), or None when it does not answer in time."""
        try:
            return self._stub(address).Status(node_pb2.NodeStatusRequest(), timeout=timeout,
                                              metadata=((rpc.NODE_METADATA, node_id),))
        except grpc.RpcError as e:
            log.warning("node %s did not report: %s", address, e.details())
            return None

    def logs(self, address: str, container_id: str, follow: bool, tail_bytes: int):
        """The node's stream of LogChunk (a call object: iterate it, cancel() it). No epoch:
        reading changes nothing. A follow has no deadline; it ends with the container."""
        request = node_pb2.LogsRequest(container_id=container_id, follow=follow, tail_bytes=tail_bytes)
        return self._stub(address).Logs(request, timeout=None if follow else LOGS_DEADLINE)

    def close(self):
        for ch in self._channels.values():
            ch.close()
