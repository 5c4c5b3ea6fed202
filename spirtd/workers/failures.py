"""How one attempt of a worker invocation failed, in a form both people and
code can read: an AttemptFailure has a kind (what to count and whether the
worker must go), the worker's pid, and the reason in words ("worker 12345
used 812 MB, over the limit of 512 MB: killed")."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FailureKind(enum.Enum):
    CRASHED = "crashed"  # the worker died on its own (exit code or signal), or closed its pipe
    TIMED_OUT = "timed_out"  # no reply within invocation_timeout_s: killed
    OVER_MEMORY = "over_memory"  # RSS over memory_limit_mb (watchdog) or MemoryError: killed
    HANDLER_ERROR = "handler_error"  # the handler raised; the worker is fine
    PROTOCOL_ERROR = "protocol_error"  # the worker wrote something that is not a protocol message
    START_FAILED = "start_failed"  # no worker could be started for the attempt


@dataclass(frozen=True)
class AttemptFailure:
    attempt: int  # 1-based
    kind: FailureKind
    pid: int | None  # None when no worker ran the attempt
    reason: str  # in words, starting with the worker ("worker 123 timed out after 2.0 s: killed")
    elapsed_s: float  # from the attempt's start to its failure

    def __str__(self) -> str:
        return f"attempt {self.attempt}: {self.reason}"
