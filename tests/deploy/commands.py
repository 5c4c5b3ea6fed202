"""Deployment files' command lines, checked with spirtd's and spirtctl's
own argument parsers (what the containers will run)."""

from __future__ import annotations

from spirtd.cli import build_parser as spirtd_parser
from spirtctl.cli import build_parser as spirtctl_parser

__all__ = ["spirtctl_args", "spirtctl_parser", "spirtd_args"]


def spirtd_args(argv: list[str]):
    assert argv[0] == "spirtd", argv
    return spirtd_parser().parse_args(argv[1:])  # SystemExit(2) on anything spirtd does not take


def spirtctl_args(argv: list[str]):
    assert argv[0] == "spirtctl", argv
    return spirtctl_parser().parse_args(argv[1:])
