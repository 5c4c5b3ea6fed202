"""SPIRT.TENSORWRITE / SPIRT.TENSORREAD at byte offsets, copy-on-write
across COPY, and SPIRT.DIGEST against hashlib."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import NP_DTYPES, digest, error_of, jobs_queued, random_array, sha256_hex, snapshot

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NBYTES = 40  # the tensor most tests write into: UINT8 [5, 8]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def base(sr, rng) -> bytearray:
    """Key "t": a UINT8 [5, 8] tensor of random bytes; returns its bytes."""
    data = bytearray(rng.bytes(NBYTES))
    sr.execute_command("AI.TENSORSET", "t", "UINT8", 5, 8, "BLOB", bytes(data))
    return data


def _blob(r, key: str) -> bytes:
    return r.execute_command("AI.TENSORGET", key, "BLOB")


# ---- writes and reads at offsets ----


@pytest.mark.parametrize(
    "offset,length",
    [(0, 8), (0, NBYTES), (13, 7), (NBYTES - 3, 3), (0, 0), (17, 0), (NBYTES, 0), (39, 1)],
    ids=[
        "start",
        "whole",
        "middle",
        "end",
        "empty-start",
        "empty-middle",
        "empty-at-end",
        "last-byte",
    ],
)
def test_tensorwrite_replaces_exactly_the_range(sr, base, rng, offset, length):
    chunk = rng.bytes(length)
    assert sr.execute_command("SPIRT.TENSORWRITE", "t", offset, chunk) == b"OK"
    base[offset : offset + length] = chunk
    assert _blob(sr, "t") == bytes(base)
    assert sr.execute_command("AI.TENSORGET", "t", "META") == [b"dtype", b"UINT8", b"shape", [5, 8]]


@pytest.mark.parametrize(
    "offset,length",
    [(0, NBYTES), (0, 1), (10, 20), (NBYTES - 1, 1), (0, 0), (NBYTES, 0), (22, 0)],
    ids=["whole", "first", "middle", "last", "empty-start", "empty-at-end", "empty-middle"],
)
def test_tensorread_returns_exactly_the_range(sr, base, offset, length):
    assert sr.execute_command("SPIRT.TENSORREAD", "t", offset, length) == bytes(
        base[offset : offset + length]
    )


def test_tensor_moves_in_chunks_both_ways(sr, rng):
    """A FLOAT tensor written in odd-sized pieces reads back whole."""
    arr = random_array(rng, "FLOAT", (1000,))
    data = arr.tobytes()
    sr.execute_command("AI.TENSORSET", "t", "FLOAT", 1000)
    for off in range(0, len(data), 333):
        sr.execute_command("SPIRT.TENSORWRITE", "t", off, data[off : off + 333])
    pieces = [
        sr.execute_command("SPIRT.TENSORREAD", "t", off, min(777, len(data) - off))
        for off in range(0, len(data), 777)
    ]
    assert b"".join(pieces) == data == _blob(sr, "t")


def test_tensorwrite_keywords_are_plain_bytes(sr, base):
    """The chunk is data even when it spells a keyword or is binary."""
    sr.execute_command("SPIRT.TENSORWRITE", "t", 0, b"BLOB")
    sr.execute_command("SPIRT.TENSORWRITE", "t", 4, b"\x00\r\n\xff")
    assert _blob(sr, "t")[:8] == b"BLOB\x00\r\n\xff"


# ---- errors ----

RANGE_ERRORS = [
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", 41, b""],
        "0 bytes at offset 41 do not fit in a tensor of 40 bytes",
        id="w-offset-past-end",
    ),
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", 39, b"ab"],
        "2 bytes at offset 39 do not fit in a tensor of 40 bytes",
        id="w-overrun",
    ),
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", 0, bytes(41)],
        "41 bytes at offset 0 do not fit in a tensor of 40 bytes",
        id="w-too-long",
    ),
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", 2**63 - 1, b"a"],
        "1 bytes at offset 9223372036854775807 do not fit in a tensor of 40 bytes",
        id="w-max-offset",
    ),
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", -1, b"a"],
        "offset must be a non-negative integer",
        id="w-negative",
    ),
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", 2**63, b"a"],
        "offset must be a non-negative integer",
        id="w-over-int64",
    ),
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", "1.0", b"a"],
        "offset must be a non-negative integer",
        id="w-fraction",
    ),
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", "x", b"a"], "offset must be a non-negative integer", id="w-word"
    ),
    pytest.param(
        ["SPIRT.TENSORWRITE", "missing", 0, b"a"],
        "tensor key is empty or in a different shard",
        id="w-missing",
    ),
    pytest.param(["SPIRT.TENSORWRITE", "s", 0, b"a"], WRONGTYPE, id="w-string"),
    pytest.param(["SPIRT.TENSORWRITE", "s", -1, b"a"], WRONGTYPE, id="w-string-bad-offset"),
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", 0],
        "wrong number of arguments for 'SPIRT.TENSORWRITE' command",
        id="w-arity-short",
    ),
    pytest.param(
        ["SPIRT.TENSORWRITE", "t", 0, b"a", b"b"],
        "wrong number of arguments for 'SPIRT.TENSORWRITE' command",
        id="w-arity-long",
    ),
    pytest.param(
        ["SPIRT.TENSORREAD", "t", 41, 0],
        "0 bytes at offset 41 do not fit in a tensor of 40 bytes",
        id="r-offset-past-end",
    ),
    pytest.param(
        ["SPIRT.TENSORREAD", "t", 0, 41],
        "41 bytes at offset 0 do not fit in a tensor of 40 bytes",
        id="r-too-long",
    ),
    pytest.param(
        ["SPIRT.TENSORREAD", "t", 30, 11],
        "11 bytes at offset 30 do not fit in a tensor of 40 bytes",
        id="r-overrun",
    ),
    pytest.param(
        ["SPIRT.TENSORREAD", "t", 1, 2**63 - 1],
        "9223372036854775807 bytes at offset 1 do not fit in a tensor of 40 bytes",
        id="r-max-length",
    ),
    pytest.param(
        ["SPIRT.TENSORREAD", "t", -1, 1],
        "offset must be a non-negative integer",
        id="r-negative-offset",
    ),
    pytest.param(
        ["SPIRT.TENSORREAD", "t", 0, -1],
        "length must be a non-negative integer",
        id="r-negative-length",
    ),
    pytest.param(
        ["SPIRT.TENSORREAD", "t", "x", "y"],
        "offset must be a non-negative integer",
        id="r-both-bad",
    ),
    pytest.param(
        ["SPIRT.TENSORREAD", "t", 0, "1e2"],
        "length must be a non-negative integer",
        id="r-length-exponent",
    ),
    pytest.param(
        ["SPIRT.TENSORREAD", "missing", 0, 1],
        "tensor key is empty or in a different shard",
        id="r-missing",
    ),
    pytest.param(["SPIRT.TENSORREAD", "s", 0, 1], WRONGTYPE, id="r-string"),
    pytest.param(
        ["SPIRT.TENSORREAD", "t", 0],
        "wrong number of arguments for 'SPIRT.TENSORREAD' command",
        id="r-arity",
    ),
    pytest.param(
        ["SPIRT.DIGEST", "missing"], "tensor key is empty or in a different shard", id="d-missing"
    ),
    pytest.param(["SPIRT.DIGEST", "s"], WRONGTYPE, id="d-string"),
    pytest.param(
        ["SPIRT.DIGEST"], "wrong number of arguments for 'SPIRT.DIGEST' command", id="d-arity-short"
    ),
    pytest.param(
        ["SPIRT.DIGEST", "t", "t"],
        "wrong number of arguments for 'SPIRT.DIGEST' command",
        id="d-arity-long",
    ),
]


@pytest.mark.parametrize("args,message", RANGE_ERRORS)
def test_chunk_command_errors_leave_keys_unchanged(sr, base, args, message):
    sr.set("s", "text")
    before = snapshot(sr, ["t", "s", "missing"])
    assert error_of(sr, *args) == message
    assert snapshot(sr, ["t", "s", "missing"]) == before


# ---- copy-on-write across COPY ----


def test_tensorwrite_to_a_copy_leaves_the_original(sr, base):
    assert sr.copy("t", "c") == 1
    sr.execute_command("SPIRT.TENSORWRITE", "c", 3, b"xyz")
    changed = bytearray(base)
    changed[3:6] = b"xyz"
    assert _blob(sr, "t") == bytes(base)
    assert _blob(sr, "c") == bytes(changed)


def test_tensorwrite_to_the_original_leaves_the_copy(sr, base):
    sr.copy("t", "c")
    sr.copy("t", "c2")
    sr.execute_command("SPIRT.TENSORWRITE", "t", 0, b"\xff" * NBYTES)
    assert _blob(sr, "t") == b"\xff" * NBYTES
    assert _blob(sr, "c") == bytes(base) == _blob(sr, "c2")
    sr.execute_command("SPIRT.TENSORWRITE", "c", 0, b"\x01")
    assert _blob(sr, "c2") == bytes(base)
    assert _blob(sr, "c") == b"\x01" + bytes(base[1:])


def test_copy_of_a_copy_written_many_times(sr, base, rng):
    """Each key of a COPY chain keeps its own history of writes."""
    keys = ["t", "c1", "c2", "c3"]
    for k in keys[1:]:
        sr.copy("t", k)
    expected = {k: bytearray(base) for k in keys}
    for i in range(40):
        k = keys[int(rng.integers(len(keys)))]
        off = int(rng.integers(NBYTES))
        chunk = rng.bytes(int(rng.integers(0, NBYTES - off + 1)))
        sr.execute_command("SPIRT.TENSORWRITE", k, off, chunk)
        expected[k][off : off + len(chunk)] = chunk
        if i % 7 == 0:
            sr.copy(k, "tmp", replace=True)
            expected["tmp"] = bytearray(expected[k])
    for k, data in expected.items():
        assert _blob(sr, k) == bytes(data), k


def test_tensorset_over_a_copy_leaves_the_original(sr, base):
    sr.copy("t", "c")
    sr.execute_command("AI.TENSORSET", "c", "UINT8", 5, 8)
    assert _blob(sr, "t") == bytes(base)
    assert _blob(sr, "c") == bytes(NBYTES)


def test_deleting_the_original_keeps_the_copy(sr, base):
    sr.copy("t", "c")
    sr.delete("t")
    assert _blob(sr, "c") == bytes(base)
    sr.execute_command("SPIRT.TENSORWRITE", "c", 0, b"z")
    assert _blob(sr, "c")[:1] == b"z"


# ---- SPIRT.DIGEST ----

# Sizes on both sides of SHA-256's padding boundaries (55/56 bytes leave or
# need a second block) and of whole blocks.
DIGEST_SIZES = [1, 2, 55, 56, 57, 63, 64, 65, 111, 119, 120, 127, 128, 129, 1000, 4096, 65537]


@pytest.mark.parametrize("nbytes", DIGEST_SIZES)
def test_digest_matches_hashlib_at_block_boundaries(sr, rng, nbytes):
    data = rng.bytes(nbytes)
    sr.execute_command("AI.TENSORSET", "t", "UINT8", nbytes, "BLOB", data)
    assert digest(sr, "t") == sha256_hex(data)


@pytest.mark.parametrize("nbytes", [1, 55, 56, 64])
def test_digest_of_zeros(sr, nbytes):
    sr.execute_command("AI.TENSORSET", "t", "INT8", nbytes)
    assert digest(sr, "t") == sha256_hex(bytes(nbytes))


@pytest.mark.parametrize("dtype", NP_DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (7,), (2, 2, 2, 2)], ids=str)
def test_digest_matches_hashlib_for_every_dtype(sr, rng, dtype, shape):
    arr = random_array(rng, dtype, shape)
    sr.execute_command("AI.TENSORSET", "t", dtype, *shape, "BLOB", arr.tobytes())
    assert digest(sr, "t") == sha256_hex(arr.tobytes())


def test_digest_of_a_big_tensor_runs_on_the_pool(sr, rng):
    """Above INLINE_BYTES (256 KiB by default) the hash runs off the main thread."""
    data = rng.bytes(3 << 20)
    sr.execute_command("AI.TENSORSET", "t", "UINT8", len(data), "BLOB", data)
    before = jobs_queued(sr)
    assert digest(sr, "t") == sha256_hex(data)
    assert jobs_queued(sr) == before + 1


def test_digest_of_a_small_tensor_runs_inline(sr, rng):
    data = rng.bytes(1000)
    sr.execute_command("AI.TENSORSET", "t", "UINT8", len(data), "BLOB", data)
    before = jobs_queued(sr)
    assert digest(sr, "t") == sha256_hex(data)
    assert jobs_queued(sr) == before


def test_digest_follows_writes_and_copies(sr, base):
    sr.copy("t", "c")
    assert digest(sr, "c") == digest(sr, "t") == sha256_hex(bytes(base))
    sr.execute_command("SPIRT.TENSORWRITE", "c", 5, b"!")
    base_c = bytearray(base)
    base_c[5:6] = b"!"
    assert digest(sr, "c") == sha256_hex(bytes(base_c))
    assert digest(sr, "t") == sha256_hex(bytes(base))


def test_digest_in_multi_and_lua(sr, rng):
    data = rng.bytes(300_000)
    sr.execute_command("AI.TENSORSET", "t", "UINT8", len(data), "BLOB", data)
    before = jobs_queued(sr)
    with sr.pipeline(transaction=True) as pipe:
        pipe.execute_command("SPIRT.DIGEST", "t")
        pipe.execute_command("SPIRT.DIGEST", "t")
        got = pipe.execute()
    assert [g.decode() if isinstance(g, bytes) else g for g in got] == [sha256_hex(data)] * 2
    lua = sr.eval("return redis.call('SPIRT.DIGEST', KEYS[1])", 1, "t")
    assert (lua.decode() if isinstance(lua, bytes) else lua) == sha256_hex(data)
    assert jobs_queued(sr) == before  # inline inside MULTI and Lua


def test_jobs_of_at_least_inline_bytes_run_on_the_pool(start_spirt, rng):
    """INLINE_BYTES is the smallest job (bytes read and written) sent to the
    pool; anything smaller runs inline."""
    r = start_spirt(inline_bytes=1000).client()
    for nbytes, pool in [(999, False), (1000, True), (1001, True), (1, False)]:
        data = rng.bytes(nbytes)
        r.execute_command("AI.TENSORSET", "t", "UINT8", nbytes, "BLOB", data)
        before = jobs_queued(r)
        assert digest(r, "t") == sha256_hex(data)
        assert jobs_queued(r) == before + pool, nbytes


@pytest.mark.parametrize("threads", [1, 3])
def test_digest_with_inline_bytes_zero(start_spirt, rng, threads):
    r = start_spirt(inline_bytes=0, module_threads=threads).client()
    for nbytes in (1, 56, 64, 65, 100_003):
        data = rng.bytes(nbytes)
        r.execute_command("AI.TENSORSET", f"t{nbytes}", "UINT8", nbytes, "BLOB", data)
        assert digest(r, f"t{nbytes}") == sha256_hex(data)
    assert jobs_queued(r) == 5
