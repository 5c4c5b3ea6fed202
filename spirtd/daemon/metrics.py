"""The daemon's Prometheus metrics, in a CollectorRegistry of its own (never
prometheus_client's global one: two daemons in one process, as in tests,
must not mix). Most families are read at scrape time from what the
components already keep; two are fed as things happen: the rounds (from
each job's round events, JobManager.watch) and the store's command times
(TensorStore.time_commands).

    family                                        from
    spirtd_info{id,version,store}                 the daemon (always 1)
    spirtd_members{state}                         the member table, this peer included
    spirtd_rounds_total                           round events: rounds committed here
    spirtd_round_phase_seconds{phase}             round events: each phase's time
    spirtd_exchange_bytes_total{direction}        round events: bytes sent and received
    spirtd_contributions_refused_total{reason}    counters exchange.refused.*
    spirtd_quarantined_peers                      0: peers are not quarantined yet
    spirtd_worker_invocations_total{outcome}      the worker pools' totals
    spirtd_worker_retries_total                   the worker pools' totals
    spirtd_worker_cold_starts_total               the worker pools' totals
    spirtd_worker_warm_starts_total               the worker pools' totals
    spirtd_store_command_seconds{command}         the store's command timer
    spirtd_tls_handshakes_refused_total{reason}   counters refused.<handshake reason>
    spirtd_calls_refused_total{reason}            counters refused.<any other reason>
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spirtd.clock import Clock
from spirtd.errors import JobNotFound
from spirtd.exchange.streams import RefusalKind
from spirtd.jobs.jobstate import RoundReport
from spirtd.jobs.manager import JobManager
from spirtd.jobs.rounds import TIMED
from spirtd.membership.messages import Member, MemberState
from spirtd.rpc.handshake_watch import HANDSHAKE_REASONS
from spirtd.workers.warm import WorkerTotals

PREFIX = "spirtd"
REFUSED = "refused."
CONTRIBUTION_REFUSED = "exchange.refused."
# A phase takes from a millisecond (commit on one peer) to minutes (a big
# model's compute, or waiting for a quorum).
PHASE_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# A store command takes from tens of microseconds (EXISTS) to seconds (an aggregation of big tensors).
STORE_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)  # fmt: skip
# How often the follower of round events looks for new jobs.
FOLLOW_POLL_S = 0.5
DIRECTIONS = ("sent", "received")


@dataclass(frozen=True)
class MetricSources:
    """What the scrape-time families read, each call at that moment."""

    info: Callable[[], Mapping[str, str]]  # id, version, store
    members: Callable[[], list[Member]]
    counters: Callable[[], Mapping[str, int]]
    workers: Callable[[], WorkerTotals]


class DaemonMetrics:
    """Owns the registry; observe_round and observe_store_command feed it."""

    def __init__(self, sources: MetricSources) -> None:
        self.registry = CollectorRegistry()
        self._rounds = Counter(f"{PREFIX}_rounds", "Rounds of training jobs committed on this peer",
                               registry=self.registry)  # fmt: skip
        self._phases = Histogram(f"{PREFIX}_round_phase_seconds", "Time of each phase of a round (propose, compute, "
                                 "aggregate, exchange, update, agree, evaluate)", ["phase"],
                                 buckets=PHASE_BUCKETS_S, registry=self.registry)  # fmt: skip
        self._bytes = Counter(f"{PREFIX}_exchange_bytes", "Bytes of contributions and aggregates this peer sent to "
                              "and received from the other peers in rounds", ["direction"],
                              registry=self.registry)  # fmt: skip
        self._store = Histogram(f"{PREFIX}_store_command_seconds", "Time of each command the daemon sent to its "
                                "store, by command", ["command"], buckets=STORE_BUCKETS_S,
                                registry=self.registry)  # fmt: skip
        for phase in TIMED:
            self._phases.labels(phase.value)
        for direction in DIRECTIONS:
            self._bytes.labels(direction)
        self.registry.register(_Snapshot(sources))

    def observe_round(self, report: RoundReport) -> None:
        """A job's round event; notes (no phase times) are no rounds."""
        if not report.phase_s:
            return
        self._rounds.inc()
        for phase, seconds in report.phase_s.items():
            self._phases.labels(phase).observe(seconds)
        self._bytes.labels("sent").inc(report.sent_bytes)
        self._bytes.labels("received").inc(report.received_bytes)

    def observe_store_command(self, command: str, seconds: float) -> None:
        self._store.labels(command).observe(seconds)


