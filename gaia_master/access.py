"""Who the caller is and what it may do: the master's access checks.

`who` maps the RPC's identity (from the peer certificate, gaia_common/security) and bearer
token to a Principal: a user is looked up in the tenancy table (a token decides which user;
without one, the certificate's name does; an unknown user is UNAUTHENTICATED). The master
role, users with admin=True and ANONYMOUS (TLS off: a plaintext dev cluster) may do
everything; an AM may read its own app; node and DNS roles nothing here.

A user may do what a policy grants it or its tenant on the pool or an ancestor of it
(policies cover subtrees); everything else is denied. What a caller may not see at all is
`Hidden`: handlers answer it exactly as they answer a missing thing, so no one learns that
another tenant's app or pool exists. What it may see but not do is `Denied`
(PERMISSION_DENIED, naming the capability).

Resolving names is service discovery: any caller may resolve an app that is not private;
a private one resolves for its own tenant (and those who may read it) only.
"""
import dataclasses

from gaia_common.security.identity import Identity

FULL_ROLES = ("master", "anonymous")      # may do everything


class Unauthenticated(Exception):
    """The caller's credentials name no user (UNAUTHENTICATED)."""


class Denied(Exception):
    """The caller may see the thing but not do this to it (PERMISSION_DENIED)."""


class Hidden(Exception):
    """The caller may not see the thing: answer as if it did not exist (NOT_FOUND)."""


@dataclasses.dataclass(frozen=True)
class Principal:
    role: str
    name: str
    tenant: str = ""
    admin: bool = False
    app_id: str = ""                      # am only
    attempt: int = 0                      # am only
    grants: tuple = ()                    # user only: (pool path, frozenset of capabilities)

    def __str__(self) -> str:
        if self.role == "user":
            return f"user {self.name}" + (f" (tenant {self.tenant})" if self.tenant else "")
        if self.role == "am":
            return f"the AM of {self.app_id}"
        return f"{self.role} {self.name}"


ANONYMOUS = Principal("anonymous", "anonymous", admin=True)


def covers(policy_pool: str, pool: str) -> bool:
    """A policy on `policy_pool` applies to `pool`: the same pool or one below it."""
    return pool == policy_pool or pool.startswith(policy_pool + "/")


def pool_tenant(pools: dict, path: str) -> str:
    """The tenant owning `path`: its own, else its nearest ancestor's; '' = the operators'."""
    while path:
        pool = pools.get(path)
        if pool is not None and pool.tenant:
            return pool.tenant
        path = path.rpartition("/")[0]
    return ""


class Access:
    def __init__(self, tenancy, pools, apps):
        """`tenancy`: gaia_master.tenancy.Tenancy; `pools`: the PoolTable; `apps`: the AppTable."""
        self.tenancy = tenancy
        self.pools = pools
        self.apps = apps

    # ---- who ----

    def who(self, identity: Identity, token: str = "") -> Principal:
        if identity.role == "master":
            return Principal("master", identity.name, admin=True)
        if identity.role == "am":
            record = self.apps.by_id(identity.app_id)
            tenant = self.tenant_of(record.spec.pool) if record is not None else ""
            return Principal("am", identity.name, tenant, app_id=identity.app_id, attempt=identity.attempt)
        if identity.role == "user" or (identity.role == "anonymous" and token):
            return self._user(identity, token)
        if identity.role == "anonymous":
            return ANONYMOUS
        return Principal(identity.role, identity.name)       # node, dns: no user capabilities

    def _user(self, identity: Identity, token: str) -> Principal:
        if token:
            user = self.tenancy.user_by_token(token)
            if user is None:
                raise Unauthenticated("the bearer token names no user (unknown, or its user was deleted)")
        else:
            user = self.tenancy.user(identity.name)
            if user is None:
                raise Unauthenticated(f"no user {identity.name!r}; an admin creates it with `gaia user create`")
        subjects = {f"user:{user.name}"} | ({f"tenant:{user.tenant}"} if user.tenant else set())
        grants = tuple((p.pool, frozenset(p.capabilities)) for p in self.tenancy.policies_of(subjects))
        return Principal("user", user.name, user.tenant, admin=user.admin, grants=grants)

    # ---- capabilities on pools ----

    def full(self, principal: Principal) -> bool:
        return principal.admin or principal.role in FULL_ROLES

    def can(self, principal: Principal, capability: str, pool: str) -> bool:
        if self.full(principal):
            return True
        return any(capability in caps and covers(where, pool) for where, caps in principal.grants)

    def require(self, principal: Principal, capability: str, pool: str):
        if not self.can(principal, capability, pool):
            raise Denied(f"{principal} may not {capability} in pool {pool!r}")

    def require_admin(self, principal: Principal, what: str):
        """Cluster-wide operations: admin users, the master, ANONYMOUS (TLS off)."""
        if not self.full(principal):
            raise Denied(f"{principal} may not {what}: only cluster admins may")

    def sees_pool(self, principal: Principal, pool: str) -> bool:
        """Any capability on the pool (or above it) lets the caller see it."""
        return self.full(principal) or any(covers(where, pool) for where, _ in principal.grants)

    def require_pool_admin(self, principal: Principal, path: str, what: str):
        """Changing pool `path` needs admin on its parent (a tenant may not raise its own
        quota); a top-level pool is the cluster admins'."""
        parent = path.rpartition("/")[0]
        if not parent:
            self.require_admin(principal, what)
        elif not self.can(principal, "admin", parent):
            raise Denied(f"{principal} may not {what}: it needs admin on the parent pool {parent!r}")

    def tenant_of(self, pool: str) -> str:
        with self.pools.lock:
            return pool_tenant(self.pools.pools, pool)

    # ---- apps ----

    def visible_app(self, principal: Principal, record) -> bool:
        """Whether the caller may know the app exists (any capability on its pool)."""
        if self.full(principal):
            return True
        if principal.role == "am":
            return record.app_id == principal.app_id
        return principal.role == "user" and self.sees_pool(principal, record.spec.pool)

    def readable_app(self, principal: Principal, record) -> bool:
        """What lists show: apps the caller may read."""
        if principal.role == "am":
            return self.visible_app(principal, record)
        return self.can(principal, "read", record.spec.pool)

    def require_app(self, principal: Principal, record, capability: str):
        """Hidden when the caller may not see the app; Denied when it may not `capability` it."""
        if not self.visible_app(principal, record):
            raise Hidden(record.spec.name)
        if principal.role == "am":
            if capability != "read":
                raise Denied(f"{principal} may only read its own app")
            return
        self.require(principal, capability, record.spec.pool)

    def resolvable_app(self, principal: Principal, record) -> bool:
        """Service discovery: public apps for every caller, private ones for their tenant."""
        if self.readable_app(principal, record) or not record.spec.private:
            return True
        return bool(principal.tenant) and principal.tenant == self.tenant_of(record.spec.pool)

    def require_am(self, principal: Principal, app_id: str):
        """ApplicationMaster calls: the AM of that app (or the cluster's admins)."""
        if self.full(principal):
            return
        if principal.role != "am":
            raise Denied(f"{principal} may not make ApplicationMaster calls")
        if principal.app_id != app_id:
            raise Denied(f"{principal} may not act for another app")
