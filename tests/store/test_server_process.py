"""What redis.log says of a failed run, read by spirtd.store.server_process."""

from __future__ import annotations

import pytest

from spirtd.store.server_process import LOG_TAIL_LINES, format_tail, main_complaint, read_log


@pytest.mark.parametrize(
    "lines, complaint",
    [
        (["1:C 02 Dec 2026 04:57:01.350 # Configuration loaded",
          "1:M 02 Dec 2026 04:57:01.353 * Server initialized",
          "1:M 02 Dec 2026 04:57:01.353 # Can't load module from /x: server aborting"],
         "Can't load module from /x: server aborting"),
        (["*** FATAL CONFIG FILE ERROR (Redis 6.2.14) ***", "Bad directive or wrong number of arguments  "],
         "Bad directive or wrong number of arguments"),
        ([], None),
    ],
)  # fmt: skip
def test_server_process_main_complaint(lines, complaint):
    assert main_complaint(lines) == complaint


def test_server_process_reads_this_run_of_the_log(tmp_path):
    log = tmp_path / "redis.log"
    log.write_text("an earlier run\n")
    start = log.stat().st_size
    with log.open("a") as f:
        f.write("\n".join(f"line {i}" for i in range(LOG_TAIL_LINES + 5)) + "\n")
    lines = read_log(log, start)
    assert lines[0] == "line 0" and "an earlier run" not in lines
    tail = format_tail(log, lines)
    assert tail.startswith(f"the last lines of {log}:") and "line 4\n" not in tail and tail.endswith("line 24")
    assert read_log(tmp_path / "missing.log") == [] and format_tail(log, []) == f"{log} has nothing to show"
