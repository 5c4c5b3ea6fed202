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

from redis.exceptions import ResponseError

from spirtd.aggregation import validate_call
from spirtd.clock import Clock
from spirtd.errors import AggregationError, SpirtError
from spirtd.optim import AdamConfig
from spirtd.store.api import TensorStore
from spirtd.train.jobstate import JobPhase, Patience, evaluation_due, minibatches_of_round
from spirtd.train.keys import ADAM_STATE, SGD_STATE, JobKeys
from spirtd.train.spec import JobSpec

_log = logging.getLogger("spirtd.train")


class RoundFailed(SpirtError):
    """A round could not be completed (every minibatch failed, too few for
    the aggregation rule, or it ran out of time)."""


class StoreRestarted(SpirtError):
    """The store restarted while a round ran: the round is not committed
    (what it computed may be half gone) and is done again from the newest
    round the store holds."""


# The commit of a round, refused unless the store is still the server the
# round started on (its run id changes at every restart): a round that saw
# the store crash is never committed.
COMMIT_SCRIPT = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if run ~= ARGV[1] then
  return redis.error_reply('SPIRT_RESTARTED the store restarted during the round')
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 'OK'
"""
RESTARTED_REPLY = "SPIRT_RESTARTED"


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
    n_params: int = 0


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
    """on_commit(progress) is called, with no await in between, as soon as
    a round's transaction is in the store; retire(version) then lets go of
    the previous version of the parameters and optimizer state (readers may
    still hold it: see pins.py)."""

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
        on_commit: Callable[[Progress], None] = lambda progress: None,
        retire: Callable[[int], Awaitable[None]] | None = None,
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
        self._on_commit = on_commit
        self._retire = retire or (lambda version: delete_version(store, self.keys, version))
        self.total_rounds = spec.total_rounds(data.batches_per_epoch)
        self.progress = Progress()
        self._spec_dict = spec.to_dict()
        self._round_run_id = ""

    @property
    def params_key(self) -> str:
        return self.keys.params(self.progress.round)

    async def load_or_start(self) -> tuple[Progress, bool]:
        """Picks up at the newest round the store holds, or puts version 0
        of the parameters there; returns the progress and whether it found
        the job in the store. Everything else of the job in the store
        (leftovers of an interrupted round, older versions) is dropped."""
        raw = await self._store.client.hgetall(self.keys.state)
        found = False
        if raw:
            try:
                progress = Progress.from_hash(raw)
                found = await self._store.exists(self.keys.params(progress.round))
            except (ValueError, UnicodeDecodeError) as exc:
                _log.error("job %s: its state in the store is damaged (%s); it starts over", self.job_id, exc,
                           extra={"job": self.job_id})  # fmt: skip
        if found:
            self.progress = progress
            _log.info("job %s resumes at round %d of %d", self.job_id, self.progress.round, self.total_rounds,
                      extra={"job": self.job_id, "round": self.progress.round})  # fmt: skip
        else:
            await self._drop_all_but(None)
            await self._store.set(self.keys.params(0), await self._initial_params())
            self.progress = Progress()
            await self._store.client.hset(self.keys.state, mapping=self.progress.to_hash())
        await self._drop_all_but(self.progress.round)
        self._on_commit(self.progress)
        return self.progress, found

    async def _drop_all_but(self, version: int | None) -> None:
        keep = set() if version is None else {self.keys.state, *self.keys.version(version)}
        client = self._store.client
        extra = [key async for key in client.scan_iter(match=self.keys.everything()) if key.decode() not in keep]
        if extra:
            await client.delete(*extra)

    async def run(self) -> JobPhase:
        """Runs the remaining rounds; returns SUCCEEDED or STOPPED_EARLY
        (also when it resumes a job that had already stopped)."""
        while True:
            if self.progress.round > 0 and self.progress.patience.exhausted(self.spec.patience):
                return JobPhase.STOPPED_EARLY
            if self.progress.round >= self.total_rounds:
                return JobPhase.SUCCEEDED
            report = await self.run_round(self.progress.round)
            self._on_round(report)

    async def run_round(self, r: int) -> RoundReport:
        times: dict[str, float] = {}
        self._round_run_id = await self._store.run_id()
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
        await self._store.copy(self.keys.params(r), self.keys.params(r + 1))
        for name in names:
            await self._store.copy(self.keys.optimizer(name, r), self.keys.optimizer(name, r + 1))
        nxt = lambda name: self.keys.optimizer(name, r + 1)  # noqa: E731
        if isinstance(cfg, AdamConfig):
            await self._store.adam_step(self.keys.params(r + 1), self.keys.aggregate(r), cfg,
                                        exp_avg=nxt("exp_avg"), exp_avg_sq=nxt("exp_avg_sq"), step=nxt("step"))  # fmt: skip
        else:
            await self._store.sgd_step(self.keys.params(r + 1), self.keys.aggregate(r), cfg,
                                       buffer=nxt("buf") if cfg.momentum > 0 else None)  # fmt: skip

    async def _commit(self, r: int, progress: Progress) -> None:
        """Round r+1 becomes current in one transaction; then version r and
        the round's gradients go (a crash in between leaves leftovers that
        load_or_start drops)."""
        fields = [part for pair in progress.to_hash().items() for part in pair]
        try:
            await self._store.client.eval(COMMIT_SCRIPT, 1, self.keys.state, self._round_run_id, *fields)
        except ResponseError as exc:
            if str(exc).startswith(RESTARTED_REPLY):
                raise StoreRestarted(f"the store restarted during round {r}; the round is done again") from None
            raise
        self.progress = progress
        self._on_commit(progress)
        await self._retire(r)
        await self._drop_round(r)

    async def _drop_round(self, r: int) -> None:
        client = self._store.client
        leftovers = [key async for key in client.scan_iter(match=self.keys.round_pattern(r))]
        if leftovers:
            await client.delete(*leftovers)


async def delete_version(store: TensorStore, keys: JobKeys, version: int) -> None:
    """Deletes one version of a job's parameters and optimizer state."""
    await store.delete(*keys.version(version))


async def _gather(invoke: Invoker, requests: list[dict[str, Any]]) -> list[Any]:
    """Every request's reply, or the SpirtError that ended it."""

    async def one(request: dict[str, Any]) -> Any:
        try:
            return await invoke(request)
        except SpirtError as exc:
            return exc

    return await asyncio.gather(*(one(r) for r in requests))
