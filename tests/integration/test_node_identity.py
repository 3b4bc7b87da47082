"""Masters and AMs dial a node expecting that node's own server name, not just any certificate of
the cluster's CA: a node answering on the address the caller holds for another node (all nodes
share one etcd user, so one could rewrite another's record) fails the handshake, and the
commands meant for the other node (AM certificates among them) never reach it."""
import itertools
import os
import types

import grpc
import pytest

from gaia_common import rpc
from gaia_common.node_channels import NodeRef
from gaia_common.pb import node_pb2
from gaia_common.security.tls import TlsFiles
from gaia_am.containers import Nodes
from gaia_master.node_client import NodeClient
from tests.integration.harness import LocalCluster

_seq = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(etcd_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("nodeid")
    c = LocalCluster(etcd_server.endpoint, f"nid{os.getpid()}-{next(_seq)}", workdir, tls=True)
    try:
        c.start_master()
        c.node2 = f"{c.name}-n2"
        c.start_node(c.node2)
        c.start_hollow(2)
        c.wait_ready(nodes=3)
        nodes = {n["info"]["node_id"]: n["info"]["address"] for n in c.cli_json("nodes")["nodes"]}
        c.node2_address = nodes[c.node2]
        c.hollow = sorted(n for n in nodes if "-hollow-" in n)
        c.hollow_address = nodes[c.hollow[0]]
        yield c
    finally:
        c.stop()


def master_client(cluster) -> NodeClient:
    files = TlsFiles(**cluster.tls_files("master", "probe", stem="nodeid"))
    return NodeClient(types.SimpleNamespace(epoch=0), tls=files, cluster=cluster.name)


def test_the_master_reaches_a_node_only_under_its_own_name(cluster):
    nodes = master_client(cluster)
    try:
        posing = NodeRef(f"{cluster.name}-n1", cluster.node2_address)   # node-1's id, node-2's server
        with pytest.raises(grpc.RpcError) as err:
            nodes._stub(posing).Status(node_pb2.NodeStatusRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        assert nodes.report(posing) is None                  # the master's own call: no answer taken
        report = nodes.report(NodeRef(cluster.node2, cluster.node2_address))
        assert report is not None and report.info.node_id == cluster.node2
    finally:
        nodes.close()


def test_an_am_reaches_a_node_only_under_its_own_name(cluster):
    am = TlsFiles(**cluster.tls_files("am", "ghost-00000001", attempt=1, stem="nodeid"))
    rpc.configure(am)            # as an AM process is configured (GAIA_TLS_DIR)
    nodes = Nodes("ghost-00000001", 1, cluster.name)
    try:
        with pytest.raises(grpc.RpcError) as err:
            nodes.report(NodeRef(f"{cluster.name}-n1", cluster.node2_address))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        assert list(nodes.report(NodeRef(cluster.node2, cluster.node2_address)).containers) == []
    finally:
        nodes.close()
        rpc.configure(None)


def test_a_hollow_fleet_answers_under_each_of_its_nodes_names(cluster):
    nodes = master_client(cluster)
    try:
        for node_id in cluster.hollow:
            report = nodes.report(NodeRef(node_id, cluster.hollow_address))
            assert report is not None and report.info.node_id == node_id
        with pytest.raises(grpc.RpcError) as err:      # but not under a real node's
            nodes._stub(NodeRef(cluster.node2, cluster.hollow_address)).Status(node_pb2.NodeStatusRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        nodes.close()

