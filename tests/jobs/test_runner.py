"""The round runner on its own: a fake invoker in place of the worker pool
(it computes a known gradient from the parameters in the store and writes
it where the task says), a real store (redis-server with spirt's module)
and a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from spirtd.clock import FakeClock
from spirtd.errors import InvocationFailed, JobTransitionError, RoundFailed
from spirtd.jobs.jobstate import JobPhase, RoundReport
from spirtd.jobs.keys import JobKeys
from spirtd.jobs.rounds import RoundClock, RoundPhase, next_phase
from spirtd.jobs.runner import JobRunner
from spirtd.jobs.spec import from_dict
from spirtd.ml.tasks import DataShape, EvaluateTask, Evaluation, GradientResult, GradientTask, Task
from spirtd.workers.failures import AttemptFailure, FailureKind

N_PARAMS = 6
SHAPE = DataShape(n_train=80, batches_per_epoch=10, n_params=N_PARAMS)
BASE = {"model": "mlp", "dataset": "digits", "batch_size": 8, "minibatches_per_round": 4, "rounds": 3, "seed": 1,
        "eval_every": 100, "optimizer": {"name": "sgd", "lr": 0.5}}  # fmt: skip
LR = 0.5


def spec(**changes):
    return from_dict({**BASE, **changes})


def initial() -> np.ndarray:
    return np.arange(N_PARAMS, dtype=np.float32)


def known_gradient(params: np.ndarray, epoch: int, index: int) -> np.ndarray:
    """What the fake worker computes: a function of the parameters and the minibatch."""
    return (0.1 * params + epoch * 10 + index).astype(np.float32)


def samples_of(index: int) -> int:
    return 8 + index  # minibatches of different sizes, so that weights matter


@dataclass
class FakeInvoker:
    """Gradients as known_gradient says; `fail` names minibatch ids that
    fail every attempt, `attempts` how many attempts a minibatch took,
    `hang` ids that never answer, `val_losses` the evaluations' losses."""

    store: object
    clock: FakeClock
    fail: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    val_losses: list[float] = field(default_factory=list)
    seen: list[Task] = field(default_factory=list)

    async def __call__(self, task: Task):
        self.seen.append(task)
        short = task.id.split(":", 1)[1]
        if short in self.hang:
            await self.clock.sleep(3600)
        if short in self.fail:
            crash = AttemptFailure(1, FailureKind.CRASHED, 4321, "worker 4321 exited with code 99", 0.1)
            raise InvocationFailed(task.id, [crash], f"request {task.id}")
        params = await self.store.get(task.params_key)
        if isinstance(task, EvaluateTask):
            return Evaluation(loss=self.val_losses.pop(0) if self.val_losses else 1.0, accuracy=0.5, samples=10), 1
        assert isinstance(task, GradientTask)
        await self.store.set(task.out_key, known_gradient(params, task.epoch, task.index))
        return GradientResult(loss=float(task.index), samples=samples_of(task.index)), self.attempts.get(short, 1)


def runner_for(store, invoke, clock, the_spec, reports: list[RoundReport], job_id: str = "j1") -> JobRunner:
    async def params():
        return initial()

    return JobRunner(job_id, the_spec, store, invoke, clock, SHAPE, params, reports.append)


def expected_after(rounds: int, per_round: int = 4, dropped: frozenset[int] = frozenset()) -> np.ndarray:
    """The parameters after plain SGD on the sample-weighted mean gradient."""
    p = initial().astype(np.float64)
    for r in range(rounds):
        slots = [divmod(k, SHAPE.batches_per_epoch) for k in range(r * per_round, (r + 1) * per_round)]
        used = [(e, i) for j, (e, i) in enumerate(slots) if j not in dropped]
        grads = [known_gradient(p.astype(np.float32), e, i).astype(np.float64) for e, i in used]
        weights = [samples_of(i) for _, i in used]
        p = p - LR * sum(w * g for w, g in zip(weights, grads)) / sum(weights)
    return p.astype(np.float32)


