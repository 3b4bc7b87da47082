"""gaia tenant / user / acl / whoami: who may do what, kept by the leading master.

Tenants own pool subtrees; users belong to a tenant (cluster admins may belong to none);
ACL policies grant capabilities to a user or a whole tenant on a pool and its subtree.
`gaia user create` prints the user's token once: only its hash is stored.
"""
import click

from gaia_common.pb import master_pb2, types_pb2
from gaia_cli import output
from gaia_cli.context import pass_context
from gaia_cli.errors import EXIT_BAD_REQUEST, CliError

CAPABILITIES = ("submit", "read", "kill", "scale", "logs", "admin", "privileged")


def _created(unix_ms: int) -> str:
    return output.timestamp(unix_ms / 1000) if unix_ms else "-"


# ---- tenants ----

def render_tenants(response) -> str:
    rows = [[t.name, t.description or "-", _created(t.created_unix_ms)] for t in response.tenants]
    return output.render_table(["TENANT", "DESCRIPTION", "CREATED"], rows)


@click.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the tenant is (shown in `tenant list`).")
@output.output_option
@pass_context
def tenant_create(ctx, name, description, fmt):
    """Create tenant NAME (cluster admins only)."""
    tenant = ctx.call("CreateTenant", types_pb2.Tenant(name=name, description=description))
    output.emit(fmt, tenant, lambda t: f"created tenant {t.name}")


@click.command("delete")
@click.argument("name")
@output.output_option
@pass_context
def tenant_delete(ctx, name, fmt):
    """Delete a tenant that owns no pools and has no users; its policies go with it."""
    tenant = ctx.call("DeleteTenant", master_pb2.DeleteTenantRequest(name=name))
    output.emit(fmt, tenant, lambda t: f"deleted tenant {t.name}")


@click.command("list")
@output.output_option
@pass_context
def tenant_list(ctx, fmt):
    """List the tenants (a tenant's user sees its own)."""
    output.emit(fmt, ctx.call("ListTenants", master_pb2.ListTenantsRequest()), render_tenants)


# ---- users ----

def render_users(response) -> str:
    rows = [[u.name, u.tenant or "-", "yes" if u.admin else "no", _created(u.created_unix_ms)]
            for u in response.users]
    return output.render_table(["USER", "TENANT", "ADMIN", "CREATED"], rows)


def render_created_user(response) -> str:
    u = response.user
    return (f"created user {u.name}" + (f" in tenant {u.tenant}" if u.tenant else "") +
            (" (cluster admin)" if u.admin else "") +
            f"\ntoken: {response.token}\n"
            "The token is shown only now: keep it (`token:` in the cluster's client config entry).")


@click.command("create")
@click.argument("name")
@click.option("--tenant", default="", help="The tenant the user belongs to (required unless --admin).")
@click.option("--admin", is_flag=True, help="A cluster admin: every capability everywhere.")
@output.output_option
@pass_context
def user_create(ctx, name, tenant, admin, fmt):
    """Create user NAME and print its bearer token, once (cluster admins only)."""
    if not tenant and not admin:
        raise CliError("give --tenant T (only cluster admins, --admin, may belong to no tenant)", EXIT_BAD_REQUEST)
    response = ctx.call("CreateUser", master_pb2.CreateUserRequest(name=name, tenant=tenant, admin=admin))
    output.emit(fmt, response, render_created_user)


@click.command("delete")
@click.argument("name")
@output.output_option
@pass_context
def user_delete(ctx, name, fmt):
    """Delete a user: its token stops working at once, its policies go with it."""
    user = ctx.call("DeleteUser", master_pb2.DeleteUserRequest(name=name))
    output.emit(fmt, user, lambda u: f"deleted user {u.name}")


@click.command("list")
@click.option("--tenant", default="", help="Only this tenant's users.")
@output.output_option
@pass_context
def user_list(ctx, tenant, fmt):
    """List users (a non-admin sees itself)."""
    output.emit(fmt, ctx.call("ListUsers", master_pb2.ListUsersRequest(tenant=tenant)), render_users)


# ---- ACL policies ----

def _capabilities(value: str) -> list:
    caps = [c.strip() for c in value.split(",") if c.strip()]
    unknown = [c for c in caps if c not in CAPABILITIES]
    if not caps or unknown:
        raise CliError(f"--cap {value!r}: give a comma-separated list of {', '.join(CAPABILITIES)}",
                       EXIT_BAD_REQUEST)
    return caps


def _subject(value: str) -> str:
    kind, sep, name = value.partition(":")
    if not sep or kind not in ("user", "tenant") or not name:
        raise CliError(f"--subject {value!r}: use user:NAME or tenant:NAME", EXIT_BAD_REQUEST)
    return value


def render_policies(response) -> str:
    rows = [[p.id, p.subject, p.pool, ",".join(p.capabilities)] for p in response.policies]
    return output.render_table(["ID", "SUBJECT", "POOL", "CAPABILITIES"], rows)


@click.command("set")
@click.option("--subject", required=True, metavar="user:NAME|tenant:NAME", help="Who is granted.")
@click.option("--pool", required=True, metavar="PATH", help="The pool; the grant covers its whole subtree.")
@click.option("--cap", "caps", required=True, metavar="CAP,...",
              help=f"Capabilities, replacing the subject's on this pool: {', '.join(CAPABILITIES)}.")
@click.option("--id", "policy_id", default="", help="Replace this policy (default: the subject's on the pool).")
@output.output_option
@pass_context
def acl_set(ctx, subject, pool, caps, policy_id, fmt):
    """Grant a user or tenant exactly CAPs on a pool and everything below it."""
    policy = types_pb2.AclPolicy(id=policy_id, subject=_subject(subject), pool=pool, capabilities=_capabilities(caps))
    output.emit(fmt, ctx.call("SetAcl", policy),
                lambda p: f"policy {p.id}: {p.subject} may {','.join(p.capabilities)} in {p.pool}")


@click.command("delete")
@click.argument("policy_id", metavar="ID")
@output.output_option
@pass_context
def acl_delete(ctx, policy_id, fmt):
    """Delete policy ID."""
    policy = ctx.call("DeleteAcl", master_pb2.DeleteAclRequest(id=policy_id))
    output.emit(fmt, policy, lambda p: f"deleted policy {p.id}")


@click.command("list")
@click.option("--subject", default="", help="Only this subject's (user:NAME or tenant:NAME).")
@click.option("--pool", default="", help="Only those on exactly this pool.")
@output.output_option
@pass_context
def acl_list(ctx, subject, pool, fmt):
    """List ACL policies by pool (a non-admin sees those naming it or its tenant)."""
    output.emit(fmt, ctx.call("ListAcl", master_pb2.ListAclRequest(subject=subject, pool=pool)), render_policies)


# ---- who am I ----

def render_whoami(w) -> str:
    return output.render_fields([("Role", w.role), ("Name", w.name), ("Tenant", w.tenant or "-"),
                                 ("Admin", "yes" if w.admin else "no")] +
                                ([("Attempt", w.attempt)] if w.role == "am" else []))


@click.command("whoami")
@output.output_option
@pass_context
def whoami(ctx, fmt):
    """Who the master takes you for: role, name, tenant, admin."""
    output.emit(fmt, ctx.call("WhoAmI", master_pb2.WhoAmIRequest()), render_whoami)
