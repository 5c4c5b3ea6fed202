"""pandas and matplotlib are imported only when asked for, and their absence
is said plainly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spirt_client import MissingDependency
from spirt_client.history import frame
from spirt_client.plot import plot_job
from tests.client.conftest import CALL_S


def test_without_pandas_a_frame_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(MissingDependency, match="a round history as a DataFrame needs pandas, which is not installed: pip install pandas"):
        frame([])


def test_without_matplotlib_a_plot_says_how_to_get_it(monkeypatch, trained, certs):
    from spirt_client import Client

    with Client(trained.peer.address, certs, timeout_s=CALL_S) as client:
        status, events = client.job_status(trained.job_id), client.history(trained.job_id)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependency, match="plotting a job needs matplotlib"):
        plot_job(status, events)


def test_importing_the_client_loads_neither():
    code = "import sys, spirt_client; print(sorted({'pandas', 'matplotlib', 'torch'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
