"""Who may call what: one rule for every RPC of every service (Master, Enrol, Node).

The interceptor checks the caller's role against `roles` and, for an ApplicationMaster, that
the request is about its own app and attempt (`am_app`, `am_attempt`, `am_container`,
`am_app_name`). `capability` is what a user needs on the app's pool (enforced by the master's
tenancy layer, which also lets admins, masters and ANONYMOUS do everything); `scope` says what
the capability is checked against. A unit test asserts every method in the proto descriptors
has a rule here, so an RPC added later without one fails the suite (and is denied at run time).

Node certificates call nothing but WhoAmI: node managers talk to etcd, never to the masters or
to each other, so one node cannot command another (or act for it) over gRPC.
"""
import dataclasses

from gaia_common.pb import master_pb2, node_pb2


@dataclasses.dataclass(frozen=True)
class Rule:
    roles: frozenset                 # roles whose certificate may call it
    capability: str = None           # submit | read | kill | scale | logs | admin: checked by gaia_master/access.py
    scope: str = "app"               # app | pool | cluster | self: what the capability applies to
    app_field: str = ""              # the request field naming the app (users: by name; AMs: by id)
    am_app: str = ""                 # AM: this request field must be the certificate's app id
    am_attempt: str = ""             # AM: this request field must be the certificate's attempt
    am_container: str = ""           # AM: this container id must belong to the certificate's app
    am_app_name: str = ""            # AM: this request field must name the certificate's app
    am_filter: bool = False          # AM: the answer is cut down to the AM's own app
    am_forbid: tuple = ()            # AM: request fields it may not set (the master's to give)
    public: bool = False             # no certificate needed (enrolment: the token is the credential)


EVERYONE = frozenset({"master", "node", "am", "user", "dns"})
USERS = frozenset({"user", "master"})     # masters are trusted with everything users may do
AM = frozenset({"am"})
MASTER_OR_AM = frozenset({"master", "am"})


def _user(capability, scope="app", app_field="name"):
    return Rule(USERS, capability, scope, app_field)


def _am(capability="read"):
    # every AM call names its app and attempt; a stale attempt is also fenced by the master
    return Rule(AM, capability, "app", "app_id", am_app="app_id", am_attempt="attempt")


_MASTER = {
    "SubmitApp": _user("submit", "pool", "spec.name"),
    "GetApp": Rule(USERS | AM, "read", "app", "name", am_app_name="name"),
    "ListApps": _user("read", "pool", ""),
    "ScaleApp": _user("scale"),
    "KillApp": _user("kill"),
    "ListNodes": _user("read", "cluster", ""),
    "GetNode": _user("read", "cluster", ""),
    "Resolve": _user("read", "app", "app"),
    "WatchEndpoints": _user("read", "app", "app"),
    "Logs": _user("logs", "app", "app"),
    "UpdateApp": _user("submit"),
    "RollbackApp": _user("submit"),
    "ControlInstances": _user("scale"),
    "ListEvents": _user("read"),
    "DrainNode": _user("admin", "cluster", ""),
    "CreatePool": _user("admin", "pool", ""),
    "UpdatePool": _user("admin", "pool", ""),
    "DeletePool": _user("admin", "pool", ""),
    "ListPools": _user("read", "pool", ""),
    "RegisterAM": _am(),
    "RequestContainers": _am(),
    "ReleaseContainers": _am(),
    "ReportAppState": _am(),
    "WatchApp": _am(),
    "RecordEvents": _am(),
    "MoveInstances": _am(),
    "FinishMoves": _am(),
    "SetInstanceVersions": _am(),
    "ReportRollout": _am(),
    "AutoscaleApp": _am(),
    "WhoAmI": Rule(EVERYONE, None, "self", ""),
    "CreateTenant": _user("admin", "cluster", ""),
    "DeleteTenant": _user("admin", "cluster", ""),
    "ListTenants": _user("admin", "cluster", ""),
    "CreateUser": _user("admin", "cluster", ""),
    "DeleteUser": _user("admin", "cluster", ""),
    "ListUsers": _user("admin", "cluster", ""),
    "SetAcl": _user("admin", "cluster", ""),
    "DeleteAcl": _user("admin", "cluster", ""),
    "ListAcl": _user("admin", "cluster", ""),
    "CreateJoinToken": _user("admin", "cluster", ""),
}

_ENROL = {
    "JoinNode": Rule(frozenset(), None, "cluster", "", public=True),
}

_NODE = {
    "StartContainer": Rule(MASTER_OR_AM, None, "app", "spec.app_id", am_app="spec.app_id",
                           am_attempt="am_attempt", am_container="spec.container_id",
                           am_forbid=("spec.tls", "spec.is_am")),
    "StopContainer": Rule(MASTER_OR_AM, None, "app", "app_id", am_app="app_id", am_attempt="am_attempt",
                          am_container="container_id"),
    "Status": Rule(MASTER_OR_AM, None, "cluster", "", am_filter=True),
    "Logs": Rule(MASTER_OR_AM, None, "app", "", am_container="container_id"),
}

SERVICES = {"gaia.v1.Master": _MASTER, "gaia.v1.Enrol": _ENROL, "gaia.v1.Node": _NODE}
DESCRIPTORS = (master_pb2.DESCRIPTOR, node_pb2.DESCRIPTOR)


def rule_for(full_method: str):
    """The rule of '/gaia.v1.Service/Method', or None (unknown: denied)."""
    service, _, method = full_method.lstrip("/").partition("/")
    return SERVICES.get(service, {}).get(method)


def all_methods() -> list:
    """Every '/service/method' the protos declare, with its descriptor (tests walk these)."""
    found = []
    for file in DESCRIPTORS:
        for service in file.services_by_name.values():
            for method in service.methods:
                found.append((f"/{service.full_name}/{method.name}", method))
    return found


def field(request, path: str):
    """The value of a dotted field path of a request message ('spec.app_id')."""
    value = request
    for part in path.split("."):
        value = getattr(value, part)
    return value


def is_set(request, path: str) -> bool:
    value = field(request, path)
    return value.ByteSize() > 0 if hasattr(value, "ByteSize") else bool(value)


def owns_container(app_id: str, container_id: str) -> bool:
    """Container ids are '<app_id>.<instance>.<n>' (app ids have no dots): the app's own."""
    return container_id.startswith(app_id + ".")
