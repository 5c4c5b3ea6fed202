"""Every setting of the worker pool (spirtd.workers.pool), in one frozen
dataclass with presets.

Durations are float seconds (`_s`), sizes MiB (`_mb`), multipliers `_mult`.
Cross-field rules are checked at construction and raise ConfigError;
`dataclasses.replace` checks them again.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from spirtd.errors import ConfigError


class PoolMode(enum.Enum):
    WARM = "warm"  # `concurrency` workers started up front and reused
    COLD = "cold"  # a fresh process per attempt: a serverless cold start every time


@dataclass(frozen=True)
class PoolConfig:
    mode: PoolMode = PoolMode.WARM
    """WARM keeps `concurrency` workers alive (the handler's imports paid
    once; a dead worker is replaced in the background). COLD starts a process
    per attempt and stops it after the reply: the cost of a serverless cold
    start (interpreter + handler import) on every invocation, measured apart
    in InvocationResult.timings.start_s. The strings "warm" and "cold" are
    accepted too."""

    concurrency: int = 2
    """Invocations running at once; in warm mode also the number of workers.
    Each worker is a whole process with its own copy of the model, so the
    limit is usually memory (concurrency x memory_limit_mb must fit) and
    cores (set OMP_NUM_THREADS in the pool's env so that concurrency x
    threads does not oversubscribe them)."""

    invocation_timeout_s: float = 60.0
    """Time from sending a request to its reply. A worker still busy then is
    killed (SIGKILL) and the attempt fails as timed out. Must cover the
    slowest honest minibatch on a loaded machine; shorter recovers sooner
    from a hung worker."""

    start_timeout_s: float = 30.0
    """A worker must be ready (interpreter started, handler imported) within
    this, or it is killed. Importing torch takes 1-2 s on an idle core and
    much more on a loaded one."""

    stop_grace_s: float = 2.0
    """How long a worker whose stdin was closed may take to exit before it is
    killed (at close, and after each cold invocation); also how long to wait
    for a worker's exit status after its pipe broke."""

    memory_limit_mb: int | None = 4096
    """Resident memory (VmRSS) above which the watchdog kills a worker (SIGKILL)
    and the attempt fails as over memory. None: no watchdog. RLIMIT_AS is not
    used: torch reserves far more address space than it touches."""

    memory_poll_s: float = 0.1
    """How often the watchdog reads every worker's VmRSS from /proc. A worker
    can overshoot the limit by what it allocates in one interval, which is
    what data_limit_mult is for."""

    data_limit_mult: float | None = 4.0
    """RLIMIT_DATA of each worker = memory_limit_mb x this: a hard backstop
    against allocations faster than memory_poll_s (the handler then gets
    MemoryError, which also counts as over memory). Generous on purpose:
    RLIMIT_DATA counts private writable mappings, touched or not. None: not
    set. Ignored when memory_limit_mb is None."""

    max_attempts: int = 3
    """Attempts of one invocation (the first included) before invoke raises
    InvocationFailed. Each retry goes to another worker when one is free."""

    retry_handler_errors: bool = True
    """Retry an invocation whose handler raised. True suits handlers whose
    failures may be transient (a store briefly unreachable, a worker short of
    memory); False fails fast on deterministic bugs (the same exception
    max_attempts times is a waste). The worker is kept either way, unless
    the error was MemoryError."""

    max_message_bytes: int = 1 << 20
    """Longest reply line accepted from a worker. Replies are small (keys and
    numbers); a longer one is a protocol error and the worker is killed."""

    python: str | None = None
    """Interpreter that runs the workers; None: the one running the pool."""

    inherit_env: bool = True
    """Workers start with this process's environment (then the pool's `env`
    on top); False: with the pool's `env` only."""

    def __post_init__(self) -> None:
        if isinstance(self.mode, str):
            try:
                object.__setattr__(self, "mode", PoolMode(self.mode))
            except ValueError:
                raise ConfigError(f'mode must be "warm" or "cold", not {self.mode!r}') from None
        if not isinstance(self.mode, PoolMode):
            raise ConfigError(f'mode must be "warm" or "cold", not {self.mode!r}')
        for name in ("invocation_timeout_s", "start_timeout_s", "stop_grace_s", "memory_poll_s"):
            _positive_seconds(name, getattr(self, name))
        for name in ("concurrency", "max_attempts", "max_message_bytes"):
            _positive_int(name, getattr(self, name))
        if self.memory_limit_mb is not None:
            _positive_int("memory_limit_mb", self.memory_limit_mb)
        if self.data_limit_mult is not None:
            value = self.data_limit_mult
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"data_limit_mult must be a finite number or None, not {value!r}")
            if value <= 1:
                raise ConfigError(
                    f"data_limit_mult ({value}) must be above 1: the backstop must sit above memory_limit_mb, "
                    "or the watchdog never gets to act"
                )
        for name in ("retry_handler_errors", "inherit_env"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if self.python is not None and (not isinstance(self.python, str) or not self.python):
            raise ConfigError(f"python must be a path to an interpreter or None, not {self.python!r}")
        if self.memory_limit_mb is not None and self.memory_poll_s >= self.invocation_timeout_s:
            raise ConfigError(
                f"memory_poll_s ({self.memory_poll_s}) must be less than invocation_timeout_s "
                f"({self.invocation_timeout_s}): otherwise the watchdog samples a worker at most once per invocation"
            )

    @property
    def data_limit_mb(self) -> int | None:
        """RLIMIT_DATA given to each worker, or None."""
        if self.memory_limit_mb is None or self.data_limit_mult is None:
            return None
        return math.ceil(self.memory_limit_mb * self.data_limit_mult)

    @classmethod
    def default(cls) -> PoolConfig:
        """Warm workers, two at once, a minute per minibatch, 4 GiB each."""
        return cls()

    @classmethod
    def cold(cls) -> PoolConfig:
        """The default with a fresh process per invocation, as a serverless
        platform without warm instances would run it."""
        return cls(mode=PoolMode.COLD)


def _positive_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive, finite number of seconds, not {value!r}")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, not {value}")
