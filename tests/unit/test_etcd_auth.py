"""etcd RBAC table (gaia_common/etcd_auth.py): who may read and write which keys of a cluster.

Evaluated here against the key layout, the way etcd evaluates it (a permission covers
[key, range_end)); tests/integration/test_etcd_rbac.py proves the same on a real etcd.
"""
import os
import stat

import pytest
from etcd3.etcdrpc import auth_pb2

from gaia_common import etcd_auth
from gaia_common.etcd import connect, read_password
from gaia_common.keys import Keys

K = Keys("prod")
OTHER = Keys("prod2")      # shares the prefix "prod": must not be covered


def allowed(kind: str, key: str, write: bool, cluster: str = "prod") -> bool:
    need = (auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE) if write else \
        (auth_pb2.Permission.READ, auth_pb2.Permission.READWRITE)
    raw = key.encode()
    return any(p.permType in need and p.key <= raw < p.range_end for p in etcd_auth.permissions(cluster, kind))


def test_names():
    assert etcd_auth.name("prod", "node") == "gaia-prod-node"
    with pytest.raises(ValueError, match="kind"):
        etcd_auth.name("prod", "root")


@pytest.mark.parametrize("key", [K.app("a"), K.allocation("a1", "0"), K.event("a1", 1), K.pool("ads"),
                                 K.drain("n1"), K.leader, K.join_token("abc"), K.etcd_credential("node"),
                                 K.tenant("t"), K.user("u"), K.node("n1"), K.service("a", "0")])
def test_master_reads_and_writes_the_whole_cluster(key):
    assert allowed("master", key, write=True) and allowed("master", key, write=False)


def test_nodes_write_only_what_nodes_write():
    for key in (K.node("n1"), K.container("a1", "c1"), K.service("a", "0")):
        assert allowed("node", key, write=True) and allowed("node", key, write=False)
    for key in (K.app("a"), K.allocation("a1", "0"), K.pool("p"), K.leader, K.election_key(1), K.drain("n1"),
                K.event("a1", 1), K.join_token("abc"), K.user("u"), K.acl("x")):
        assert not allowed("node", key, write=True), key


def test_nodes_read_the_epoch_allocations_and_apps_but_no_secrets():
    assert allowed("node", K.election_key(7), write=False)
    assert allowed("node", K.allocation("a1", "am"), write=False)
    assert allowed("node", K.app("a"), write=False)     # an AM's container spec is checked against it
    for key in (K.etcd_credential("node"), K.join_token("abc"), K.user("u"), K.tenant("t"), K.acl("x"),
                K.pool("p")):
        assert not allowed("node", key, write=False), key


def test_dns_reads_services_only():
    assert allowed("dns", K.service("a", "0"), write=False)
    assert not allowed("dns", K.service("a", "0"), write=True)
    for key in (K.app("a"), K.node("n1"), K.leader, K.etcd_credential("node")):
        assert not allowed("dns", key, write=False), key


def test_clients_read_the_masters_addresses_and_nothing_else():
    assert allowed("client", K.election_key(1), write=False) and allowed("client", K.leader, write=False)
    assert not allowed("client", K.leader, write=True)
    for key in (K.app("a"), K.node("n1"), K.service("a", "0"), K.user("u"), K.join_token("x")):
        assert not allowed("client", key, write=False), key


@pytest.mark.parametrize("kind", etcd_auth.KINDS)
def test_no_role_reaches_another_cluster(kind):
    for key in (OTHER.app("a"), OTHER.node("n1"), OTHER.leader, OTHER.service("a", "0"), "/gaia/prod",
                "/gaia/pro/x", "/other"):
        assert not allowed(kind, key, write=False) and not allowed(kind, key, write=True), (kind, key)


def test_password_files_are_private_and_read_back(tmp_path):
    creds = {"master": ("gaia-prod-master", "s3cret"), "node": ("gaia-prod-node", "n0de")}
    paths = etcd_auth.write_passwords(tmp_path / "etcd", creds)
    for path in paths.values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_password(paths["master"]) == "s3cret"
    assert etcd_auth.read_passwords(tmp_path / "etcd", "prod") == {"master": "s3cret", "node": "n0de"}


def test_password_file_errors_name_the_setting(tmp_path):
    with pytest.raises(ValueError, match="etcd_password_file"):
        read_password(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="etcd_password_file .*empty"):
        read_password(str(tmp_path / "empty"))


def test_connect_wants_users_with_passwords_and_certs_with_keys():
    with pytest.raises(ValueError, match="etcd_user"):
        connect(["http://127.0.0.1:1"], user="u")
    with pytest.raises(ValueError, match="etcd_tls"):
        connect(["https://127.0.0.1:1"], cert_file="/x.crt")
