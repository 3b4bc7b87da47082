"""A killed etcd member loses nothing: masters, nodes and clients move to the next endpoint."""
import shutil
import signal

import pytest

from gaia_common.etcd import EtcdCluster
from gaia_common.pb import master_pb2
from tests.integration.harness import LocalCluster, wait_for
from tests.integration.test_failover import instance_processes, submit


@pytest.fixture
def etcd3(tmp_path):
    cluster = EtcdCluster(3, data_dir=str(tmp_path / "etcd")).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.data_dir, ignore_errors=True)


def test_killing_the_first_etcd_member_loses_nothing(etcd3, cluster_name, tmp_path):
    cluster = LocalCluster(etcd3.endpoints, cluster_name, tmp_path)
    try:
        cluster.start_master()
        cluster.start_master()
        cluster.start_node()
        cluster.wait_ready(nodes=1)
        client = cluster.client(retry_for=30)
        submit(client, "steady", instances=1)
        before = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(instance_processes(client, "steady")),
                          60, what="steady app running")

        etcd3.members[0].proc.send_signal(signal.SIGKILL)  # every client's first endpoint
        etcd3.members[0].proc.wait()

        after_id = submit(cluster.client(retry_for=30), "after-loss", instances=0)
        apps = {a.app.spec.name: a.app.app_id for a in
                client.call("ListApps", master_pb2.ListAppsRequest()).apps}
        assert apps["after-loss"] == after_id and "steady" in apps
        # node keys live on: the node kept its lease alive through the surviving members
        wait_for(lambda: len(client.call("ListNodes", master_pb2.ListNodesRequest()).nodes) == 1, 15,
                 what="the node to stay registered")
        assert instance_processes(client, "steady") == before, "a container was restarted"
        assert len(cluster.client().masters()) == 2
    finally:
        cluster.stop()
