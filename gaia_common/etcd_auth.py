"""etcd RBAC for a Gaia cluster: who may read and write which keys of /gaia/<cluster>/.

Only masters, node managers and the DNS server hold etcd credentials; clients (the CLI, AMs)
may read the masters' addresses and nothing else. Each kind gets a role and a user of the same
name, `gaia-<cluster>-<kind>`:

  master   read and write everything under /gaia/<cluster>/
  node     read and write nodes/, containers/ and services/ (what node managers write; their
           deletes compare values, which needs read too); read masters/ (the leader's epoch,
           for fencing), allocations/ (an app's current AM attempt, the hollow fleet's grants)
           and apps/ (an AM's container spec is checked against its app's: gaia_node/spec_check.py)
  dns      read services/
  client   read masters/

Every node shares the one node user: etcd lets only root make users and roles, and masters
do not hold root, so a master cannot make a user per enrolled node. The node role bounds what
any node may touch; which node a caller is is told apart on gRPC, by its certificate.

setup() runs with root credentials (or before auth is on): it makes the roles and users,
stores the node and client users' passwords where only masters (and root) can read them,
under secrets/, so that masters hand the node one to the nodes they enrol and the client one
to ApplicationMasters (which find the masters in etcd), and turns auth on. Run it again
for another cluster sharing the etcd: roles and users of other clusters are left alone.
"""
import json
import os
import pathlib
import secrets

import grpc
from etcd3 import etcdrpc
from etcd3.etcdrpc import auth_pb2
from etcd3.utils import prefix_range_end

from gaia_common.keys import Keys

READ, WRITE, READWRITE = (auth_pb2.Permission.READ, auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE)
KINDS = ("master", "node", "dns", "client")
HANDED_OUT = ("node", "client")     # stored under secrets/ for the masters to give out
ROOT = "root"
_TIMEOUT = 10.0

# kind -> [(permission, prefix under the cluster's root)]; "" is the whole cluster
GRANTS = {
    "master": [(READWRITE, "")],
    "node": [(READWRITE, "nodes/"), (READWRITE, "containers/"), (READWRITE, "services/"),
             (READ, "masters/"), (READ, "allocations/"), (READ, "apps/")],
    "dns": [(READ, "services/")],
    "client": [(READ, "masters/")],
}


class EtcdAuthError(RuntimeError):
    pass


def name(cluster: str, kind: str) -> str:
    """The role and user of `kind` for `cluster`: gaia-<cluster>-<kind>."""
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    return f"gaia-{cluster}-{kind}"


def permissions(cluster: str, kind: str) -> list:
    """The etcd permissions of `kind`'s role: each a prefix of the cluster's keys."""
    root = Keys(cluster).root
    out = []
    for perm, prefix in GRANTS[kind]:
        key = (root + prefix).encode()
        out.append(auth_pb2.Permission(permType=perm, key=key, range_end=prefix_range_end(key)))
    return out


def new_password() -> str:
    return secrets.token_urlsafe(24)


# ---- the etcd calls (root, or auth still off) ----

def _call(client, method: str, request, ignore: str = ""):
    """One Auth RPC; an error whose message contains `ignore` (e.g. 'already exists') is success."""
    try:
        return getattr(client.authstub, method)(request, _TIMEOUT, metadata=client.metadata)
    except grpc.RpcError as e:
        if ignore and ignore in (e.details() or ""):
            return None
        raise EtcdAuthError(f"etcd {method}: {e.details()}") from None


def auth_enabled(client) -> bool:
    """True when etcd checks credentials (asked without any: etcd 3.4 has no AuthStatus)."""
    try:
        client.authstub.RoleList(etcdrpc.AuthRoleListRequest(), _TIMEOUT)
        return False
    except grpc.RpcError as e:
        if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            from gaia_common.etcd import Unreachable
            raise Unreachable(f"etcd: {e.details()}") from None
        # "user name is empty", or with client certificates the certificate's name taken for
        # a user etcd does not know, or one without the root role: all mean auth is on
        return True


def ensure_user(client, user: str, password: str, role: str):
    """User `user` with `password` (set even if it existed) and role `role`."""
    added = _call(client, "UserAdd", etcdrpc.AuthUserAddRequest(name=user, password=password),
                  ignore="already exists")
    if added is None:
        _call(client, "UserChangePassword", etcdrpc.AuthUserChangePasswordRequest(name=user, password=password))
    _call(client, "UserGrantRole", etcdrpc.AuthUserGrantRoleRequest(user=user, role=role))


