"""Every error spirtd raises on purpose, in one tree.

    SpirtError
    ├── ConfigError            a setting or argument is invalid; nothing was started
    │   ├── DatasetError       a dataset is unknown, its files are missing or
    │   │   │                  malformed, or its options are wrong
    │   │   └── DatasetFileError  its files are missing, unreadable or malformed
    │   │                      (the message names them: for the peer's log, not
    │   │                      for clients, who must not learn the peer's files)
    │   └── LimitExceeded      what was asked needs more than a limit of this
    │                          peer allows (store memory, worker memory)
    ├── DownloadError          a dataset's files could not be fetched, or what
    │                          came did not match its published checksum
    ├── SecurityError          a certificate or revocation list is not trustworthy
    ├── AggregationError       an aggregation rule cannot run on these inputs
    │                          (unknown rule, bad option, too few inputs for f,
    │                          mismatched shapes, non-finite values)
    ├── TransportError         a message to a peer could not be delivered or
    │                          answered (unreachable, refused, broken link)
    ├── ExchangeError          a round's exchange between peers could not go on
    │   ├── ContributionRefused    the receiver refused a contribution stream (kind: why)
    │   ├── VersionMoved           the peer asked for a version is at another round (a race)
    │   ├── AttemptFailed          the attempt was given up: agree again
    │   └── ResyncNeeded           a majority holds another version: take it
    ├── MembershipError        the membership layer refused a request (a probe
    │                          for another member, a closed driver, no seed answered)
    ├── StoreError             the tensor store refused or failed an operation
    │   ├── TensorNotFound     the key holds no tensor
    │   ├── WrongType          the key holds something that is not a tensor
    │   ├── InvalidTensor      data, shape or dtype are wrong for the operation
    │   ├── ConflictError      a key changed while the operation ran; nothing was written
    │   ├── BackendUnsupported this backend cannot do the operation
    │   ├── StoreFull          the store is at its memory limit; nothing was written
    │   ├── StoreUnavailable   the store cannot be reached, or it died
    │   └── StoreRestarted     the store restarted while a round ran: not committed
    ├── JobError               a training job cannot do what was asked
    │   ├── JobNotFound        no such job on this peer (or not what was asked of it)
    │   ├── JobBusy            the job is queued or running, and that needs it ended
    │   ├── JobTransitionError a job or round cannot move to that phase from where it is
    │   └── RoundFailed        a round could not be completed (every minibatch failed,
    │                          too few for the rule, or past round_timeout_s)
    ├── WireError              a peer's message cannot be understood (e.g. an unknown member state)
    ├── LocalClusterError      the peers of a local cluster (spirtd.localcluster) could
    │                          not be started, could not join each other, or did not stop
    └── WorkerError            a worker process (spirtd.workers.pool) could not serve
        ├── WorkerStartFailed  a worker did not become ready: its handler failed
        │                      to import, it died, or start_timeout_s passed
        ├── ProtocolError      a worker or the pool sent a line that is not a
        │                      valid message of the worker protocol
        ├── InvocationFailed   every attempt of one invocation failed (the worker
        │                      crashed, hung, went over its memory limit or broke
        │                      the protocol, or the handler raised); carries each
        │                      attempt's reason and the request's id
        └── PoolClosed         the pool is not running, or closed while the
                               invocation waited or ran

Messages say what was wrong in words a person can act on. Code that catches
errors catches these classes, never bare Exception, so that cancellation and
programming errors pass through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spirtd.workers.failures import AttemptFailure


class SpirtError(Exception):
    """Base of every error spirtd raises on purpose."""


class ConfigError(SpirtError):
    """A setting or argument is invalid; nothing was started or changed."""


class DatasetError(ConfigError):
    """A dataset cannot be loaded as asked: its name is unknown, its options
    are wrong, or its files are missing or malformed. The message names the
    file and what is wrong with it."""


class DatasetFileError(DatasetError):
    """A dataset's files are missing, unreadable or malformed; the message
    names the file. It says what the peer's disk holds, so a peer tells a
    client only that the dataset could not be used, and logs the rest."""


class LimitExceeded(ConfigError):
    """What was asked needs more than a limit of this peer allows (the
    store's memory, a worker's memory); the message names the limit and its
    setting. Nothing was started."""


class DownloadError(SpirtError):
    """A dataset's files could not be fetched, or what was fetched did not
    match its published checksum; nothing was left in the target folder."""


class SecurityError(SpirtError):
    """A certificate or revocation list is not trustworthy (wrong CA, bad
    signature, expired, revoked, malformed)."""


class AggregationError(SpirtError):
    """An aggregation rule cannot run on these inputs; nothing was written."""


class TransportError(SpirtError):
    """A message to a peer could not be delivered or answered: the peer is
    unreachable, refused the call, or the link broke. Timeouts are not
    TransportErrors: callers apply them as scopes and see TimeoutError."""


class ExchangeError(SpirtError):
    """A round's exchange between peers could not go on."""


