"""One job's rounds on one peer.

A round: every minibatch goes to a stateless worker invocation, which reads
the parameters (version r) from the store and writes its gradient back; the
gradients are aggregated inside the store; the parameters and optimizer
state are copied to version r+1 (COPY shares the bytes) and the optimizer
step runs inside the store on the copies; then one transaction records round
r+1 and drops version r. A round that dies half-way (daemon killed, worker
lost) leaves version r untouched, so it is simply done again, with the same
result: every piece is deterministic.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from spirtd.aggregation import validate_call
from spirtd.clock import Clock
from spirtd.errors import AggregationError, SpirtError
from spirtd.optim import AdamConfig
from spirtd.store.api import TensorStore
from spirtd.train.jobstate import JobPhase, Patience, evaluation_due, minibatches_of_round
from spirtd.train.keys import JobKeys
from spirtd.train.spec import JobSpec

_log = logging.getLogger("spirtd.train")
SGD_STATE = ("buf",)
ADAM_STATE = ("exp_avg", "exp_avg_sq", "step")


class RoundFailed(SpirtError):
    """A round could not be completed (every minibatch failed, too few for
    the aggregation rule, or it ran out of time)."""


class Invoker(Protocol):
    """Runs one worker invocation; raises InvocationFailed (a SpirtError)
    once its attempts are used up. Returns the reply and the attempts made."""

    async def __call__(self, request: dict[str, Any]) -> tuple[dict[str, Any], int]: ...


@dataclass(frozen=True)
class DataShape:
    """What the runner needs to know of the dataset (the daemon reads it
    once); the workers load the data themselves."""

    n_train: int
    batches_per_epoch: int


@dataclass
class RoundReport:
    round: int
    total_rounds: int
    loss: float
    phase: JobPhase
    accuracy: float | None = None
    val_loss: float | None = None
    phase_s: dict[str, float] = field(default_factory=dict)
    minibatches: int = 0
    retried: int = 0
    dropped: int = 0
    message: str = ""


@dataclass
class Progress:
    """What the job's state hash in the store holds."""

    round: int = 0
    loss: float = math.nan
    accuracy: float | None = None
    val_loss: float | None = None
    patience: Patience = field(default_factory=Patience)
    retried: int = 0
    dropped: int = 0

    def to_hash(self) -> dict[str, str]:
        out = {"round": str(self.round), "loss": repr(self.loss), "best_val_loss": repr(self.patience.best),
               "bad_evaluations": str(self.patience.bad_evaluations), "retried": str(self.retried),
               "dropped": str(self.dropped)}  # fmt: skip
        if self.accuracy is not None:
            out["accuracy"] = repr(self.accuracy)
        if self.val_loss is not None:
            out["val_loss"] = repr(self.val_loss)
        return out

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> "Progress":
        get = {k.decode(): v.decode() for k, v in raw.items()}
        opt = lambda k: float(get[k]) if k in get else None  # noqa: E731
        return cls(
            round=int(get.get("round", 0)),
            loss=float(get.get("loss", "nan")),
            accuracy=opt("accuracy"),
            val_loss=opt("val_loss"),
            patience=Patience(float(get.get("best_val_loss", "inf")), int(get.get("bad_evaluations", 0))),
            retried=int(get.get("retried", 0)),
            dropped=int(get.get("dropped", 0)),
        )


