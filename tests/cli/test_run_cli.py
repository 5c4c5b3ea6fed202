"""`spirtd run` with a bad setting, as a person runs it: one line naming the
setting, exit status 2, no traceback, whatever form the setting came in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

SPIRTD = Path(sys.executable).parent / "spirtd"
EXIT_USAGE = 2
# Long enough for the interpreter to import spirtd and give up.
RUN_TIMEOUT_S = 30.0


def run_refused(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> str:
    """The stderr of a `spirtd run` that must refuse its settings."""
    args = [str(SPIRTD), "run", "--id", "n1", "--insecure", "--listen", "127.0.0.1:0", *flags]
    if "--data-dir" not in flags:
        args += ["--data-dir", str(tmp_path / "data")]
    done = subprocess.run(args, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)  # fmt: skip
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("spirtd run: error: "), done.stderr
    return lines[0]


def test_run_bad_environment_variable(tmp_path):
    line = run_refused(tmp_path, env={"SPIRTD_MAX_MESSAGE_BYTES": "4MB"})
    assert "max_message_bytes must be an integer, not '4MB'" in line


def test_run_bad_file_value(tmp_path):
    config = tmp_path / "spirtd.toml"
    config.write_text("advertise = 7100\n")
    line = run_refused(tmp_path, "--config", str(config))
    assert "advertise must be HOST:PORT text, not 7100" in line


def test_run_bad_flag(tmp_path):
    line = run_refused(tmp_path, "--seeds", "10.0.0.1")
    assert "seed '10.0.0.1' is not HOST:PORT" in line


def test_run_data_dir_that_cannot_be_made(tmp_path):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    line = run_refused(tmp_path, "--data-dir", str(in_the_way))
    assert f"data_dir '{in_the_way}' must be a folder" in line
