"""`spirtd store`: the node's colocated Redis store on its own.

    spirtd store path
        prints the file of spirt's built Redis module (for a redis.conf of
        your own: loadmodule <path>)
    spirtd store serve --data-dir DIR [--persistence aof|rdb|none] [--fsync always|everysec|no]
                       [--max-memory-mb N] [--threads N] [--max-tensor-bytes N]
        runs the store in the foreground until SIGINT or SIGTERM, restarting
        redis-server if it dies; clients connect to DIR/redis.sock with the
        password in DIR/store.password
    spirtd store ping --data-dir DIR [--timeout S]
        exit 0 once the store serving DIR/redis.sock answers with the password
        in DIR/store.password (a health check for a store in a container of
        its own), 1 with the reason otherwise
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from spirtd.cli import EXIT_OK, run_async
from spirtd.errors import ConfigError, StoreUnavailable
from spirtd.store.connect import connect, read_password_file
from spirtd.store.embedded import EmbeddedStore
from spirtd.store.locate import module_path
from spirtd.store.server import FSYNC, PERSISTENCE, StoreServerConfig

_log = logging.getLogger("spirtd.store")

# StoreServerConfig fields set by flags, to name the flag in errors.
_FLAGS = {
    "module_threads": "--threads",
    "max_tensor_bytes": "--max-tensor-bytes",
    "persistence": "--persistence",
    "fsync": "--fsync",
    "max_memory_mb": "--max-memory-mb",
}
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PING_TIMEOUT_S = 5.0


def register(commands: argparse._SubParsersAction) -> None:
    store = commands.add_parser(
        "store", help="the node's colocated Redis store",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = store.add_subparsers(dest="action", metavar="ACTION", required=True)

    path = actions.add_parser("path", help="print the file of spirt's built Redis module")
    path.set_defaults(handler=run_path)

    serve = actions.add_parser("serve", help="run the store alone until SIGINT or SIGTERM")
    serve.add_argument(
        "--data-dir", type=Path, required=True,
        help="its socket, password, config, log and data (made 0700; keep the path short: "
        "unix socket paths are limited to 107 bytes)",
    )
    serve.add_argument(
        "--persistence", choices=PERSISTENCE,
        help="aof: every write logged (the default: survives a crash), rdb: snapshots only, none",
    )
    serve.add_argument("--fsync", choices=FSYNC, help="with aof: fsync every write, every second (default), or never")
    serve.add_argument("--max-memory-mb", type=int, help="the store's memory limit (default: half of the machine's)")
    serve.add_argument("--threads", type=int, help="the module's worker threads (default: one per CPU)")
    serve.add_argument(
        "--max-tensor-bytes", type=int, help="the biggest tensor the store takes (default: half of RAM)"
    )
    serve.set_defaults(handler=run_serve)

    ping = actions.add_parser("ping", help="exit 0 when the store of a data dir answers")
    ping.add_argument("--data-dir", type=Path, required=True, help="the --data-dir of its `spirtd store serve`")
    ping.add_argument("--timeout", type=float, default=PING_TIMEOUT_S, help="seconds to wait for an answer")
    ping.set_defaults(handler=run_ping)


def run_path(args: argparse.Namespace) -> int:
    print(module_path())
    return EXIT_OK


def serve_config(args: argparse.Namespace) -> StoreServerConfig:
    options: dict[str, Any] = {
        "persistence": args.persistence,
        "fsync": args.fsync,
        "max_memory_mb": args.max_memory_mb,
        "module_threads": args.threads,
        "max_tensor_bytes": args.max_tensor_bytes,
    }
    try:
        return StoreServerConfig(
            data_dir=args.data_dir, **{k: v for k, v in options.items() if v is not None}
        )
    except ConfigError as exc:
        message = str(exc)
        for field, flag in _FLAGS.items():
            message = message.replace(field, flag)
        raise ConfigError(message) from exc


def run_serve(args: argparse.Namespace) -> int:
    return run_async(serve(serve_config(args)))


def run_ping(args: argparse.Namespace) -> int:
    cfg = StoreServerConfig(data_dir=args.data_dir)
    backend = run_async(ping(cfg, args.timeout))
    print(f"the store at {cfg.socket_path} answers ({backend})")
    return EXIT_OK


async def ping(cfg: StoreServerConfig, timeout_s: float) -> str:
    """The backend of the store serving cfg's socket; StoreUnavailable if it
    does not answer within timeout_s."""
    password = read_password_file(cfg.password_file)
    try:
        async with asyncio.timeout(timeout_s):
            store = await connect(socket_path=cfg.socket_path, password=password)
            await store.aclose()
    except TimeoutError:
        raise StoreUnavailable(f"the store at {cfg.socket_path} did not answer within {timeout_s} s") from None
    return store.backend


async def serve(cfg: StoreServerConfig) -> int:
    """Runs the store until SIGINT or SIGTERM, then closes it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with EmbeddedStore(cfg) as store:
            _log.info(
                "store serving on unix socket %s; its password is in %s; stop it with SIGINT or SIGTERM",
                store.socket_path, cfg.password_file,
                extra={"socket": str(store.socket_path), "password_file": str(cfg.password_file),
                       "pid": store.pid, "persistence": cfg.persistence},
            )
            await stop.wait()
            _log.info("stopping the store")
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    return EXIT_OK
