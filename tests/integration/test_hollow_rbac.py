"""A hollow fleet on an etcd with RBAC on: its raw, pipelined etcd calls and its keepalive
streams log in with the node credential (etcd_user) like a real node manager, and keep working
after etcd forgets an idle token."""
import time

import pytest

from gaia_common import etcd as etcd_mod
from gaia_common.config import NodeConfig
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_node.hollow import HollowFleet
from tests.integration.etcd_rbac_support import rbac_etcd
from tests.integration.harness import wait_for

CLUSTER = "rbac-hollow"
TOKEN_TTL = 2          # seconds an idle etcd token lives on this etcd


@pytest.fixture(scope="module")
def rbac(tmp_path_factory):
    with rbac_etcd(tmp_path_factory.mktemp("hollow-rbac"), [CLUSTER], auth_token_ttl=TOKEN_TTL) as (server, creds):
        yield server, creds[CLUSTER]


def fleet_config(server, creds, **more) -> NodeConfig:
    user, password_file = creds["node"]
    return NodeConfig(cluster=CLUSTER, etcd=[server.endpoint], id="hf", listen="127.0.0.1:0", lease_ttl=2,
                      etcd_user=user, etcd_password_file=str(password_file), **more)


def present(client, key) -> bool:
    return etcd_mod.retry(lambda: client.get(key))[0] is not None   # the root view's token expires too


def test_a_hollow_fleet_registers_keeps_alive_and_writes_with_its_login(rbac):
    server, creds = rbac
    keys, root = Keys(CLUSTER), server.connect()
    fleet = HollowFleet(fleet_config(server, creds), 3).start()
    try:
        ids = sorted(fleet.nodes)
        assert [present(root, keys.node(n)) for n in ids] == [True] * 3
        time.sleep(3 * fleet.ttl)        # past the lease TTL: only keepalives that got through keep them
        assert [present(root, keys.node(n)) for n in ids] == [True] * 3
        assert fleet.heartbeat.rounds >= 3
        spec = types_pb2.ContainerSpec(container_id="web-1.0.1", app_id="web-1", app_name="web", instance_id="0",
                                       driver="process", command=["x"])
        node = fleet.nodes[ids[0]]

        def started():   # a token etcd forgot while idle costs one refused try, then a new login
            try:
                fleet.start_container(node, spec)
                return True
            except etcd_mod.TRANSIENT + (Exception,) as e:
                assert "token" in str(e) or "auth" in str(e), e
                return False
        wait_for(started, 10, what="the container written under the fleet's login")
        assert present(root, keys.container("web-1", "web-1.0.1"))
    finally:
        fleet.stop()       # revokes the leases, with its login too: the nodes are gone at once
    try:
        assert [present(root, keys.node(n)) for n in ids] == [False] * 3
    finally:
        root.close()
