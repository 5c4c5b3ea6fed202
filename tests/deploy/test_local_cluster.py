"""`spirtd local-cluster` and spirtd.localcluster, with real peers: they
start with fresh certificates, see each other, say how to reach them, and
stop, every process they started with them."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spirtd.errors import ConfigError, LocalClusterError
from spirtd.localcluster import ClusterInfo, LocalCluster
from tests.daemon.peers import SPIRTCTL, SPIRTD
from tests.leftovers import kill_leftovers, processes_naming

pytestmark = pytest.mark.timeout(120)

START_S = 60.0
STOP_S = 40.0
CALL_S = 30.0
POLL_S = 0.05


def wait_for_file(path: Path, proc: subprocess.Popen, output: Path) -> str:
    deadline = time.monotonic() + START_S
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"local-cluster exited with {proc.returncode}:\n{output.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {path} within {START_S}s:\n{output.read_text()}")
        time.sleep(POLL_S)
    return path.read_text()


def alive_members(*commands: list[str]) -> list[set[str]]:
    """The ids each `spirtctl ... members --json` lists alive (run at once)."""
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for argv in commands]
    seen = []
    for proc in procs:
        out, err = proc.communicate(timeout=CALL_S)
        assert proc.returncode == 0, err
        seen.append({m["id"] for m in json.loads(out) if m["state"] == "alive"})
    return seen


def test_local_cluster_cli_starts_joins_prints_and_stops_on_sigint(short_tmp):
    folder = short_tmp / "cluster"
    output = short_tmp / "out.txt"
    with open(output, "w") as out:
        proc = subprocess.Popen([SPIRTD, "local-cluster", "--peers", "3", "--dir", str(folder)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        info = ClusterInfo.from_json(wait_for_file(folder / "cluster.json", proc, output))
        assert [p.id for p in info.peers] == ["node1", "node2", "node3"] and info.certs_dir == folder / "certs"
        text = output.read_text()
        assert all(p.address in text for p in info.peers) and str(info.certs_dir) in text
        # the printed command, pasted as it is (with --json to read it here)
        pasted = next(line.strip() for line in text.splitlines() if line.strip().startswith(SPIRTCTL))
        at_each = [[SPIRTCTL, "--peer", p.address, "--certs-dir", str(info.certs_dir), "members", "--json"]
                   for p in info.peers]  # fmt: skip
        seen = alive_members([*shlex.split(pasted), "--json"], *at_each)
        assert seen == [{"node1", "node2", "node3"}] * 4
        started = processes_naming(folder)
        daemons = {p.pid for p in info.peers}
        assert daemons <= set(started)
        stores = [pid for pid, cmd in started.items() if "redis-server" in cmd]
        assert len(stores) == 3, started

        proc.send_signal(signal.SIGINT)
        assert proc.wait(STOP_S) == 0, output.read_text()
        assert output.read_text().rstrip().endswith("every peer stopped")
        assert not processes_naming(folder)
        assert all(not Path(f"/proc/{pid}").exists() for pid in started)
        assert (folder / "certs" / "ca.key").exists()  # --dir: kept for the next run
        for peer in info.peers:  # the parser imports no grpc before `spirtd run`'s handshake watch is on
            assert "grpc was imported before the handshake watch" not in peer.log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = kill_leftovers(folder)
    assert not left, f"processes outlived local-cluster: {left}"


def test_local_cluster_peers_stop_when_it_is_killed(short_tmp):
    """SIGKILL leaves local-cluster no time to stop anything: its peers get
    SIGTERM from the kernel (they die with their parent), leave and stop."""
    folder = short_tmp / "cluster"
    output = short_tmp / "out.txt"
    with open(output, "w") as out:
        proc = subprocess.Popen([SPIRTD, "local-cluster", "--peers", "1", "--dir", str(folder)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_file(folder / "cluster.json", proc, output)
        assert processes_naming(folder)
        proc.kill()
        proc.wait(STOP_S)
        deadline = time.monotonic() + STOP_S
        while processes_naming(folder) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        assert "peer node1 stopped" in (folder / "logs" / "node1.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = kill_leftovers(folder)
    assert not left, f"processes outlived local-cluster: {left}"


def test_local_cluster_api_restarts_a_killed_peer_and_cleans_up():
    cluster = LocalCluster(2)
    with cluster:
        folder = cluster.folder
        assert json.loads((folder / "cluster.json").read_text())["peers"][1]["address"] == cluster.addresses[1]
        node2 = cluster.peer("node2")
        address = node2.address
        node2.signal(signal.SIGKILL)
        node2.proc.wait(STOP_S)
        cluster.restart("node2")
        assert node2.address == address
        cluster.wait_joined()
        with pytest.raises(LocalClusterError, match="node1 is still running"):
            cluster.restart("node1")
    assert not folder.exists()  # a temporary folder goes with the cluster
    assert not processes_naming(folder)


def test_local_cluster_runs_again_in_its_folder(short_tmp):
    """A given folder is kept, and used again: the same certificates, the
    peers' data, their logs appended to (each start reads its own address)."""
    folder = short_tmp / "c"
    with LocalCluster(1, folder) as first:
        before = first.addresses[0]
    key = (folder / "certs" / "node1.key").read_bytes()
    with LocalCluster(1, folder) as second:
        assert (folder / "certs" / "node1.key").read_bytes() == key
        assert json.loads((folder / "cluster.json").read_text())["peers"][0]["address"] == second.addresses[0]
        assert second.peer("node1").served_address() == second.addresses[0]
        assert "serving on" in (folder / "logs" / "node1.log").read_text().split(before)[0]  # the first run's line
    assert folder.exists() and not processes_naming(folder)


def test_local_cluster_refuses_bad_sizes_and_a_missing_config(tmp_path):
    with pytest.raises(ConfigError, match="1 to 64 peers, not 0"):
        LocalCluster(0)
    with pytest.raises(ConfigError, match="is not there"):
        LocalCluster(1, config=tmp_path / "nope.toml")


def test_local_cluster_reports_a_peer_that_cannot_start(tmp_path, short_tmp):
    config = tmp_path / "bad.toml"
    config.write_text("[store]\npersistence = 'bogus'\n")
    with pytest.raises(LocalClusterError, match="(?s)peer node1 exited with code 2 before serving.*persistence must be"):
        LocalCluster(1, short_tmp / "c", config=config).start()
    assert not processes_naming(short_tmp)


def test_the_printed_python_snippet_runs():
    with LocalCluster(1) as cluster:
        done = subprocess.run([sys.executable, "-c", cluster.info().python_snippet()], capture_output=True,
                              text=True, timeout=CALL_S)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "node1" in done.stdout


def test_the_readme_local_cluster_snippet_runs():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "LocalCluster" in b)
    exec(compile(snippet.replace("peers=3", "peers=1"), "README local-cluster snippet", "exec"), {})
