"""The master's tenancy RPCs (WhoAmI, tenants, users, ACL policies), called by MasterService.

Cluster admins (admin users, the master, ANONYMOUS with TLS off) manage everything. Anyone
else sees only its own: its tenant, itself, and the policies naming it or its tenant. A user
holding `admin` on a pool also manages the policies on that subtree for subjects of its own
tenant, granting at most what it holds there itself. What a caller may not manage is answered
exactly as a missing thing is, so a tenant cannot probe another's users, tenants or policies.
"""
from gaia_common.pb import master_pb2, types_pb2
from gaia_common.spec import SpecError
from gaia_master.access import Denied, Principal
from gaia_master.app_table import Conflict
from gaia_master.tenancy import parse_subject


def who_am_i(caller: Principal) -> master_pb2.WhoAmIResponse:
    full = caller.admin or caller.role in ("master", "anonymous")
    return master_pb2.WhoAmIResponse(role=caller.role, name=caller.name, tenant=caller.tenant,
                                     attempt=caller.attempt, admin=full)


def idempotency_key(caller: Principal, key: str) -> str:
    """Users' keys are their own: a key another user chose never returns that user's app."""
    return f"user:{caller.name}/{key}" if key and caller.role == "user" else key


def privileged_asks(spec: types_pb2.AppSpec) -> list:
    """What in a spec needs the `privileged` capability on its pool."""
    asks = [what for what, asked in (("privileged", spec.privileged), ("devices", spec.devices),
                                     ("volumes", spec.volumes), ("network: host", spec.network == "host"))
            if asked]
    return asks


def require_privileged(access, caller: Principal, spec: types_pb2.AppSpec):
    asks = privileged_asks(spec)
    if asks and not access.can(caller, "privileged", spec.pool):
        raise Denied(f"{caller} may not use {', '.join(asks)} in pool {spec.pool!r}: "
                     "that needs the privileged capability")


class TenancyRpc:
    def __init__(self, master):
        self.m = master

    @property
    def access(self):
        return self.m.access

    @property
    def tenancy(self):
        return self.m.tenancy

    # ---- tenants ----

    def create_tenant(self, caller, request: types_pb2.Tenant) -> types_pb2.Tenant:
        self.access.require_admin(caller, "create tenants")
        return self.tenancy.create_tenant(request)

    def delete_tenant(self, caller, name: str) -> types_pb2.Tenant:
        self.access.require_admin(caller, "delete tenants")
        return self.tenancy.delete_tenant(name, self.m.pool_table().list())

    def list_tenants(self, caller) -> master_pb2.ListTenantsResponse:
        tenants = self.tenancy.list_tenants()
        if not self.access.full(caller):
            tenants = [t for t in tenants if t.name == caller.tenant]
        return master_pb2.ListTenantsResponse(tenants=tenants)

    # ---- users ----

    def create_user(self, caller, request) -> master_pb2.CreateUserResponse:
        self.access.require_admin(caller, "create users")
        user, token = self.tenancy.create_user(request.name, request.tenant, request.admin)
        return master_pb2.CreateUserResponse(user=user, token=token)

    def delete_user(self, caller, name: str) -> types_pb2.User:
        self.access.require_admin(caller, "delete users")
        return self.tenancy.delete_user(name)

    def list_users(self, caller, tenant: str) -> master_pb2.ListUsersResponse:
        users = self.tenancy.list_users(tenant)
        if not self.access.full(caller):
            users = [u for u in users if u.name == caller.name]
        return master_pb2.ListUsersResponse(users=users)

    # ---- ACL policies ----

    def _manages(self, caller, policy) -> bool:
        """May `caller` set or delete `policy`: an admin of its pool, for a subject of its tenant."""
        if self.access.full(caller):
            return True
        return (bool(caller.tenant) and self.access.can(caller, "admin", policy.pool)
                and self.tenancy.subject_tenant(policy.subject) == caller.tenant)

    def _sees(self, caller, policy) -> bool:
        mine = policy.subject in (f"user:{caller.name}", f"tenant:{caller.tenant}") and caller.role == "user"
        return mine or self._manages(caller, policy)

    def set_acl(self, caller, policy: types_pb2.AclPolicy) -> types_pb2.AclPolicy:
        kind, name = parse_subject(policy.subject)
        pools = self.m.pool_table()
        if not pools.exists(policy.pool) or not self.access.sees_pool(caller, policy.pool):
            raise SpecError("pool", f"no pool {policy.pool!r}")
        if policy.id:    # replacing a policy one may not see is replacing one that is not there
            old = self.tenancy.policy(policy.id)
            if not self._sees(caller, old):
                raise Conflict("not_found", f"no ACL policy {policy.id!r}")
            if not self._manages(caller, old):
                raise Denied(f"{caller} may not change policy {policy.id}")
        if not self._manages(caller, policy):
            if not self.access.full(caller) and self.tenancy.subject_tenant(policy.subject) != caller.tenant:
                raise SpecError("subject", f"no {kind} {name!r}")     # another tenant's: as if missing
            raise Denied(f"{caller} may not grant on pool {policy.pool!r}: that needs admin there")
        if not self.access.full(caller):
            asked = [c.strip() for c in policy.capabilities if c.strip()]
            beyond = [c for c in asked if not self.access.can(caller, c, policy.pool)]
            if beyond:
                raise Denied(f"{caller} may not grant {', '.join(beyond)} on {policy.pool!r}: it lacks it there itself")
        return self.tenancy.set_policy(policy)

    def delete_acl(self, caller, policy_id: str) -> types_pb2.AclPolicy:
        policy = self.tenancy.policy(policy_id)
        if not self._sees(caller, policy):
            raise Conflict("not_found", f"no ACL policy {policy_id!r}")
        if not self._manages(caller, policy):
            raise Denied(f"{caller} may not delete policy {policy_id}: that needs admin on {policy.pool!r}")
        return self.tenancy.delete_policy(policy_id)

    def list_acl(self, caller, subject: str, pool: str) -> master_pb2.ListAclResponse:
        policies = self.tenancy.list_policies(subject, pool)
        if not self.access.full(caller):
            policies = [p for p in policies if self._sees(caller, p)]
        return master_pb2.ListAclResponse(policies=policies)
