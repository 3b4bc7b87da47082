"""Tenants, users and ACL policies: owned by the leader, kept in memory, fenced to etcd.

Stored one key each under tenants/<name>, users/<name> and acl/<id>. Like the pool tree,
memory is the truth while we lead: the table is (re)loaded for each epoch before it answers,
and a change reaches memory only once its fenced write has committed.

A user's token is made here (`secrets`), shown to the operator once, and only its SHA-256
is stored: a leaked etcd snapshot names users but lets no one act as them. Lookups by
token hash the presented token and find the user through an index.

A policy grants `capabilities` to a subject ("user:<name>" or "tenant:<name>") on a pool
path and, through it, on the whole subtree below (gaia_master/access.py decides).
"""
import hashlib
import re
import secrets
import threading
import time

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_common.spec import POOL, TENANT, SpecError
from gaia_master.access import pool_tenant
from gaia_master.app_table import Conflict

CAPABILITIES = ("submit", "read", "kill", "scale", "logs", "admin", "privileged")
TENANT_NAME = TENANT             # as pools name it (gaia_common/spec.py)
# a user name goes into a certificate's URI (gaia://<cluster>/user/<name>) and an etcd key
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,62}$")
BOOTSTRAP_ADMIN = "admin"      # the operator's user: made by the first leader, never deleted
MAX_DESCRIPTION = 256
TOKEN_PREFIX = "gaia_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def public(user: types_pb2.User) -> types_pb2.User:
    """The user as the API shows it: never its token's hash."""
    out = types_pb2.User()
    out.CopyFrom(user)
    out.ClearField("token_sha256")
    return out


def parse_subject(subject: str):
    """'user:alice' -> ('user', 'alice'); SpecError naming `subject` otherwise."""
    kind, sep, name = subject.partition(":")
    if not sep or kind not in ("user", "tenant") or not name:
        raise SpecError("subject", f"{subject!r} must be user:<name> or tenant:<name>")
    return kind, name


def check_capabilities(capabilities) -> list:
    caps = [c.strip() for c in capabilities if c.strip()]
    if not caps:
        raise SpecError("capabilities", f"name at least one of {', '.join(CAPABILITIES)}")
    unknown = [c for c in caps if c not in CAPABILITIES]
    if unknown:
        raise SpecError("capabilities", f"{unknown[0]!r} is not one of {', '.join(CAPABILITIES)}")
    return sorted(set(caps), key=CAPABILITIES.index)


def check_pool_tenant(pool: types_pb2.Pool, pools: dict, tenant_exists):
    """A pool's tenant must exist, and one tree has one owner: a pool inside a tenant's
    subtree cannot name another tenant, nor may a pool above them disown its children's."""
    if not pool.tenant:
        return                       # inherits its parent's (or the operators')
    if not tenant_exists(pool.tenant):
        raise SpecError("tenant", f"no tenant {pool.tenant!r}; create it with `gaia tenant create`")
    above = pool_tenant(pools, pool.path.rpartition("/")[0])
    if above and above != pool.tenant:
        raise SpecError("tenant", f"{pool.path!r} is inside tenant {above!r}'s pools; it cannot belong to "
                                  f"{pool.tenant!r}")
    other = sorted(p.path for p in pools.values()
                   if p.path.startswith(pool.path + "/") and p.tenant and p.tenant != pool.tenant)
    if other:
        raise SpecError("tenant", f"child pool {other[0]!r} belongs to another tenant")


