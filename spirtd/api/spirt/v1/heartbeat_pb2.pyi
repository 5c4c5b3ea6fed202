from spirtd.api.spirt.v1 import membership_pb2 as _membership_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PingRequest(_message.Message):
    __slots__ = ("sender", "seq", "target", "updates")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    sender: str
    seq: int
    target: str
    updates: _containers.RepeatedCompositeFieldContainer[_membership_pb2.Update]
    def __init__(self, sender: _Optional[str] = ..., seq: _Optional[int] = ..., target: _Optional[str] = ..., updates: _Optional[_Iterable[_Union[_membership_pb2.Update, _Mapping]]] = ...) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("sender", "seq", "updates")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    sender: str
    seq: int
    updates: _containers.RepeatedCompositeFieldContainer[_membership_pb2.Update]
    def __init__(self, sender: _Optional[str] = ..., seq: _Optional[int] = ..., updates: _Optional[_Iterable[_Union[_membership_pb2.Update, _Mapping]]] = ...) -> None: ...

class PingReqRequest(_message.Message):
    __slots__ = ("sender", "seq", "target", "target_address", "updates")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TARGET_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    sender: str
    seq: int
    target: str
    target_address: str
    updates: _containers.RepeatedCompositeFieldContainer[_membership_pb2.Update]
    def __init__(self, sender: _Optional[str] = ..., seq: _Optional[int] = ..., target: _Optional[str] = ..., target_address: _Optional[str] = ..., updates: _Optional[_Iterable[_Union[_membership_pb2.Update, _Mapping]]] = ...) -> None: ...

class PingReqResponse(_message.Message):
    __slots__ = ("sender", "seq", "acked", "updates")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    sender: str
    seq: int
    acked: bool
    updates: _containers.RepeatedCompositeFieldContainer[_membership_pb2.Update]
    def __init__(self, sender: _Optional[str] = ..., seq: _Optional[int] = ..., acked: _Optional[bool] = ..., updates: _Optional[_Iterable[_Union[_membership_pb2.Update, _Mapping]]] = ...) -> None: ...
