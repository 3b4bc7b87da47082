"""Channels to node managers, each dialed expecting that node's own server name.

Under TLS a node's certificate names it (identity.node_server_name), and whoever commands a
node (the master, an AM) checks that name, not merely that the cluster's CA signed the
certificate: all nodes share one etcd user, so node-2 could write node-1's record with its
own address; dialed as node-1, node-2's server then fails the handshake and never receives
node-1's commands (nor the AM certificates they carry). So a node is always dialed by its id
and address together (a NodeRef, or a NodeInfo: both have `node_id` and `address`), and a
channel is kept per pair. Plaintext checks no name: one channel per address (a hollow fleet's
thousands of nodes share one).
"""
import collections
import threading

from gaia_common import rpc
from gaia_common.pb import node_pb2_grpc
from gaia_common.security.identity import node_server_name

NodeRef = collections.namedtuple("NodeRef", "node_id address")


def of_allocation(alloc) -> NodeRef:
    """Where an allocation's instance runs."""
    return NodeRef(alloc.node_id, alloc.node_address)


def moving_from(alloc) -> NodeRef:
    """Where a moving instance ran before (its old node)."""
    return NodeRef(alloc.from_node_id, alloc.from_node_address)


class NodeChannels:
    def __init__(self, cluster: str, tls=rpc.DEFAULT):
        """`tls`: as rpc.channel's (the process's setting by default)."""
        self.cluster = cluster
        self.tls = tls
        self._channels = {}
        self._lock = threading.Lock()

    def secure(self) -> bool:
        return rpc.configured() is not None if self.tls is rpc.DEFAULT else self.tls is not None

    def stub(self, node) -> node_pb2_grpc.NodeStub:
        """A Node stub for `node` (node_id and address)."""
        secure = self.secure()
        if secure and not node.node_id:
            # without the id there is no name to check: refuse rather than trust any node
            raise ValueError(f"node_id: under TLS a node is dialed by its id, not only its address {node.address}")
        key = (node.node_id, node.address) if secure else node.address
        with self._lock:
            channel = self._channels.get(key)
            if channel is None:
                name = node_server_name(self.cluster, node.node_id) if secure else None
                channel = self._channels[key] = rpc.channel(node.address, tls=self.tls, server_name=name)
        return node_pb2_grpc.NodeStub(channel)

    def close(self):
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()
