"""The echo handler of bench/worker_handlers.py in a module that imports
torch, as a real gradient handler does: its cold start includes torch's
import, which a warm worker pays once."""

from __future__ import annotations

from typing import Any

import torch  # noqa: F401 - imported for its cost


def echo(request: dict[str, Any]) -> dict[str, Any]:
    return request
