from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TensorRef(_message.Message):
    __slots__ = ("job", "round", "name")
    JOB_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    job: str
    round: int
    name: str
    def __init__(self, job: _Optional[str] = ..., round: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class TensorHeader(_message.Message):
    __slots__ = ("dtype", "shape", "nbytes", "sha256")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    NBYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    nbytes: int
    sha256: str
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., nbytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class AttemptKey(_message.Message):
    __slots__ = ("round", "attempt", "participants")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    round: int
    attempt: int
    participants: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, round: _Optional[int] = ..., attempt: _Optional[int] = ..., participants: _Optional[_Iterable[str]] = ...) -> None: ...

class Contribution(_message.Message):
    __slots__ = ("job", "key", "sender", "stage", "shard", "start", "n_elements", "samples", "loss", "contributors")
    class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STAGE_UNSPECIFIED: _ClassVar[Contribution.Stage]
        SCATTER: _ClassVar[Contribution.Stage]
        GATHER: _ClassVar[Contribution.Stage]
    STAGE_UNSPECIFIED: Contribution.Stage
    SCATTER: Contribution.Stage
    GATHER: Contribution.Stage
    JOB_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    N_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTORS_FIELD_NUMBER: _ClassVar[int]
    job: str
    key: AttemptKey
    sender: str
    stage: Contribution.Stage
    shard: int
    start: int
    n_elements: int
    samples: float
    loss: float
    contributors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job: _Optional[str] = ..., key: _Optional[_Union[AttemptKey, _Mapping]] = ..., sender: _Optional[str] = ..., stage: _Optional[_Union[Contribution.Stage, str]] = ..., shard: _Optional[int] = ..., start: _Optional[int] = ..., n_elements: _Optional[int] = ..., samples: _Optional[float] = ..., loss: _Optional[float] = ..., contributors: _Optional[_Iterable[str]] = ...) -> None: ...

class TensorChunk(_message.Message):
    __slots__ = ("ref", "header", "offset", "data", "contribution")
    REF_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    ref: TensorRef
    header: TensorHeader
    offset: int
    data: bytes
    contribution: Contribution
    def __init__(self, ref: _Optional[_Union[TensorRef, _Mapping]] = ..., header: _Optional[_Union[TensorHeader, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., contribution: _Optional[_Union[Contribution, _Mapping]] = ...) -> None: ...

class FetchTensorRequest(_message.Message):
    __slots__ = ("sender", "ref")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    sender: str
    ref: TensorRef
    def __init__(self, sender: _Optional[str] = ..., ref: _Optional[_Union[TensorRef, _Mapping]] = ...) -> None: ...

class PushTensorResponse(_message.Message):
    __slots__ = ("received_bytes",)
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    received_bytes: int
    def __init__(self, received_bytes: _Optional[int] = ...) -> None: ...

class AgreementMessage(_message.Message):
    __slots__ = ("sender", "job", "kind", "key", "state", "again", "shard", "statistic", "data")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[AgreementMessage.Kind]
        PROPOSE: _ClassVar[AgreementMessage.Kind]
        REPORT: _ClassVar[AgreementMessage.Kind]
        PARTIAL: _ClassVar[AgreementMessage.Kind]
    KIND_UNSPECIFIED: AgreementMessage.Kind
    PROPOSE: AgreementMessage.Kind
    REPORT: AgreementMessage.Kind
    PARTIAL: AgreementMessage.Kind
    SENDER_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGAIN_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    sender: str
    job: str
    kind: AgreementMessage.Kind
    key: AttemptKey
    state: str
    again: bool
    shard: int
    statistic: str
    data: bytes
    def __init__(self, sender: _Optional[str] = ..., job: _Optional[str] = ..., kind: _Optional[_Union[AgreementMessage.Kind, str]] = ..., key: _Optional[_Union[AttemptKey, _Mapping]] = ..., state: _Optional[str] = ..., again: _Optional[bool] = ..., shard: _Optional[int] = ..., statistic: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class AgreementAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionRequest(_message.Message):
    __slots__ = ("sender", "job")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    sender: str
    job: str
    def __init__(self, sender: _Optional[str] = ..., job: _Optional[str] = ...) -> None: ...

class VersionReply(_message.Message):
    __slots__ = ("round", "state", "progress", "tensors")
    class ProgressEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    round: int
    state: str
    progress: _containers.ScalarMap[str, str]
    tensors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, round: _Optional[int] = ..., state: _Optional[str] = ..., progress: _Optional[_Mapping[str, str]] = ..., tensors: _Optional[_Iterable[str]] = ...) -> None: ...

class JobOffer(_message.Message):
    __slots__ = ("sender", "record_json")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECORD_JSON_FIELD_NUMBER: _ClassVar[int]
    sender: str
    record_json: str
    def __init__(self, sender: _Optional[str] = ..., record_json: _Optional[str] = ...) -> None: ...

class JobOfferReply(_message.Message):
    __slots__ = ("known",)
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: _Optional[bool] = ...) -> None: ...

class JobCancel(_message.Message):
    __slots__ = ("sender", "job")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    sender: str
    job: str
    def __init__(self, sender: _Optional[str] = ..., job: _Optional[str] = ...) -> None: ...

class JobCancelReply(_message.Message):
    __slots__ = ("phase",)
    PHASE_FIELD_NUMBER: _ClassVar[int]
    phase: str
    def __init__(self, phase: _Optional[str] = ...) -> None: ...

class JobListRequest(_message.Message):
    __slots__ = ("sender",)
    SENDER_FIELD_NUMBER: _ClassVar[int]
    sender: str
    def __init__(self, sender: _Optional[str] = ...) -> None: ...

class JobListReply(_message.Message):
    __slots__ = ("record_json",)
    RECORD_JSON_FIELD_NUMBER: _ClassVar[int]
    record_json: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, record_json: _Optional[_Iterable[str]] = ...) -> None: ...
