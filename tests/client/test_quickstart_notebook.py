"""examples/quickstart.ipynb as a user runs it: every cell in order, in a
fresh kernel of this venv's Python, in a working dir of its own, against the
real local cluster it starts. It must end with the job succeeded, its curves
drawn and no process of the cluster left; and a kernel killed before the
last cell must take the cluster with it, as the notebook says."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from spirtd.localcluster import ClusterInfo
from tests.leftovers import kill, processes_in_sessions, processes_naming

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"
KERNEL = "spirtd-quickstart-test"
# The longest cells, the first submit and the job, take 5 to 25 s each on two cores shared with other tests.
CELL_TIMEOUT_S = 180
KERNEL_START_TIMEOUT_S = 60
# How long the cluster's processes may take to go once the kernel is gone:
# a peer's stop (SIGTERM, then its store's) on busy cores.
GONE_S = 40.0
POLL_S = 0.1
LOG_TAIL_LINES = 20
ROUNDS = 30  # the notebook's job's

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def kernel_env(tmp_path, monkeypatch) -> None:
    """A kernel spec for this interpreter, and every file Jupyter and IPython
    read or write, under tmp_path: nothing of the user's is used or changed."""
    home = tmp_path / "jupyter"
    spec = home / "data" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "spirtd tests", "language": "python",
    }))  # fmt: skip
    monkeypatch.setenv("JUPYTER_PATH", str(home / "data"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(home / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(home / "ipython"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own: inline


def with_parameters(notebook, **values) -> None:
    """A cell setting values, inserted after the cell tagged parameters (as papermill does)."""
    at = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    code = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(code, id="injected-parameters"))


def runner(notebook, workdir: Path) -> NotebookClient:
    return NotebookClient(notebook, timeout=CELL_TIMEOUT_S, startup_timeout=KERNEL_START_TIMEOUT_S,
                          kernel_name=KERNEL, resources={"metadata": {"path": str(workdir)}})  # fmt: skip


def cell(notebook, cell_id: str):
    return next(c for c in notebook.cells if c.get("id") == cell_id)


def stream(notebook, cell_id: str, name: str = "stdout") -> str:
    return "".join(o.text for o in cell(notebook, cell_id).outputs if o.output_type == "stream" and o.name == name)


def cluster_processes(folder: Path) -> dict[int, str]:
    """The peers and their stores (they name the folder) and the peers' workers (in the peers' sessions)."""
    found = processes_naming(folder)
    if (folder / "cluster.json").exists():
        found |= processes_in_sessions(p.pid for p in ClusterInfo.from_json((folder / "cluster.json").read_text()).peers)
    return found


def outlived(folder: Path) -> dict[int, str]:
    """What of the cluster is still there GONE_S from now (then killed), after printing its logs' ends."""
    deadline = time.monotonic() + GONE_S
    while cluster_processes(folder) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for log in sorted((folder / "logs").glob("*.log")):  # captured: pytest shows them when the test failed
        print(f"--- the end of {log.name} ---", *log.read_text().splitlines()[-LOG_TAIL_LINES:], sep="\n")
    return kill(cluster_processes(folder))


def test_the_quickstart_notebook_trains_plots_and_stops_its_cluster(kernel_env, short_tmp, tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code_cells)  # stored without outputs
    folder = short_tmp / "cluster"
    with_parameters(notebook, FOLDER=str(folder))
    workdir = tmp_path / "work"
    workdir.mkdir()
    try:
        runner(notebook, workdir).execute()  # CellExecutionError (the cell and its traceback) if a cell fails
    finally:
        left = outlived(folder)
    assert not left, f"processes outlived the notebook: {left}"

    assert "3 of 3 members alive" in stream(notebook, "client")
    bar = stream(notebook, "wait", "stderr")
    assert f"{ROUNDS}/{ROUNDS}" in bar and "loss=" in bar and "acc=" in bar and "peers=3" in bar
    assert "Warning" not in bar  # tqdm.auto's advice to install ipywidgets, for one
    assert stream(notebook, "wait").startswith(f"succeeded after {ROUNDS} rounds")
    result = stream(notebook, "result").splitlines()
    assert result[0] == "state: succeeded"
    assert result[1].startswith("test accuracy: ") and float(result[1].split(": ")[1]) >= 0.85
    assert result[3].startswith("the same model at every peer: True")
    here = stream(notebook, "model").splitlines()[-1]
    assert here.startswith(f"test accuracy here: {result[1].split(': ')[1]} on ")  # the cluster's, found again
    for cell_id in ("curves", "plot"):  # the curves, and client.plot's page
        images = [o for o in cell(notebook, cell_id).outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1 and len(images[0].data["image/png"]) > 10_000, cell_id
    assert stream(notebook, "stop") == "every peer stopped\n"
    assert list(workdir.iterdir()) == []  # it wrote nothing where it ran


def test_a_kernel_killed_before_the_last_cell_takes_the_cluster_with_it(kernel_env, short_tmp, tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    folder = short_tmp / "cluster"
    with_parameters(notebook, PEERS=1, FOLDER=str(folder))
    started = next(i for i, c in enumerate(notebook.cells) if c.get("id") == "start-cluster")
    client = runner(notebook, tmp_path)
    try:
        with client.setup_kernel():
            for index, code in enumerate(notebook.cells[: started + 1]):
                client.execute_cell(code, index)
            assert processes_naming(folder), "no peer runs"
            os.kill(client.km.provisioner.pid, signal.SIGKILL)  # no last cell, no atexit: the peers die with it
            client.km.provisioner.process.wait()
    finally:
        left = outlived(folder)
    assert not left, f"processes outlived the kernel: {left}"
