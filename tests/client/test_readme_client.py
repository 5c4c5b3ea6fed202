"""The README's Python client example runs as written against a real peer
(its address and certs dir swapped for the test's, digits.toml the small
job of the other client tests, whose warm worker it reuses)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.client.conftest import CALL_S, SMALL_JOB_TOML

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def client_example() -> str:
    section = README.split("## Python client", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_client_example_runs(peer, certs, tmp_path, monkeypatch, capsys):
    (tmp_path / "digits.toml").write_text(SMALL_JOB_TOML)
    monkeypatch.chdir(tmp_path)
    code = client_example().replace('"127.0.0.1:7101"', repr(peer.address))
    code = code.replace('"certs/mine")', f"{str(certs)!r}, timeout_s={CALL_S})")  # two cores shared with other tests
    exec(compile(code, "README client example", "exec"), {})
    assert (tmp_path / "rounds.png").stat().st_size > 0
    printed = capsys.readouterr()
    assert printed.out.startswith("succeeded 0.") and "round/s" in printed.err  # the state, the accuracy, the bar
