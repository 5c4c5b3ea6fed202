"""The settings of round agreement, in one frozen record, checked when made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spirtd.errors import ConfigError


@dataclass(frozen=True)
class AgreementConfig:
    """propose_timeout_s: how long an attempt waits for every participant's
    proposal; report_timeout_s: how long, after its own update, a peer
    waits for a majority of the participants' digests; quorum_fraction: a
    round needs more than this fraction of the previous round's
    participants (a strict majority by default)."""

    propose_timeout_s: float = 5.0
    report_timeout_s: float = 30.0
    quorum_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("propose_timeout_s", "report_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")
        if not isinstance(self.quorum_fraction, (int, float)) or not 0.0 <= self.quorum_fraction < 1.0:
            raise ConfigError(f"quorum_fraction must be in [0, 1), got {self.quorum_fraction!r}")


@dataclass(frozen=True)
class ExchangeConfig:
    """How one job's rounds exchange, from its spec: the agreement; the
    size of a stream's chunks; how long an owner waits for the parts of its
    shard (deadline_multiple times the deadline_percentile of recent
    arrival times, within [deadline_floor_s, deadline_ceiling_s]; the
    ceiling while nothing was seen); how long a participant waits for the
    aggregated shards after sending its own (gather_timeout_s); the dtype
    contributions travel in (wire_dtype)."""

    agreement: AgreementConfig = AgreementConfig()
    chunk_bytes: int = 1 << 20
    deadline_multiple: float = 3.0
    deadline_percentile: float = 95.0
    deadline_floor_s: float = 2.0
    deadline_ceiling_s: float = 120.0
    gather_timeout_s: float = 60.0
    arrival_history: int = 64
    wire_dtype: str = "FLOAT"  # or "HALF": half the bytes, aggregated in float32

    def __post_init__(self) -> None:
        chunk = self.chunk_bytes
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 4 or chunk % 4:
            raise ConfigError(f"chunk_bytes must be a multiple of 4 (whole float32 elements), got {chunk!r}")
        for name in ("deadline_multiple", "deadline_floor_s", "deadline_ceiling_s", "gather_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{name} must be a number > 0, got {value!r}")
        if self.deadline_floor_s > self.deadline_ceiling_s:
            raise ConfigError(f"deadline_floor_s ({self.deadline_floor_s:g}) is above deadline_ceiling_s "
                              f"({self.deadline_ceiling_s:g})")  # fmt: skip
        if self.wire_dtype not in ("FLOAT", "HALF"):
            raise ConfigError(f"wire_dtype must be FLOAT or HALF, got {self.wire_dtype!r}")
        if not 0 < self.deadline_percentile <= 100:
            raise ConfigError(f"deadline_percentile must be in (0, 100], got {self.deadline_percentile!r}")


@dataclass(frozen=True)
class RoundSettings:
    """A job's exchange settings, from its spec: its aggregation rule and
    options (applied by each shard's owner), and the exchange's config."""

    rule: str
    options: Mapping[str, Any]
    config: ExchangeConfig = ExchangeConfig()
