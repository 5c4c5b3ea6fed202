from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemberState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMBER_STATE_UNSPECIFIED: _ClassVar[MemberState]
    ALIVE: _ClassVar[MemberState]
    SUSPECT: _ClassVar[MemberState]
    DEAD: _ClassVar[MemberState]
    LEFT: _ClassVar[MemberState]
MEMBER_STATE_UNSPECIFIED: MemberState
ALIVE: MemberState
SUSPECT: MemberState
DEAD: MemberState
LEFT: MemberState

class Member(_message.Message):
    __slots__ = ("id", "address", "incarnation", "state", "meta")
    class MetaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    incarnation: int
    state: MemberState
    meta: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., incarnation: _Optional[int] = ..., state: _Optional[_Union[MemberState, str]] = ..., meta: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Alive(_message.Message):
    __slots__ = ("id", "address", "incarnation", "meta")
    class MetaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    incarnation: int
    meta: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., incarnation: _Optional[int] = ..., meta: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Suspect(_message.Message):
    __slots__ = ("id", "incarnation")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    id: str
    incarnation: int
    def __init__(self, id: _Optional[str] = ..., incarnation: _Optional[int] = ..., **kwargs) -> None: ...

class Dead(_message.Message):
    __slots__ = ("id", "incarnation")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    id: str
    incarnation: int
    def __init__(self, id: _Optional[str] = ..., incarnation: _Optional[int] = ..., **kwargs) -> None: ...

class Update(_message.Message):
    __slots__ = ("alive", "suspect", "dead")
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    alive: Alive
    suspect: Suspect
    dead: Dead
    def __init__(self, alive: _Optional[_Union[Alive, _Mapping]] = ..., suspect: _Optional[_Union[Suspect, _Mapping]] = ..., dead: _Optional[_Union[Dead, _Mapping]] = ...) -> None: ...

class RevocationList(_message.Message):
    __slots__ = ("crl_der",)
    CRL_DER_FIELD_NUMBER: _ClassVar[int]
    crl_der: bytes
    def __init__(self, crl_der: _Optional[bytes] = ...) -> None: ...

class StateSnapshot(_message.Message):
    __slots__ = ("sender", "members", "revocations")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    sender: str
    members: _containers.RepeatedCompositeFieldContainer[Member]
    revocations: RevocationList
    def __init__(self, sender: _Optional[str] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., revocations: _Optional[_Union[RevocationList, _Mapping]] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: StateSnapshot
    def __init__(self, state: _Optional[_Union[StateSnapshot, _Mapping]] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: StateSnapshot
    def __init__(self, state: _Optional[_Union[StateSnapshot, _Mapping]] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: StateSnapshot
    def __init__(self, state: _Optional[_Union[StateSnapshot, _Mapping]] = ...) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: StateSnapshot
    def __init__(self, state: _Optional[_Union[StateSnapshot, _Mapping]] = ...) -> None: ...

class GossipRequest(_message.Message):
    __slots__ = ("sender", "updates", "revocations")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    sender: str
    updates: _containers.RepeatedCompositeFieldContainer[Update]
    revocations: RevocationList
    def __init__(self, sender: _Optional[str] = ..., updates: _Optional[_Iterable[_Union[Update, _Mapping]]] = ..., revocations: _Optional[_Union[RevocationList, _Mapping]] = ...) -> None: ...

class GossipResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("sender", "incarnation")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    sender: str
    incarnation: int
    def __init__(self, sender: _Optional[str] = ..., incarnation: _Optional[int] = ...) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
