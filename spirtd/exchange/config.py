"""The settings of round agreement, in one frozen record, checked when made."""

from __future__ import annotations

from dataclasses import dataclass

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
