"""The tenancy table: tenants, users (token hashes only), ACL policies, over a fake fenced store
(what is written) and reloaded from a real etcd (what a new leader reads)."""
import hashlib

import pytest

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_common.spec import SpecError
from gaia_master.app_table import Conflict
from gaia_master.store import NotLeader
from gaia_master.tenancy import BOOTSTRAP_ADMIN, Tenancy, check_pool_tenant
from tests.unit.test_app_table import FakeStore


@pytest.fixture
def t():
    tenancy = Tenancy(Keys("c1"), FakeStore())
    tenancy.create_tenant(types_pb2.Tenant(name="ads", description="the ads team"))
    tenancy.create_tenant(types_pb2.Tenant(name="search"))
    return tenancy


def written(t):
    """key -> message bytes (None: deleted), the last write of each key."""
    out = {}
    for ops in t.store.committed:
        for op in ops:
            out[op[1]] = op[2] if op[0] == "put" else None
    return out


def field_of(call) -> str:
    with pytest.raises(SpecError) as info:
        call()
    return info.value.field


def test_tenant_create_and_refusals(t):
    assert written(t)["/gaia/c1/tenants/ads"] and t.tenants["ads"].description == "the ads team"
    with pytest.raises(Conflict) as info:
        t.create_tenant(types_pb2.Tenant(name="ads"))
    assert info.value.code == "exists"
    assert field_of(lambda: t.create_tenant(types_pb2.Tenant(name="Ads"))) == "name"
    assert field_of(lambda: t.create_tenant(types_pb2.Tenant(name="x", description="d" * 300))) == "description"


def test_user_token_is_shown_once_and_stored_as_its_hash(t):
    user, token = t.create_user("alice", "ads", False)
    assert token.startswith("gaia_") and len(token) > 40
    assert not user.token_sha256                                    # the API never shows the hash
    stored = types_pb2.User.FromString(written(t)["/gaia/c1/users/alice"])
    assert stored.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token.encode() not in b"".join(v for v in written(t).values() if v)   # nor the token
    assert t.user_by_token(token).name == "alice"
    assert t.user_by_token(token + "x") is None and t.user_by_token("") is None
    _, other = t.create_user("bob", "ads", False)
    assert other != token


def test_user_refusals(t):
    assert field_of(lambda: t.create_user("alice", "nope", False)) == "tenant"
    assert field_of(lambda: t.create_user("alice", "", False)) == "tenant"       # only admins have none
    assert field_of(lambda: t.create_user("Alice/x", "ads", False)) == "name"
    t.create_user("root2", "", True)
    t.create_user("alice", "ads", False)
    with pytest.raises(Conflict):
        t.create_user("alice", "search", False)


def test_deleting_a_user_revokes_its_token_and_policies(t):
    _, token = t.create_user("alice", "ads", False)
    policy = t.set_policy(types_pb2.AclPolicy(subject="user:alice", pool="ads", capabilities=["read"]))
    t.delete_user("alice")
    assert t.user_by_token(token) is None and policy.id not in t.policies
    assert written(t)[f"/gaia/c1/acl/{policy.id}"] is None and written(t)["/gaia/c1/users/alice"] is None
    with pytest.raises(Conflict) as info:
        t.delete_user("alice")
    assert info.value.code == "not_found"


def test_bootstrap_admin_is_made_once_and_cannot_be_deleted(t):
    t.ensure_bootstrap_admin()
    t.ensure_bootstrap_admin()
    admin = t.user(BOOTSTRAP_ADMIN)
    assert admin.admin and not admin.token_sha256 and not admin.tenant   # certificate only
    assert sum(1 for ops in t.store.committed for op in ops if op[1].endswith("/users/admin")) == 1
    assert field_of(lambda: t.delete_user(BOOTSTRAP_ADMIN)) == "name"


def test_policy_set_replaces_the_subjects_grant_on_that_pool(t):
    t.create_user("alice", "ads", False)
    first = t.set_policy(types_pb2.AclPolicy(subject="user:alice", pool="ads", capabilities=["read", "submit", "read"]))
    assert list(first.capabilities) == ["submit", "read"] and first.id
    again = t.set_policy(types_pb2.AclPolicy(subject="user:alice", pool="ads", capabilities=["kill"]))
    assert again.id == first.id and list(again.capabilities) == ["kill"] and len(t.policies) == 1
    other = t.set_policy(types_pb2.AclPolicy(subject="tenant:ads", pool="ads/x", capabilities=["logs"]))
    assert other.id != first.id
    assert [p.id for p in t.list_policies(subject="tenant:ads")] == [other.id]
    assert [p.id for p in t.list_policies(pool="ads")] == [first.id]