class JobRunner:
    def __init__(
        self,
        job_id: str,
        spec: JobSpec,
        store: TensorStore,
        invoke: Invoker,
        clock: Clock,
        data: DataShape,
        initial_params: Callable[[], Awaitable[Any]],
        on_round: Callable[[RoundReport], None],
    ) -> None:
        self.job_id = job_id
        self.spec = spec
        self.keys = JobKeys(job_id)
        self._store = store
        self._invoke = invoke
        self._clock = clock
        self._data = data
        self._initial_params = initial_params
        self._on_round = on_round
        self.total_rounds = spec.total_rounds(data.batches_per_epoch)
        self.progress = Progress()
        self._spec_dict = spec.to_dict()

    @property
    def params_key(self) -> str:
        return self.keys.params(self.progress.round)

    async def load_or_start(self) -> Progress:
        """Picks up where the store says the job is, or puts version 0 of the
        parameters there. Leftovers of an interrupted round are dropped."""
        raw = await self._store.client.hgetall(self.keys.state)
        if raw and await self._store.exists(self.keys.params(int(raw.get(b"round", b"0")))):
            self.progress = Progress.from_hash(raw)
            for leftover in (self.progress.round - 1, self.progress.round):
                await self._drop_round(leftover)
            _log.info("job %s resumes at round %d of %d", self.job_id, self.progress.round, self.total_rounds,
                      extra={"job": self.job_id, "round": self.progress.round})  # fmt: skip
        else:
            await self._store.set(self.keys.params(0), await self._initial_params())
            self.progress = Progress()
            await self._store.client.hset(self.keys.state, mapping=self.progress.to_hash())
        return self.progress

    async def run(self) -> JobPhase:
        """Runs the remaining rounds; returns SUCCEEDED or STOPPED_EARLY."""
        while self.progress.round < self.total_rounds:
            report = await self.run_round(self.progress.round)
            self._on_round(report)
            if self.progress.patience.exhausted(self.spec.patience):
                return JobPhase.STOPPED_EARLY
        return JobPhase.SUCCEEDED

    async def run_round(self, r: int) -> RoundReport:
        times: dict[str, float] = {}
        start = self._clock.monotonic()
        grads, weights, losses, retried, dropped = await self._compute(r)
        times["compute"] = self._clock.monotonic() - start
        mark = self._clock.monotonic()
        await self._aggregate(r, grads, weights)
        times["aggregate"] = self._clock.monotonic() - mark
        mark = self._clock.monotonic()
        await self._update(r)
        times["update"] = self._clock.monotonic() - mark
        progress = Progress(
            round=r + 1,
            loss=sum(l * w for l, w in zip(losses, weights)) / sum(weights),
            accuracy=self.progress.accuracy, val_loss=self.progress.val_loss,
            patience=self.progress.patience,
            retried=self.progress.retried + retried, dropped=self.progress.dropped + dropped,
        )  # fmt: skip
        if evaluation_due(r + 1, self.total_rounds, self.spec.eval_every):
            mark = self._clock.monotonic()
            result = await self.evaluate(self.keys.params(r + 1), "val")
            progress.val_loss, progress.accuracy = result["loss"], result["accuracy"]
            progress.patience = progress.patience.after(result["loss"], self.spec.min_delta)
            times["evaluate"] = self._clock.monotonic() - mark
        await self._commit(r, progress)
        return RoundReport(
            round=r + 1, total_rounds=self.total_rounds, loss=progress.loss, phase=JobPhase.RUNNING,
            accuracy=progress.accuracy, val_loss=progress.val_loss, phase_s=times,
            minibatches=len(grads), retried=retried, dropped=dropped,
        )  # fmt: skip

    async def evaluate(self, params_key: str, split: str) -> dict[str, Any]:
        reply, _ = await self._invoke({
            "kind": "evaluate", "id": f"{self.job_id}:eval:{split}", "job_id": self.job_id,
            "spec": self._spec_dict, "params_key": params_key, "split": split,
        })  # fmt: skip
        return reply

    async def _compute(self, r: int) -> tuple[list[str], list[float], list[float], int, int]:
        slots = minibatches_of_round(r, self.spec.minibatches_per_round, self._data.batches_per_epoch)
        requests = [{
            "kind": "gradient", "id": f"{self.job_id}:round {r}:minibatch {j}", "job_id": self.job_id,
            "spec": self._spec_dict, "params_key": self.keys.params(r), "epoch": epoch, "index": index,
            "out_key": self.keys.gradient(r, j),
        } for j, (epoch, index) in enumerate(slots)]  # fmt: skip
        outcomes = await _gather(self._invoke, requests)
        grads, weights, losses, retried, failures = [], [], [], 0, []
        for request, outcome in zip(requests, outcomes):
            if isinstance(outcome, SpirtError):
                failures.append(str(outcome))
                continue
            reply, attempts = outcome
            retried += attempts - 1
            grads.append(request["out_key"])
            weights.append(float(reply["samples"]))
            losses.append(float(reply["loss"]))
        for failure in failures:
            _log.warning("dropped a minibatch of job %s: %s", self.job_id, failure, extra={"job": self.job_id})
        if not grads:
            raise RoundFailed(f"every minibatch of round {r} failed; the last: {failures[-1]}")
        return grads, weights, losses, retried, len(failures)

    async def _aggregate(self, r: int, grads: list[str], weights: list[float]) -> None:
        options: dict[str, Any] = dict(self.spec.aggregation.options())
        if self.spec.aggregation.rule == "mean":
            options["weights"] = weights
        try:
            validate_call(self.spec.aggregation.rule, len(grads), options)
        except AggregationError as exc:
            raise RoundFailed(f"round {r} has {len(grads)} gradients after dropping failed minibatches: {exc}") from exc
        await self._store.aggregate(self.keys.aggregate(r), self.spec.aggregation.rule, grads, **options)

    async def _update(self, r: int) -> None:
        cfg = self.spec.optimizer.config()
        names = ADAM_STATE if isinstance(cfg, AdamConfig) else SGD_STATE
        client = self._store.client
        await client.copy(self.keys.params(r), self.keys.params(r + 1), replace=True)
        for name in names:
            await client.copy(self.keys.optimizer(name, r), self.keys.optimizer(name, r + 1), replace=True)
        nxt = lambda name: self.keys.optimizer(name, r + 1)  # noqa: E731
        if isinstance(cfg, AdamConfig):
            await self._store.adam_step(self.keys.params(r + 1), self.keys.aggregate(r), cfg,
                                        exp_avg=nxt("exp_avg"), exp_avg_sq=nxt("exp_avg_sq"), step=nxt("step"))  # fmt: skip
        else:
            await self._store.sgd_step(self.keys.params(r + 1), self.keys.aggregate(r), cfg,
                                       buffer=nxt("buf") if cfg.momentum > 0 else None)  # fmt: skip

    async def _commit(self, r: int, progress: Progress) -> None:
        """Round r+1 becomes current and version r goes, in one transaction."""
        old = [self.keys.params(r), *(self.keys.optimizer(n, r) for n in SGD_STATE + ADAM_STATE)]
        async with self._store.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.state, mapping=progress.to_hash())
            pipe.delete(*old)
            await pipe.execute()
        self.progress = progress
        await self._drop_round(r)

    async def _drop_round(self, r: int) -> None:
        client = self._store.client
        leftovers = [key async for key in client.scan_iter(match=self.keys.round_pattern(r))]
        if leftovers:
            await client.delete(*leftovers)


async def _gather(invoke: Invoker, requests: list[dict[str, Any]]) -> list[Any]:
    """Every request's reply, or the SpirtError that ended it."""

    async def one(request: dict[str, Any]) -> Any:
        try:
            return await invoke(request)
        except SpirtError as exc:
            return exc

    return await asyncio.gather(*(one(r) for r in requests))
