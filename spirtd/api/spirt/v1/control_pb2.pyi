from spirtd.api.spirt.v1 import membership_pb2 as _membership_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    QUEUED: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    STOPPED_EARLY: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    CANCELLED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
QUEUED: JobState
RUNNING: JobState
SUCCEEDED: JobState
STOPPED_EARLY: JobState
FAILED: JobState
CANCELLED: JobState

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

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec", "format")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    spec: str
    format: str
    def __init__(self, spec: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobStatusRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobStatusResponse(_message.Message):
    __slots__ = ("job_id", "state", "round", "total_rounds", "loss", "accuracy", "val_loss", "test_accuracy", "digest", "error", "elapsed_s", "model", "dataset", "minibatches_retried", "minibatches_dropped", "owner", "participants", "name", "participant_digests")
    class ParticipantDigestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    VAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MINIBATCHES_RETRIED_FIELD_NUMBER: _ClassVar[int]
    MINIBATCHES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    round: int
    total_rounds: int
    loss: float
    accuracy: float
    val_loss: float
    test_accuracy: float
    digest: str
    error: str
    elapsed_s: float
    model: str
    dataset: str
    minibatches_retried: int
    minibatches_dropped: int
    owner: str
    participants: _containers.RepeatedScalarFieldContainer[str]
    name: str
    participant_digests: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., round: _Optional[int] = ..., total_rounds: _Optional[int] = ..., loss: _Optional[float] = ..., accuracy: _Optional[float] = ..., val_loss: _Optional[float] = ..., test_accuracy: _Optional[float] = ..., digest: _Optional[str] = ..., error: _Optional[str] = ..., elapsed_s: _Optional[float] = ..., model: _Optional[str] = ..., dataset: _Optional[str] = ..., minibatches_retried: _Optional[int] = ..., minibatches_dropped: _Optional[int] = ..., owner: _Optional[str] = ..., participants: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., participant_digests: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JobSummary(_message.Message):
    __slots__ = ("job_id", "state", "name", "model", "dataset", "round", "total_rounds", "owner", "submitted_unix", "model_kept", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    MODEL_KEPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    name: str
    model: str
    dataset: str
    round: int
    total_rounds: int
    owner: str
    submitted_unix: float
    model_kept: bool
    error: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., name: _Optional[str] = ..., model: _Optional[str] = ..., dataset: _Optional[str] = ..., round: _Optional[int] = ..., total_rounds: _Optional[int] = ..., owner: _Optional[str] = ..., submitted_unix: _Optional[float] = ..., model_kept: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobSummary]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobSummary, _Mapping]]] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "history_only")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ONLY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    history_only: bool
    def __init__(self, job_id: _Optional[str] = ..., history_only: _Optional[bool] = ...) -> None: ...

class RoundEvent(_message.Message):
    __slots__ = ("job_id", "round", "total_rounds", "loss", "accuracy", "val_loss", "phase_s", "minibatches", "retried", "dropped", "state", "message", "participants", "excluded", "sent_bytes", "received_bytes", "digest", "participant_digests")
    class PhaseSEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ExcludedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ParticipantDigestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    VAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    PHASE_S_FIELD_NUMBER: _ClassVar[int]
    MINIBATCHES_FIELD_NUMBER: _ClassVar[int]
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    SENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    round: int
    total_rounds: int
    loss: float
    accuracy: float
    val_loss: float
    phase_s: _containers.ScalarMap[str, float]
    minibatches: int
    retried: int
    dropped: int
    state: JobState
    message: str
    participants: _containers.RepeatedScalarFieldContainer[str]
    excluded: _containers.ScalarMap[str, str]
    sent_bytes: int
    received_bytes: int
    digest: str
    participant_digests: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., round: _Optional[int] = ..., total_rounds: _Optional[int] = ..., loss: _Optional[float] = ..., accuracy: _Optional[float] = ..., val_loss: _Optional[float] = ..., phase_s: _Optional[_Mapping[str, float]] = ..., minibatches: _Optional[int] = ..., retried: _Optional[int] = ..., dropped: _Optional[int] = ..., state: _Optional[_Union[JobState, str]] = ..., message: _Optional[str] = ..., participants: _Optional[_Iterable[str]] = ..., excluded: _Optional[_Mapping[str, str]] = ..., sent_bytes: _Optional[int] = ..., received_bytes: _Optional[int] = ..., digest: _Optional[str] = ..., participant_digests: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ModelChunk(_message.Message):
    __slots__ = ("name", "dtype", "shape", "offset", "data", "digest", "spec_json", "input_shape", "num_classes", "round")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    offset: int
    data: bytes
    digest: str
    spec_json: str
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    num_classes: int
    round: int
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., digest: _Optional[str] = ..., spec_json: _Optional[str] = ..., input_shape: _Optional[_Iterable[int]] = ..., num_classes: _Optional[int] = ..., round: _Optional[int] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    def __init__(self, state: _Optional[_Union[JobState, str]] = ...) -> None: ...
