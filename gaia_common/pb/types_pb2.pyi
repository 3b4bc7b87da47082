from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APP_KIND_UNSPECIFIED: _ClassVar[AppKind]
    APP_KIND_SERVICE: _ClassVar[AppKind]
    APP_KIND_BATCH: _ClassVar[AppKind]

class AppState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APP_STATE_UNSPECIFIED: _ClassVar[AppState]
    APP_STATE_PENDING: _ClassVar[AppState]
    APP_STATE_RUNNING: _ClassVar[AppState]
    APP_STATE_SUCCEEDED: _ClassVar[AppState]
    APP_STATE_FAILED: _ClassVar[AppState]
    APP_STATE_KILLED: _ClassVar[AppState]

class ContainerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTAINER_STATE_UNSPECIFIED: _ClassVar[ContainerState]
    CONTAINER_STATE_STARTING: _ClassVar[ContainerState]
    CONTAINER_STATE_RUNNING: _ClassVar[ContainerState]
    CONTAINER_STATE_EXITED: _ClassVar[ContainerState]
    CONTAINER_STATE_FAILED: _ClassVar[ContainerState]
    CONTAINER_STATE_LOST: _ClassVar[ContainerState]
    CONTAINER_STATE_STOPPED: _ClassVar[ContainerState]
APP_KIND_UNSPECIFIED: AppKind
APP_KIND_SERVICE: AppKind
APP_KIND_BATCH: AppKind
APP_STATE_UNSPECIFIED: AppState
APP_STATE_PENDING: AppState
APP_STATE_RUNNING: AppState
APP_STATE_SUCCEEDED: AppState
APP_STATE_FAILED: AppState
APP_STATE_KILLED: AppState
CONTAINER_STATE_UNSPECIFIED: ContainerState
CONTAINER_STATE_STARTING: ContainerState
CONTAINER_STATE_RUNNING: ContainerState
CONTAINER_STATE_EXITED: ContainerState
CONTAINER_STATE_FAILED: ContainerState
CONTAINER_STATE_LOST: ContainerState
CONTAINER_STATE_STOPPED: ContainerState

class Resources(_message.Message):
    __slots__ = ("cpu_millis", "memory_bytes", "disk_bytes", "net_in_bps", "net_out_bps", "disk_read_bps", "disk_write_bps", "gpu_share", "gpu_memory_bytes")
    CPU_MILLIS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    NET_IN_BPS_FIELD_NUMBER: _ClassVar[int]
    NET_OUT_BPS_FIELD_NUMBER: _ClassVar[int]
    DISK_READ_BPS_FIELD_NUMBER: _ClassVar[int]
    DISK_WRITE_BPS_FIELD_NUMBER: _ClassVar[int]
    GPU_SHARE_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpu_millis: int
    memory_bytes: int
    disk_bytes: int
    net_in_bps: int
    net_out_bps: int
    disk_read_bps: int
    disk_write_bps: int
    gpu_share: int
    gpu_memory_bytes: int
    def __init__(self, cpu_millis: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., net_in_bps: _Optional[int] = ..., net_out_bps: _Optional[int] = ..., disk_read_bps: _Optional[int] = ..., disk_write_bps: _Optional[int] = ..., gpu_share: _Optional[int] = ..., gpu_memory_bytes: _Optional[int] = ...) -> None: ...

class ResourceRequirements(_message.Message):
    __slots__ = ("request", "limit")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    request: Resources
    limit: Resources
    def __init__(self, request: _Optional[_Union[Resources, _Mapping]] = ..., limit: _Optional[_Union[Resources, _Mapping]] = ...) -> None: ...

class Port(_message.Message):
    __slots__ = ("name", "container_port", "protocol")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    name: str
    container_port: int
    protocol: str
    def __init__(self, name: _Optional[str] = ..., container_port: _Optional[int] = ..., protocol: _Optional[str] = ...) -> None: ...

