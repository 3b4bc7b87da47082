"""Node enrolment: one-time bootstrap tokens, and the Enrol service that takes one in
exchange for a node certificate and the node etcd credential (`gaia node join`).

A token is `<id>.<secret>`. The leader stores only the secret's SHA-256 under
join-tokens/<id> (with its expiry and the node id it is for, if any), bound to an etcd lease
that outlives the expiry a little, so unused tokens vanish by themselves.

JoinNode runs on any master replica's enrolment port (server-only TLS: the node has no
certificate yet). It checks the token, signs the node's CSR for Identity node/<node_id>, and
marks the token used in one etcd transaction that compares the token key's mod revision with
the one it read: of two joins racing with one token exactly one commits, and a token once used
(or expired) is refused for good. The node's private key never leaves the node.

Which hosts a node may have in its certificate: up to MAX_HOSTS IP addresses or DNS names, no
wildcards, and none that a live master or another live node already serves on. Clients check a
server's certificate against the host they dial, so a node must not get one naming another
server's address: it could then pose as that master or node to anyone whose traffic it can
reach. Loopback addresses and `localhost` are allowed even when shared: every daemon of a
one-machine cluster serves on them, and only processes on that machine can dial them.
Names under `.gaia` (node server names: identity.node_server_name) are never taken from a
request: the CA gives the node its own, from the node id the token enrols, and a join whose
addresses or CSR ask for any other such name is refused.
"""
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import time

import grpc

from gaia_common import etcd_auth, rpc
from gaia_common.etcd import TRANSIENT, retry
from gaia_common.masters import list_masters
from gaia_common.pb import master_pb2, master_pb2_grpc
from gaia_common.security.identity import Identity, is_reserved_host, node_server_name
from gaia_common.security.pki import PkiError, csr_dns_names

log = logging.getLogger(__name__)

DEFAULT_TTL = 15 * 60.0
MAX_TTL = 7 * 24 * 3600.0
LEASE_GRACE = 60                  # the token's key outlives its expiry by this (seconds)
MAX_HOSTS = 8
NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")    # it is part of etcd keys
_TOKEN = re.compile(r"^([a-f0-9]{12})\.([A-Za-z0-9_-]{16,128})$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple:
    """'<id>.<secret>' -> (id, secret); Refused when it is not shaped like a join token."""
    match = _TOKEN.fullmatch(token or "")
    if not match:
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, "token: not a join token (expected <id>.<secret>, "
                                                       "as `gaia node token create` prints it)")
    return match.group(1), match.group(2)


def check_node_id(node_id: str) -> str:
    if not NODE_ID.fullmatch(node_id or ""):
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                      f"node_id: {node_id!r} must be letters, digits, '.', '_' and '-' (it is part of etcd keys)")
    return node_id


def _host_key(host: str) -> str:
    """A host as compared: an IP in its canonical form, a DNS name lowercased without the root dot."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_hosts(addresses, taken) -> list:
    """The hosts a node's certificate may name (see the module's docstring); `taken`: the hosts
    live masters and other live nodes serve on."""
    if len(addresses) > MAX_HOSTS:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"addresses: at most {MAX_HOSTS} (got {len(addresses)})")
    out = []
    for host in addresses:
        key = _host_key(host)
        if is_reserved_host(key):
            raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                          f"addresses: {host} is under .gaia: a node's server name comes from its node id, "
                          "never from the names it asks for")
        try:
            ipaddress.ip_address(key)
        except ValueError:
            if len(key) > 253 or not all(_DNS_LABEL.match(label) for label in key.split(".")):
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                              f"addresses: {host!r} is neither an IP address nor a DNS name (no wildcards)") from None
        if key in taken and not _is_loopback(key):
            raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                          f"addresses: {host} is served by another live master or node; a node's "
                          "certificate may not name it")
        if key not in out:
            out.append(key)
    return out


@dataclasses.dataclass
class TokenRecord:
    """What join-tokens/<id> holds (JSON)."""
    hash: str
    expires: float
    node_id: str = ""
    created_by: str = ""
    used_by: str = ""
    used_at: float = 0.0

    def dump(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def load(cls, value: bytes) -> "TokenRecord":
        return cls(**json.loads(value))


class JoinTokens:
    """Making tokens (the leader, fenced) and taking one (any replica, one transaction)."""

    def __init__(self, keys, etcd, store=None, clock=time.time):
        self.keys, self.etcd, self.store, self.clock = keys, etcd, store, clock

    def create(self, ttl_seconds: float = 0, node_id: str = "", created_by: str = "") -> master_pb2.JoinToken:
        """A new token, stored by the leader (fenced)."""
        token = f"{secrets.token_hex(6)}.{secrets.token_urlsafe(32)}"
        expires = self._store(token, ttl_seconds, node_id, created_by, self.store.commit)
        return master_pb2.JoinToken(token=token, expires_unix=expires)

    def register(self, token: str, ttl_seconds: float = 0, node_id: str = "", created_by: str = "") -> float:
        """Store a token made elsewhere (a lab's provisioning makes its nodes' tokens in advance),
        with root's or a master's etcd login rather than through the leader. Returns its expiry.
        Only if it is new: registering it again (provisioning runs again) must not make a used
        token good once more."""
        key = self.keys.join_token(parse_token(token)[0])

        def commit(ops):
            tx = self.etcd.transactions
            self.etcd.transaction(compare=[tx.version(key) == 0], success=ops, failure=[])
        return self._store(token, ttl_seconds, node_id, created_by, commit)

    def _store(self, token: str, ttl_seconds: float, node_id: str, created_by: str, commit) -> float:
        ttl = ttl_seconds or DEFAULT_TTL
        if not 0 < ttl <= MAX_TTL:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                          f"ttl_seconds: must be more than 0 and at most {MAX_TTL:.0f} (a week)")
        if node_id:
            check_node_id(node_id)
        token_id, secret = parse_token(token)
        expires = self.clock() + ttl
        record = TokenRecord(_hash(secret), expires, node_id, created_by)
        lease = retry(lambda: self.etcd.lease(int(ttl) + LEASE_GRACE))
        commit([self.etcd.transactions.put(self.keys.join_token(token_id), record.dump(), lease=lease)])
        log.info("join token %s made by %s for %s, good for %.0fs", token_id, created_by or "?",
                 node_id or "any node", ttl)
        return expires

    def check(self, token: str, node_id: str):
        """The token's (id, record, key metadata) if it may enrol `node_id` now; Refused otherwise."""
        token_id, secret = parse_token(token)
        value, meta = retry(lambda: self.etcd.get(self.keys.join_token(token_id)))
        record = TokenRecord.load(value) if value is not None else None
        if record is None or not hmac.compare_digest(record.hash, _hash(secret)):
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, f"join token {token_id}: unknown (never made, "
                                                           "or expired and removed)")
        if record.used_by:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"join token {token_id}: already used (by node "
                                                             f"{record.used_by}); a token enrols one node once")
        if self.clock() >= record.expires:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"join token {token_id}: expired "
                                                             f"{self.clock() - record.expires:.0f}s ago")
        if record.node_id and record.node_id != node_id:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"join token {token_id}: made for another node, "
                                                             f"not {node_id!r}")
        return token_id, record, meta

    def take(self, token_id: str, record: TokenRecord, meta, node_id: str):
        """Mark the token used, iff nobody changed its key since check() read it."""
        key = self.keys.join_token(token_id)
        used = dataclasses.replace(record, used_by=node_id, used_at=self.clock())
        tx = self.etcd.transactions
        ok, _ = self.etcd.transaction(compare=[tx.mod(key) == meta.mod_revision],
                                      success=[tx.put(key, used.dump(), lease=meta.lease_id or None)],
                                      failure=[])
        if not ok:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                          f"join token {token_id}: taken by another join at the same moment")


