"""Small TCP programs to run inside cluster hosts: an echo server, a
one-shot exchange, a long-lived connection driven from the test, and a
reachability matrix. Used by the harness's own tests; handy for others.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from .harness import PYTHON, Cluster, Host, port_open, wait_for

ECHO_PORT = 7000
# How long to wait for an echo server to start listening.
SERVER_START_TIMEOUT_S = 10.0
# Connect/receive timeout of the client programs: on a bridge between
# namespaces the round trip takes microseconds, so this only bounds the
# waiting when packets are dropped.
CLIENT_TIMEOUT_S = 0.5

# argv: ip port tag. Replies to every chunk with tag + chunk.
ECHO_SERVER = """\
import socket, sys, threading
tag = sys.argv[3].encode()
def serve(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(tag + data)
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# argv: ip port payload timeout. Prints the reply, or exits 1 naming the error.
EXCHANGE = """\
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[4])) as s:
        s.sendall(sys.argv[3].encode())
        print(s.recv(4096).decode(), end="")
except OSError as exc:
    print(type(exc).__name__, exc)
    sys.exit(1)
"""

# argv: ip port timeout. One connection; for each stdin line "send X" sends
# X, for "recv" prints "got <data>" or "timeout".
SESSION = """\
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
for line in sys.stdin:
    cmd, _, arg = line.rstrip("\\n").partition(" ")
    if cmd == "send":
        s.sendall(arg.encode())
        print("sent", flush=True)
    else:
        try:
            print("got", s.recv(4096).decode(), flush=True)
        except TimeoutError:
            print("timeout", flush=True)
"""


def start_echo(host: Host, tag: str = "", port: int = ECHO_PORT) -> subprocess.Popen:
    """Start an echo server on host.ip:port and wait until it listens."""
    proc = host.popen([PYTHON, "-c", ECHO_SERVER, host.ip, str(port), tag])
    wait_for(lambda: proc.poll() is not None or port_open(host, port),
             SERVER_START_TIMEOUT_S, what=f"echo server on {host.name}")
    if proc.poll() is not None:
        raise AssertionError(f"echo server on {host.name} exited with {proc.returncode}")
    return proc


def exchange(source: Host, target: Host, payload: str, port: int = ECHO_PORT) -> str | None:
    """The reply to payload from target's echo server, sent from source, or
    None when the connection or the reply fails."""
    result = source.run(
        [PYTHON, "-c", EXCHANGE, target.ip, str(port), payload, str(CLIENT_TIMEOUT_S)],
        timeout=SERVER_START_TIMEOUT_S,
    )
    return result.stdout if result.returncode == 0 else None


def reachability(cluster: Cluster, port: int = ECHO_PORT) -> dict[tuple[str, str], bool]:
    """Whether each host can connect to every other host's port, probed in
    parallel (so dropped probes cost one timeout in all, not one each)."""
    pairs = [(a, b) for a in cluster.hosts for b in cluster.hosts if a is not b]
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        results = pool.map(
            lambda p: port_open(p[1], port, source=p[0], timeout_s=CLIENT_TIMEOUT_S), pairs
        )
        return {(a.name, b.name): ok for (a, b), ok in zip(pairs, results)}


def expected_reachability(
    cluster: Cluster, cut: Iterable[tuple[Host, Host]] = ()
) -> dict[tuple[str, str], bool]:
    """All pairs reachable except those cut (in both directions)."""
    blocked = {(a.name, b.name) for a, b in cut} | {(b.name, a.name) for a, b in cut}
    return {
        (a.name, b.name): (a.name, b.name) not in blocked
        for a in cluster.hosts for b in cluster.hosts if a is not b
    }


class Session:
    """One TCP connection from source to target's echo server, kept open
    and driven step by step from the test."""

    def __init__(self, source: Host, target: Host, port: int = ECHO_PORT) -> None:
        self.proc = source.popen(
            [PYTHON, "-c", SESSION, target.ip, str(port), str(CLIENT_TIMEOUT_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def _ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise AssertionError(f"session client exited with {self.proc.wait()}")
        return reply.rstrip("\n")

    def send(self, data: str) -> None:
        if self._ask(f"send {data}") != "sent":
            raise AssertionError("session client did not confirm the send")

    def recv(self) -> str | None:
        """The next reply, or None if none came within CLIENT_TIMEOUT_S."""
        reply = self._ask("recv")
        return None if reply == "timeout" else reply.removeprefix("got ")
