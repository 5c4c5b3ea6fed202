"""The contract between a job's runner and its gradient workers: what one
invocation is asked (a task) and what it answers (a result), as frozen
dataclasses, and their one encoding as small JSON objects for the worker
pool's pipe (and, later, for a remote function endpoint).

    task = GradientTask(id="j1:round 3:minibatch 0", work=work, params_key="job:j1:params:3",
                        epoch=0, index=12, out_key="job:j1:round:3:grad:0")
    encode_task(task)   -> {"kind": "gradient", "id": ..., "work": {...}, ...}
    decode_task(wire)   -> task (ProtocolError naming what is wrong)

Tensors never travel here: the parameters are read from params_key and the
gradient is written to out_key, in the store. What a worker needs of a job
spec is a WorkSpec, made once per job by the runner. It carries the model
and the dataset as their checked spec tables (ModelSpec.to_dict(),
DatasetSpec.to_dict()), so that this module, imported by the daemon, needs
no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Awaitable, Callable, Literal, Mapping

from spirtd.errors import ProtocolError
from spirtd.workers.warm import Invoke

# The worker handler that serves these tasks, and the environment its
# workers run in: one thread each, so that results are bit-identical
# whatever the machine (parallelism comes from running several workers).
HANDLER = "spirtd.ml.gradient:handle"
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

Split = Literal["val", "test"]
SPLITS: tuple[Split, ...] = ("val", "test")


@dataclass(frozen=True)
class WorkSpec:
    """What a worker computes with: the model and the data (their spec
    tables, checked when the job was accepted), the minibatch size and the
    seed (which fixes the initial parameters and the shuffling)."""

    model: Mapping[str, Any]
    dataset: Mapping[str, Any]
    batch_size: int
    seed: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", MappingProxyType(dict(self.model)))
        object.__setattr__(self, "dataset", MappingProxyType(dict(self.dataset)))

    def key(self, part: Literal["model", "dataset"]) -> str:
        """A canonical text of the model's or the dataset's table: a cache key."""
        return json.dumps(dict(getattr(self, part)), sort_keys=True)

    def to_wire(self) -> dict[str, Any]:
        return {"model": dict(self.model), "dataset": dict(self.dataset), "batch_size": self.batch_size,
                "seed": self.seed}  # fmt: skip

    @classmethod
    def from_wire(cls, wire: Any) -> "WorkSpec":
        body = _fields(wire, "a work spec", ("model", "dataset", "batch_size", "seed"))
        for part in ("model", "dataset"):
            if not isinstance(body[part], Mapping) or not isinstance(body[part].get("name"), str):
                raise ProtocolError(f"a work spec's {part} must be a table with a name, got {body[part]!r}")
        return cls(body["model"], body["dataset"], _int(body, "batch_size"), _int(body, "seed"))


@dataclass(frozen=True)
class DataShape:
    """What the runner needs to know of a job's data and model (the daemon
    reads it once); the workers load the data themselves."""

    n_train: int
    batches_per_epoch: int
    n_params: int = 0


@dataclass(frozen=True)
class GradientTask:
    """Forward and backward on minibatch (epoch, index) with the parameters
    at params_key; the flat float32 gradient goes to out_key."""

    id: str
    work: WorkSpec
    params_key: str
    epoch: int
    index: int
    out_key: str


@dataclass(frozen=True)
class EvaluateTask:
    """Loss and accuracy of the parameters at params_key on a split."""

    id: str
    work: WorkSpec
    params_key: str
    split: Split


@dataclass(frozen=True)
class GradientResult:
    loss: float  # mean cross-entropy of the minibatch
    samples: int  # the minibatch's size: the gradient's weight in a mean


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    samples: int


Task = GradientTask | EvaluateTask
Result = GradientResult | Evaluation


def encode_task(task: Task) -> dict[str, Any]:
    common = {"id": task.id, "work": task.work.to_wire(), "params_key": task.params_key}
    if isinstance(task, GradientTask):
        return {"kind": "gradient", **common, "epoch": task.epoch, "index": task.index, "out_key": task.out_key}
    if isinstance(task, EvaluateTask):
        return {"kind": "evaluate", **common, "split": task.split}
    raise TypeError(f"not a task: {task!r}")


def decode_task(wire: Mapping[str, Any]) -> Task:
    kind = wire.get("kind") if isinstance(wire, Mapping) else None
    if kind == "gradient":
        body = _fields(wire, "a gradient task", ("id", "work", "params_key", "epoch", "index", "out_key"))
        return GradientTask(_str(body, "id"), WorkSpec.from_wire(body["work"]), _str(body, "params_key"),
                            _int(body, "epoch"), _int(body, "index"), _str(body, "out_key"))  # fmt: skip
    if kind == "evaluate":
        body = _fields(wire, "an evaluate task", ("id", "work", "params_key", "split"))
        split = body["split"]
        if split not in SPLITS:
            raise ProtocolError(f"an evaluate task's split must be one of {SPLITS}, got {split!r}")
        return EvaluateTask(_str(body, "id"), WorkSpec.from_wire(body["work"]), _str(body, "params_key"), split)
    raise ProtocolError(f"unknown task kind {kind!r}; expected 'gradient' or 'evaluate'")


def encode_result(result: Result) -> dict[str, Any]:
    if isinstance(result, GradientResult):
        return {"loss": result.loss, "samples": result.samples}
    return {"loss": result.loss, "accuracy": result.accuracy, "samples": result.samples}


def decode_result(task: Task, wire: Mapping[str, Any]) -> Result:
    """The reply to task, checked field by field."""
    if isinstance(task, GradientTask):
        body = _fields(wire, "a gradient result", ("loss", "samples"))
        return GradientResult(_float(body, "loss"), _int(body, "samples"))
    body = _fields(wire, "an evaluation", ("loss", "accuracy", "samples"))
    return Evaluation(_float(body, "loss"), _float(body, "accuracy"), _int(body, "samples"))


def over_wire(invoke: Invoke) -> Callable[[Task], Awaitable[tuple[Result, int]]]:
    """Tasks in, results out, through a pool that carries JSON objects."""

    async def run(task: Task) -> tuple[Result, int]:
        reply, attempts = await invoke(encode_task(task))
        return decode_result(task, reply), attempts

    return run


def _fields(wire: Any, what: str, names: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(wire, Mapping):
        raise ProtocolError(f"{what} must be a JSON object, got {type(wire).__name__}")
    missing = [name for name in names if name not in wire]
    if missing:
        raise ProtocolError(f"{what} lacks {', '.join(missing)}")
    return wire


def _int(body: Mapping[str, Any], name: str) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{name} must be an integer, got {value!r}")
    return value


def _float(body: Mapping[str, Any], name: str) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{name} must be a number, got {value!r}")
    return float(value)


def _str(body: Mapping[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str):
        raise ProtocolError(f"{name} must be a string, got {value!r}")
    return value
