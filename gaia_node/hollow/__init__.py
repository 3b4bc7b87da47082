"""Hollow nodes: N simulated node managers in one process (`gaia node run --hollow N`).

Each hollow node registers a NodeInfo under a lease of its own, keeps that lease alive, and
answers StartContainer by reporting the container RUNNING in etcd (ContainerStatus and service
entry under its lease) without starting anything; StopContainer reports it STOPPED. Commands
go through the same epoch check as a real node (EpochGuard). The real masters and etcd see
N nodes; a scale run drives them with thousands from one machine.

Modules: fleet.py (nodes, registration, containers, routing), keepalive.py (the heartbeat),
service.py (the Node gRPC API). Scaling to 10,000 nodes in one Python process:
  - leases are granted and NodeInfos written pipelined (gRPC futures on etcd's own stubs,
    puts batched into transactions), not one blocking call after another;
  - every lease is kept alive by ONE thread (an asyncio loop) over one channel: a keepalive
    per lease each ttl/3, dealt over a few LeaseKeepAlive streams (one per 500 leases) written
    concurrently, and the answers; a lease etcd reports expired (TTL 0) is replaced and its
    node's keys re-written by a maintenance thread;
  - one gRPC server on one port serves all N nodes; every node advertises that address.

Which hollow node a command is for (the address is shared):
  1. the `gaia-node` request metadata, when the caller sends it (the explicit way);
  2. StartContainer without it: the leader writes the grant (allocations/<app>/<instance>,
     naming the node) before any node is asked to start it, so the grant says which node;
  3. StopContainer without it: the node that started the container id;
  4. Status without it: an empty report (no node was named).
"""
from gaia_node.hollow.fleet import HollowFleet, HollowNode, label_value
from gaia_node.hollow.service import NODE_METADATA, HollowService

__all__ = ["HollowFleet", "HollowNode", "HollowService", "NODE_METADATA", "label_value", "run", "start"]


def start(cfg, count: int) -> HollowFleet:
    return HollowFleet(cfg, count).start()


def run(cfg, count: int) -> None:
    """Serve until SIGTERM or SIGINT; then revoke every hollow lease (the nodes leave at once)."""
    from gaia_common.daemon import setup_logging, wait_for_termination
    setup_logging("hollow")
    fleet = start(cfg, count)
    try:
        wait_for_termination()
    finally:
        fleet.stop()
