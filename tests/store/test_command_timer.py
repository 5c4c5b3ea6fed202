"""TensorStore.time_commands: every command through the store's call path
is told by name with its time, replied or refused (a real store)."""

from __future__ import annotations

import numpy as np
import pytest

from spirtd.errors import TensorNotFound
from spirtd.store import connect

TICK_S = 0.25


class TickingClock:
    """Each reading is TICK_S after the last: every command takes TICK_S."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += TICK_S
        return self.now


async def test_store_times_every_command_by_name(start_redis):
    server = start_redis()
    store = await connect(socket_path=server.socket_path, password=server.password, backend="native")
    seen: list[tuple[str, float]] = []
    try:
        await store.exists("before")  # not timed yet
        store.time_commands(TickingClock(), lambda name, seconds: seen.append((name, seconds)))
        await store.set("t", np.arange(4, dtype=np.float32))
        assert await store.exists("t")
        with pytest.raises(TensorNotFound):
            await store.get("missing")
        await store.write_fields_if_run("h", await store.run_id(), {"round": "1"})
    finally:
        await store.aclose()
    names = [name for name, _ in seen]
    assert names[:2] == ["AI.TENSORSET", "EXISTS"] and "AI.TENSORGET" in names
    assert names[-2:] == ["INFO", "EVAL"]
    assert all(seconds == TICK_S for _, seconds in seen)
