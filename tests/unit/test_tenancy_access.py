"""Access checks: who a certificate or token is, what policies let it do, what it may see."""
import types

import pytest

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_common.security.identity import ANONYMOUS, Identity
from gaia_master import tenancy_rpc
from gaia_master.access import Access, Denied, Hidden, Unauthenticated, covers, pool_tenant
from gaia_master.pools import PoolTable
from gaia_master.tenancy import Tenancy
from tests.unit.test_app_table import FakeStore

CAPS = ("submit", "read", "kill", "scale", "logs", "admin", "privileged")


def record(name, pool, private=False, app_id=None):
    return types_pb2.AppRecord(app_id=app_id or f"{name}-1",
                               spec=types_pb2.AppSpec(name=name, pool=pool, private=private))


@pytest.fixture
def world():
    store = FakeStore()
    tenancy = Tenancy(Keys("c1"), store)
    pools = PoolTable(Keys("c1"), store, tenant_exists=lambda n: n in tenancy.tenants)
    for name in ("a", "b"):
        tenancy.create_tenant(types_pb2.Tenant(name=name))
    for path, tenant in (("pa", "a"), ("pa/x", ""), ("pb", "b"), ("ops", "")):
        pools.create(types_pb2.Pool(path=path, weight=1, tenant=tenant))
    apps = {r.app_id: r for r in (record("web-a", "pa/x"), record("web-b", "pb"), record("db-b", "pb", private=True))}
    access = Access(tenancy, pools, types.SimpleNamespace(by_id=apps.get))
    tokens = {}
    for name, tenant, admin in (("alice", "a", False), ("carol", "a", False), ("bob", "b", False), ("root", "", True)):
        tokens[name] = tenancy.create_user(name, tenant, admin)[1]
    tenancy.set_policy(types_pb2.AclPolicy(subject="user:alice", pool="pa", capabilities=["submit", "read", "admin"]))
    tenancy.set_policy(types_pb2.AclPolicy(subject="tenant:a", pool="pa/x", capabilities=["logs"]))
    tenancy.set_policy(types_pb2.AclPolicy(subject="user:bob", pool="pb", capabilities=list(CAPS)))
    return types.SimpleNamespace(access=access, tenancy=tenancy, pools=pools, apps=apps, tokens=tokens)


def user(world, name):
    return world.access.who(Identity("user", name, "c1"))


def test_who_maps_certificates_and_tokens_to_users(world):
    alice = user(world, "alice")
    assert (alice.role, alice.name, alice.tenant, alice.admin) == ("user", "alice", "a", False)
    assert world.access.who(Identity("user", "whatever", "c1"), world.tokens["bob"]).name == "bob"   # the token decides
    assert world.access.who(ANONYMOUS, world.tokens["alice"]).name == "alice"    # TLS off, a token sent
    with pytest.raises(Unauthenticated, match="no user 'mallory'"):
        user(world, "mallory")
    with pytest.raises(Unauthenticated, match="token"):
        world.access.who(Identity("user", "alice", "c1"), "gaia_forged")


def test_full_roles_and_default_deny(world):
    a = world.access
    for full in (a.who(ANONYMOUS), a.who(Identity("master", "m1", "c1")), user(world, "root")):
        assert all(a.can(full, cap, "pb/deep") for cap in CAPS)
        a.require_admin(full, "x")
    node = a.who(Identity("node", "n1", "c1"))
    assert not any(a.can(node, cap, "pa") for cap in CAPS)
    carol = user(world, "carol")                   # in tenant a, but only the tenant's logs grant
    assert [c for c in CAPS if a.can(carol, c, "pa/x")] == ["logs"] and not a.can(carol, "read", "pa")
    with pytest.raises(Denied, match="only cluster admins"):
        a.require_admin(user(world, "alice"), "create tenants")


def test_policies_cover_the_subtree_only(world):
    a, alice = world.access, user(world, "alice")
    assert a.can(alice, "submit", "pa") and a.can(alice, "submit", "pa/x/deeper")
    assert not a.can(alice, "submit", "pax") and not a.can(alice, "submit", "pb") and not a.can(alice, "kill", "pa")
    assert covers("pa", "pa/x") and not covers("pa", "pab") and not covers("pa/x", "pa")
    with pytest.raises(Denied, match="may not kill in pool 'pa'"):
        a.require(alice, "kill", "pa")


def test_another_tenants_app_is_hidden_and_a_visible_one_denied_by_capability(world):
    a, alice = world.access, user(world, "alice")
    with pytest.raises(Hidden):
        a.require_app(alice, world.apps["web-b-1"], "read")
    with pytest.raises(Hidden):
        a.require_app(alice, world.apps["web-b-1"], "kill")
    a.require_app(alice, world.apps["web-a-1"], "read")
    with pytest.raises(Denied, match="kill"):
        a.require_app(alice, world.apps["web-a-1"], "kill")       # it sees the app: PERMISSION_DENIED
    assert [r.spec.name for r in world.apps.values() if a.readable_app(alice, r)] == ["web-a"]
    assert [r.spec.name for r in world.apps.values() if a.readable_app(user(world, "bob"), r)] == ["web-b", "db-b"]


