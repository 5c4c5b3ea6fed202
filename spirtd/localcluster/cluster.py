"""N peers on this machine, for demos, notebooks and tests.

    from spirtd.localcluster import LocalCluster

    with LocalCluster(peers=3) as cluster:       # fresh certificates, a store each, joined
        print(cluster.addresses, cluster.certs_dir)
        ...                                      # spirtctl, spirt_client, ...
    # every peer stopped (SIGTERM: it leaves), and its redis-server with it

The folder (a fresh temporary one, removed at the end, unless `folder` is
given: then kept, and used again next time) holds certs/ (the cluster CA,
node1..nodeN, a client `client` and an operator `ops`), one data dir per
peer, logs/ and cluster.json (what `info` returns, written once the peers
have joined). Peers listen on 127.0.0.1, on ports the kernel picks.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from spirtd.clock import Clock, SystemClock
from spirtd.errors import ConfigError, LocalClusterError
from spirtd.files import PUBLIC_MODE, write_atomically
from spirtd.localcluster.info import ClusterInfo, PeerInfo
from spirtd.localcluster.process import SPIRTD, PeerProcess
from spirtd.security.bundle import ClusterNames, ensure_cluster_certs

HOST = "127.0.0.1"
MAX_PEERS = 64
CLIENT, OPERATOR = "client", "ops"
START_TIMEOUT_S = 60.0
"""How long the peers may take to serve and to see each other alive (a
peer starts its store first; on two busy cores that takes seconds)."""
STOP_TIMEOUT_S = 30.0
"""How long each peer may take to leave and stop after SIGTERM."""
POLL_S = 0.1
TEMP_PREFIX = "spirtd-cluster-"


class LocalCluster:
    """Starts N peers at `start()` (or `with`), stops them all at `stop()`."""

    def __init__(self, peers: int = 3, folder: Path | str | None = None, *, config: Path | str | None = None,
                 clock: Clock | None = None, start_timeout_s: float = START_TIMEOUT_S,
                 stop_timeout_s: float = STOP_TIMEOUT_S) -> None:  # fmt: skip
        if isinstance(peers, bool) or not isinstance(peers, int) or not 1 <= peers <= MAX_PEERS:
            raise ConfigError(f"a local cluster has 1 to {MAX_PEERS} peers, not {peers!r}")
        if config is not None and not Path(config).is_file():
            raise ConfigError(f"the settings file {config} is not there")
        self.size = peers
        self._given = Path(folder).absolute() if folder is not None else None
        self._config = Path(config).absolute() if config is not None else None
        self._clock = clock or SystemClock()
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self.folder: Path | None = None
        self.peers: list[PeerProcess] = []
        self._stopped = False

    # ---- what callers read ----

    @property
    def certs_dir(self) -> Path:
        return self._folder() / "certs"

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.peers]

    def info(self) -> ClusterInfo:
        return ClusterInfo(
            folder=self._folder(), certs_dir=self.certs_dir, client=CLIENT, operator=OPERATOR,
            peers=tuple(PeerInfo(p.id, p.address, p.data_dir, p.log_path, p.pid or 0) for p in self.peers),
        )  # fmt: skip

    def peer(self, peer_id: str) -> PeerProcess:
        for p in self.peers:
            if p.id == peer_id:
                return p
        raise ConfigError(f"no peer {peer_id!r} in this cluster; it has {', '.join(p.id for p in self.peers)}")

    # ---- lifecycle ----

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        problems = self.stop()
        if problems and kind is None:
            raise LocalClusterError("; ".join(problems))

    def start(self) -> ClusterInfo:
        """Makes the certificates, starts every peer (the first one, then the
        others through it), and returns once each sees all N alive. On any
        failure it stops what it started and raises LocalClusterError."""
        if self.peers:
            raise LocalClusterError("this local cluster was started already")
        folder = self._make_folder()
        ids = [f"node{i}" for i in range(1, self.size + 1)]
        ensure_cluster_certs(self.certs_dir, ClusterNames(peers=tuple(ids), clients=(CLIENT,), operators=(OPERATOR,),
                                                          ips=(HOST,), dns=("localhost",)))  # fmt: skip
        (folder / "logs").mkdir(exist_ok=True)
        try:
            first = self._start_peer(ids[0], seeds=[])
            first.wait_serving(self._clock, self._start_timeout_s)
            for peer_id in ids[1:]:
                self._start_peer(peer_id, seeds=[first.address])
            for peer in self.peers[1:]:
                peer.wait_serving(self._clock, self._start_timeout_s)
            self.wait_joined()
        except BaseException:
            self.stop(keep_folder=True)  # its logs say why
            raise
        info = self.info()
        write_atomically(folder / "cluster.json", (info.to_json() + "\n").encode(), PUBLIC_MODE)
        return info

    def stop(self, keep_folder: bool = False) -> list[str]:
        """SIGTERM to every peer (each leaves the cluster, stops its store
        and exits), SIGKILL to any still there after stop_timeout_s; removes
        a temporary folder unless keep_folder. Returns the problems seen
        (none: a clean stop). Idempotent."""
        if self._stopped:
            return []
        self._stopped = True
        for peer in self.peers:
            peer.signal(signal.SIGTERM)
        problems = [p for p in (peer.finish(self._stop_timeout_s) for peer in self.peers) if p]
        if self._given is None and self.folder is not None and not keep_folder and not problems:
            shutil.rmtree(self.folder, ignore_errors=True)
        return problems

    def restart(self, peer_id: str) -> PeerProcess:
        """Starts a peer that exited (or was killed) again: same id, data
        dir, certificate and address, joining through the others; returns
        once it serves (wait_joined() waits for the others to see it)."""
        peer = self.peer(peer_id)
        if peer.alive:
            raise LocalClusterError(f"peer {peer_id} is still running (pid {peer.pid}); stop or kill it first")
        peer.argv[peer.argv.index("--listen") + 1] = peer.address
        seeds = ",".join(p.address for p in self.peers if p is not peer)
        if "--seeds" in peer.argv:
            peer.argv[peer.argv.index("--seeds") + 1] = seeds
        elif seeds:
            peer.argv += ["--seeds", seeds]
        peer.start()
        peer.wait_serving(self._clock, self._start_timeout_s)
        return peer

    def wait_joined(self, timeout_s: float | None = None) -> None:
        """Blocks until every running peer sees every running peer alive."""
        timeout_s = self._start_timeout_s if timeout_s is None else timeout_s
        deadline = self._clock.monotonic() + timeout_s
        pause = threading.Event()
        # grpc is imported here, not with the module: `spirtd run` must
        # import it only after its handshake watch is on.
        from spirtd.localcluster.members import MembersAsker

        ask = MembersAsker(self.certs_dir, CLIENT)
        last: dict[str, object] = {}
        while True:
            running = [p for p in self.peers if p.alive]
            if len(running) < len(self.peers):
                gone = next(p for p in self.peers if not p.alive)
                raise LocalClusterError(f"peer {gone.id} exited while the cluster was forming; the end of "
                                        f"{gone.log_path}:\n{gone.log_tail()}")  # fmt: skip
            wanted = {p.id for p in running}
            for peer in running:
                last[peer.id] = ask.alive(peer.address)
            if all(seen == wanted for seen in last.values()):
                return
            if self._clock.monotonic() > deadline:
                views = "; ".join(f"{pid} sees {v if isinstance(v, str) else sorted(v)}" for pid, v in last.items())
                raise LocalClusterError(f"the peers did not all see each other within {timeout_s} s: {views}")
            pause.wait(POLL_S)

    # ---- inside ----

    def _folder(self) -> Path:
        if self.folder is None:
            raise LocalClusterError("the local cluster is not started")
        return self.folder

    def _make_folder(self) -> Path:
        if self._given is not None:
            self._given.mkdir(parents=True, exist_ok=True)
            self.folder = self._given
        else:
            self.folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp"))  # short: unix socket paths
        return self.folder

    def _start_peer(self, peer_id: str, seeds: list[str]) -> PeerProcess:
        folder = self._folder()
        data_dir = folder / peer_id
        argv = [*SPIRTD, "run", "--id", peer_id, "--listen", f"{HOST}:0", "--data-dir", str(data_dir),
                "--certs-dir", str(self.certs_dir), "--log-format", "json"]  # fmt: skip
        if seeds:
            argv += ["--seeds", ",".join(seeds)]
        if self._config is not None:
            argv += ["--config", str(self._config)]
        peer = PeerProcess(peer_id, data_dir, folder / "logs" / f"{peer_id}.log", argv)
        self.peers.append(peer)
        peer.start()
        return peer