async def test_rounds_apply_the_weighted_mean_gradient_and_leave_one_version(store):
    clock, reports = FakeClock(), []
    runner = runner_for(store, FakeInvoker(store, clock), clock, spec(), reports)
    progress, found = await runner.load_or_start()
    assert (progress.round, found) == (0, False)
    assert await runner.run() is JobPhase.SUCCEEDED
    np.testing.assert_allclose(await store.get(JobKeys("j1").params(3)), expected_after(3), rtol=1e-6)
    assert sorted(await store.keys_matching("job:j1:*")) == ["job:j1:params:3", "job:j1:state"]
    assert [r.round for r in reports] == [1, 2, 3] and all(r.minibatches == 4 for r in reports)
    assert set(reports[0].phase_s) == {"compute", "aggregate", "update"}
    fields = await store.read_fields(JobKeys("j1").state)
    assert fields["round"] == "3"
    # the round's loss is the sample-weighted mean of its minibatches' losses (0, 1, 2, 3)
    weights = [samples_of(i) for i in range(4)]
    assert reports[0].loss == pytest.approx(sum(i * w for i, w in zip(range(4), weights)) / sum(weights))


async def test_a_failed_minibatch_is_dropped_and_the_round_goes_on(store):
    clock, reports = FakeClock(), []
    invoker = FakeInvoker(store, clock, fail={"round 0:minibatch 2"})
    runner = runner_for(store, invoker, clock, spec(rounds=1), reports)
    await runner.load_or_start()
    await runner.run()
    assert reports[0].dropped == 1 and reports[0].minibatches == 3 and runner.progress.dropped == 1
    np.testing.assert_allclose(await store.get(JobKeys("j1").params(1)), expected_after(1, dropped=frozenset({2})),
                               rtol=1e-6)  # fmt: skip


async def test_retries_are_counted(store):
    clock, reports = FakeClock(), []
    invoker = FakeInvoker(store, clock, attempts={"round 0:minibatch 1": 3, "round 1:minibatch 0": 2})
    runner = runner_for(store, invoker, clock, spec(rounds=2), reports)
    await runner.load_or_start()
    await runner.run()
    assert [r.retried for r in reports] == [2, 1] and runner.progress.retried == 3


async def test_a_round_whose_every_minibatch_failed_fails_and_commits_nothing(store):
    clock = FakeClock()
    invoker = FakeInvoker(store, clock, fail={f"round 0:minibatch {j}" for j in range(4)})
    runner = runner_for(store, invoker, clock, spec(), [])
    await runner.load_or_start()
    with pytest.raises(RoundFailed, match="every minibatch of round 0 failed; the last: request j1:round 0:minibatch 3 failed once"):
        await runner.run_round(0)
    assert (await store.read_fields(JobKeys("j1").state))["round"] == "0"
    assert await store.exists(JobKeys("j1").params(0)) and not await store.exists(JobKeys("j1").params(1))


async def test_too_few_gradients_for_the_rules_f_fail_the_round(store):
    clock = FakeClock()
    krum = spec(minibatches_per_round=5, aggregation={"rule": "krum", "f": 1})
    invoker = FakeInvoker(store, clock, fail={"round 0:minibatch 4"})
    runner = runner_for(store, invoker, clock, krum, [])
    await runner.load_or_start()
    with pytest.raises(RoundFailed, match=r"round 0 has 4 gradients after dropping failed minibatches: .*2f\+3"):
        await runner.run_round(0)


async def test_early_stopping_after_evaluations_that_do_not_improve(store):
    clock, reports = FakeClock(), []
    invoker = FakeInvoker(store, clock, val_losses=[1.0, 0.5, 0.6, 0.7, 0.1])
    runner = runner_for(store, invoker, clock, spec(rounds=10, eval_every=1, patience=2), reports)
    await runner.load_or_start()
    assert await runner.run() is JobPhase.STOPPED_EARLY
    assert [r.val_loss for r in reports] == [1.0, 0.5, 0.6, 0.7] and runner.progress.round == 4
    assert "evaluate" in reports[0].phase_s
    assert [t.split for t in invoker.seen if isinstance(t, EvaluateTask)] == ["val"] * 4


async def test_a_round_interrupted_half_way_is_done_again_with_the_same_result(store):
    """Round 1 dies after its gradients and a half-made version 2 are in the
    store; a new runner resumes at round 1, drops the leftovers and ends on
    the same parameters, bit for bit, as a run that was never interrupted."""
    clock = FakeClock()
    first = runner_for(store, FakeInvoker(store, clock), clock, spec(), [])
    await first.load_or_start()
    await first.run_round(0)
    keys = JobKeys("j1")
    await store.set(keys.gradient(1, 0), np.ones(N_PARAMS, np.float32))  # what the interrupted round left
    await store.set(keys.params(2), np.zeros(N_PARAMS, np.float32))
    resumed = runner_for(store, FakeInvoker(store, clock), clock, spec(), [])
    progress, found = await resumed.load_or_start()
    assert (progress.round, found) == (1, True)
    assert sorted(await store.keys_matching("job:j1:*")) == ["job:j1:params:1", "job:j1:state"]
    await resumed.run()

    again = runner_for(store, FakeInvoker(store, clock), clock, spec(), [], job_id="j2")
    await again.load_or_start()
    await again.run()
    assert await store.digest(keys.params(3)) == await store.digest(JobKeys("j2").params(3))


