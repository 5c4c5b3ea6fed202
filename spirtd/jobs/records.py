"""Job records on disk: DATA_DIR/jobs/ID.json, one per job, fsynced.

A record is written whole or not at all (spirtd.files). One that cannot be
read back (not JSON, not UTF-8, a field of the wrong type, a spec that is
no longer valid) never stops a peer from starting: it is moved to
jobs/quarantine/, logged, and shown as a FAILED job with the reason, until
it is deleted.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from spirtd.errors import ConfigError
from spirtd.files import write_atomically
from spirtd.jobs import spec as specs
from spirtd.jobs.jobstate import JobPhase

_log = logging.getLogger("spirtd.jobs")
JOBS_DIR = "jobs"
QUARANTINE_DIR = "quarantine"
RECORD_SUFFIX = ".json"
# A record holds a spec (at most specs.MAX_SPEC_BYTES as text) and a few numbers.
MAX_RECORD_BYTES = 4 * specs.MAX_SPEC_BYTES
MAX_MEMBERS = 4096
MAX_MEMBER_CHARS = 253
# What a job id may be (a file name): as JobManager.submit makes them.
_JOB_ID = re.compile(r"j[0-9a-f]{10}")


class RecordError(ConfigError):
    """A job record on disk cannot be read back."""


@dataclass
class JobRecord:
    """What is kept on disk for each job (fsynced). owner: the certificate
    name of the client that submitted it ("" with --insecure). round and
    loss (and the other numbers) are the job's last committed round, kept
    when it ends."""

    id: str
    spec: dict[str, Any]
    phase: str = JobPhase.QUEUED.value
    submitted_unix: float = 0.0
    error: str = ""
    test_accuracy: float | None = None
    digest: str = ""
    elapsed_s: float = 0.0
    total_rounds: int = 0
    owner: str = ""
    finished_unix: float = 0.0
    round: int = 0
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    retried: int = 0
    dropped: int = 0
    model_kept: bool = True
    # The live members when it was submitted: round 0's quorum is a majority of them.
    members: list[str] = field(default_factory=list)

    @property
    def job_phase(self) -> JobPhase:
        return JobPhase(self.phase)


_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "spec": (dict,), "phase": (str,), "submitted_unix": (int, float), "error": (str,),
    "test_accuracy": (int, float, type(None)), "digest": (str,), "elapsed_s": (int, float),
    "total_rounds": (int,), "owner": (str,), "finished_unix": (int, float), "round": (int,),
    "loss": (int, float, type(None)), "accuracy": (int, float, type(None)), "val_loss": (int, float, type(None)),
    "retried": (int,), "dropped": (int,), "model_kept": (bool,), "members": (list,),
}  # fmt: skip


def record_path(folder: Path, job_id: str) -> Path:
    return folder / f"{job_id}{RECORD_SUFFIX}"


def write_record(folder: Path, record: JobRecord) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(record_path(folder, record.id), json.dumps(asdict(record)).encode())


def parse_record(path: Path) -> tuple[JobRecord, specs.JobSpec]:
    """A record and its spec, or RecordError saying what is wrong."""
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise RecordError(f"it is {size} bytes, more than a record can be ({MAX_RECORD_BYTES})")
        values = json.loads(path.read_bytes())
    except OSError as exc:
        raise RecordError(f"it cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RecordError("it is not UTF-8 text") from None
    except ValueError as exc:
        raise RecordError(f"it is not valid JSON: {exc}") from None
    except RecursionError:
        raise RecordError("it is nested too deeply") from None
    record, spec = record_from_values(values)
    if record_path(path.parent, record.id).name != path.name:
        raise RecordError(f"it names job {record.id[:80]!r}, not the one its file name says")
    return record, spec


def record_to_json(record: JobRecord) -> str:
    return json.dumps(asdict(record))


def record_from_json(text: str) -> tuple[JobRecord, specs.JobSpec]:
    """A record another peer sent, or RecordError saying what is wrong."""
    if len(text) > MAX_RECORD_BYTES:
        raise RecordError(f"it is {len(text)} bytes, more than a record can be ({MAX_RECORD_BYTES})")
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"it is not valid JSON: {exc}") from None
    except RecursionError:
        raise RecordError("it is nested too deeply") from None
    record, spec = record_from_values(values)
    if not _JOB_ID.fullmatch(record.id):
        raise RecordError(f"{record.id[:80]!r} is not a job id")
    return record, spec


def record_from_values(values: Any) -> tuple[JobRecord, specs.JobSpec]:
    if not isinstance(values, dict):
        raise RecordError("it is not a JSON object")
    known = {f.name for f in fields(JobRecord)}
    if set(values) - known or "id" not in values or "spec" not in values:
        raise RecordError(f"its fields are not a job record's: {', '.join(sorted(map(str, values)))[:200]}")
    for name, value in values.items():
        if isinstance(value, bool) and bool not in _TYPES[name] or not isinstance(value, _TYPES[name]):
            raise RecordError(f"its field {name!r} holds {type(value).__name__}")
    record = JobRecord(**values)
    if not all(isinstance(m, str) and 0 < len(m) <= MAX_MEMBER_CHARS for m in record.members) or \
            len(record.members) > MAX_MEMBERS:  # fmt: skip
        raise RecordError(f"its members are not a list of at most {MAX_MEMBERS} member ids")
    try:
        record.job_phase
    except ValueError:
        raise RecordError(f"its phase {record.phase[:40]!r} is not a job phase") from None
    try:
        spec = specs.from_dict(record.spec)
    except ConfigError as exc:
        raise RecordError(f"its spec is no longer valid: {exc}") from None
    except RecursionError:
        raise RecordError("its spec is nested too deeply") from None
    return record, spec


def quarantine(path: Path) -> Path:
    """Moves an unreadable record aside; returns where it went."""
    folder = path.parent / QUARANTINE_DIR
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    os.replace(path, target)
    return target


def quarantined_record(path: Path, why: str) -> JobRecord:
    """How a quarantined record is shown: a FAILED job saying why."""
    return JobRecord(
        id=path.name.removesuffix(RECORD_SUFFIX)[:80], spec={}, phase=JobPhase.FAILED.value,
        error=f"its record could not be loaded ({why}); the peer keeps it in {JOBS_DIR}/{QUARANTINE_DIR}/{path.name}",
        model_kept=False,
    )  # fmt: skip


def load_all(folder: Path) -> tuple[list[tuple[JobRecord, specs.JobSpec]], list[tuple[JobRecord, Path]]]:
    """Every readable record with its spec (oldest first), and a FAILED
    stand-in for every quarantined one (those found unreadable now are
    moved to quarantine first)."""
    if not folder.is_dir():
        return [], []
    good = []
    for path in sorted(folder.glob(f"*{RECORD_SUFFIX}")):
        try:
            good.append(parse_record(path))
        except RecordError as exc:
            target = quarantine(path)
            _log.error("job record %s cannot be loaded (%s); moved it to %s", path, exc, target)
    bad = []
    for path in sorted((folder / QUARANTINE_DIR).glob(f"*{RECORD_SUFFIX}")):
        try:
            parse_record(path)
            why = "it was quarantined; move it back to load it"
        except RecordError as exc:
            why = str(exc)
        bad.append((quarantined_record(path, why), path))
    good.sort(key=lambda pair: pair[0].submitted_unix)
    return good, bad
