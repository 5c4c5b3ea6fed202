"""Certificates and running peers for the daemon's tests."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest

from spirtd.security import ca
from spirtd.security.identity import Role
from tests.daemon.peers import Peers

PEER_NAMES = ("node1", "node2", "node3", "node4", "node5")
# Faster timing than the defaults keeps these tests short; the benchmark
# (bench/membership.py) measures the defaults.
FAST_CONFIG = """
crl_poll_s = 0.5
max_message_bytes = 65536
[membership]
probe_interval_s = 0.2
probe_timeout_s = 0.08
gossip_interval_s = 0.1
push_pull_interval_s = 3.0
"""


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Path:
    """A cluster CA with peers, two clients (client, bob), an operator (ops),
    an expired peer and a stranger's certificate (another CA) copied in as
    other.crt/other.key."""
    root = tmp_path_factory.mktemp("certs")
    folder = root / "ca"
    ca.init_ca(folder)
    for name in PEER_NAMES:
        ca.issue(folder, name, ips=["127.0.0.1"])
    ca.issue(folder, "client", role=Role.CLIENT)
    ca.issue(folder, "bob", role=Role.CLIENT)
    ca.issue(folder, "ops", role=Role.OPERATOR)
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    ca.issue(folder, "old", now=past, days=1)
    stranger = root / "stranger"
    ca.init_ca(stranger)
    ca.issue(stranger, "node9", ips=["127.0.0.1"])
    for suffix in ("crt", "key"):
        shutil.copy(stranger / f"node9.{suffix}", folder / f"other.{suffix}")
    return folder


def peer_certs_dir(certs: Path, root: Path, name: str) -> Path:
    """A peer's own certs dir: the CA, its certificate and key, crl.pem."""
    own = root / f"certs-{name}"
    own.mkdir(parents=True, exist_ok=True)
    for file in ("ca.crt", "crl.pem", f"{name}.crt", f"{name}.key"):
        shutil.copy2(certs / file, own / file)
    return own


LOG_TAIL_LINES = 60


@pytest.fixture
def peers(short_tmp, certs):
    group = Peers(short_tmp, certs, config_text=FAST_CONFIG)
    yield group
    problems = group.close()
    for peer in group.started:  # captured: pytest shows it when the test failed
        lines = peer.log_text().splitlines()[-LOG_TAIL_LINES:]
        print(f"--- the last {len(lines)} lines of {peer.id}'s log ---", *lines, sep="\n")
    if problems:
        pytest.fail("; ".join(problems))