class _Snapshot(Collector):
    """The families read from the components at each scrape (on the event
    loop: the endpoint collects there)."""

    def __init__(self, sources: MetricSources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        s = self._sources
        info = GaugeMetricFamily(f"{PREFIX}_info", "This peer: its id, spirtd version and store backend",
                                 labels=["id", "version", "store"])  # fmt: skip
        values = s.info()
        info.add_metric([values["id"], values["version"], values["store"]], 1)
        yield info
        members = GaugeMetricFamily(f"{PREFIX}_members", "Members this peer knows, itself included, by state",
                                    labels=["state"])  # fmt: skip
        states = [m.state for m in s.members()]
        for state in MemberState:
            members.add_metric([state.value], states.count(state))
        yield members
        counts = s.counters()
        yield _by_reason(f"{PREFIX}_contributions_refused", "Contributions (streamed shards, partial statistics) "
                         "refused from other peers, by reason", _suffixed(counts, CONTRIBUTION_REFUSED),
                         [k.value for k in RefusalKind])  # fmt: skip
        refused = _suffixed(counts, REFUSED)
        yield _by_reason(f"{PREFIX}_tls_handshakes_refused", "Inbound TLS handshakes refused, by reason",
                         {r: n for r, n in refused.items() if r in HANDSHAKE_REASONS}, HANDSHAKE_REASONS)  # fmt: skip
        yield _by_reason(f"{PREFIX}_calls_refused", "Calls refused after the handshake (role, revoked, malformed, "
                         "oversized, spoofed sender, not the job's owner), by reason",
                         {r: n for r, n in refused.items() if r not in HANDSHAKE_REASONS}, ())  # fmt: skip
        yield GaugeMetricFamily(f"{PREFIX}_quarantined_peers", "Peers quarantined for bad contributions (always 0: "
                                "this version quarantines none)", value=0)  # fmt: skip
        workers = s.workers()
        invocations = CounterMetricFamily(f"{PREFIX}_worker_invocations", "Worker invocations (one a minibatch or "
                                          "evaluation) that replied, or failed every attempt",
                                          labels=["outcome"])  # fmt: skip
        invocations.add_metric(["succeeded"], workers.invocations)
        invocations.add_metric(["failed"], workers.failures)
        yield invocations
        yield CounterMetricFamily(f"{PREFIX}_worker_retries", "Worker attempts after an invocation's first",
                                  value=workers.retries)  # fmt: skip
        yield CounterMetricFamily(f"{PREFIX}_worker_cold_starts", "Worker processes started for one attempt each "
                                  "(cold mode)", value=workers.cold_starts)  # fmt: skip
        yield CounterMetricFamily(f"{PREFIX}_worker_warm_starts", "Worker processes started to fill warm pools",
                                  value=workers.warm_starts)  # fmt: skip


def _suffixed(counts: Mapping[str, int], prefix: str) -> dict[str, int]:
    """The counters named prefix + x, as {x: n} (x itself has no dot)."""
    return {name[len(prefix):]: n for name, n in counts.items()
            if name.startswith(prefix) and "." not in name[len(prefix):]}  # fmt: skip


def _by_reason(name: str, doc: str, counts: Mapping[str, int], known: tuple[str, ...] | list[str]) -> Metric:
    """A counter family by reason: every known reason (0 until it happens), and any other seen."""
    family = CounterMetricFamily(name, doc, labels=["reason"])
    for reason in sorted({*known, *counts}):
        family.add_metric([reason], counts.get(reason, 0))
    return family


class RoundFollower:
    """Feeds every job's round events to observe: each job is followed once
    (JobManager.watch gives its events so far, then new ones until it ends);
    new jobs are looked for every poll_s."""

    def __init__(self, jobs: JobManager, observe: Callable[[RoundReport], None], clock: Clock,
                 poll_s: float = FOLLOW_POLL_S) -> None:  # fmt: skip
        self._jobs = jobs
        self._observe = observe
        self._clock = clock
        self._poll_s = poll_s
        self._followed: set[str] = set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            while True:
                known = {view.record.id for view in self._jobs.jobs()}
                for job_id in sorted(known - self._followed):
                    group.create_task(self._follow(job_id), name=f"round-metrics {job_id}")
                self._followed = known  # a deleted job's id goes: ids are never reused
                await self._clock.sleep(self._poll_s)

    async def _follow(self, job_id: str) -> None:
        try:
            async for report in self._jobs.watch(job_id):
                self._observe(report)
        except JobNotFound:
            pass  # deleted before it was followed
