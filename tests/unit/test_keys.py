"""The etcd key layout: one prefix per cluster, one writer per key."""
import pytest

from gaia_common.keys import Keys, valid_cluster_name


def test_layout():
    k = Keys("prod")
    assert k.root == "/gaia/prod/"
    assert k.masters == "/gaia/prod/masters/"
    assert k.election == "/gaia/prod/masters/election/"
    assert k.election_key(0x1234) == "/gaia/prod/masters/election/0000000000001234"
    assert k.leader == "/gaia/prod/masters/leader"
    assert k.apps == "/gaia/prod/apps/"
    assert k.app("hello") == "/gaia/prod/apps/hello"
    assert k.idempotency("abc") == "/gaia/prod/idempotency/abc"
    assert k.allocations == "/gaia/prod/allocations/"
    assert k.app_allocations("a1") == "/gaia/prod/allocations/a1/"
    assert k.allocation("a1", "0") == "/gaia/prod/allocations/a1/0"
    assert k.nodes == "/gaia/prod/nodes/"
    assert k.node("n1") == "/gaia/prod/nodes/n1"
    assert k.containers == "/gaia/prod/containers/"
    assert k.container("a1", "a1.0.1") == "/gaia/prod/containers/a1/a1.0.1"
    assert k.services == "/gaia/prod/services/"
    assert k.app_services("hello") == "/gaia/prod/services/hello/"
    assert k.service("hello", "0") == "/gaia/prod/services/hello/0"


def test_election_keys_sort_by_lease():
    """Fixed-width hex: keys sort the same as lease ids (readability; order is by revision)."""
    k = Keys("prod")
    leases = [1, 0xFF, 0x10, 2**62]
    assert sorted(k.election_key(x) for x in leases) == [k.election_key(x) for x in sorted(leases)]


def test_leader_key_is_outside_the_election_prefix():
    k = Keys("prod")
    assert not k.leader.startswith(k.election)


def test_clusters_do_not_overlap():
    """A prefix scan of one cluster never sees another's keys (e.g. 'a' and 'ab')."""
    a, ab = Keys("a"), Keys("ab")
    for attr in ("root", "masters", "apps", "nodes", "containers", "services", "allocations"):
        assert not getattr(ab, attr).startswith(getattr(a, attr))


def test_prefixes_are_disjoint():
    k = Keys("prod")
    prefixes = [k.election, k.apps, k.allocations, k.nodes, k.containers, k.services,
                k.root + "idempotency/"]
    for p in prefixes:
        assert p.endswith("/")
        assert p.startswith(k.root)
        assert not any(q != p and q.startswith(p) for q in prefixes)


@pytest.mark.parametrize("name", ["a", "dev", "prod-2", "0", "x" * 63, "a1-b2"])
def test_valid_cluster_names(name):
    assert valid_cluster_name(name)
    assert Keys(name).cluster == name


@pytest.mark.parametrize("name", ["", None, "Prod", "a/b", "../x", "-a", "a-", "a_b", "a b",
                                  "x" * 64, "a.b", "dev\n", "é"])
def test_invalid_cluster_names(name):
    assert not valid_cluster_name(name)
    with pytest.raises(ValueError) as info:
        Keys(name)
    assert repr(name) in str(info.value)
