"""`spirtd run`: a peer, until SIGTERM (it then leaves the cluster and exits 0).

    spirtd run --id node1 --listen 0.0.0.0:7100 --advertise 10.0.0.1:7100 \\
               --seeds 10.0.0.2:7100,10.0.0.3:7100 --data-dir /var/lib/spirtd \\
               --certs-dir /etc/spirtd/certs [--config spirtd.toml] [--log-format json]

Settings come from defaults, then the --config TOML file, then SPIRTD_*
environment variables (SPIRTD_ID, SPIRTD_LISTEN, SPIRTD_SEEDS, ...), then
flags; flags win. See spirtd/daemon/config.py for every key.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from spirtd.cli import EXIT_FAILED, EXIT_OK, run_async
from spirtd.logs import FORMATS, LEVELS, setup_logging

_log = logging.getLogger("spirtd.security")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run a peer", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    run.add_argument("--id", help="this peer's name, as in its certificate")
    run.add_argument("--listen", help="HOST:PORT to serve on (default 0.0.0.0:7100)")
    run.add_argument("--advertise", help="HOST:PORT others reach this peer at")
    run.add_argument("--seeds", help="comma-separated HOST:PORT of peers to join through")
    run.add_argument("--data-dir", type=Path, help="its store and state (default ./spirtd-data/ID)")
    run.add_argument("--certs-dir", type=Path, help="ca.crt, ID.crt, ID.key and crl.pem")
    run.add_argument("--config", type=Path, help="a TOML file of settings")
    run.add_argument("--insecure", action="store_const", const=True,
                     help="no TLS and no authentication: local experiments only")  # fmt: skip
    run.add_argument("--log-level", dest="run_log_level", choices=LEVELS)
    run.add_argument("--log-format", dest="run_log_format", choices=FORMATS,
                     help="text for people, json for machines (one object a line)")  # fmt: skip
    run.set_defaults(handler=run_peer)


def _flags(args: argparse.Namespace) -> dict[str, object]:
    return {
        "id": args.id, "listen": args.listen, "advertise": args.advertise, "seeds": args.seeds,
        "data_dir": args.data_dir, "certs_dir": args.certs_dir, "insecure": args.insecure,
        "log_level": args.run_log_level or args.log_level,
        "log_format": args.run_log_format or args.log_format,
    }  # fmt: skip


def run_peer(args: argparse.Namespace) -> int:
    # The handshake watch must switch gRPC's trace on before grpc is imported.
    from spirtd.rpc.counters import Counters
    from spirtd.rpc.handshake_watch import HandshakeRefusal, HandshakeWatch

    counters = Counters()
    refusals = []  # the daemon's RefusalLog, once the config is read

    def refused(r: HandshakeRefusal) -> None:
        if refusals:
            refusals[0].refused(r.reason, r.peer, f"refused a TLS connection from {r.peer}: {r.detail}")
        else:
            counters.inc(f"refused.{r.reason}")

    watch = HandshakeWatch(refused)
    traced = watch.enable_trace()
    watch.start()
    from spirtd.clock import SystemClock
    from spirtd.daemon.app import refusal_log
    from spirtd.daemon.config import load

    config = load(args.config, None, _flags(args))
    setup_logging(config.log_level, config.log_format)
    clock = SystemClock()
    refusals.append(refusal_log(config, counters, clock))
    if not traced:
        _log.warning("grpc was imported before the handshake watch: refused TLS handshakes go uncounted")
    # The watch stays on until the process ends: gRPC's core may still write
    # (trace included) while the interpreter shuts down.
    return run_async(serve(config, counters, refusals[0], clock))


async def serve(config, counters, refusals, clock) -> int:
    from spirtd.daemon.app import Daemon

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Daemon(config, counters=counters, refusals=refusals, clock=clock) as daemon:
            asked, revoked = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(daemon.must_stop.wait())
            await asyncio.wait([asked, revoked], return_when=asyncio.FIRST_COMPLETED)
            asked.cancel()
            revoked.cancel()
            if daemon.must_stop.is_set():
                return EXIT_FAILED
            logging.getLogger("spirtd").info("stopping: leaving the cluster")
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    return EXIT_OK
