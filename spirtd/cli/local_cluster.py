"""`spirtd local-cluster`: N peers on this machine until Ctrl-C.

    spirtd local-cluster --peers 3 [--dir DIR] [--config spirtd.toml]

Makes fresh certificates (a cluster CA, node1..nodeN, a client `client` and
an operator `ops`; with --dir, those already in DIR/certs are kept), starts
N peers on 127.0.0.1, each with its own store and data dir, has them join
each other, prints how to reach them (also in DIR/cluster.json), and runs
until SIGINT (Ctrl-C) or SIGTERM: then every peer leaves and stops, with its
store. Without --dir everything is in a fresh temporary folder, removed at
the end; with --dir it is kept (jobs and models too) for the next run.
A peer that exits meanwhile is reported; the others go on.

Exit status: 0 stopped cleanly, 1 a peer failed to start, join or stop,
2 bad usage.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from spirtd.cli import EXIT_FAILED, EXIT_OK
from spirtd.localcluster.cluster import MAX_PEERS, POLL_S, LocalCluster
from spirtd.processes import describe_exit

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Stop(BaseException):
    """SIGINT or SIGTERM while the peers were starting."""


def register(commands: argparse._SubParsersAction) -> None:
    cluster = commands.add_parser("local-cluster", help="N peers on this machine, until Ctrl-C",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    cluster.add_argument("--peers", type=int, default=3, help=f"how many (1-{MAX_PEERS}; default 3)")
    cluster.add_argument("--dir", type=Path, help="keep certificates, data and logs here (default: a temporary folder)")
    cluster.add_argument("--config", type=Path, help="a TOML file of settings for every peer")
    cluster.set_defaults(handler=run_local_cluster)


def run_local_cluster(args: argparse.Namespace) -> int:
    cluster = LocalCluster(args.peers, args.dir, config=args.config)
    stop = threading.Event()
    starting = True

    def asked(signum: int, frame: FrameType | None) -> None:
        first = not stop.is_set()
        stop.set()
        if starting and first:  # once: a second signal must not cut the stop short
            raise _Stop()

    previous = {sig: signal.signal(sig, asked) for sig in _STOP_SIGNALS}
    try:
        try:
            info = cluster.start()
            starting = False
        except _Stop:
            print("stopped while starting", file=sys.stderr)
            return _report(cluster.stop())
        print(info.describe(), flush=True)
        print("Ctrl-C stops them all.", flush=True)
        reported: set[str] = set()
        while not stop.wait(POLL_S):
            for peer in cluster.peers:
                if not peer.alive and peer.id not in reported:
                    reported.add(peer.id)
                    how = describe_exit(peer.proc.returncode)  # type: ignore[union-attr]
                    print(f"peer {peer.id} {how}; the others go on. The end of {peer.log_path}:\n{peer.log_tail()}",
                          file=sys.stderr, flush=True)  # fmt: skip
        print("stopping the peers", flush=True)
        return _report(cluster.stop())
    finally:
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(problems: list[str]) -> int:
    for problem in problems:
        print(f"spirtd local-cluster: {problem}", file=sys.stderr)
    if not problems:
        print("every peer stopped", flush=True)
    return EXIT_FAILED if problems else EXIT_OK
