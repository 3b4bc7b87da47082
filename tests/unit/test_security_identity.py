"""Identities: the URI a certificate carries, round trips, bad names refused, the caller context."""
import pytest

from gaia_common.security import identity
from gaia_common.security.identity import ANONYMOUS, Identity, IdentityError


@pytest.mark.parametrize("ident, uri", [
    (Identity("master", "m1-123", "prod"), "gaia://prod/master/m1-123"),
    (Identity("node", "node-7", "prod"), "gaia://prod/node/node-7"),
    (Identity("user", "alice", "prod"), "gaia://prod/user/alice"),
    (Identity.am("prod", "web-3f2a", 2), "gaia://prod/am/web-3f2a/2"),
])
def test_uri_round_trip(ident, uri):
    assert ident.uri() == uri
    assert Identity.from_uri(uri) == ident


def test_am_identity_carries_app_and_attempt():
    am = Identity.from_uri("gaia://c/am/app-1/3")
    assert (am.role, am.name, am.app_id, am.attempt, am.cluster) == ("am", "app-1", "app-1", 3, "c")


@pytest.mark.parametrize("uri", [
    "https://c/user/alice", "gaia://c/user", "gaia://c/user/alice/extra", "gaia://c/root/alice",
    "gaia://c/am/app-1/x", "gaia://c/am/app-1/0", "gaia://c/anonymous/anonymous", "gaia://c/user/../x",
    "gaia://c/user/", "gaia://c/am/app-1",
])
def test_malformed_uris_refused(uri):
    with pytest.raises(IdentityError):
        Identity.from_uri(uri)


def test_bad_fields_name_the_field():
    with pytest.raises(IdentityError, match="role"):
        Identity("root", "x")
    with pytest.raises(IdentityError, match="name"):
        Identity("user", "a/b", "c")
    with pytest.raises(IdentityError, match="app_id"):
        Identity("am", "a", "c", app_id="b", attempt=1)


def test_caller_context_defaults_to_anonymous_and_nests():
    assert identity.current() is ANONYMOUS and identity.bearer_token() == ""
    alice = Identity("user", "alice", "c")
    with identity.acting_as(alice, "tok"):
        assert identity.current() == alice and identity.bearer_token() == "tok"
        with identity.acting_as(Identity("node", "n1", "c")):
            assert identity.current().role == "node" and identity.bearer_token() == ""
        assert identity.current() == alice
    assert identity.current() is ANONYMOUS
