"""Deployment files' command lines, checked with spirtd's and spirtctl's
own argument parsers (what the containers will run)."""

from __future__ import annotations

import contextlib
import io

from spirtd.cli import build_parser as spirtd_parser
from spirtctl.cli import build_parser as spirtctl_parser

__all__ = ["spirtctl_args", "spirtctl_has", "spirtctl_parser", "spirtd_args"]


def spirtd_args(argv: list[str]):
    assert argv[0] == "spirtd", argv
    return spirtd_parser().parse_args(argv[1:])  # SystemExit(2) on anything spirtd does not take


def spirtctl_args(argv: list[str]):
    """spirtctl's parser on a command line; a command this checkout's
    spirtctl lacks (health, while it is being added) is checked with its
    options only, and test_health_checks_name_a_spirtctl_command says so."""
    assert argv[0] == "spirtctl", argv
    command = argv[1:]
    if "health" in command and not spirtctl_has("health"):
        command = [("status" if a == "health" else a) for a in command]
    return spirtctl_parser().parse_args(command)


def spirtctl_has(command: str) -> bool:
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse's usage message
            spirtctl_parser().parse_args(["--peer", "127.0.0.1:1", command])
    except SystemExit:
        return False
    return True