def ensure_role(client, role: str, perms: list):
    """Role `role` with exactly `perms` (stale permissions of an earlier setup are revoked)."""
    _call(client, "RoleAdd", etcdrpc.AuthRoleAddRequest(name=role), ignore="already exists")
    current = _call(client, "RoleGet", etcdrpc.AuthRoleGetRequest(role=role))
    wanted = {(p.permType, p.key, p.range_end) for p in perms}
    for p in current.perm:
        if (p.permType, p.key, p.range_end) not in wanted:
            _call(client, "RoleRevokePermission",
                  etcdrpc.AuthRoleRevokePermissionRequest(role=role, key=p.key, range_end=p.range_end))
    for p in perms:
        _call(client, "RoleGrantPermission", etcdrpc.AuthRoleGrantPermissionRequest(name=role, perm=p))


def enable(client, root_password: str):
    """Make user root (role root) with `root_password` and turn authentication on."""
    ensure_user(client, ROOT, root_password, ROOT)
    _call(client, "AuthEnable", etcdrpc.AuthEnableRequest())


# ---- a cluster ----

def setup(client, cluster: str, passwords: dict = None, root_password: str = None) -> dict:
    """Roles and users of every kind for `cluster`; returns {kind: (user, password)}.

    `client`: root credentials, or any client while auth is still off (then `root_password`
    is required: root is made with it and auth is turned on at the end). `passwords`
    {kind: password} keeps known ones (a re-run must not change what daemons use); the others
    are generated.
    """
    passwords = dict(passwords or {})
    enabled = client.metadata is not None or auth_enabled(client)
    if enabled and client.metadata is None:
        raise EtcdAuthError("etcd has authentication on: log in as root to change its users")
    if not enabled and not root_password:
        raise EtcdAuthError("root_password: etcd has authentication off; turning it on needs a root password")
    creds = {}
    for kind in KINDS:
        user = name(cluster, kind)
        ensure_role(client, user, permissions(cluster, kind))
        creds[kind] = (user, passwords.get(kind) or new_password())
        ensure_user(client, user, creds[kind][1], user)
    # what masters hand out: the node credential at enrolment, the client one to AMs (to find
    # the masters); only masters and root may read secrets/
    for kind in HANDED_OUT:
        user, password = creds[kind]
        client.put(Keys(cluster).etcd_credential(kind), json.dumps({"user": user, "password": password}))
    if not enabled:
        enable(client, root_password)
    return creds


def handed_out(etcd, keys: Keys, kind: str):
    """(user, password) of `kind` ("node": for enrolling nodes, "client": for AMs) as the
    masters hand it out, or None when setup() has not run (etcd without RBAC)."""
    value, _ = etcd.get(keys.etcd_credential(kind))
    if value is None:
        return None
    doc = json.loads(value)
    return doc["user"], doc["password"]


# An ApplicationMaster finds the masters in etcd as any client does: the master gives it the
# client credential in these environment variables (that user reads masters/ and nothing else).
AM_USER_ENV, AM_PASSWORD_ENV = "GAIA_ETCD_USER", "GAIA_ETCD_PASSWORD"


def am_env(etcd, keys: Keys) -> dict:
    """The environment giving an AM the client credential; {} without RBAC or when etcd does
    not answer (the AM then still has the master's address, GAIA_MASTERS)."""
    from gaia_common.etcd import TRANSIENT
    try:
        credential = handed_out(etcd, keys, "client")
    except TRANSIENT:
        return {}
    return {AM_USER_ENV: credential[0], AM_PASSWORD_ENV: credential[1]} if credential else {}


# ---- password files ----

def password_path(directory, user: str) -> pathlib.Path:
    return pathlib.Path(directory) / f"{user}.password"


def read_passwords(directory, cluster: str) -> dict:
    """{kind: password} of the files a previous write_passwords() left in `directory`."""
    out = {}
    for kind in KINDS:
        path = password_path(directory, name(cluster, kind))
        if path.exists():
            out[kind] = path.read_text().strip()
    return out


def write_password(path, password: str):
    """Write a password file readable by its owner only (from the start, not after a chmod)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    os.replace(tmp, path)
    return str(path)


def write_passwords(directory, creds: dict) -> dict:
    """One <user>.password file (0600) per kind; returns {kind: path}."""
    return {kind: write_password(password_path(directory, user), password)
            for kind, (user, password) in creds.items()}