def test_an_am_sees_only_its_own_app(world):
    a = world.access
    am = a.who(Identity.am("c1", "web-a-1", 2))
    assert (am.role, am.tenant, am.attempt) == ("am", "a", 2)
    a.require_app(am, world.apps["web-a-1"], "read")
    with pytest.raises(Denied):
        a.require_app(am, world.apps["web-a-1"], "kill")
    with pytest.raises(Hidden):
        a.require_app(am, world.apps["web-b-1"], "read")
    a.require_am(am, "web-a-1")
    with pytest.raises(Denied, match="another app"):
        a.require_am(am, "web-b-1")
    with pytest.raises(Denied, match="ApplicationMaster"):
        a.require_am(user(world, "bob"), "web-b-1")


def test_resolve_public_apps_everywhere_private_ones_in_their_tenant(world):
    a = world.access
    alice, bob, carol = user(world, "alice"), user(world, "bob"), user(world, "carol")
    web_b, db_b = world.apps["web-b-1"], world.apps["db-b-1"]
    assert a.resolvable_app(alice, web_b) and not a.resolvable_app(alice, db_b)
    assert a.resolvable_app(bob, db_b)
    world.tenancy.create_user("dave", "b", False)       # tenant b, no grants: may still resolve b's private app
    assert a.resolvable_app(user(world, "dave"), db_b)
    assert a.resolvable_app(carol, world.apps["web-a-1"])


def test_pool_visibility_and_pool_changes(world):
    a, alice = world.access, user(world, "alice")
    assert a.sees_pool(alice, "pa") and a.sees_pool(alice, "pa/x") and not a.sees_pool(alice, "pb")
    a.require_pool_admin(alice, "pa/new", "create")            # admin on the parent
    with pytest.raises(Denied, match="parent pool 'pa'"):
        a.require_pool_admin(user(world, "carol"), "pa/new", "create")
    with pytest.raises(Denied, match="only cluster admins"):
        a.require_pool_admin(alice, "pa", "change")             # its own quota: not alice's to raise
    assert pool_tenant(world.pools.pools, "pa/x/y") == "a" and pool_tenant(world.pools.pools, "ops/q") == ""
    assert a.tenant_of("pb") == "b"


def test_idempotency_keys_are_per_user_and_privileged_asks(world):
    alice, anon = user(world, "alice"), world.access.who(ANONYMOUS)
    assert tenancy_rpc.idempotency_key(alice, "k") != tenancy_rpc.idempotency_key(user(world, "bob"), "k")
    assert tenancy_rpc.idempotency_key(anon, "k") == "k" and tenancy_rpc.idempotency_key(alice, "") == ""
    spec = types_pb2.AppSpec(name="x", pool="pa", privileged=True, network="host", devices=["/dev/fuse"])
    with pytest.raises(Denied, match="privileged, devices, network: host"):
        tenancy_rpc.require_privileged(world.access, alice, spec)
    tenancy_rpc.require_privileged(world.access, alice, types_pb2.AppSpec(name="x", pool="pa"))
    bobs = types_pb2.AppSpec(name="x", pool="pb", privileged=True)
    tenancy_rpc.require_privileged(world.access, user(world, "bob"), bobs)     # bob holds privileged on pb


def test_a_private_app_is_marked_from_spec_to_registry_and_never_served_by_dns():
    from gaia_am.containers import container_spec
    from gaia_common import spec as spec_mod
    from gaia_dns.cache import Cache
    from gaia_dns.names import Zone
    from gaia_node.publish import endpoint

    def registry_entry(private: bool) -> bytes:
        spec = spec_mod.load_yaml(f"name: db\ncommand: sleep 1\nprivate: {str(private).lower()}\n")
        rec = types_pb2.AppRecord(app_id="db-1", spec=spec)
        container = container_spec(rec, "0", 1)
        status = types_pb2.ContainerStatus(state=types_pb2.CONTAINER_STATE_RUNNING, host_ip="10.0.0.7",
                                           host_ports={"db": 5432}, node_id="n1")
        published = endpoint(container, status)
        assert published.private is private
        return published.SerializeToString()

    with pytest.raises(spec_mod.SpecError) as info:
        spec_mod.load_yaml("name: db\ncommand: sleep 1\nprivate: yes please\n")
    assert info.value.field == "private"
    for private, served in ((False, True), (True, False)):
        cache = Cache(Zone("dev"), ttl=5)
        cache.load(1, {"services/": [("db/0", registry_entry(private))]})
        assert ("db" in cache.apps) is served and bool(cache.answers.keys() - set(cache._apex())) is served
        cache.apply(2, [("services/", "db/1", registry_entry(private))])    # a change, as the watch brings it
        assert ("db" in cache.apps) is served
