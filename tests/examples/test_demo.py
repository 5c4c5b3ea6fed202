"""`make demo`'s script (examples/demo.py), end to end on a shorter job:
three real peers, node2 SIGKILLed and restarted mid-job, one model at the
end, the table, the plot; and a Ctrl-C that stops every process it started."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from tests.leftovers import kill, processes_naming

pytestmark = pytest.mark.timeout(240)

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
# A short job: node2 is killed early, and may or may not train again before
# the end (it takes the others' state either way); about 45 s on two quiet
# cores, twice that when others use them.
SHORT = ["--rounds", "200", "--kill-at", "30"]
RUN_S = 180.0
LINE_S = 90.0
STOP_S = 40.0
FOLDER = re.compile(r"fresh certificates, in (/tmp/\S+)/cluster$", re.M)
ROW = re.compile(r"^(node[123]) +succeeded +(0\.\d{3}|1\.000) +([0-9a-f]{12})\b", re.M)
MARK = "SPIRTD_DEMO_TEST"  # in the environment of every process the demo starts but the stores (they get their own)


def demo_argv(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(DEMO), "--out", str(out), *extra]


def demo_env(mark: str) -> dict[str, str]:
    return {**os.environ, MARK: mark, "PYTHONUNBUFFERED": "1"}


def processes_marked(mark: str) -> dict[int, str]:
    needle = f"{MARK}={mark}".encode()
    found = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


def leftovers(output: str, mark: str) -> dict[int, str]:
    """What outlived the demo: processes of its cluster's folder (daemons,
    stores) or with its mark (daemons, workers); all SIGKILLed."""
    found = processes_marked(mark)
    folder = FOLDER.search(output)
    if folder is not None:
        found.update(processes_naming(Path(folder.group(1))))
    found.pop(os.getpid(), None)
    return kill(found)


def test_the_demo_kills_and_restarts_a_peer_and_ends_with_one_model_a_table_and_a_plot(tmp_path):
    mark = uuid.uuid4().hex
    try:
        done = subprocess.run(demo_argv(tmp_path / "out", *SHORT), capture_output=True, text=True, timeout=RUN_S,
                              env=demo_env(mark))  # fmt: skip
        output = done.stdout + done.stderr
    finally:
        left = leftovers(locals().get("output", ""), mark)
    assert done.returncode == 0, output
    assert not left, f"processes outlived the demo: {left}"
    assert "killing node2" in output and "node2 restarted" in output
    assert re.search(r"node2 (back in at round \d+|did not take part again before the end)", output), output
    rows = ROW.findall(output)
    assert [peer for peer, _, _ in rows] == ["node1", "node2", "node3"], output
    assert len({digest for _, _, digest in rows}) == 1 and all(float(a) >= 0.8 for _, a, _ in rows), rows
    assert "digests agree: yes" in output
    plot = tmp_path / "out" / "demo.png"
    assert f"plot: {plot}" in output
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size > 10_000
    assert sorted(p.name for p in (tmp_path / "out" / "logs").iterdir()) == ["node1.log", "node2.log", "node3.log"]
    assert not Path(FOLDER.search(output).group(1)).exists()  # the cluster's folder is removed


def test_ctrl_c_during_the_job_stops_every_peer(tmp_path):
    mark = uuid.uuid4().hex
    proc = subprocess.Popen(demo_argv(tmp_path / "out"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=demo_env(mark))  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)], daemon=True).start()
    seen: list[str] = []
    try:
        while not any(" submitted at node1" in line for line in seen):  # the job runs, about to be watched
            line = lines.get(timeout=LINE_S)
            assert line is not None, "".join(seen)
            seen.append(line)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(STOP_S) == 130, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        while (line := lines.get(timeout=LINE_S)) is not None:
            seen.append(line)
        output = "".join(seen)
        left = leftovers(output, mark)
    assert not left, f"processes outlived the demo: {left}"
    assert "every peer stopped" in output and output.rstrip().endswith("interrupted"), output
    assert "Traceback" not in output, output
    assert (tmp_path / "out" / "logs" / "node1.log").exists()
    assert "peer node1 stopped" in (tmp_path / "out" / "logs" / "node1.log").read_text()
