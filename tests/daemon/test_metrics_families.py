"""The daemon's metric families from what the components keep: counters
split by reason into contributions, handshakes and calls; members by
state; rounds, phase times and bytes from round events (notes are no
rounds); store command times. Parsed back from the text format."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from spirtd.daemon.metrics import DaemonMetrics, MetricSources
from spirtd.jobs.jobstate import JobPhase, RoundReport
from spirtd.membership.messages import Member, MemberState
from spirtd.workers.warm import WorkerTotals

COUNTERS = {"refused.unknown_ca": 2, "refused.not_tls": 1, "refused.role": 4, "refused.not_owner": 1,
            "exchange.refused.bad_checksum": 3, "exchange.refused.not_sender": 1, "membership.sent.ping": 9}  # fmt: skip
MEMBERS = [Member("n1", "a:1", 1, MemberState.ALIVE), Member("n2", "a:2", 1, MemberState.ALIVE),
           Member("n3", "a:3", 2, MemberState.SUSPECT), Member("n4", "a:4", 1, MemberState.LEFT)]  # fmt: skip


def metrics(workers: WorkerTotals = WorkerTotals()) -> DaemonMetrics:
    return DaemonMetrics(MetricSources(info=lambda: {"id": "n1", "version": "0.1.0", "store": "native"},
                                       members=lambda: MEMBERS, counters=lambda: COUNTERS,
                                       workers=lambda: workers))  # fmt: skip


def samples(m: DaemonMetrics) -> dict[tuple[str, tuple], float]:
    text = generate_latest(m.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def test_metrics_refusals_are_split_by_what_was_refused():
    got = samples(metrics())
    assert got[("spirtd_tls_handshakes_refused_total", (("reason", "unknown_ca"),))] == 2
    assert got[("spirtd_tls_handshakes_refused_total", (("reason", "not_tls"),))] == 1
    assert got[("spirtd_tls_handshakes_refused_total", (("reason", "expired"),))] == 0  # known, not yet seen
    assert got[("spirtd_calls_refused_total", (("reason", "role"),))] == 4
    assert got[("spirtd_calls_refused_total", (("reason", "not_owner"),))] == 1
    assert ("spirtd_calls_refused_total", (("reason", "unknown_ca"),)) not in got
    assert got[("spirtd_contributions_refused_total", (("reason", "bad_checksum"),))] == 3
    assert got[("spirtd_contributions_refused_total", (("reason", "not_sender"),))] == 1
    assert got[("spirtd_contributions_refused_total", (("reason", "late"),))] == 0
    assert not any("membership" in name for name, _ in got)


def test_metrics_members_by_state_and_workers_and_info():
    got = samples(metrics(WorkerTotals(invocations=10, failures=1, retries=2, cold_starts=3, warm_starts=4)))
    assert {state: got[("spirtd_members", (("state", state),))] for state in ("alive", "suspect", "dead", "left")} == {
        "alive": 2, "suspect": 1, "dead": 0, "left": 1}
    assert got[("spirtd_worker_invocations_total", (("outcome", "succeeded"),))] == 10
    assert got[("spirtd_worker_invocations_total", (("outcome", "failed"),))] == 1
    assert (got[("spirtd_worker_retries_total", ())], got[("spirtd_worker_cold_starts_total", ())],
            got[("spirtd_worker_warm_starts_total", ())]) == (2, 3, 4)  # fmt: skip
    assert got[("spirtd_info", (("id", "n1"), ("store", "native"), ("version", "0.1.0")))] == 1
    assert got[("spirtd_quarantined_peers", ())] == 0


def test_metrics_rounds_from_round_events_and_store_commands():
    m = metrics()
    m.observe_round(RoundReport(round=1, total_rounds=2, loss=1.0, phase=JobPhase.RUNNING,
                                phase_s={"propose": 0.002, "compute": 0.3, "exchange": 0.05},
                                sent_bytes=1000, received_bytes=900))  # fmt: skip
    m.observe_round(RoundReport(round=1, total_rounds=2, loss=1.0, phase=JobPhase.RUNNING,
                                message="the store restarted"))  # a note: no round  # fmt: skip
    m.observe_store_command("SPIRT.AGGREGATE", 0.004)
    m.observe_store_command("SPIRT.AGGREGATE", 0.006)
    got = samples(m)
    assert got[("spirtd_rounds_total", ())] == 1
    assert got[("spirtd_round_phase_seconds_count", (("phase", "compute"),))] == 1
    assert got[("spirtd_round_phase_seconds_sum", (("phase", "compute"),))] == 0.3
    assert got[("spirtd_round_phase_seconds_bucket", (("le", "0.5"), ("phase", "compute")))] == 1
    assert got[("spirtd_round_phase_seconds_count", (("phase", "agree"),))] == 0  # every phase shows, from 0
    assert got[("spirtd_exchange_bytes_total", (("direction", "sent"),))] == 1000
    assert got[("spirtd_exchange_bytes_total", (("direction", "received"),))] == 900
    assert got[("spirtd_store_command_seconds_count", (("command", "SPIRT.AGGREGATE"),))] == 2
    assert abs(got[("spirtd_store_command_seconds_sum", (("command", "SPIRT.AGGREGATE"),))] - 0.01) < 1e-12


def test_metrics_of_two_daemons_do_not_mix():
    one, two = metrics(), metrics()
    one.observe_store_command("EXISTS", 0.001)
    assert ("spirtd_store_command_seconds_count", (("command", "EXISTS"),)) not in samples(two)
