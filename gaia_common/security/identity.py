"""Who is calling: identities carried by certificates, and the caller of the RPC being served.

A certificate names its holder in exactly one URI SAN, `gaia://<cluster>/<role>/<name>` (an
ApplicationMaster's: `gaia://<cluster>/am/<app_id>/<attempt>`). The server interceptor sets
`current()` and `bearer_token()` for the handler; with TLS off every caller is ANONYMOUS (the
cluster admin of a plaintext dev cluster).
"""
import contextlib
import contextvars
import dataclasses
import hashlib
import re

ROLES = ("master", "node", "am", "user", "dns", "anonymous")
SCHEME = "gaia://"
# names go into a URI path and etcd keys: no slashes, nothing odd
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,252}$")


class IdentityError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Identity:
    role: str
    name: str
    cluster: str = ""
    app_id: str = ""          # am only: the app it acts for
    attempt: int = 0          # am only: its attempt number

    def __post_init__(self):
        if self.role not in ROLES:
            raise IdentityError(f"role: {self.role!r} is not one of {', '.join(ROLES)}")
        if not _NAME.match(self.name or ""):
            raise IdentityError(f"name: {self.name!r} is not a valid {self.role} name")
        if self.cluster and not _NAME.match(self.cluster):
            raise IdentityError(f"cluster: {self.cluster!r} is not a valid cluster name")
        if self.role == "am":
            if self.app_id != self.name:
                raise IdentityError(f"app_id: an AM's name is its app id ({self.name!r}, not {self.app_id!r})")
            if self.attempt < 1:
                raise IdentityError(f"attempt: an AM's attempt starts at 1, not {self.attempt}")

    @classmethod
    def am(cls, cluster: str, app_id: str, attempt: int) -> "Identity":
        return cls("am", app_id, cluster, app_id, int(attempt))

    def uri(self) -> str:
        if self.role == "am":
            return f"{SCHEME}{self.cluster}/am/{self.app_id}/{self.attempt}"
        return f"{SCHEME}{self.cluster}/{self.role}/{self.name}"

    @classmethod
    def from_uri(cls, uri: str) -> "Identity":
        if not uri.startswith(SCHEME):
            raise IdentityError(f"uri: {uri!r} does not start with {SCHEME}")
        parts = uri[len(SCHEME):].split("/")
        if len(parts) == 4 and parts[1] == "am":
            cluster, _, app_id, attempt = parts
            if not attempt.isdigit():
                raise IdentityError(f"uri: {uri!r}: the AM attempt must be a number")
            return cls.am(cluster, app_id, int(attempt))
        if len(parts) != 3 or parts[1] in ("am", "anonymous"):
            raise IdentityError(f"uri: {uri!r} is not gaia://<cluster>/<role>/<name>")
        cluster, role, name = parts
        return cls(role, name, cluster)

    def __str__(self) -> str:
        if self.role == "am":
            return f"am {self.app_id} attempt {self.attempt}"
        return f"{self.role} {self.name}"


ANONYMOUS = Identity("anonymous", "anonymous")

# ---- node server names ----
# A node's serving certificate names it in a DNS SAN `<node>.node.<cluster>.gaia`, and whoever
# dials a node expects that name (grpc.ssl_target_name_override), not the address: several
# nodes may share an address (loopback, a NAT), and a node that rewrote another's address in
# etcd must fail the handshake rather than receive that node's commands. `.gaia` is reserved
# for these names: a certificate gets them only from its identity, never from asked-for hosts.
RESERVED_SUFFIX = ".gaia"
_LABELS = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_HASHED = re.compile(r"^h-[0-9a-f]{32}$")


def _dns_part(name: str) -> str:
    """`name` itself when it is already lowercase DNS labels, else `h-<hash>`: one-to-one, so
    two names never share a server name (uppercase, '_' or '@' would fold or be refused)."""
    if len(name) <= 120 and _LABELS.match(name) and not _HASHED.match(name):
        return name
    return "h-" + hashlib.sha256(name.encode()).hexdigest()[:32]


def node_server_name(cluster: str, node_id: str) -> str:
    """The DNS name node `node_id` of `cluster` serves under (its certificate's DNS SAN)."""
    if not node_id:
        raise IdentityError("node_id: a node server name needs the node's id")
    return f"{_dns_part(node_id)}.node.{_dns_part(cluster or '-')}{RESERVED_SUFFIX}"


def is_reserved_host(host: str) -> bool:
    """A host under `.gaia`: only the CA derives such names (from identities)."""
    return host.lower().rstrip(".").endswith(RESERVED_SUFFIX)

_current = contextvars.ContextVar("gaia_identity", default=ANONYMOUS)
_token = contextvars.ContextVar("gaia_bearer_token", default="")


def current() -> Identity:
    """The caller of the RPC being served (ANONYMOUS when TLS is off or outside an RPC)."""
    return _current.get()


def bearer_token() -> str:
    """The token the caller sent as `authorization: Bearer <t>` metadata, or ''."""
    return _token.get()


@contextlib.contextmanager
def acting_as(identity: Identity, token: str = ""):
    """Make `identity` (and `token`) the caller for the code inside (the interceptor; tests)."""
    reset_identity = _current.set(identity)
    reset_token = _token.set(token)
    try:
        yield identity
    finally:
        _token.reset(reset_token)
        _current.reset(reset_identity)
