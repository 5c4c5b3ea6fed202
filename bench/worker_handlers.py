"""Trivial handlers for bench/worker.py (imported by the worker processes,
with bench/ on their PYTHONPATH). This module imports nothing heavy: a cold
start with it costs the interpreter and spirtd.workers.worker_main only."""

from __future__ import annotations

from typing import Any


def echo(request: dict[str, Any]) -> dict[str, Any]:
    return request
