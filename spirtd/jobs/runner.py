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
import hashlib
import logging
from typing import Any, Awaitable, Callable, Protocol

from spirtd.aggregation import validate_call, with_weights
from spirtd.clock import Clock, clock_timeout
from spirtd.errors import AggregationError, AttemptFailed, ResyncNeeded, RoundFailed, SpirtError, StoreRestarted, VersionMoved
from spirtd.exchange.attempt import GlobalAggregate, LocalAggregate
from spirtd.exchange.config import RoundSettings
from spirtd.exchange.formulas import donor_order, minibatch_slots
from spirtd.exchange.messages import AttemptKey
from spirtd.jobs.jobstate import JobPhase, Progress, RoundReport, evaluation_due
from spirtd.jobs.keys import ADAM_STATE, SGD_STATE, VERSION_TENSORS, JobKeys
from spirtd.jobs.peers import RoundPeers, SoloPeers
from spirtd.jobs.rounds import RoundClock, RoundPhase
from spirtd.jobs.spec import JobSpec
from spirtd.ml.tasks import DataShape, EvaluateTask, Evaluation, GradientResult, GradientTask, Split, Task
from spirtd.optim import AdamConfig
from spirtd.store.api import TensorStore

_log = logging.getLogger("spirtd.jobs")
# How long a peer that found no source for the majority's version waits
# before it agrees the round again.
RESYNC_RETRY_S = 1.0


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
        peers: RoundPeers | None = None,
        settings: RoundSettings | None = None,
        first_participants: tuple[str, ...] = (),
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
        self._peers: RoundPeers = peers or SoloPeers()
        self._settings = settings or RoundSettings(spec.aggregation.rule, spec.aggregation.options())
        # Round 0's quorum is of these (the members the job was submitted to).
        self._first_participants = first_participants

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
        (also when it resumes a job that had already stopped). A round
        another peer must give (a resync) is tried again, for at most the
        job's round_timeout_s."""
        failing_since: float | None = None
        while True:
            if self.progress.round > 0 and self.progress.patience.exhausted(self.spec.patience):
                return JobPhase.STOPPED_EARLY
            if self._last_round(self.progress):
                return JobPhase.SUCCEEDED
            try:
                self._on_round(await self.run_round(self.progress.round))
                failing_since = None
            except ResyncNeeded as want:
                if await self._resync(want):
                    failing_since = None
                    continue
                failing_since = failing_since if failing_since is not None else self._clock.monotonic()
                if self._clock.monotonic() - failing_since > self.spec.limits.round_timeout_s:
                    raise RoundFailed(f"for longer than round_timeout_s = {self.spec.limits.round_timeout_s:g} s "
                                      f"no peer gave the version a majority holds (round {want.round}); the job "
                                      "stops") from None  # fmt: skip
                await self._clock.sleep(RESYNC_RETRY_S)

    async def _resync(self, want: ResyncNeeded) -> bool:
        """Takes the version a majority holds from one of them, checked
        against the majority's digest before it replaces anything here: the
        source's proof (the digest's preimage: round, position, each
        tensor's digest) must hash to it, and every tensor fetched must have
        the digest the proof names. A source that fails is logged and the
        next one tried (in donor_order: joiners at once spread over the
        sources); False when none gave it."""
        landed = {name: f"{self.keys.scratch(want.round)}sync:{name}" for name in VERSION_TENSORS}

        async def land(name: str) -> str:
            if name not in landed:
                raise RoundFailed(f"a version holds no tensor {name[:40]!r}")
            return landed[name]

        for source in donor_order(want.sources, self._peers.me):
            await self._store.delete(*landed.values())
            _log.info("job %s: fetching round %d from %s", self.job_id, want.round, source,
                      extra={"job": self.job_id, "round": want.round, "peer": source})  # fmt: skip
            try:
                fields = await self._peers.fetch(self.job_id, source, want.round, land)
                progress = Progress.from_hash(fields)
                refusal = await self._check_version(want, progress, landed, ended=bool(fields.get("ended")))
            except VersionMoved as exc:  # a race (it went on, or commits that round next): no fault of its
                _log.info("job %s: round %d is not at %s now: %s", self.job_id, want.round, source, exc,
                          extra={"job": self.job_id, "peer": source})  # fmt: skip
                continue
            except (SpirtError, ValueError) as exc:
                refusal = f"could not take it: {exc}"
            if refusal is not None:
                _log.error("job %s: round %d from %s refused: %s", self.job_id, want.round, source, refusal,
                           extra={"job": self.job_id, "peer": source})  # fmt: skip
                continue
            progress.digests = {**progress.digests, **{s: want.state for s in want.sources}}
            await self._install(want.round, landed, progress)
            _log.info("job %s: took round %d (digest %s) from %s", self.job_id, want.round, want.state[:16], source,
                      extra={"job": self.job_id, "round": want.round})  # fmt: skip
            return True
        await self._store.delete(*landed.values())
        return False

    async def _check_version(self, want: ResyncNeeded, p: Progress, landed: dict[str, str], *,
                             ended: bool) -> str | None:  # fmt: skip
        """None if the fetched version is the majority's, else why not. A
        donor whose job ended keeps only the parameters (the proof still
        names the optimizer state it ended with)."""
        if hashlib.sha256(p.proof.encode()).hexdigest() != want.state or p.state != want.state:
            return f"its proof does not hash to the majority's digest {want.state[:16]}"
        head, _, rest = p.proof.partition("|")
        if head != f"{want.round}:{p.at(self.spec.minibatches_per_round)}" or p.round != want.round:
            return f"its proof is of {head!r}, not of round {want.round}"
        named = dict(part.split("=", 1) for part in rest.split("|") if "=" in part)
        for name, key in landed.items():
            held = await self._store.digest(key) if await self._store.exists(key) else None
            if held != named.get(name) and not (ended and held is None and name != "params"):
                return f"its tensor {name} has digest {str(held)[:16]}, the proof names {named.get(name, 'none')[:16]}"
        return None

    async def _install(self, version: int, landed: dict[str, str], progress: Progress) -> None:
        for name, key in zip(VERSION_TENSORS, self.keys.version(version)):
            await self._store.delete(key)
            if await self._store.exists(landed[name]):
                await self._store.copy(landed[name], key)
        await self._store.write_fields(self.keys.state, progress.to_hash())
        self.progress = progress
        self._on_commit(progress)
        keep = {self.keys.state, *self.keys.version(version)}
        await self._store.delete_matching(self.keys.everything(), keep=keep.__contains__)

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
        peers, p = self._peers, self.progress
        state = "" if peers.solo else p.state or await self.state_digest(r, p)
        local: tuple[int, LocalAggregate, list[GradientResult], int, int] | None = None
        notes: list[str] = []
        fresh = True  # the round starts over here, whatever the peers' driver held of it
        while True:
            if not peers.solo:
                clock.enter(RoundPhase.PROPOSE, self._clock.monotonic())
            previous = p.participants or self._first_participants
            key = await peers.agree(self.job_id, r, state, previous, self._data.n_params,
                                    self.keys.scratch(r), self._settings, notes.append, fresh=fresh)  # fmt: skip
            fresh = False
            self._check_rule_across(key)
            rank = key.participants.index(peers.me)
            if local is None or local[0] != rank:  # another rank computes other minibatches
                clock.enter(RoundPhase.COMPUTE, self._clock.monotonic())
                local = (rank, *await self._local_aggregate(r, rank, clock))
            _, aggregate, results, retried, dropped = local
            try:
                if not peers.solo:
                    clock.enter(RoundPhase.EXCHANGE, self._clock.monotonic())
                glob = await peers.exchange(self.job_id, key, aggregate)
                clock.enter(RoundPhase.UPDATE, self._clock.monotonic())
                await self._update(r, glob.key)
                progress = self._next_progress(r, key, glob, retried, dropped)
                if not peers.solo:
                    progress.proof = await self.state_proof(r + 1, progress)
                    progress.state = hashlib.sha256(progress.proof.encode()).hexdigest()
                if not peers.solo:
                    clock.enter(RoundPhase.AGREE, self._clock.monotonic())
                heard = await peers.commit(self.job_id, key, progress.state)
                progress.digests = heard if not peers.solo else {}
                break
            except AttemptFailed as exc:
                notes.append(str(exc))
        if self._last_round(progress) or evaluation_due(r + 1, self.total_rounds, self.spec.eval_every):
            clock.enter(RoundPhase.EVALUATE, self._clock.monotonic())
            result = await self.evaluate(self.keys.params(r + 1), "val")
            progress.val_loss, progress.accuracy = result.loss, result.accuracy
            progress.patience = progress.patience.after(result.loss, self.spec.min_delta)
        clock.enter(RoundPhase.COMMIT, self._clock.monotonic())
        await self._commit(r, run_id, progress)
        clock.enter(RoundPhase.DONE, self._clock.monotonic())
        contributed = set.intersection(*(set(c) for c in glob.contributors)) if glob.contributors else set()
        excluded = {peer: "did not contribute in time" for peer in key.participants if peer not in contributed}
        return RoundReport(
            round=r + 1, total_rounds=self.rounds_estimate(progress), loss=progress.loss, phase=JobPhase.RUNNING,
            accuracy=progress.accuracy, val_loss=progress.val_loss, phase_s=clock.phase_s(),
            minibatches=len(results), retried=retried, dropped=dropped, message="; ".join(notes[-3:]),
            participants=key.participants, excluded=excluded, sent_bytes=glob.sent_bytes,
            received_bytes=glob.received_bytes, digest=progress.state, digests=progress.digests,
        )  # fmt: skip

    def _check_rule_across(self, key: AttemptKey) -> None:
        """The job's rule combines the participants' contributions too: one
        that cannot take this many (Krum's n >= 2f+3) fails the job, saying so."""
        n = len(key.participants)
        if n < 2:
            return
        options = with_weights(self._settings.rule, self._settings.options, [1.0] * n)
        try:
            validate_call(self._settings.rule, n, options)
        except AggregationError as exc:
            raise RoundFailed(f"round {key.round} has {n} participants ({', '.join(key.participants)}), and the "
                              f"job's rule combines their contributions too: {exc}") from None

    async def _local_aggregate(self, r: int, rank: int,
                               clock: RoundClock) -> tuple[LocalAggregate, list[GradientResult], int, int]:  # fmt: skip
        grads, results, retried, dropped = await self._compute(r, rank)
        clock.enter(RoundPhase.AGGREGATE, self._clock.monotonic())
        weights = [float(g.samples) for g in results]
        await self._aggregate(r, grads, weights)
        loss = sum(g.loss * w for g, w in zip(results, weights)) / sum(weights)
        return LocalAggregate(self.keys.aggregate(r), sum(weights), loss), results, retried, dropped

    def _next_progress(self, r: int, key: AttemptKey, glob: GlobalAggregate, retried: int, dropped: int) -> Progress:
        p = self.progress
        position = p.at(self.spec.minibatches_per_round) + len(key.participants) * self.spec.minibatches_per_round
        return Progress(round=r + 1, loss=glob.loss, accuracy=p.accuracy, val_loss=p.val_loss, patience=p.patience,
                        retried=p.retried + retried, dropped=p.dropped + dropped, position=position,
                        participants=key.participants)  # fmt: skip

    def _last_round(self, p: Progress) -> bool:
        """Whether the job's length is reached: its rounds, or (given in
        epochs) every minibatch of its epochs used, by however many peers."""
        if self.spec.rounds is not None:
            return p.round >= self.total_rounds
        return p.at(self.spec.minibatches_per_round) >= self.total_rounds * self.spec.minibatches_per_round

    def rounds_estimate(self, p: Progress) -> int:
        """The job's rounds, as far as they can be told now (epochs shared by
        n participants take 1/n of the rounds)."""
        if self.spec.rounds is not None or len(p.participants) < 2:
            return self.total_rounds
        per_round = len(p.participants) * self.spec.minibatches_per_round
        left = self.total_rounds * self.spec.minibatches_per_round - p.at(self.spec.minibatches_per_round)
        return p.round + max(0, -(-left // per_round))

    async def state_digest(self, version: int, p: Progress) -> str:
        """The digest of a version (what every participant must hold alike):
        the SHA-256 of its proof."""
        return hashlib.sha256((await self.state_proof(version, p)).encode()).hexdigest()

    async def state_proof(self, version: int, p: Progress) -> str:
        """What a version's digest is the hash of: its round and data
        position, and each of its tensors' digests (parameters, optimizer state)."""
        parts = [f"{p.round}:{p.at(self.spec.minibatches_per_round)}"]
        for name, key in zip(VERSION_TENSORS, self.keys.version(version)):
            if await self._store.exists(key):
                parts.append(f"{name}={await self._store.digest(key)}")
        return "|".join(parts)

    async def evaluate(self, params_key: str, split: Split) -> Evaluation:
        task = EvaluateTask(id=f"{self.job_id}:eval:{split}", work=self._work, params_key=params_key, split=split)
        result, _ = await self._invoke(task)
        return result

    async def _compute(self, r: int, rank: int) -> tuple[list[str], list[GradientResult], int, int]:
        per_round = self.spec.minibatches_per_round
        slots = minibatch_slots(self.progress.at(per_round), self._data.batches_per_epoch, rank, per_round)
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

    async def _update(self, r: int, gradient: str) -> None:
        cfg = self.spec.optimizer.config()
        names = ADAM_STATE if isinstance(cfg, AdamConfig) else SGD_STATE
        await self._store.copy(self.keys.params(r), self.keys.params(r + 1))
        for name in names:
            await self._store.copy(self.keys.optimizer(name, r), self.keys.optimizer(name, r + 1))
        nxt = lambda name: self.keys.optimizer(name, r + 1)  # noqa: E731
        if isinstance(cfg, AdamConfig):
            await self._store.adam_step(self.keys.params(r + 1), gradient, cfg,
                                        exp_avg=nxt("exp_avg"), exp_avg_sq=nxt("exp_avg_sq"), step=nxt("step"))  # fmt: skip
        else:
            await self._store.sgd_step(self.keys.params(r + 1), gradient, cfg,
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
