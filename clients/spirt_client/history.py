"""A job's round history as flat records (one dict per round event, a
column per phase) and as a pandas DataFrame, when pandas is installed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spirt_client.errors import require
from spirt_client.results import RoundEvent

PHASES = ("propose", "compute", "aggregate", "exchange", "update", "agree", "evaluate")
COLUMNS = ("round", "state", "loss", "accuracy", "val_loss", "participant_count", "participants", "excluded_count",
           "minibatches", "retried", "dropped", "sent_bytes", "received_bytes", "digest", "message",
           *(f"{p}_s" for p in PHASES))  # fmt: skip


def record(event: RoundEvent) -> dict[str, Any]:
    """One event as a flat record: COLUMNS, then any phase the peer added since."""
    out: dict[str, Any] = {
        "round": event.round, "state": event.state.value, "loss": event.loss, "accuracy": event.accuracy,
        "val_loss": event.val_loss, "participant_count": len(event.participants),
        "participants": list(event.participants), "excluded_count": len(event.excluded),
        "minibatches": event.minibatches, "retried": event.retried, "dropped": event.dropped,
        "sent_bytes": event.sent_bytes, "received_bytes": event.received_bytes, "digest": event.digest,
        "message": event.message,
    }  # fmt: skip
    for phase in PHASES:
        out[f"{phase}_s"] = event.phase_s.get(phase, 0.0)
    for phase, seconds in sorted(event.phase_s.items()):
        out.setdefault(f"{phase}_s", seconds)
    return out


def records(events: Iterable[RoundEvent]) -> list[dict[str, Any]]:
    return [record(e) for e in events]


def frame(events: Iterable[RoundEvent]):
    """A pandas DataFrame, a row per round event, the columns of record()."""
    pandas = require("pandas", "a round history as a DataFrame")
    rows = records(events)
    return pandas.DataFrame(rows, columns=list(rows[0]) if rows else list(COLUMNS))