class Tenancy:
    def __init__(self, keys: Keys, store):
        self.keys = keys
        self.store = store
        self.lock = threading.RLock()
        self.tenants = {}          # name -> Tenant
        self.users = {}            # name -> User (with its token hash)
        self.by_token = {}         # token sha256 -> user name
        self.policies = {}         # id -> AclPolicy
        self._loaded_epoch = 0

    # ---- loading ----

    def load(self, etcd, epoch: int):
        tenants, users, policies = {}, {}, {}
        for prefix, cls, into, key in ((self.keys.tenants, types_pb2.Tenant, tenants, "name"),
                                       (self.keys.users, types_pb2.User, users, "name"),
                                       (self.keys.acls, types_pb2.AclPolicy, policies, "id")):
            for value, _ in etcd.get_prefix(prefix):
                message = cls()
                message.ParseFromString(value)
                into[getattr(message, key)] = message
        with self.lock:
            self.tenants, self.users, self.policies = tenants, users, policies
            self.by_token = {u.token_sha256: u.name for u in users.values() if u.token_sha256}
            self._loaded_epoch = epoch

    def ensure_loaded(self, etcd, epoch: int):
        """Load once per leadership epoch: a new leader reads the tables before it answers."""
        if self._loaded_epoch != epoch:
            with self.lock:
                if self._loaded_epoch != epoch:
                    self.load(etcd, epoch)

    def ensure_bootstrap_admin(self):
        """Store the operator's user (admin, certificate only: no token) if it is missing, so
        that a new cluster has someone who may create the rest."""
        with self.lock:
            if BOOTSTRAP_ADMIN not in self.users:
                self._put_user(types_pb2.User(name=BOOTSTRAP_ADMIN, admin=True, created_unix_ms=_now_ms()))

    # ---- reads (for access checks: under the lock, no copies) ----

    def user(self, name: str):
        with self.lock:
            return self.users.get(name)

    def user_by_token(self, token: str):
        if not token:
            return None
        with self.lock:
            name = self.by_token.get(token_hash(token))
            return self.users.get(name) if name else None

    def policies_of(self, subjects) -> list:
        subjects = set(subjects)
        with self.lock:
            return [p for p in self.policies.values() if p.subject in subjects]

    def list_tenants(self) -> list:
        with self.lock:
            return [self.tenants[n] for n in sorted(self.tenants)]

    def list_users(self, tenant: str = "") -> list:
        with self.lock:
            return [public(u) for n, u in sorted(self.users.items()) if not tenant or u.tenant == tenant]

    def list_policies(self, subject: str = "", pool: str = "") -> list:
        with self.lock:
            found = [p for p in self.policies.values()
                     if (not subject or p.subject == subject) and (not pool or p.pool == pool)]
        return sorted(found, key=lambda p: (p.pool, p.subject, p.id))

    # ---- tenants ----

    def create_tenant(self, tenant: types_pb2.Tenant) -> types_pb2.Tenant:
        if not TENANT_NAME.fullmatch(tenant.name):
            raise SpecError("name", f"{tenant.name!r} must be 1-63 lowercase letters, digits or '-', "
                                    "starting with a letter")
        if len(tenant.description) > MAX_DESCRIPTION:
            raise SpecError("description", f"longer than {MAX_DESCRIPTION} characters")
        with self.lock:
            if tenant.name in self.tenants:
                raise Conflict("exists", f"tenant {tenant.name!r} already exists")
            new = types_pb2.Tenant(name=tenant.name, description=tenant.description, created_unix_ms=_now_ms())
            self.store.commit([self.store.put(self.keys.tenant(new.name), new)])
            self.tenants[new.name] = new
            return new

    def delete_tenant(self, name: str, pools: list) -> types_pb2.Tenant:
        """Delete a tenant that no user and no pool (`pools`: Pools) belongs to; its
        policies go with it. Refusals name the field (INVALID_ARGUMENT)."""
        with self.lock:
            tenant = self.tenants.get(name)
            if tenant is None:
                raise Conflict("not_found", f"no tenant {name!r}")
            users = sorted(u.name for u in self.users.values() if u.tenant == name)
            if users:
                raise SpecError("name", f"tenant {name!r} has {len(users)} user(s) ({', '.join(users[:5])}); "
                                        "delete them first")
            owned = sorted(p.path for p in pools if p.tenant == name)
            if owned:
                raise SpecError("name", f"tenant {name!r} owns {len(owned)} pool(s) ({', '.join(owned[:5])}); "
                                        "delete them or give them to another tenant first")
            dropped = [p.id for p in self.policies.values() if p.subject == f"tenant:{name}"]
            self.store.commit([self.store.delete(self.keys.tenant(name)),
                               *(self.store.delete(self.keys.acl(i)) for i in dropped)])
            del self.tenants[name]
            for i in dropped:
                del self.policies[i]
            return tenant

    # ---- users ----

    def create_user(self, name: str, tenant: str, admin: bool):
        """Store a new user; returns (User as shown, its token: the only time anyone sees it)."""
        if not USER_NAME.fullmatch(name):
            raise SpecError("name", f"{name!r} must be 1-63 lowercase letters, digits, '.', '_', '@' or '-'")
        with self.lock:
            if not tenant and not admin:
                raise SpecError("tenant", "a user belongs to a tenant (only cluster admins may have none)")
            if tenant and tenant not in self.tenants:
                raise SpecError("tenant", f"no tenant {tenant!r}; create it with `gaia tenant create`")
            if name in self.users:
                raise Conflict("exists", f"user {name!r} already exists")
            token = new_token()
            user = types_pb2.User(name=name, tenant=tenant, admin=admin, token_sha256=token_hash(token),
                                  created_unix_ms=_now_ms())
            self._put_user(user)
            return public(user), token

    def delete_user(self, name: str) -> types_pb2.User:
        """Delete a user and the policies naming it; its token stops working at once."""
        if name == BOOTSTRAP_ADMIN:
            raise SpecError("name", f"{BOOTSTRAP_ADMIN!r} is the cluster's bootstrap admin and cannot be deleted")
        with self.lock:
            user = self.users.get(name)
            if user is None:
                raise Conflict("not_found", f"no user {name!r}")
            dropped = [p.id for p in self.policies.values() if p.subject == f"user:{name}"]
            self.store.commit([self.store.delete(self.keys.user(name)),
                               *(self.store.delete(self.keys.acl(i)) for i in dropped)])
            del self.users[name]
            self.by_token.pop(user.token_sha256, None)
            for i in dropped:
                del self.policies[i]
            return public(user)

    def _put_user(self, user: types_pb2.User):
        self.store.commit([self.store.put(self.keys.user(user.name), user)])
        self.users[user.name] = user
        if user.token_sha256:
            self.by_token[user.token_sha256] = user.name

    # ---- ACL policies ----

    def subject_exists(self, subject: str) -> bool:
        kind, name = parse_subject(subject)
        with self.lock:
            return name in (self.users if kind == "user" else self.tenants)

    def subject_tenant(self, subject: str) -> str:
        """The tenant a subject belongs to ('' for a user of none, or an unknown subject)."""
        kind, name = parse_subject(subject)
        if kind == "tenant":
            return name
        user = self.user(name)
        return user.tenant if user is not None else ""

    def set_policy(self, policy: types_pb2.AclPolicy) -> types_pb2.AclPolicy:
        """Grant exactly `capabilities` to the subject on the pool: a policy for the same
        subject and pool is replaced (its id kept), so setting twice is one policy.
        The caller has checked that the pool exists."""
        kind, name = parse_subject(policy.subject)
        if not POOL.fullmatch(policy.pool):
            raise SpecError("pool", f"{policy.pool!r} is not a pool path like ads/ranking")
        caps = check_capabilities(policy.capabilities)
        with self.lock:
            if not self.subject_exists(policy.subject):
                raise SpecError("subject", f"no {kind} {name!r}")
            same = next((p for p in self.policies.values()
                         if p.subject == policy.subject and p.pool == policy.pool), None)
            if policy.id and policy.id not in self.policies:
                raise Conflict("not_found", f"no ACL policy {policy.id!r}")
            if policy.id and same is not None and same.id != policy.id:
                raise Conflict("exists", f"policy {same.id} already covers {policy.subject} on {policy.pool!r}")
            policy_id = policy.id or (same.id if same is not None else secrets.token_hex(6))
            new = types_pb2.AclPolicy(id=policy_id, subject=policy.subject, pool=policy.pool, capabilities=caps)
            self.store.commit([self.store.put(self.keys.acl(policy_id), new)])
            self.policies[policy_id] = new
            return new

    def policy(self, policy_id: str) -> types_pb2.AclPolicy:
        with self.lock:
            found = self.policies.get(policy_id)
        if found is None:
            raise Conflict("not_found", f"no ACL policy {policy_id!r}")
        return found

    def delete_policy(self, policy_id: str) -> types_pb2.AclPolicy:
        with self.lock:
            found = self.policy(policy_id)
            self.store.commit([self.store.delete(self.keys.acl(policy_id))])
            del self.policies[policy_id]
            return found

    def pool_policy_ops(self, path: str) -> tuple:
        """(ops deleting the policies on exactly `path`, a callback dropping them from memory
        once they committed): a deleted pool takes its policies along, so a new pool of that
        name, maybe another tenant's, inherits no grants."""
        with self.lock:
            ids = [p.id for p in self.policies.values() if p.pool == path]
        ops = [self.store.delete(self.keys.acl(i)) for i in ids]

        def committed():
            with self.lock:
                for i in ids:
                    self.policies.pop(i, None)

        return ops, committed


def _now_ms() -> int:
    return int(time.time() * 1000)
