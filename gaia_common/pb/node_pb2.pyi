from . import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartContainerRequest(_message.Message):
    __slots__ = ("epoch", "spec", "am_attempt")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    AM_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    spec: _types_pb2.ContainerSpec
    am_attempt: int
    def __init__(self, epoch: _Optional[int] = ..., spec: _Optional[_Union[_types_pb2.ContainerSpec, _Mapping]] = ..., am_attempt: _Optional[int] = ...) -> None: ...

class StopContainerRequest(_message.Message):
    __slots__ = ("epoch", "container_id", "grace_seconds", "remove", "app_id", "am_attempt")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    AM_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    container_id: str
    grace_seconds: float
    remove: bool
    app_id: str
    am_attempt: int
    def __init__(self, epoch: _Optional[int] = ..., container_id: _Optional[str] = ..., grace_seconds: _Optional[float] = ..., remove: _Optional[bool] = ..., app_id: _Optional[str] = ..., am_attempt: _Optional[int] = ...) -> None: ...

class NodeStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeReport(_message.Message):
    __slots__ = ("info", "containers", "known_epoch", "refused_commands", "used", "allocated", "events")
    INFO_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_EPOCH_FIELD_NUMBER: _ClassVar[int]
    REFUSED_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    info: _types_pb2.NodeInfo
    containers: _containers.RepeatedCompositeFieldContainer[_types_pb2.ContainerStatus]
    known_epoch: int
    refused_commands: int
    used: _types_pb2.Resources
    allocated: _types_pb2.Resources
    events: _containers.RepeatedCompositeFieldContainer[_types_pb2.NodeEvent]
    def __init__(self, info: _Optional[_Union[_types_pb2.NodeInfo, _Mapping]] = ..., containers: _Optional[_Iterable[_Union[_types_pb2.ContainerStatus, _Mapping]]] = ..., known_epoch: _Optional[int] = ..., refused_commands: _Optional[int] = ..., used: _Optional[_Union[_types_pb2.Resources, _Mapping]] = ..., allocated: _Optional[_Union[_types_pb2.Resources, _Mapping]] = ..., events: _Optional[_Iterable[_Union[_types_pb2.NodeEvent, _Mapping]]] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("container_id", "follow", "tail_bytes")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_BYTES_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    follow: bool
    tail_bytes: int
    def __init__(self, container_id: _Optional[str] = ..., follow: _Optional[bool] = ..., tail_bytes: _Optional[int] = ...) -> None: ...