async def test_a_round_over_round_timeout_s_fails_the_job(store):
    clock = FakeClock()
    invoker = FakeInvoker(store, clock, hang={"round 0:minibatch 1"})
    runner = runner_for(store, invoker, clock, spec(limits={"round_timeout_s": 30}), [])
    await runner.load_or_start()
    round_task = asyncio.create_task(runner.run_round(0))
    for _ in range(600):  # ten virtual minutes at most
        if round_task.done():
            break
        await asyncio.sleep(0.01)  # the other minibatches use the real store
        clock.advance(1.0)
    if not round_task.done():
        round_task.cancel()
        pytest.fail("the round went on past its round_timeout_s")
    with pytest.raises(RoundFailed, match=r"round 0 took longer than round_timeout_s = 30 s \(\[limits\] round_timeout_s\)"):
        await round_task
    assert clock.monotonic() >= 30
    assert not await store.exists(JobKeys("j1").params(1))


@pytest.mark.parametrize(
    "path, ok",
    [
        ([RoundPhase.COMPUTE, RoundPhase.AGGREGATE, RoundPhase.UPDATE, RoundPhase.COMMIT, RoundPhase.DONE], True),
        ([RoundPhase.COMPUTE, RoundPhase.AGGREGATE, RoundPhase.UPDATE, RoundPhase.EVALUATE, RoundPhase.COMMIT], True),
        ([RoundPhase.AGGREGATE], False),
        ([RoundPhase.COMPUTE, RoundPhase.UPDATE], False),
        ([RoundPhase.COMPUTE, RoundPhase.AGGREGATE, RoundPhase.EVALUATE], False),
        ([RoundPhase.COMPUTE, RoundPhase.AGGREGATE, RoundPhase.UPDATE, RoundPhase.COMMIT, RoundPhase.COMPUTE], False),
    ],
)
def test_round_phases_follow_one_order(path, ok):
    current = None
    try:
        for phase in path:
            current = next_phase(current, phase)
    except JobTransitionError as exc:
        assert not ok, exc
        assert "cannot enter" in str(exc)
    else:
        assert ok


def test_a_round_clock_times_each_phase():
    clock = RoundClock(0)
    for phase, at in ((RoundPhase.COMPUTE, 1.0), (RoundPhase.AGGREGATE, 3.5), (RoundPhase.UPDATE, 4.0),
                      (RoundPhase.COMMIT, 4.25), (RoundPhase.DONE, 4.5)):  # fmt: skip
        clock.enter(phase, at)
    assert clock.phase_s() == {"compute": 2.5, "aggregate": 0.5, "update": 0.25}


async def test_a_round_committed_in_time_stands_though_letting_go_of_the_old_version_takes_long(store):
    """The round timeout covers the round up to its commit; retiring version
    r (which waits for readers that pin it) is not part of it."""
    clock, reports = FakeClock(), []

    async def slow_retire(version: int) -> None:
        await clock.sleep(100)

    async def params():
        return initial()

    runner = JobRunner("j1", spec(rounds=1, limits={"round_timeout_s": 30}), store, FakeInvoker(store, clock), clock,
                       SHAPE, params, reports.append, retire=slow_retire)  # fmt: skip
    await runner.load_or_start()
    task = asyncio.create_task(runner.run())
    for _ in range(400):
        if task.done():
            break
        await asyncio.sleep(0.005)
        clock.advance(1.0)
    assert await task is JobPhase.SUCCEEDED
    assert [r.round for r in reports] == [1] and runner.progress.round == 1


async def test_a_timeout_inside_a_call_is_not_taken_for_the_rounds(store):
    clock = FakeClock()

    async def invoke(task):
        raise TimeoutError("the function endpoint did not answer")

    runner = runner_for(store, invoke, clock, spec(limits={"round_timeout_s": 30}), [])
    await runner.load_or_start()
    with pytest.raises(TimeoutError, match="endpoint did not answer"):
        await runner.run_round(0)