class AppSpec(_message.Message):
    __slots__ = ("name", "pool", "priority", "instances", "kind", "driver", "command", "image", "env", "resources", "ports", "retry_times", "migrate_times", "workdir", "network", "gang", "constraints", "gpu_model", "max_per_node", "spread_by", "max_per_domain", "health_check", "autoscale", "update", "am_attempts", "on_partition", "private", "volumes", "devices", "privileged", "gpu_mode")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    RETRY_TIMES_FIELD_NUMBER: _ClassVar[int]
    MIGRATE_TIMES_FIELD_NUMBER: _ClassVar[int]
    WORKDIR_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    GANG_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    SPREAD_BY_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_FIELD_NUMBER: _ClassVar[int]
    AUTOSCALE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    AM_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ON_PARTITION_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    GPU_MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    pool: str
    priority: int
    instances: int
    kind: AppKind
    driver: str
    command: _containers.RepeatedScalarFieldContainer[str]
    image: str
    env: _containers.ScalarMap[str, str]
    resources: ResourceRequirements
    ports: _containers.RepeatedCompositeFieldContainer[Port]
    retry_times: int
    migrate_times: int
    workdir: str
    network: str
    gang: int
    constraints: _containers.RepeatedCompositeFieldContainer[Constraint]
    gpu_model: str
    max_per_node: int
    spread_by: str
    max_per_domain: int
    health_check: HealthCheck
    autoscale: Autoscale
    update: UpdatePolicy
    am_attempts: int
    on_partition: str
    private: bool
    volumes: _containers.RepeatedCompositeFieldContainer[Volume]
    devices: _containers.RepeatedScalarFieldContainer[str]
    privileged: bool
    gpu_mode: str
    def __init__(self, name: _Optional[str] = ..., pool: _Optional[str] = ..., priority: _Optional[int] = ..., instances: _Optional[int] = ..., kind: _Optional[_Union[AppKind, str]] = ..., driver: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., image: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., resources: _Optional[_Union[ResourceRequirements, _Mapping]] = ..., ports: _Optional[_Iterable[_Union[Port, _Mapping]]] = ..., retry_times: _Optional[int] = ..., migrate_times: _Optional[int] = ..., workdir: _Optional[str] = ..., network: _Optional[str] = ..., gang: _Optional[int] = ..., constraints: _Optional[_Iterable[_Union[Constraint, _Mapping]]] = ..., gpu_model: _Optional[str] = ..., max_per_node: _Optional[int] = ..., spread_by: _Optional[str] = ..., max_per_domain: _Optional[int] = ..., health_check: _Optional[_Union[HealthCheck, _Mapping]] = ..., autoscale: _Optional[_Union[Autoscale, _Mapping]] = ..., update: _Optional[_Union[UpdatePolicy, _Mapping]] = ..., am_attempts: _Optional[int] = ..., on_partition: _Optional[str] = ..., private: _Optional[bool] = ..., volumes: _Optional[_Iterable[_Union[Volume, _Mapping]]] = ..., devices: _Optional[_Iterable[str]] = ..., privileged: _Optional[bool] = ..., gpu_mode: _Optional[str] = ...) -> None: ...

class Volume(_message.Message):
    __slots__ = ("host_path", "container_path", "read_only")
    HOST_PATH_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PATH_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    host_path: str
    container_path: str
    read_only: bool
    def __init__(self, host_path: _Optional[str] = ..., container_path: _Optional[str] = ..., read_only: _Optional[bool] = ...) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ("kind", "port", "path", "command", "interval_seconds", "timeout_seconds", "failure_threshold", "initial_delay_seconds")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    INITIAL_DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    port: str
    path: str
    command: _containers.RepeatedScalarFieldContainer[str]
    interval_seconds: float
    timeout_seconds: float
    failure_threshold: int
    initial_delay_seconds: float
    def __init__(self, kind: _Optional[str] = ..., port: _Optional[str] = ..., path: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., interval_seconds: _Optional[float] = ..., timeout_seconds: _Optional[float] = ..., failure_threshold: _Optional[int] = ..., initial_delay_seconds: _Optional[float] = ...) -> None: ...

class Autoscale(_message.Message):
    __slots__ = ("min", "max", "metric", "target", "cooldown_seconds")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    min: int
    max: int
    metric: str
    target: float
    cooldown_seconds: float
    def __init__(self, min: _Optional[int] = ..., max: _Optional[int] = ..., metric: _Optional[str] = ..., target: _Optional[float] = ..., cooldown_seconds: _Optional[float] = ...) -> None: ...

