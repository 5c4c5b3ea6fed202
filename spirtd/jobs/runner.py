"""One job's rounds on one peer.

A round (phases in rounds.py): every minibatch goes to a stateless worker
invocation, which reads the parameters (version r) from the store and
writes its gradient back; the gradients are aggregated inside the store;
the parameters and optimizer state are copied to version r+1 (COPY shares
the bytes) and the optimizer step runs inside the store on the copies;
then one write records round r+1, refused if the store restarted since the
round began, and version r goes. A round that dies half-way (daemon killed,
worker lost, store restarted) leaves version r untouched, so it is simply
done again, with the same result: every piece is deterministic. A round
that takes longer than the job's round_timeout_s fails the job.

Everything goes through the store API: the runner never speaks Redis.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Protocol

from spirtd.aggregation import validate_call, with_weights
from spirtd.clock import Clock, clock_timeout
from spirtd.errors import AggregationError, RoundFailed, SpirtError, StoreRestarted
from spirtd.jobs.jobstate import JobPhase, Progress, RoundReport, evaluation_due, minibatches_of_round
from spirtd.jobs.keys import ADAM_STATE, SGD_STATE, JobKeys
from spirtd.jobs.rounds import RoundClock, RoundPhase
from spirtd.jobs.spec import JobSpec
from spirtd.ml.tasks import DataShape, EvaluateTask, Evaluation, GradientResult, GradientTask, Split, Task
from spirtd.optim import AdamConfig
from spirtd.store.api import TensorStore

_log = logging.getLogger("spirtd.jobs")


class Invoker(Protocol):
    """Runs one worker invocation; raises a SpirtError (InvocationFailed)
    once its attempts are used up. Returns the result and the attempts made."""

    async def __call__(self, task: Task) -> tuple[Any, int]: ...


class JobRunner:
    """on_commit(progress) is called, with no await in between, as soon as
    a round's commit is in the store; retire(version) then lets go of the
    previous version of the parameters and optimizer state (readers may
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
        self._work = spec.work()

    @property
    def params_key(self) -> str:
        return self.keys.params(self.progress.round)

    async def load_or_start(self) -> tuple[Progress, bool]:
        """Picks up at the newest round the store holds, or puts version 0
        of the parameters there; returns the progress and whether it found
        the job in the store. Everything else of the job in the store
        (leftovers of an interrupted round, older versions) is dropped."""
        found, progress = False, Progress()
        stored = await self._store.read_fields(self.keys.state)
        if stored:
            try:
                progress = Progress.from_hash(stored)
                found = await self._store.exists(self.keys.params(progress.round))
            except ValueError as exc:
                _log.error("job %s: its state in the store is damaged (%s); it starts over", self.job_id, exc,
                           extra={"job": self.job_id})  # fmt: skip
        if found:
            self.progress = progress
            _log.info("job %s resumes at round %d of %d", self.job_id, progress.round, self.total_rounds,
                      extra={"job": self.job_id, "round": progress.round})  # fmt: skip
        else:
            await self._store.delete_matching(self.keys.everything())
            await self._store.set(self.keys.params(0), await self._initial_params())
            self.progress = Progress()
            await self._store.write_fields(self.keys.state, self.progress.to_hash())
        keep = {self.keys.state, *self.keys.version(self.progress.round)}
        await self._store.delete_matching(self.keys.everything(), keep=keep.__contains__)
        self._on_commit(self.progress)
        return self.progress, found

    async def run(self) -> JobPhase:
        """Runs the remaining rounds; returns SUCCEEDED or STOPPED_EARLY
        (also when it resumes a job that had already stopped)."""
        while True:
            if self.progress.round > 0 and self.progress.patience.exhausted(self.spec.patience):
                return JobPhase.STOPPED_EARLY
            if self.progress.round >= self.total_rounds:
                return JobPhase.SUCCEEDED
            self._on_round(await self.run_round(self.progress.round))

    async def run_round(self, r: int) -> RoundReport:
        """Round r, committed within the job's round_timeout_s (RoundFailed
        past it); what follows the commit (letting version r go) is not timed."""
        limit = self.spec.limits.round_timeout_s
        try:
            async with clock_timeout(self._clock, limit) as scope:
                report = await self._round(r)
        except TimeoutError:
            if not scope.expired():
                raise  # not ours: a timeout inside a call
            raise RoundFailed(f"round {r} took longer than round_timeout_s = {limit:g} s "
                              "([limits] round_timeout_s); the job stops") from None  # fmt: skip
        await self._retire(r)
        await self._store.delete_matching(self.keys.round_pattern(r))
        return report

    async def _round(self, r: int) -> RoundReport:
        clock = RoundClock(r)
        run_id = await self._store.run_id()
        clock.enter(RoundPhase.COMPUTE, self._clock.monotonic())
        grads, results, retried, dropped = await self._compute(r)
        clock.enter(RoundPhase.AGGREGATE, self._clock.monotonic())
        await self._aggregate(r, grads, [float(g.samples) for g in results])
        clock.enter(RoundPhase.UPDATE, self._clock.monotonic())
        await self._update(r)
        progress = self._next_progress(r, results, retried, dropped)
        if evaluation_due(r + 1, self.total_rounds, self.spec.eval_every):
            clock.enter(RoundPhase.EVALUATE, self._clock.monotonic())
            result = await self.evaluate(self.keys.params(r + 1), "val")
            progress.val_loss, progress.accuracy = result.loss, result.accuracy
            progress.patience = progress.patience.after(result.loss, self.spec.min_delta)
        clock.enter(RoundPhase.COMMIT, self._clock.monotonic())
        await self._commit(r, run_id, progress)
        clock.enter(RoundPhase.DONE, self._clock.monotonic())
        return RoundReport(
            round=r + 1, total_rounds=self.total_rounds, loss=progress.loss, phase=JobPhase.RUNNING,
            accuracy=progress.accuracy, val_loss=progress.val_loss, phase_s=clock.phase_s(),
            minibatches=len(grads), retried=retried, dropped=dropped,
        )  # fmt: skip

    def _next_progress(self, r: int, results: list[GradientResult], retried: int, dropped: int) -> Progress:
        weights = [float(g.samples) for g in results]
        p = self.progress
        return Progress(round=r + 1, loss=sum(g.loss * w for g, w in zip(results, weights)) / sum(weights),
                        accuracy=p.accuracy, val_loss=p.val_loss, patience=p.patience,
                        retried=p.retried + retried, dropped=p.dropped + dropped)  # fmt: skip

    async def evaluate(self, params_key: str, split: Split) -> Evaluation:
        task = EvaluateTask(id=f"{self.job_id}:eval:{split}", work=self._work, params_key=params_key, split=split)
        result, _ = await self._invoke(task)
        return result

    async def _compute(self, r: int) -> tuple[list[str], list[GradientResult], int, int]:
        slots = minibatches_of_round(r, self.spec.minibatches_per_round, self._data.batches_per_epoch)
        tasks = [GradientTask(id=f"{self.job_id}:round {r}:minibatch {j}", work=self._work,
                              params_key=self.keys.params(r), epoch=epoch, index=index,
                              out_key=self.keys.gradient(r, j))
                 for j, (epoch, index) in enumerate(slots)]  # fmt: skip
        outcomes = await _gather(self._invoke, tasks)
        grads, results, retried, failures = [], [], 0, []
        for task, outcome in zip(tasks, outcomes):
            if isinstance(outcome, SpirtError):
                failures.append(str(outcome))
                continue
            result, attempts = outcome
            retried += attempts - 1
            grads.append(task.out_key)
            results.append(result)
        for failure in failures:
            _log.warning("dropped a minibatch of job %s: %s", self.job_id, failure, extra={"job": self.job_id})
        if not grads:
            raise RoundFailed(f"every minibatch of round {r} failed; the last: {failures[-1]}")
        return grads, results, retried, len(failures)

    async def _aggregate(self, r: int, grads: list[str], weights: list[float]) -> None:
        rule = self.spec.aggregation.rule
        # A rule that weights its inputs weights gradients by their samples.
        options = with_weights(rule, self.spec.aggregation.options(), weights)
        try:
            validate_call(rule, len(grads), options)
        except AggregationError as exc:
            raise RoundFailed(f"round {r} has {len(grads)} gradients after dropping failed minibatches: {exc}") from exc
        await self._store.aggregate(self.keys.aggregate(r), rule, grads, **options)

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

    async def _commit(self, r: int, run_id: str, progress: Progress) -> None:
        """Round r+1 becomes current in one write, refused (StoreRestarted)
        if the store is not the run round r started on. Version r and the
        round's gradients go after it (run_round; a crash in between leaves
        leftovers that load_or_start drops)."""
        try:
            await self._store.write_fields_if_run(self.keys.state, run_id, progress.to_hash())
        except StoreRestarted:
            raise StoreRestarted(f"the store restarted during round {r}; the round is done again") from None
        self.progress = progress
        self._on_commit(progress)


async def delete_version(store: TensorStore, keys: JobKeys, version: int) -> None:
    """Deletes one version of a job's parameters and optimizer state."""
    await store.delete(*keys.version(version))


async def _gather(invoke: Invoker, tasks: list[GradientTask]) -> list[Any]:
    """Every task's (result, attempts), or the SpirtError that ended it."""

    async def one(task: GradientTask) -> Any:
        try:
            return await invoke(task)
        except SpirtError as exc:
            return exc

    return await asyncio.gather(*(one(t) for t in tasks))