@pytest.mark.parametrize("policy, field", [
    (dict(subject="alice", pool="ads", capabilities=["read"]), "subject"),
    (dict(subject="group:x", pool="ads", capabilities=["read"]), "subject"),
    (dict(subject="user:nobody", pool="ads", capabilities=["read"]), "subject"),
    (dict(subject="tenant:nobody", pool="ads", capabilities=["read"]), "subject"),
    (dict(subject="tenant:ads", pool="Ads", capabilities=["read"]), "pool"),
    (dict(subject="tenant:ads", pool="ads", capabilities=[]), "capabilities"),
    (dict(subject="tenant:ads", pool="ads", capabilities=["root"]), "capabilities"),
])
def test_policy_refusals_name_the_field(t, policy, field):
    assert field_of(lambda: t.set_policy(types_pb2.AclPolicy(**policy))) == field
    assert not t.policies


def test_deleting_a_tenant(t):
    t.create_user("alice", "ads", False)
    t.set_policy(types_pb2.AclPolicy(subject="tenant:search", pool="s", capabilities=["read"]))
    with pytest.raises(SpecError, match="alice"):
        t.delete_tenant("ads", [])
    with pytest.raises(SpecError, match="owns 1 pool"):
        t.delete_tenant("search", [types_pb2.Pool(path="s", tenant="search")])
    t.delete_tenant("search", [types_pb2.Pool(path="s")])
    assert "search" not in t.tenants and not t.policies                # its policies went with it
    with pytest.raises(Conflict):
        t.delete_tenant("search", [])


def test_policies_on_a_deleted_pool_go_with_it(t):
    a = t.set_policy(types_pb2.AclPolicy(subject="tenant:ads", pool="ads", capabilities=["read"]))
    b = t.set_policy(types_pb2.AclPolicy(subject="tenant:ads", pool="ads/x", capabilities=["read"]))
    ops, committed = t.pool_policy_ops("ads/x")
    assert ops == [("delete", f"/gaia/c1/acl/{b.id}")]
    committed()
    assert set(t.policies) == {a.id}


def test_nothing_changes_in_memory_when_the_write_is_fenced_off(t):
    t.store.leading = False
    with pytest.raises(NotLeader):
        t.create_tenant(types_pb2.Tenant(name="new"))
    with pytest.raises(NotLeader):
        t.create_user("alice", "ads", False)
    assert "new" not in t.tenants and "alice" not in t.users and not t.by_token


def test_a_new_leader_reads_everything_back(etcd, cluster_name):
    keys = Keys(cluster_name)
    source = Tenancy(keys, FakeStore())
    source.create_tenant(types_pb2.Tenant(name="ads"))
    _, token = source.create_user("alice", "ads", False)
    policy = source.set_policy(types_pb2.AclPolicy(subject="user:alice", pool="ads", capabilities=["read"]))
    for key, value in written(source).items():
        etcd.put(key, value)
    loaded = Tenancy(keys, FakeStore())
    loaded.ensure_loaded(etcd, 5)
    assert set(loaded.tenants) == {"ads"} and loaded.user_by_token(token).name == "alice"
    assert loaded.policies[policy.id] == policy
    etcd.delete(keys.user("alice"))
    loaded.ensure_loaded(etcd, 5)          # same epoch: not read again
    assert loaded.user("alice") is not None
    loaded.ensure_loaded(etcd, 6)
    assert loaded.user("alice") is None and loaded.user_by_token(token) is None


# ---- a pool's tenant ----

def test_pool_tenant_rules():
    pools = {"ads": types_pb2.Pool(path="ads", tenant="ads"), "ads/x": types_pb2.Pool(path="ads/x"),
             "shared": types_pb2.Pool(path="shared"), "shared/s": types_pb2.Pool(path="shared/s", tenant="search")}
    exists = {"ads", "search"}.__contains__
    check_pool_tenant(types_pb2.Pool(path="ads/y", tenant="ads"), pools, exists)
    check_pool_tenant(types_pb2.Pool(path="ads/x/z"), pools, exists)           # inherits
    check_pool_tenant(types_pb2.Pool(path="shared/t", tenant="ads"), pools, exists)
    for pool, problem in [(types_pb2.Pool(path="ads/y", tenant="search"), "inside tenant 'ads'"),
                          (types_pb2.Pool(path="ads/x/z", tenant="search"), "inside tenant 'ads'"),
                          (types_pb2.Pool(path="new", tenant="nobody"), "no tenant 'nobody'"),
                          (types_pb2.Pool(path="shared", tenant="ads"), "child pool 'shared/s'")]:
        with pytest.raises(SpecError, match=problem) as info:
            check_pool_tenant(pool, pools, exists)
        assert info.value.field == "tenant"