class ContributionRefused(ExchangeError):
    """The receiver refused a contribution stream; `kind` is the refusal's
    counter name (spirtd.exchange.streams.RefusalKind), the message why."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class VersionMoved(ExchangeError):
    """The peer asked for a round's version holds another round: it went on
    meanwhile, or has not committed the round it reported yet (a race while
    catching up, not a fault of that peer): ask another."""


class AttemptFailed(ExchangeError):
    """This attempt of a round was given up (a participant died, a deadline
    passed, a stream was refused); the round goes on with the next attempt."""


class ResyncNeeded(ExchangeError):
    """A majority of the round's peers hold a state this peer does not: it
    must fetch version `round` (digest `state`) from one of `sources`."""

    def __init__(self, message: str, round: int, state: str, sources: tuple[str, ...]) -> None:
        super().__init__(message)
        self.round, self.state, self.sources = round, state, sources


class MembershipError(SpirtError):
    """The membership layer refused a request: a probe meant for another
    member, a driver that is closed, a join that no seed answered."""


class StoreError(SpirtError):
    """The tensor store refused or failed an operation."""


class TensorNotFound(StoreError):
    """The key holds no tensor."""


class WrongType(StoreError):
    """The key holds a value that is not a tensor."""


class InvalidTensor(StoreError):
    """Data, shape or dtype are wrong for the operation; nothing was written."""


class ConflictError(StoreError):
    """A key changed while the operation ran; nothing was written."""


class BackendUnsupported(StoreError):
    """This store backend cannot do the operation."""


class StoreFull(StoreError):
    """The store is at its memory limit (maxmemory) and refused a write;
    nothing was written, nothing was evicted."""


class StoreUnavailable(StoreError):
    """The store cannot be reached, or it died."""


class StoreRestarted(StoreError):
    """The store restarted while something that needs one run of it was
    going on (a round): that is not committed, and is done again from what
    the store holds now."""


class JobError(SpirtError):
    """A training job cannot do what was asked."""


class JobNotFound(JobError):
    """No job with that id on this peer, or none of what was asked of it
    (its model) is there."""


class JobNotReplicated(JobError):
    """A submitted job is recorded on this peer, but some members did not
    take it (the message names them); job_id is its id."""

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobBusy(JobError):
    """The job is queued or running, and what was asked needs it ended."""


class JobTransitionError(JobError):
    """A job (or one of its rounds) was asked to move to a phase it cannot
    reach from where it is."""


class RoundFailed(JobError):
    """A round could not be completed (every minibatch failed, too few for
    the aggregation rule, or it ran out of time)."""


class WireError(SpirtError):
    """A peer's message cannot be understood (e.g. an unknown member state)."""


class LocalClusterError(SpirtError):
    """The peers of a local cluster could not be started, could not join
    each other in time, or did not stop; the message names the peer and
    quotes its log."""


class WorkerError(SpirtError):
    """A worker process of spirtd.workers.pool could not serve."""


class WorkerStartFailed(WorkerError):
    """A worker did not become ready: its handler failed to import, the
    process died, or start_timeout_s passed first. The process was killed."""


class ProtocolError(WorkerError):
    """A line on a worker's pipe is not a valid message of the worker
    protocol (spirtd.workers.protocol)."""


class InvocationFailed(WorkerError):
    """Every attempt of one invocation failed (the pool retried it up to
    max_attempts times). `request_id` is the request's id (None when it had
    none); `attempts` holds one spirtd.workers.failures.AttemptFailure per
    attempt, in order (kind, worker pid, reason in words); the message, which
    starts with `what` ("request 7"), lists them all."""

    def __init__(self, request_id: Any, attempts: Sequence[AttemptFailure], what: str) -> None:
        reasons = "; ".join(str(a) for a in attempts)
        times = "once" if len(attempts) == 1 else f"{len(attempts)} times"
        super().__init__(f"{what} failed {times}: {reasons}")
        self.request_id = request_id
        self.attempts = tuple(attempts)


class PoolClosed(WorkerError):
    """The worker pool is not running (not entered yet, or closed), or it
    closed while the invocation waited or ran."""
