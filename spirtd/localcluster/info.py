"""What a running local cluster is, and how to reach it: for people (text
with a ready-to-paste spirtctl command and Python snippet) and for
programs (cluster.json)."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path


def spirtctl_command() -> str:
    """The spirtctl installed with this spirtd (beside this interpreter),
    so that a pasted command works whatever PATH holds."""
    beside = Path(sys.executable).with_name("spirtctl")
    return str(beside) if beside.is_file() else "spirtctl"


@dataclass(frozen=True)
class PeerInfo:
    id: str
    address: str
    data_dir: Path
    log_path: Path
    pid: int


@dataclass(frozen=True)
class ClusterInfo:
    folder: Path
    certs_dir: Path
    client: str
    operator: str
    peers: tuple[PeerInfo, ...]

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.peers]

    def spirtctl(self, *command: str, peer: int = 0) -> list[str]:
        """A spirtctl command line against one peer, as the client."""
        return [spirtctl_command(), "--peer", self.peers[peer].address, "--certs-dir", str(self.certs_dir), *command]

    def python_snippet(self, peer: int = 0) -> str:
        return ("from spirt_client import Client\n\n"
                f"client = Client({self.peers[peer].address!r}, {str(self.certs_dir)!r})\n"
                "print(client.members())\n")  # fmt: skip

    def to_json(self) -> str:
        return json.dumps({
            "folder": str(self.folder), "certs_dir": str(self.certs_dir),
            "client": self.client, "operator": self.operator,
            "peers": [{"id": p.id, "address": p.address, "data_dir": str(p.data_dir), "log": str(p.log_path),
                       "pid": p.pid} for p in self.peers],
        })  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> ClusterInfo:
        raw = json.loads(text)
        peers = tuple(PeerInfo(p["id"], p["address"], Path(p["data_dir"]), Path(p["log"]), p["pid"])
                      for p in raw["peers"])  # fmt: skip
        return cls(Path(raw["folder"]), Path(raw["certs_dir"]), raw["client"], raw["operator"], peers)

    def describe(self) -> str:
        """How to reach the cluster, for a person at a terminal."""
        width = max(len(p.id) for p in self.peers)
        lines = [f"{len(self.peers)} peers running, each with its own store:"]
        lines += [f"  {p.id:<{width}}  {p.address:<21}  data {p.data_dir}  log {p.log_path}" for p in self.peers]
        lines += [
            "",
            f"certificates: {self.certs_dir} (client: {self.client}; operator: {self.operator}, "
            f"with --name {self.operator})",
            f"this list as JSON: {self.folder / 'cluster.json'}",
            "",
            "Ask a peer from another terminal:",
            "",
            "    " + shlex.join(self.spirtctl("members")),
            "",
            "or from Python:",
            "",
            *("    " + line if line else "" for line in self.python_snippet().splitlines()),
            "",
        ]
        return "\n".join(lines)
