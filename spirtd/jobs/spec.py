"""A training job's spec: a TOML or JSON document, checked strictly (unknown
keys are errors) into frozen dataclasses.

    model = "mlp"                 # or [model] with name = "mlp" and its options
    dataset = "digits"            # or [dataset] with name, path, options
    batch_size = 32
    minibatches_per_round = 8     # one worker invocation each, per round
    rounds = 60                   # or: epochs = 3
    seed = 1
    eval_every = 5                # evaluate on the validation split every k rounds
    patience = 3                  # stop after this many evaluations without improvement (0: never)
    min_delta = 0.0

    [optimizer]                   # runs inside the store
    name = "sgd"                  # sgd | adam | adamw
    lr = 0.1
    momentum = 0.9

    [aggregation]                 # how the round's minibatch gradients combine, in the store
    rule = "mean"                 # mean (weighted by samples) | median | trimmed_mean | krum | multikrum
    # f = 1, m = 2, b = 1         # the rule's options

    [limits]
    invocation_timeout_s = 120
    invocation_memory_mb = 2048
    max_attempts = 3
    round_timeout_s = 1800
    worker_start_timeout_s = 120  # a worker's start (torch's import)

    [workers]
    mode = "warm"                 # warm pool, or "cold": a fresh process per minibatch
    concurrency = 2

    [peers]                       # rounds with other peers (docs/rounds.md)
    quorum = 0.5                  # a round needs more than this fraction of the last one's participants
    deadline_floor_s = 2          # an owner waits for parts within [floor, ceiling], adapting to arrivals
    deadline_ceiling_s = 120
    propose_timeout_s = 5
    report_timeout_s = 30
    wire_dtype = "float32"        # or "float16": half the bytes on the wire, aggregated in float32
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from spirtd.exchange.config import AgreementConfig, ExchangeConfig, RoundSettings
from spirtd.aggregation import validate_spec
from spirtd.errors import AggregationError, ConfigError
from spirtd.machine import memory_mb as machine_memory_mb
from spirtd.ml.tasks import WorkSpec
from spirtd.optim import AdamConfig, SgdConfig
from spirtd.workers.config import PoolConfig, PoolMode

OPTIMIZERS = ("sgd", "adam", "adamw")
# A spec's [rounds] wire_dtype, and the store's name of it.
WIRE_DTYPES = {"float32": "FLOAT", "float16": "HALF"}
WORKER_MODES = ("warm", "cold")

# Bounds of every number in a spec: what the wire (uint64 rounds, uint32
# minibatch counts), the store (Krum's n^2 distances) and one machine can
# hold, with room to spare. A spec outside them is refused at submit.
MAX_SPEC_BYTES = 64 << 10
MAX_NAME_CHARS = 200
MAX_ROUNDS = 10**9
MAX_EPOCHS = 10**6
MAX_BATCH_SIZE = 1 << 16
MAX_MINIBATCHES_PER_ROUND = 1024
MAX_SEED = 2**63 - 1
MAX_PATIENCE = 10**6
MAX_INVOCATION_TIMEOUT_S = 24 * 3600.0
MAX_ROUND_TIMEOUT_S = 7 * 24 * 3600.0
MAX_ATTEMPTS = 100
MAX_CONCURRENCY = 256


def _unknown(values: Mapping[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(values) - known)
    if extra:
        raise ConfigError(f"unknown key {extra[0]!r} in {where}; known keys: {', '.join(sorted(known))}")


def _shown(value: Any) -> str:
    """A value for an error message, cut short (a spec may hold huge numbers)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _positive_int(value: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {_shown(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {_shown(value)}")
    return value


def _number(value: Any, name: str, minimum: float = 0.0, strict: bool = False,
            maximum: float | None = None) -> float:  # fmt: skip
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {_shown(value)}")
    if value < minimum or (strict and value == minimum):
        raise ConfigError(f"{name} must be {'>' if strict else '>='} {minimum}, got {_shown(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum:g}, got {_shown(value)}")
    return float(value)


@dataclass(frozen=True)
class NamedSpec:
    """A model or dataset: its registry name and options (for a dataset,
    `path` is one of them)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, what: str) -> "NamedSpec":
        if isinstance(value, str):
            return cls(value, {})
        if isinstance(value, Mapping) and isinstance(value.get("name"), str):
            return cls(value["name"], {k: v for k, v in value.items() if k != "name"})
        raise ConfigError(f"{what} must be a name or a table with a name, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass(frozen=True)
class OptimizerSpec:
    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def config(self) -> SgdConfig | AdamConfig:
        """The store-side optimizer step's settings (checked there too)."""
        if self.name == "sgd":
            return SgdConfig(lr=self.lr, momentum=self.momentum, dampening=self.dampening,
                             nesterov=self.nesterov, weight_decay=self.weight_decay)  # fmt: skip
        return AdamConfig(lr=self.lr, betas=tuple(self.betas), eps=self.eps,  # type: ignore[arg-type]
                          weight_decay=self.weight_decay, decoupled=self.name == "adamw")  # fmt: skip


@dataclass(frozen=True)
class AggregationSpec:
    """A rule of spirtd.aggregation.RULES and the options the spec gives it,
    written next to the rule in [aggregation] (rule = "krum", f = 1); they
    are checked against the rule's declarations once the minibatches per
    round are known (_check_tables)."""

    rule: str = "mean"
    given: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, values: Any) -> "AggregationSpec":
        if not isinstance(values, Mapping):
            raise ConfigError(f"[aggregation] must be a table, got {values!r}")
        given = {k: v for k, v in values.items() if k != "rule" and v is not None}
        return cls(values.get("rule", "mean"), given)

    def options(self) -> dict[str, Any]:
        return dict(self.given)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, **self.given}


@dataclass(frozen=True)
class LimitsSpec:
    """invocation_timeout_s / invocation_memory_mb: one worker invocation's
    limits; max_attempts: tries of one minibatch before it is dropped;
    round_timeout_s: the most a whole round may take before the job fails;
    worker_start_timeout_s: the most a worker may take to start (torch's
    import: seconds on a quiet machine, more than 30 on a loaded one)."""

    invocation_timeout_s: float = 120.0
    invocation_memory_mb: int = 2048
    max_attempts: int = 3
    round_timeout_s: float = 1800.0
    worker_start_timeout_s: float = 120.0


@dataclass(frozen=True)
class WorkersSpec:
    mode: str = "warm"
    concurrency: int = 2


@dataclass(frozen=True)
class RoundsSpec:
    """How the peers of the job run a round together (docs/rounds.md):
    quorum, a round needs more than this fraction of the last round's
    participants (a strict majority by default: a minority partition
    stops); the deadline an owner waits for the parts of its shard adapts
    to arrival times within [deadline_floor_s, deadline_ceiling_s];
    propose_timeout_s and report_timeout_s bound the agreement's waits;
    wire_dtype "float16" halves the bytes on the wire (aggregated in float32)."""

    quorum: float = 0.5
    deadline_floor_s: float = 2.0
    deadline_ceiling_s: float = 120.0
    propose_timeout_s: float = 5.0
    report_timeout_s: float = 30.0
    wire_dtype: str = "float32"


@dataclass(frozen=True)
class JobSpec:
    model: NamedSpec
    dataset: NamedSpec
    batch_size: int
    minibatches_per_round: int
    rounds: int | None = None
    epochs: float | None = None
    seed: int = 0
    eval_every: int = 5
    patience: int = 0
    min_delta: float = 0.0
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    aggregation: AggregationSpec = field(default_factory=AggregationSpec)
    limits: LimitsSpec = field(default_factory=LimitsSpec)
    workers: WorkersSpec = field(default_factory=WorkersSpec)
    peers: RoundsSpec = field(default_factory=RoundsSpec)
    name: str = ""

    def total_rounds(self, batches_per_epoch: int) -> int:
        if self.rounds is not None:
            return self.rounds
        return max(1, math.ceil((self.epochs or 0.0) * batches_per_epoch / self.minibatches_per_round))

    def check_length(self, batches_per_epoch: int) -> int:
        """total_rounds, or ConfigError when epochs make more than MAX_ROUNDS."""
        rounds = self.total_rounds(batches_per_epoch)
        if rounds > MAX_ROUNDS:
            raise ConfigError(
                f"epochs = {self.epochs:g} of {batches_per_epoch} minibatches, {self.minibatches_per_round} a round, "
                f"make {rounds} rounds; at most {MAX_ROUNDS}"
            )
        return rounds

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data that from_dict reads back (settings left
        unset, like rounds when epochs is given, are left out)."""
        out = asdict(self)
        out["model"] = self.model.to_dict()
        out["dataset"] = self.dataset.to_dict()
        out["optimizer"]["betas"] = list(self.optimizer.betas)
        out["aggregation"] = self.aggregation.to_dict()
        return {k: v for k, v in out.items() if v is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def work(self) -> WorkSpec:
        """What the job's workers compute with: the one form the spec takes
        on its way to them."""
        return WorkSpec(self.model.to_dict(), self.dataset.to_dict(), self.batch_size, self.seed)

    def round_settings(self) -> RoundSettings:
        """How this job's rounds exchange with other peers ([peers])."""
        r = self.peers
        agreement = AgreementConfig(propose_timeout_s=r.propose_timeout_s, report_timeout_s=r.report_timeout_s,
                                    quorum_fraction=r.quorum)  # fmt: skip
        config = ExchangeConfig(agreement=agreement, deadline_floor_s=r.deadline_floor_s,
                                deadline_ceiling_s=r.deadline_ceiling_s, gather_timeout_s=r.deadline_ceiling_s,
                                wire_dtype=WIRE_DTYPES[r.wire_dtype])  # fmt: skip
        return RoundSettings(self.aggregation.rule, self.aggregation.options(), config)

    def pool_config(self) -> PoolConfig:
        """The worker pool the job asks for."""
        return PoolConfig(mode=PoolMode(self.workers.mode), concurrency=self.workers.concurrency,
                          invocation_timeout_s=self.limits.invocation_timeout_s,
                          memory_limit_mb=self.limits.invocation_memory_mb,
                          max_attempts=self.limits.max_attempts,
                          start_timeout_s=self.limits.worker_start_timeout_s)  # fmt: skip


_TABLES = {"optimizer": OptimizerSpec, "limits": LimitsSpec, "workers": WorkersSpec, "peers": RoundsSpec}
_TOP = {f.name for f in fields(JobSpec)}


def _table(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{where}] must be a table, got {values!r}")
    _unknown(values, {f.name for f in fields(cls)}, f"[{where}]")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from exc


def _check_tables(spec: JobSpec) -> None:
    opt = spec.optimizer
    if opt.name not in OPTIMIZERS:
        raise ConfigError(f"optimizer name must be one of {', '.join(OPTIMIZERS)}, not {opt.name!r}")
    if not isinstance(opt.betas, (list, tuple)) or len(opt.betas) != 2:
        raise ConfigError(f"optimizer betas must be two numbers, got {opt.betas!r}")
    opt.config()  # the same checks the store step makes (ConfigError)
    _number(spec.limits.invocation_timeout_s, "limits invocation_timeout_s", strict=True,
            maximum=MAX_INVOCATION_TIMEOUT_S)  # fmt: skip
    _number(spec.limits.round_timeout_s, "limits round_timeout_s", strict=True, maximum=MAX_ROUND_TIMEOUT_S)
    _number(spec.limits.worker_start_timeout_s, "limits worker_start_timeout_s", strict=True,
            maximum=MAX_INVOCATION_TIMEOUT_S)  # fmt: skip
    _positive_int(spec.limits.invocation_memory_mb, "limits invocation_memory_mb", maximum=machine_memory_mb())
    _positive_int(spec.limits.max_attempts, "limits max_attempts", maximum=MAX_ATTEMPTS)
    if spec.workers.mode not in WORKER_MODES:
        raise ConfigError(f"workers mode must be warm or cold, not {_shown(spec.workers.mode)}")
    _positive_int(spec.workers.concurrency, "workers concurrency", maximum=MAX_CONCURRENCY)
    _check_peers(spec.peers)
    try:
        validate_spec(spec.aggregation.rule, spec.minibatches_per_round, spec.aggregation.options())
    except AggregationError as exc:
        raise ConfigError(f"[aggregation] with {spec.minibatches_per_round} minibatches per round: {exc}") from exc


def _check_peers(r: RoundsSpec) -> None:
    quorum = _number(r.quorum, "peers quorum")
    if quorum >= 1.0:
        raise ConfigError(f"peers quorum is a fraction below 1 (a round needs more than it of the last round's "
                          f"participants), got {quorum:g}")  # fmt: skip
    for name in ("deadline_floor_s", "deadline_ceiling_s", "propose_timeout_s", "report_timeout_s"):
        _number(getattr(r, name), f"peers {name}", strict=True, maximum=MAX_ROUND_TIMEOUT_S)
    if r.deadline_floor_s > r.deadline_ceiling_s:
        raise ConfigError(f"peers deadline_floor_s ({r.deadline_floor_s:g}) is above deadline_ceiling_s "
                          f"({r.deadline_ceiling_s:g})")  # fmt: skip
    if r.wire_dtype not in WIRE_DTYPES:
        raise ConfigError(f"peers wire_dtype must be {' or '.join(WIRE_DTYPES)}, not {_shown(r.wire_dtype)}")


def from_dict(values: Mapping[str, Any]) -> JobSpec:
    if not isinstance(values, Mapping):
        raise ConfigError("a job spec must be a table of settings")
    _unknown(values, _TOP, "the job spec")
    for key in ("model", "dataset", "batch_size", "minibatches_per_round"):
        if key not in values:
            raise ConfigError(f"the job spec needs {key!r}")
    if ("rounds" in values) == ("epochs" in values):
        raise ConfigError("the job spec needs exactly one of 'rounds' and 'epochs'")
    kwargs: dict[str, Any] = dict(values)
    kwargs["model"] = NamedSpec.parse(values["model"], "model")
    kwargs["dataset"] = NamedSpec.parse(values["dataset"], "dataset")
    for key, cls in _TABLES.items():
        if key in values:
            kwargs[key] = _table(cls, values[key], key)
    if "aggregation" in values:
        kwargs["aggregation"] = AggregationSpec.parse(values["aggregation"])
    if "optimizer" in values and isinstance(values["optimizer"].get("betas"), list):
        kwargs["optimizer"] = OptimizerSpec(**{**values["optimizer"], "betas": tuple(values["optimizer"]["betas"])})
    spec = JobSpec(**kwargs)
    _positive_int(spec.batch_size, "batch_size", maximum=MAX_BATCH_SIZE)
    _positive_int(spec.minibatches_per_round, "minibatches_per_round", maximum=MAX_MINIBATCHES_PER_ROUND)
    if spec.rounds is not None:
        _positive_int(spec.rounds, "rounds", maximum=MAX_ROUNDS)
    if spec.epochs is not None:
        _number(spec.epochs, "epochs", strict=True, maximum=MAX_EPOCHS)
    _positive_int(spec.seed, "seed", minimum=0, maximum=MAX_SEED)
    _positive_int(spec.eval_every, "eval_every", maximum=MAX_ROUNDS)
    _positive_int(spec.patience, "patience", minimum=0, maximum=MAX_PATIENCE)
    _number(spec.min_delta, "min_delta")
    if not isinstance(spec.name, str):
        raise ConfigError("name must be text")
    if len(spec.name) > MAX_NAME_CHARS or not spec.name.isprintable():
        raise ConfigError(f"name must be at most {MAX_NAME_CHARS} printable characters, got {len(spec.name)} characters")
    _check_tables(spec)
    return spec


def parse(text: str, fmt: str = "") -> JobSpec:
    """A job spec from TOML or JSON text (fmt "toml", "json", or "" to guess)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise ConfigError(f"the job spec is {len(text.encode('utf-8', 'surrogatepass'))} bytes; at most {MAX_SPEC_BYTES}")
    fmt = fmt or ("json" if text.lstrip().startswith("{") else "toml")
    try:
        if fmt == "json":
            values = json.loads(text)
        elif fmt == "toml":
            values = tomllib.loads(text)
        else:
            raise ConfigError(f"spec format must be toml or json, not {_shown(fmt)}")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"the job spec is not valid {fmt.upper()}: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"the job spec is not valid {fmt.upper()}: it is nested too deeply") from None
    try:
        return from_dict(values)
    except RecursionError:
        raise ConfigError("the job spec is nested too deeply") from None