class UpdatePolicy(_message.Message):
    __slots__ = ("max_unavailable", "health_gate_seconds", "gate_timeout_seconds", "no_rollback")
    MAX_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_GATE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GATE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NO_ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    max_unavailable: int
    health_gate_seconds: float
    gate_timeout_seconds: float
    no_rollback: bool
    def __init__(self, max_unavailable: _Optional[int] = ..., health_gate_seconds: _Optional[float] = ..., gate_timeout_seconds: _Optional[float] = ..., no_rollback: _Optional[bool] = ...) -> None: ...

class Rollout(_message.Message):
    __slots__ = ("to_version", "from_version", "instance_ids", "state", "message", "started_at")
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    to_version: int
    from_version: int
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    state: str
    message: str
    started_at: float
    def __init__(self, to_version: _Optional[int] = ..., from_version: _Optional[int] = ..., instance_ids: _Optional[_Iterable[str]] = ..., state: _Optional[str] = ..., message: _Optional[str] = ..., started_at: _Optional[float] = ...) -> None: ...

class AppEvent(_message.Message):
    __slots__ = ("at", "kind", "instance_id", "cause", "message", "platform", "am_attempt", "seq")
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    AM_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    at: float
    kind: str
    instance_id: str
    cause: str
    message: str
    platform: bool
    am_attempt: int
    seq: int
    def __init__(self, at: _Optional[float] = ..., kind: _Optional[str] = ..., instance_id: _Optional[str] = ..., cause: _Optional[str] = ..., message: _Optional[str] = ..., platform: _Optional[bool] = ..., am_attempt: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class Constraint(_message.Message):
    __slots__ = ("label", "op", "values")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    label: str
    op: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, label: _Optional[str] = ..., op: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class Pool(_message.Message):
    __slots__ = ("path", "weight", "min", "max", "gpu_models", "max_gpus", "epoch", "updated_unix_ms", "tenant")
    PATH_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    GPU_MODELS_FIELD_NUMBER: _ClassVar[int]
    MAX_GPUS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    path: str
    weight: float
    min: Resources
    max: Resources
    gpu_models: _containers.RepeatedScalarFieldContainer[str]
    max_gpus: int
    epoch: int
    updated_unix_ms: int
    tenant: str
    def __init__(self, path: _Optional[str] = ..., weight: _Optional[float] = ..., min: _Optional[_Union[Resources, _Mapping]] = ..., max: _Optional[_Union[Resources, _Mapping]] = ..., gpu_models: _Optional[_Iterable[str]] = ..., max_gpus: _Optional[int] = ..., epoch: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ..., tenant: _Optional[str] = ...) -> None: ...

class AppRecord(_message.Message):
    __slots__ = ("app_id", "spec", "state", "message", "am_attempt", "created_unix_ms", "epoch", "idempotency_key", "next_instance", "version", "versions", "rollout", "previous_version", "remove_instances", "next_event")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: AppSpec
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[AppSpec, _Mapping]] = ...) -> None: ...
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AM_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    NEXT_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    REMOVE_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_EVENT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    spec: AppSpec
    state: AppState
    message: str
    am_attempt: int
    created_unix_ms: int
    epoch: int
    idempotency_key: str
    next_instance: int
    version: int
    versions: _containers.MessageMap[int, AppSpec]
    rollout: Rollout
    previous_version: int
    remove_instances: _containers.RepeatedScalarFieldContainer[str]
    next_event: int
    def __init__(self, app_id: _Optional[str] = ..., spec: _Optional[_Union[AppSpec, _Mapping]] = ..., state: _Optional[_Union[AppState, str]] = ..., message: _Optional[str] = ..., am_attempt: _Optional[int] = ..., created_unix_ms: _Optional[int] = ..., epoch: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., next_instance: _Optional[int] = ..., version: _Optional[int] = ..., versions: _Optional[_Mapping[int, AppSpec]] = ..., rollout: _Optional[_Union[Rollout, _Mapping]] = ..., previous_version: _Optional[int] = ..., remove_instances: _Optional[_Iterable[str]] = ..., next_event: _Optional[int] = ...) -> None: ...

