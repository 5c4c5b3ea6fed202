"""spirtd's command line: `spirtd [--log-level L] [--log-format F] COMMAND ...`.

Each command is one module under spirtd/cli/ with a function

    register(commands: argparse._SubParsersAction) -> None

that adds its parser and sets `handler=fn(args) -> int` on it. COMMANDS
below is the one place commands are registered.

Exit status: 0 done, 1 failed (a SpirtError: the store died, ...), 2 bad
usage or settings (argparse's errors and ConfigError).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import sys
from typing import Any, Callable, Coroutine, TypeVar

from spirtd import __version__
from spirtd.errors import ConfigError, SpirtError
from spirtd.logs import FORMATS, LEVELS, setup_logging

# Modules of spirtd.cli, one per command.
COMMANDS = ("certs", "data", "local_cluster", "run", "store")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

T = TypeVar("T")
Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spirtd",
        description="Peer-to-peer ML training with in-database tensor aggregation.",
    )
    parser.add_argument("--version", action="version", version=f"spirtd {__version__}")
    parser.add_argument("--log-level", choices=LEVELS)
    parser.add_argument(
        "--log-format", choices=FORMATS,
        help="text for people, json for machines (one object a line)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    return parser


def reporting_os_errors(handler: Handler) -> Handler:
    """A file that cannot be read or written is a one-line error and exit
    status 1, like every other failure, not a traceback."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except OSError as exc:
            print(f"spirtd {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_FAILED

    return run


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Runs a command's coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        setup_logging(args.log_level or "info", args.log_format or "text")
        return args.handler(args)
    except ConfigError as exc:
        print(f"spirtd {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SpirtError as exc:
        print(f"spirtd {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
