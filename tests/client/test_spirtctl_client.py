"""spirtctl on spirt_client, as a user meets it against a real peer: --json
for every Control call, the watch's bar on a terminal, and the plot of a
job's rounds as a PNG."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import termios

from PIL import Image

from spirt_client.plot import DPI, FIGURE_SIZE_IN
from tests.client.conftest import CALL_S, LONG_JOB, ROUNDS
from tests.daemon.peers import SPIRTCTL

RUN_S = 60.0
# A 1200 x 800 page of four charts with text: well over a blank page's few KiB, well under a photo's MiBs.
PNG_BYTES = (20_000, 1_000_000)


def spirtctl(peer, certs, *args, **kw) -> subprocess.CompletedProcess:
    argv = [SPIRTCTL, "--peer", peer.address, "--certs-dir", str(certs), "--timeout", str(CALL_S), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=RUN_S, **kw)


def machine(peer, certs, *args):
    result = spirtctl(peer, certs, *args, "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_every_control_call_answers_json(trained, certs, tmp_path):
    peer, job = trained.peer, trained.job_id
    [status] = machine(peer, certs, "status")
    [members] = machine(peer, certs, "members")
    [job_status] = machine(peer, certs, "job", "status", job)
    [listed] = machine(peer, certs, "job", "list")
    events = machine(peer, certs, "watch", job)
    [saved] = machine(peer, certs, "model", "get", job, "-o", str(tmp_path / "model.pt"))
    [kept] = machine(peer, certs, "cancel", job)  # an ended job: cancel changes nothing
    spec = tmp_path / "long.json"
    spec.write_text(json.dumps(LONG_JOB))
    [submitted] = machine(peer, certs, "submit", str(spec))
    [cancelled] = machine(peer, certs, "cancel", submitted["job_id"])
    [deleted] = machine(peer, certs, "job", "delete", submitted["job_id"])
    assert status["id"] == "node1" and [m["state"] for m in members] == ["alive"]
    assert job_status["state"] == "succeeded" and job_status["round"] == ROUNDS
    assert job in [j["job_id"] for j in listed]
    assert [e["round"] for e in events][:ROUNDS] == list(range(1, ROUNDS + 1)) and events[-1]["state"] == "succeeded"
    assert saved == {"job_id": job, "output": str(tmp_path / "model.pt"), "format": "state-dict", "round": ROUNDS,
                     "digest": job_status["digest"], "tensors": 6, "parameters": saved["parameters"]}  # fmt: skip
    assert (tmp_path / "model.pt").stat().st_size > saved["parameters"] * 4
    assert kept == {"job_id": job, "state": "succeeded"}
    assert cancelled == {"job_id": submitted["job_id"], "state": "cancelled"}
    assert deleted == {"job_id": submitted["job_id"], "deleted": True}


def test_watch_on_a_terminal_shows_a_bar_of_rounds_loss_accuracy_and_peers(trained, certs):
    main, terminal = pty.openpty()  # stderr a terminal, as in a shell, of 24 rows of 120 columns
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    argv = [SPIRTCTL, "--peer", trained.peer.address, "--certs-dir", str(certs), "watch", trained.job_id]  # no deadline
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    try:
        drawn = _read_until_closed(main)  # as it draws: a full terminal would block it
        out, _ = proc.communicate(timeout=RUN_S)
    finally:
        os.close(main)
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert f"{ROUNDS}/{ROUNDS}" in drawn and "loss=" in drawn and "acc=" in drawn and "peers=1" in drawn
    assert out.strip() == f"job {trained.job_id} succeeded: finished"


def _read_until_closed(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_plot_writes_a_png_a_person_can_read(trained, certs, tmp_path):
    out = tmp_path / "rounds.png"
    [plotted] = machine(trained.peer, certs, "plot", trained.job_id, "-o", str(out))
    assert plotted == {"job_id": trained.job_id, "output": str(out), "rounds": ROUNDS}
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert PNG_BYTES[0] < out.stat().st_size < PNG_BYTES[1]
    with Image.open(out) as image:
        image.verify()  # every chunk's checksum
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (int(FIGURE_SIZE_IN[0] * DPI), int(FIGURE_SIZE_IN[1] * DPI))
        assert len(image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16  # lines and text, not a blank page
