"""Real `spirtd run` processes for tests, and a Control client to ask them.

Every peer logs JSON lines to its own file; the address it advertises is read
from its first log line, so peers listen on port 0 and never collide.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Sequence, TypeVar

import grpc

from spirtd.api.spirt.v1 import control_pb2, control_pb2_grpc, membership_pb2

SPIRTD = str(Path(sys.executable).with_name("spirtd"))
SPIRTCTL = str(Path(sys.executable).with_name("spirtctl"))
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 5.0
POLL_S = 0.05
T = TypeVar("T")


@dataclass
class Peer:
    id: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen
    address: str = ""
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"msg": raw, "level": "raw"})
        return lines

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        return self.proc.wait(timeout_s)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class Peers:
    """Starts peers on demand and stops every one of them at close()."""

    def __init__(self, root: Path, certs_dir: Path | None, *, host: str = "127.0.0.1",
                 config_text: str = "") -> None:  # fmt: skip
        self.root = root
        self.certs_dir = certs_dir
        self.host = host
        self.config_text = config_text
        self.started: list[Peer] = []

    def start(self, peer_id: str, *, seeds: Sequence[str] = (), extra: Sequence[str] = (),
              wait: bool = True, prefix: Sequence[str] = (), listen: str | None = None,
              advertise: str | None = None, env: dict[str, str] | None = None) -> Peer:  # fmt: skip
        data_dir = self.root / peer_id
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.root / f"{peer_id}.log"
        argv = [*prefix, SPIRTD, "run", "--id", peer_id, "--listen", listen or f"{self.host}:0",
                "--data-dir", str(data_dir), "--log-format", "json"]  # fmt: skip
        if advertise:
            argv += ["--advertise", advertise]
        if self.certs_dir is not None:
            argv += ["--certs-dir", str(self.certs_dir)]
        if seeds:
            argv += ["--seeds", ",".join(seeds)]
        if self.config_text:
            config = self.root / f"{peer_id}.toml"
            config.write_text(self.config_text)
            argv += ["--config", str(config)]
        argv += list(extra)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env={**os.environ, **(env or {})})  # fmt: skip
        peer = Peer(peer_id, data_dir, log_path, proc, argv=argv, env=dict(env or {}))
        self.started.append(peer)
        if wait:
            self.wait_started(peer)
        return peer

    def wait_started(self, peer: Peer, skip_lines: int = 0) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in peer.log_lines()[skip_lines:]:
                if line.get("address") and "serving on" in str(line.get("msg", "")):
                    peer.address = line["address"]
                    return
            if not peer.alive:
                raise AssertionError(f"{peer.id} exited with {peer.proc.returncode}:\n{peer.log_text()}")
            time.sleep(POLL_S)
        raise AssertionError(f"{peer.id} did not start within {START_TIMEOUT_S}s:\n{peer.log_text()}")

    def restart(self, peer: Peer) -> Peer:
        """Starts the same peer again: same id, data dir, arguments and address."""
        argv = list(peer.argv)
        argv[argv.index("--listen") + 1] = peer.address
        seen = len(peer.log_lines())
        with open(peer.log_path, "ab") as log:
            peer.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env={**os.environ, **peer.env})  # fmt: skip
        self.wait_started(peer, skip_lines=seen)
        return peer

    def close(self) -> list[str]:
        """Stops every peer (SIGTERM, then SIGKILL); returns problems seen."""
        problems = []
        for peer in self.started:
            if peer.alive:
                peer.signal(signal.SIGTERM)
        for peer in self.started:
            try:
                peer.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                peer.signal(signal.SIGKILL)
                peer.proc.wait()
                problems.append(f"{peer.id} did not stop on SIGTERM within {STOP_TIMEOUT_S}s")
            try:
                os.killpg(peer.proc.pid, signal.SIGKILL)  # its redis-server, if left
            except ProcessLookupError:
                pass
        return problems


class Control:
    """Control calls to one peer with a client certificate."""

    def __init__(self, address: str, certs_dir: Path | None, name: str = "client") -> None:
        self.address = address
        if certs_dir is None:
            self.channel = grpc.aio.insecure_channel(address)
        else:
            creds = grpc.ssl_channel_credentials(
                (certs_dir / "ca.crt").read_bytes(),
                private_key=(certs_dir / f"{name}.key").read_bytes(),
                certificate_chain=(certs_dir / f"{name}.crt").read_bytes(),
            )
            self.channel = grpc.aio.secure_channel(address, creds)
        self.stub = control_pb2_grpc.ControlStub(self.channel)

    async def status(self) -> control_pb2.StatusResponse:
        return await self.stub.Status(control_pb2.StatusRequest(), timeout=CALL_TIMEOUT_S)

    async def members(self) -> dict[str, str]:
        """id -> state name (alive, suspect, dead, left)."""
        reply = await self.stub.Members(control_pb2.MembersRequest(), timeout=CALL_TIMEOUT_S)
        return {m.id: membership_pb2.MemberState.Name(m.state).lower() for m in reply.members}

    async def aclose(self) -> None:
        await self.channel.close()


async def eventually(check: Callable[[], Awaitable[T]], timeout_s: float, what: str) -> T:
    """Polls check() until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last  # type: ignore[return-value]
        except grpc.aio.AioRpcError as exc:
            last = exc
        await asyncio.sleep(POLL_S * 4)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last}")