class Allocation(_message.Message):
    __slots__ = ("app_id", "instance_id", "node_id", "node_address", "request", "is_am", "epoch", "attempt", "gpu_indices", "version", "stopped", "restart_from", "migrations", "from_node_id", "from_node_address", "charged")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    IS_AM_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    GPU_INDICES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    RESTART_FROM_FIELD_NUMBER: _ClassVar[int]
    MIGRATIONS_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CHARGED_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    instance_id: str
    node_id: str
    node_address: str
    request: Resources
    is_am: bool
    epoch: int
    attempt: int
    gpu_indices: _containers.RepeatedScalarFieldContainer[int]
    version: int
    stopped: bool
    restart_from: int
    migrations: int
    from_node_id: str
    from_node_address: str
    charged: int
    def __init__(self, app_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., node_id: _Optional[str] = ..., node_address: _Optional[str] = ..., request: _Optional[_Union[Resources, _Mapping]] = ..., is_am: _Optional[bool] = ..., epoch: _Optional[int] = ..., attempt: _Optional[int] = ..., gpu_indices: _Optional[_Iterable[int]] = ..., version: _Optional[int] = ..., stopped: _Optional[bool] = ..., restart_from: _Optional[int] = ..., migrations: _Optional[int] = ..., from_node_id: _Optional[str] = ..., from_node_address: _Optional[str] = ..., charged: _Optional[int] = ...) -> None: ...

class ContainerSpec(_message.Message):
    __slots__ = ("container_id", "app_id", "app_name", "instance_id", "driver", "command", "image", "env", "resources", "ports", "host_network", "workdir", "cluster", "is_am", "priority", "namespaces", "version", "health_check", "stop_on_partition", "volumes", "devices", "privileged", "private", "gpu_indices", "gpu_mode", "tls")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    APP_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    HOST_NETWORK_FIELD_NUMBER: _ClassVar[int]
    WORKDIR_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    IS_AM_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_FIELD_NUMBER: _ClassVar[int]
    STOP_ON_PARTITION_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    GPU_INDICES_FIELD_NUMBER: _ClassVar[int]
    GPU_MODE_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    app_id: str
    app_name: str
    instance_id: str
    driver: str
    command: _containers.RepeatedScalarFieldContainer[str]
    image: str
    env: _containers.ScalarMap[str, str]
    resources: ResourceRequirements
    ports: _containers.RepeatedCompositeFieldContainer[Port]
    host_network: bool
    workdir: str
    cluster: str
    is_am: bool
    priority: int
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    version: int
    health_check: HealthCheck
    stop_on_partition: bool
    volumes: _containers.RepeatedCompositeFieldContainer[Volume]
    devices: _containers.RepeatedScalarFieldContainer[str]
    privileged: bool
    private: bool
    gpu_indices: _containers.RepeatedScalarFieldContainer[int]
    gpu_mode: str
    tls: TlsBundle
    def __init__(self, container_id: _Optional[str] = ..., app_id: _Optional[str] = ..., app_name: _Optional[str] = ..., instance_id: _Optional[str] = ..., driver: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., image: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., resources: _Optional[_Union[ResourceRequirements, _Mapping]] = ..., ports: _Optional[_Iterable[_Union[Port, _Mapping]]] = ..., host_network: _Optional[bool] = ..., workdir: _Optional[str] = ..., cluster: _Optional[str] = ..., is_am: _Optional[bool] = ..., priority: _Optional[int] = ..., namespaces: _Optional[_Iterable[str]] = ..., version: _Optional[int] = ..., health_check: _Optional[_Union[HealthCheck, _Mapping]] = ..., stop_on_partition: _Optional[bool] = ..., volumes: _Optional[_Iterable[_Union[Volume, _Mapping]]] = ..., devices: _Optional[_Iterable[str]] = ..., privileged: _Optional[bool] = ..., private: _Optional[bool] = ..., gpu_indices: _Optional[_Iterable[int]] = ..., gpu_mode: _Optional[str] = ..., tls: _Optional[_Union[TlsBundle, _Mapping]] = ...) -> None: ...

class TlsBundle(_message.Message):
    __slots__ = ("ca_pem", "cert_pem", "key_pem")
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    def __init__(self, ca_pem: _Optional[bytes] = ..., cert_pem: _Optional[bytes] = ..., key_pem: _Optional[bytes] = ...) -> None: ...

