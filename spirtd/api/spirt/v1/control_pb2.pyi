from spirtd.api.spirt.v1 import membership_pb2 as _membership_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("id", "version", "uptime_s", "store_backend", "member_count", "alive_count", "address", "incarnation", "counters")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    STORE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALIVE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: str
    uptime_s: float
    store_backend: str
    member_count: int
    alive_count: int
    address: str
    incarnation: int
    counters: _containers.ScalarMap[str, int]
    def __init__(self, id: _Optional[str] = ..., version: _Optional[str] = ..., uptime_s: _Optional[float] = ..., store_backend: _Optional[str] = ..., member_count: _Optional[int] = ..., alive_count: _Optional[int] = ..., address: _Optional[str] = ..., incarnation: _Optional[int] = ..., counters: _Optional[_Mapping[str, int]] = ...) -> None: ...

class MemberInfo(_message.Message):
    __slots__ = ("id", "address", "state", "incarnation", "rtt_ms", "state_age_s")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    STATE_AGE_S_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    state: _membership_pb2.MemberState
    incarnation: int
    rtt_ms: float
    state_age_s: float
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., state: _Optional[_Union[_membership_pb2.MemberState, str]] = ..., incarnation: _Optional[int] = ..., rtt_ms: _Optional[float] = ..., state_age_s: _Optional[float] = ...) -> None: ...

class MembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MembersResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[MemberInfo]
    def __init__(self, members: _Optional[_Iterable[_Union[MemberInfo, _Mapping]]] = ...) -> None: ...

class MembershipEvent(_message.Message):
    __slots__ = ("kind", "member", "time_unix")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[MembershipEvent.Kind]
        JOIN: _ClassVar[MembershipEvent.Kind]
        SUSPECT: _ClassVar[MembershipEvent.Kind]
        ALIVE: _ClassVar[MembershipEvent.Kind]
        DEAD: _ClassVar[MembershipEvent.Kind]
        LEAVE: _ClassVar[MembershipEvent.Kind]
    KIND_UNSPECIFIED: MembershipEvent.Kind
    JOIN: MembershipEvent.Kind
    SUSPECT: MembershipEvent.Kind
    ALIVE: MembershipEvent.Kind
    DEAD: MembershipEvent.Kind
    LEAVE: MembershipEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    kind: MembershipEvent.Kind
    member: MemberInfo
    time_unix: float
    def __init__(self, kind: _Optional[_Union[MembershipEvent.Kind, str]] = ..., member: _Optional[_Union[MemberInfo, _Mapping]] = ..., time_unix: _Optional[float] = ...) -> None: ...

class WatchMembershipRequest(_message.Message):
    __slots__ = ("include_current",)
    INCLUDE_CURRENT_FIELD_NUMBER: _ClassVar[int]
    include_current: bool
    def __init__(self, include_current: _Optional[bool] = ...) -> None: ...
