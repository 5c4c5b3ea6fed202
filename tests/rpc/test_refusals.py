"""The refusal log on a fake clock: a line each up to the burst, then one
summary per interval; every refusal counted."""

from __future__ import annotations

import logging

from spirtd.clock import FakeClock
from spirtd.rpc.counters import Counters
from spirtd.rpc.refusals import RefusalLog


def make(burst=2, interval_s=10.0):
    lines: list[tuple[int, str, dict]] = []
    clock = FakeClock()
    log = RefusalLog(Counters(), clock, interval_s=interval_s, burst=burst,
                     emit=lambda level, msg, extra: lines.append((level, msg, extra)))  # fmt: skip
    return log, clock, lines


def test_refusals_get_a_line_each_up_to_the_burst_then_a_summary():
    log, clock, lines = make()
    for i in range(1000):
        log.refused("not_tls" if i % 2 else "no_certificate", f"ipv4:10.0.0.1:{i}", f"refused {i}")
    assert [msg for _, msg, _ in lines] == ["refused 0", "refused 1"]
    clock.advance(10.0)
    log.flush()
    assert len(lines) == 3 and lines[2][0] == logging.WARNING
    assert "refused 998 more connections or calls in the last 10 s" in lines[2][1]
    assert lines[2][2] == {"refused": {"no_certificate": 499, "not_tls": 499}}
    assert log._counters.get("refused.not_tls") == 500 and log._counters.get("refused.no_certificate") == 500


def test_a_new_interval_starts_with_lines_again_and_quiet_intervals_say_nothing():
    log, clock, lines = make(burst=1)
    log.refused("role", "p", "first")
    clock.advance(11.0)
    log.flush()
    assert [msg for _, msg, _ in lines] == ["first"]  # nothing was held back: no summary
    log.refused("role", "p", "second")
    log.refused("role", "p", "third")
    clock.advance(11.0)
    log.refused("role", "p", "fourth")  # the summary of the interval before comes first
    assert [msg for _, msg, _ in lines][1:3] == ["second", lines[2][1]] and "1 more" in lines[2][1]
    assert lines[3][1] == "fourth"
