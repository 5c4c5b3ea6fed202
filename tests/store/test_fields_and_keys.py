"""The store API's small hashes and key spaces, on every backend: records
beside the tensors, a write refused once the store restarted, glob scans
and deletes, the memory limit."""

from __future__ import annotations

import pytest

from spirtd.errors import StoreRestarted
from spirtd.store import connect


async def test_fields_round_trip_and_merge(stores):
    async def body(store):
        assert await store.read_fields("h") == {}
        await store.write_fields("h", {"round": "3", "loss": "0.5"})
        await store.write_fields("h", {"round": "4"})
        await store.write_fields("h", {})  # nothing to write: no error
        return await store.read_fields("h")

    assert await _run(stores, body) == {"round": "4", "loss": "0.5"}


async def test_a_write_for_another_run_of_the_store_is_refused_whole(stores):
    async def body(store):
        run = await store.run_id()
        await store.write_fields_if_run("h", run, {"round": "1"})
        with pytest.raises(StoreRestarted, match="the store restarted"):
            await store.write_fields_if_run("h", "0" * 40, {"round": "2", "extra": "x"})
        return await store.read_fields("h")

    assert await _run(stores, body) == {"round": "1"}


async def test_keys_matching_and_delete_matching_keep_what_is_asked(stores):
    async def body(store):
        for key in ("job:a:1", "job:a:2", "job:b:1", "other"):
            await store.write_fields(key, {"x": "1"})
        await store.client.set(b"job:a:\xff", b"1")  # a key that is not UTF-8 still goes
        matched = sorted(await store.keys_matching("job:a:*"))
        deleted = await store.delete_matching("job:a:*", keep=lambda key: key == "job:a:2")
        return matched, deleted, sorted(await store.keys_matching("*"))

    matched, deleted, left = await _run(stores, body)
    assert matched == ["job:a:1", "job:a:2", "job:a:\ufffd"]
    assert deleted == 2 and left == ["job:a:2", "job:b:1", "other"]


async def test_the_memory_limit_is_read_from_the_server(start_redis):
    limited = start_redis("limited", max_memory_mb=64)
    store = await connect(socket_path=limited.socket_path, password=limited.password)
    try:
        assert await store.memory_limit_bytes() == 64 << 20
    finally:
        await store.aclose()


async def _run(stores, body):
    async with await stores.open() as store:
        return await body(store)
