"""The rounds' progress bar where people watch a job: in a notebook
without ipywidgets it is a text bar, drawn without a word of advice."""

from __future__ import annotations

import io
import sys
import types
import warnings

from spirt_client.progress import RoundBar
from spirt_client.results import JobState, RoundEvent

ROUNDS = 3


def event(r: int, state: JobState = JobState.RUNNING) -> RoundEvent:
    return RoundEvent(job_id="j0", round=r, total_rounds=ROUNDS, state=state, loss=1.0 / r, accuracy=None,
                      val_loss=None, phase_s={"compute": 0.01}, minibatches=4, retried=0, dropped=0, message="",
                      participants=("node1",), excluded={}, sent_bytes=0, received_bytes=0, digest="",
                      participant_digests={})  # fmt: skip


def test_a_bar_in_a_notebook_without_ipywidgets_is_text_with_no_warning(monkeypatch):
    """tqdm.auto there warns "IProgress not found. Please update jupyter and
    ipywidgets" before it falls back to text: the first thing a quickstart
    notebook showed was advice about a package its bar does not need."""
    import IPython  # noqa: F401 - tqdm asks it who runs the code

    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))  # as in a kernel
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed: importing it raises ImportError
    for name in ("tqdm.auto", "tqdm.autonotebook", "tqdm.notebook"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # imported again, here
    drawn = io.StringIO()
    with warnings.catch_warnings(record=True) as warned:  # not "error": tqdm.auto catches what it raises
        warnings.simplefilter("always")
        bar = RoundBar(file=drawn, description="job j0")
        for r in range(1, ROUNDS + 1):
            bar.update(event(r))
        bar.update(event(ROUNDS, JobState.SUCCEEDED))
    assert [str(w.message) for w in warned] == []
    assert "job j0: 100%" in drawn.getvalue() and f"{ROUNDS}/{ROUNDS}" in drawn.getvalue()