class ContainerStatus(_message.Message):
    __slots__ = ("container_id", "app_id", "instance_id", "node_id", "state", "pid", "started_at", "exit_code", "host_ip", "host_ports", "message", "finished_at", "app_name", "platform_reason", "usage", "container_ip", "version", "health")
    class HostPortsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    HOST_IP_FIELD_NUMBER: _ClassVar[int]
    HOST_PORTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    APP_NAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_IP_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    app_id: str
    instance_id: str
    node_id: str
    state: ContainerState
    pid: int
    started_at: float
    exit_code: int
    host_ip: str
    host_ports: _containers.ScalarMap[str, int]
    message: str
    finished_at: float
    app_name: str
    platform_reason: str
    usage: Resources
    container_ip: str
    version: int
    health: str
    def __init__(self, container_id: _Optional[str] = ..., app_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., node_id: _Optional[str] = ..., state: _Optional[_Union[ContainerState, str]] = ..., pid: _Optional[int] = ..., started_at: _Optional[float] = ..., exit_code: _Optional[int] = ..., host_ip: _Optional[str] = ..., host_ports: _Optional[_Mapping[str, int]] = ..., message: _Optional[str] = ..., finished_at: _Optional[float] = ..., app_name: _Optional[str] = ..., platform_reason: _Optional[str] = ..., usage: _Optional[_Union[Resources, _Mapping]] = ..., container_ip: _Optional[str] = ..., version: _Optional[int] = ..., health: _Optional[str] = ...) -> None: ...

class NodeEvent(_message.Message):
    __slots__ = ("at", "kind", "container_id", "message")
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    at: float
    kind: str
    container_id: str
    message: str
    def __init__(self, at: _Optional[float] = ..., kind: _Optional[str] = ..., container_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("stream", "data", "container_id")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    stream: str
    data: bytes
    container_id: str
    def __init__(self, stream: _Optional[str] = ..., data: _Optional[bytes] = ..., container_id: _Optional[str] = ...) -> None: ...

class ServiceEndpoint(_message.Message):
    __slots__ = ("app", "instance_id", "host", "ports", "node_id", "container_id", "health", "private")
    class PortsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    APP_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    app: str
    instance_id: str
    host: str
    ports: _containers.ScalarMap[str, int]
    node_id: str
    container_id: str
    health: str
    private: bool
    def __init__(self, app: _Optional[str] = ..., instance_id: _Optional[str] = ..., host: _Optional[str] = ..., ports: _Optional[_Mapping[str, int]] = ..., node_id: _Optional[str] = ..., container_id: _Optional[str] = ..., health: _Optional[str] = ..., private: _Optional[bool] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "address", "host_ip", "capacity", "labels", "registered_at", "version", "drivers", "gpu_sharing", "gpus")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOST_IP_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DRIVERS_FIELD_NUMBER: _ClassVar[int]
    GPU_SHARING_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    address: str
    host_ip: str
    capacity: Resources
    labels: _containers.ScalarMap[str, str]
    registered_at: float
    version: str
    drivers: _containers.RepeatedScalarFieldContainer[str]
    gpu_sharing: bool
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    def __init__(self, node_id: _Optional[str] = ..., address: _Optional[str] = ..., host_ip: _Optional[str] = ..., capacity: _Optional[_Union[Resources, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., registered_at: _Optional[float] = ..., version: _Optional[str] = ..., drivers: _Optional[_Iterable[str]] = ..., gpu_sharing: _Optional[bool] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ...) -> None: ...

class Gpu(_message.Message):
    __slots__ = ("index", "model", "memory_bytes", "link_path", "uuid")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    LINK_PATH_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    index: int
    model: str
    memory_bytes: int
    link_path: str
    uuid: str
    def __init__(self, index: _Optional[int] = ..., model: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., link_path: _Optional[str] = ..., uuid: _Optional[str] = ...) -> None: ...

class MasterInfo(_message.Message):
    __slots__ = ("id", "address", "started_at", "epoch", "leader")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    started_at: float
    epoch: int
    leader: bool
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., started_at: _Optional[float] = ..., epoch: _Optional[int] = ..., leader: _Optional[bool] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("name", "description", "created_unix_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    created_unix_ms: int
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("name", "tenant", "admin", "token_sha256", "created_unix_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    admin: bool
    token_sha256: str
    created_unix_ms: int
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ..., admin: _Optional[bool] = ..., token_sha256: _Optional[str] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class AclPolicy(_message.Message):
    __slots__ = ("id", "subject", "pool", "capabilities")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    id: str
    subject: str
    pool: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., subject: _Optional[str] = ..., pool: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ...) -> None: ...