class EnrolService(master_pb2_grpc.EnrolServicer):
    """Enrol.JoinNode; `master` gives keys, etcd, node_view, address and the CA."""

    def __init__(self, master):
        self.m = master
        self.tokens = master.join_tokens

    def JoinNode(self, request, context):
        try:
            return self._join(request)
        except Refused as e:
            log.warning("join of node %r refused: %s", request.node_id, e.message)
            context.abort(e.code, e.message)
        except TRANSIENT as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"etcd unavailable, try again: {e}")

    def _join(self, request) -> master_pb2.JoinNodeResponse:
        node_id = check_node_id(request.node_id)
        token_id, record, meta = self.tokens.check(request.token, node_id)
        if self.m.node_view.node(node_id) is not None:
            raise Refused(grpc.StatusCode.ALREADY_EXISTS, f"node_id: node {node_id!r} is alive; stop it (and let "
                                                          "its lease expire) before enrolling a node of that name")
        hosts = check_hosts(list(request.addresses), self._taken_hosts(node_id))
        identity = Identity("node", node_id, self.m.keys.cluster)
        check_csr_names(request.csr_pem, identity)
        try:
            cert_pem = self.m.ca.sign_csr(request.csr_pem, identity, hosts)
        except PkiError as e:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        credential = etcd_auth.handed_out(self.m.etcd, self.m.keys, "node")
        self.tokens.take(token_id, record, meta, node_id)     # the one step that commits
        log.info("node %s enrolled with join token %s (hosts %s)", node_id, token_id, ", ".join(hosts) or "-")
        user, password = credential or ("", "")
        return master_pb2.JoinNodeResponse(cert_pem=cert_pem, ca_pem=self.m.ca.cert_pem, etcd_user=user,
                                           etcd_password=password, etcd_endpoints=list(self.m.cfg.etcd))

    def _taken_hosts(self, node_id: str) -> set:
        addresses = [m.address for m in list_masters(self.m.etcd, self.m.keys)] + [self.m.address]
        for info in self.m.node_view.node_list():
            if info.node_id != node_id:
                addresses += [info.address, info.host_ip]
        return {_host_key(_host_of(address)) for address in addresses if address}


def check_csr_names(csr_pem: bytes, identity: Identity):
    """The CA ignores a CSR's names, but one asking for another node's server name is an
    attempt to pose as that node: refuse it outright rather than sign it quietly."""
    own = node_server_name(identity.cluster, identity.name)
    try:
        names = csr_dns_names(csr_pem)
    except PkiError as e:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
    for name in names:
        if is_reserved_host(name) and name.lower().rstrip(".") != own:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                          f"csr_pem: asks for {name}, a server name that is not node {identity.name}'s ({own})")


def _host_of(address: str) -> str:
    """'host:port', '[v6]:port' or a bare IP -> the host."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address.rsplit(":", 1)[0].strip("[]")


def serve(master, listen: str):
    """The enrolment server on `listen` (server-only TLS with the master's certificate); returns
    (server, bound address). No client certificate is asked for: the token is the credential."""
    from gaia_common.security import tls as tls_mod
    server = rpc.make_server(max_workers=8)
    master_pb2_grpc.add_EnrolServicer_to_server(EnrolService(master), server)
    bound = rpc.bind(server, listen, tls=tls_mod.server_credentials(master.tls, require_client_auth=False))
    server.start()
    return server, bound
