from . import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstanceAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_ACTION_UNSPECIFIED: _ClassVar[InstanceAction]
    INSTANCE_ACTION_STOP: _ClassVar[InstanceAction]
    INSTANCE_ACTION_START: _ClassVar[InstanceAction]
    INSTANCE_ACTION_RESTART: _ClassVar[InstanceAction]
    INSTANCE_ACTION_DELETE: _ClassVar[InstanceAction]
INSTANCE_ACTION_UNSPECIFIED: InstanceAction
INSTANCE_ACTION_STOP: InstanceAction
INSTANCE_ACTION_START: InstanceAction
INSTANCE_ACTION_RESTART: InstanceAction
INSTANCE_ACTION_DELETE: InstanceAction

class SubmitAppRequest(_message.Message):
    __slots__ = ("spec", "idempotency_key")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    spec: _types_pb2.AppSpec
    idempotency_key: str
    def __init__(self, spec: _Optional[_Union[_types_pb2.AppSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SubmitAppResponse(_message.Message):
    __slots__ = ("app_id", "existed")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    existed: bool
    def __init__(self, app_id: _Optional[str] = ..., existed: _Optional[bool] = ...) -> None: ...

class GetAppRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListAppsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAppsResponse(_message.Message):
    __slots__ = ("apps",)
    APPS_FIELD_NUMBER: _ClassVar[int]
    apps: _containers.RepeatedCompositeFieldContainer[AppStatus]
    def __init__(self, apps: _Optional[_Iterable[_Union[AppStatus, _Mapping]]] = ...) -> None: ...

class ScaleAppRequest(_message.Message):
    __slots__ = ("name", "instances", "instance_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    instances: int
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., instances: _Optional[int] = ..., instance_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class KillAppRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ...) -> None: ...

class GetNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class PoolRequest(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: _types_pb2.Pool
    def __init__(self, pool: _Optional[_Union[_types_pb2.Pool, _Mapping]] = ...) -> None: ...

class DeletePoolRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class ListPoolsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPoolsResponse(_message.Message):
    __slots__ = ("pools",)
    POOLS_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[_types_pb2.Pool]
    def __init__(self, pools: _Optional[_Iterable[_Union[_types_pb2.Pool, _Mapping]]] = ...) -> None: ...

class ResolveRequest(_message.Message):
    __slots__ = ("app", "port")
    APP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    app: str
    port: str
    def __init__(self, app: _Optional[str] = ..., port: _Optional[str] = ...) -> None: ...

class ResolveResponse(_message.Message):
    __slots__ = ("endpoints",)
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[_types_pb2.ServiceEndpoint]
    def __init__(self, endpoints: _Optional[_Iterable[_Union[_types_pb2.ServiceEndpoint, _Mapping]]] = ...) -> None: ...

class InstanceView(_message.Message):
    __slots__ = ("allocation", "status", "node_lost", "node_draining", "from_status")
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NODE_LOST_FIELD_NUMBER: _ClassVar[int]
    NODE_DRAINING_FIELD_NUMBER: _ClassVar[int]
    FROM_STATUS_FIELD_NUMBER: _ClassVar[int]
    allocation: _types_pb2.Allocation
    status: _types_pb2.ContainerStatus
    node_lost: bool
    node_draining: bool
    from_status: _types_pb2.ContainerStatus
    def __init__(self, allocation: _Optional[_Union[_types_pb2.Allocation, _Mapping]] = ..., status: _Optional[_Union[_types_pb2.ContainerStatus, _Mapping]] = ..., node_lost: _Optional[bool] = ..., node_draining: _Optional[bool] = ..., from_status: _Optional[_Union[_types_pb2.ContainerStatus, _Mapping]] = ...) -> None: ...

class AppStatus(_message.Message):
    __slots__ = ("app", "instances", "am", "epoch", "events")
    APP_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    AM_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    app: _types_pb2.AppRecord
    instances: _containers.RepeatedCompositeFieldContainer[InstanceView]
    am: InstanceView
    epoch: int
    events: _containers.RepeatedCompositeFieldContainer[_types_pb2.AppEvent]
    def __init__(self, app: _Optional[_Union[_types_pb2.AppRecord, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[InstanceView, _Mapping]]] = ..., am: _Optional[_Union[InstanceView, _Mapping]] = ..., epoch: _Optional[int] = ..., events: _Optional[_Iterable[_Union[_types_pb2.AppEvent, _Mapping]]] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("info", "allocated", "containers", "alive", "used", "running", "events", "draining")
    INFO_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    info: _types_pb2.NodeInfo
    allocated: _types_pb2.Resources
    containers: int
    alive: bool
    used: _types_pb2.Resources
    running: _containers.RepeatedCompositeFieldContainer[_types_pb2.ContainerStatus]
    events: _containers.RepeatedCompositeFieldContainer[_types_pb2.NodeEvent]
    draining: bool
    def __init__(self, info: _Optional[_Union[_types_pb2.NodeInfo, _Mapping]] = ..., allocated: _Optional[_Union[_types_pb2.Resources, _Mapping]] = ..., containers: _Optional[int] = ..., alive: _Optional[bool] = ..., used: _Optional[_Union[_types_pb2.Resources, _Mapping]] = ..., running: _Optional[_Iterable[_Union[_types_pb2.ContainerStatus, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[_types_pb2.NodeEvent, _Mapping]]] = ..., draining: _Optional[bool] = ...) -> None: ...

class AppLogsRequest(_message.Message):
    __slots__ = ("app", "instance_id", "follow", "tail_bytes")
    APP_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_BYTES_FIELD_NUMBER: _ClassVar[int]
    app: str
    instance_id: str
    follow: bool
    tail_bytes: int
    def __init__(self, app: _Optional[str] = ..., instance_id: _Optional[str] = ..., follow: _Optional[bool] = ..., tail_bytes: _Optional[int] = ...) -> None: ...

class RegisterAMRequest(_message.Message):
    __slots__ = ("app_id", "attempt")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class ContainerRequest(_message.Message):
    __slots__ = ("app_id", "attempt", "count", "resources", "gang", "target", "wait_seconds")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    GANG_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    count: int
    resources: _types_pb2.ResourceRequirements
    gang: bool
    target: int
    wait_seconds: float
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ..., count: _Optional[int] = ..., resources: _Optional[_Union[_types_pb2.ResourceRequirements, _Mapping]] = ..., gang: _Optional[bool] = ..., target: _Optional[int] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class Grants(_message.Message):
    __slots__ = ("allocations", "message", "pending")
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    allocations: _containers.RepeatedCompositeFieldContainer[_types_pb2.Allocation]
    message: str
    pending: int
    def __init__(self, allocations: _Optional[_Iterable[_Union[_types_pb2.Allocation, _Mapping]]] = ..., message: _Optional[str] = ..., pending: _Optional[int] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("app_id", "attempt", "instance_ids")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ..., instance_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AppStateReport(_message.Message):
    __slots__ = ("app_id", "attempt", "state", "message")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    state: _types_pb2.AppState
    message: str
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ..., state: _Optional[_Union[_types_pb2.AppState, str]] = ..., message: _Optional[str] = ...) -> None: ...

class UpdateAppRequest(_message.Message):
    __slots__ = ("name", "spec", "instance_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec: _types_pb2.AppSpec
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., spec: _Optional[_Union[_types_pb2.AppSpec, _Mapping]] = ..., instance_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RollbackAppRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class InstanceControlRequest(_message.Message):
    __slots__ = ("name", "action", "instance_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    action: InstanceAction
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., action: _Optional[_Union[InstanceAction, str]] = ..., instance_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("name", "limit", "instance_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    instance_id: str
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ..., instance_id: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_types_pb2.AppEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_types_pb2.AppEvent, _Mapping]]] = ...) -> None: ...

class DrainNodeRequest(_message.Message):
    __slots__ = ("node_id", "undo")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    UNDO_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    undo: bool
    def __init__(self, node_id: _Optional[str] = ..., undo: _Optional[bool] = ...) -> None: ...

class WatchAppRequest(_message.Message):
    __slots__ = ("app_id", "attempt")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class EventsReport(_message.Message):
    __slots__ = ("app_id", "attempt", "events")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    events: _containers.RepeatedCompositeFieldContainer[_types_pb2.AppEvent]
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ..., events: _Optional[_Iterable[_Union[_types_pb2.AppEvent, _Mapping]]] = ...) -> None: ...

class MoveRequest(_message.Message):
    __slots__ = ("app_id", "attempt", "instance_ids", "keep_old", "cause", "wait_seconds")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    KEEP_OLD_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    keep_old: bool
    cause: str
    wait_seconds: float
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ..., instance_ids: _Optional[_Iterable[str]] = ..., keep_old: _Optional[bool] = ..., cause: _Optional[str] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class InstanceVersionsRequest(_message.Message):
    __slots__ = ("app_id", "attempt", "instance_ids", "version")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    version: int
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ..., instance_ids: _Optional[_Iterable[str]] = ..., version: _Optional[int] = ...) -> None: ...

class RolloutReport(_message.Message):
    __slots__ = ("app_id", "attempt", "state", "message")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    state: str
    message: str
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ..., state: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class AutoscaleRequest(_message.Message):
    __slots__ = ("app_id", "attempt", "instances", "reason")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    attempt: int
    instances: int
    reason: str
    def __init__(self, app_id: _Optional[str] = ..., attempt: _Optional[int] = ..., instances: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchEndpointsRequest(_message.Message):
    __slots__ = ("app", "port", "after_revision")
    APP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    AFTER_REVISION_FIELD_NUMBER: _ClassVar[int]
    app: str
    port: str
    after_revision: int
    def __init__(self, app: _Optional[str] = ..., port: _Optional[str] = ..., after_revision: _Optional[int] = ...) -> None: ...

class EndpointsUpdate(_message.Message):
    __slots__ = ("revision", "full", "endpoints", "removed")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    revision: int
    full: bool
    endpoints: _containers.RepeatedCompositeFieldContainer[_types_pb2.ServiceEndpoint]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, revision: _Optional[int] = ..., full: _Optional[bool] = ..., endpoints: _Optional[_Iterable[_Union[_types_pb2.ServiceEndpoint, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("role", "name", "tenant", "attempt", "admin")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    role: str
    name: str
    tenant: str
    attempt: int
    admin: bool
    def __init__(self, role: _Optional[str] = ..., name: _Optional[str] = ..., tenant: _Optional[str] = ..., attempt: _Optional[int] = ..., admin: _Optional[bool] = ...) -> None: ...

class DeleteTenantRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListTenantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants",)
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[_types_pb2.Tenant]
    def __init__(self, tenants: _Optional[_Iterable[_Union[_types_pb2.Tenant, _Mapping]]] = ...) -> None: ...

class CreateUserRequest(_message.Message):
    __slots__ = ("name", "tenant", "admin")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    admin: bool
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ..., admin: _Optional[bool] = ...) -> None: ...

class CreateUserResponse(_message.Message):
    __slots__ = ("user", "token")
    USER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    user: _types_pb2.User
    token: str
    def __init__(self, user: _Optional[_Union[_types_pb2.User, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_types_pb2.User]
    def __init__(self, users: _Optional[_Iterable[_Union[_types_pb2.User, _Mapping]]] = ...) -> None: ...

class DeleteAclRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListAclRequest(_message.Message):
    __slots__ = ("subject", "pool")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    subject: str
    pool: str
    def __init__(self, subject: _Optional[str] = ..., pool: _Optional[str] = ...) -> None: ...

class ListAclResponse(_message.Message):
    __slots__ = ("policies",)
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[_types_pb2.AclPolicy]
    def __init__(self, policies: _Optional[_Iterable[_Union[_types_pb2.AclPolicy, _Mapping]]] = ...) -> None: ...

class JoinTokenRequest(_message.Message):
    __slots__ = ("ttl_seconds", "node_id")
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ttl_seconds: float
    node_id: str
    def __init__(self, ttl_seconds: _Optional[float] = ..., node_id: _Optional[str] = ...) -> None: ...

class JoinToken(_message.Message):
    __slots__ = ("token", "expires_unix")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_unix: float
    def __init__(self, token: _Optional[str] = ..., expires_unix: _Optional[float] = ...) -> None: ...

class JoinNodeRequest(_message.Message):
    __slots__ = ("token", "node_id", "csr_pem", "addresses")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    token: str
    node_id: str
    csr_pem: bytes
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, token: _Optional[str] = ..., node_id: _Optional[str] = ..., csr_pem: _Optional[bytes] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class JoinNodeResponse(_message.Message):
    __slots__ = ("cert_pem", "ca_pem", "etcd_user", "etcd_password", "etcd_endpoints")
    CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    ETCD_USER_FIELD_NUMBER: _ClassVar[int]
    ETCD_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ETCD_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    cert_pem: bytes
    ca_pem: bytes
    etcd_user: str
    etcd_password: str
    etcd_endpoints: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cert_pem: _Optional[bytes] = ..., ca_pem: _Optional[bytes] = ..., etcd_user: _Optional[str] = ..., etcd_password: _Optional[str] = ..., etcd_endpoints: _Optional[_Iterable[str]] = ...) -> None: ...
