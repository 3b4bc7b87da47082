"""Shared fixtures: a real etcd per test session on free loopback ports, a fresh cluster name per test."""
import itertools
import os
import shutil
import tempfile

import pytest

from gaia_common.etcd import EtcdServer, connect

_cluster_seq = itertools.count(1)


@pytest.fixture(scope="session")
def etcd_server():
    data_dir = tempfile.mkdtemp(prefix="gaia-test-etcd-")
    server = EtcdServer(data_dir=data_dir, name="gaia-test").start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def etcd(etcd_server):
    client = connect([etcd_server.endpoint])
    yield client
    client.close()


@pytest.fixture
def cluster_name():
    """A cluster name no other test uses, so tests share one etcd without seeing each other."""
    return f"t{os.getpid()}-{next(_cluster_seq)}"


@pytest.fixture
def client_config(tmp_path, monkeypatch):
    """An empty client config of this test's own (GAIA_CONFIG)."""
    path = tmp_path / "gaia-client.yaml"
    monkeypatch.setenv("GAIA_CONFIG", str(path))
    return path
