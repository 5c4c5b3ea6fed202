"""Tensors survive a restart byte for byte: from an RDB snapshot, from a
rewritten AOF (with and without the RDB preamble), and from a plain AOF fed
by every writing command, background jobs included; DUMP/RESTORE, and
RESTORE of payloads the module must refuse."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from . import rdb_payload as rp
from .helpers import (
    NP_DTYPES,
    digest,
    error_of,
    put,
    random_array,
    sha256_hex,
    spirt_info,
    wait_until,
)

BIG_BYTES = 70 << 20  # more than one 64 MiB piece in the RDB and the AOF
NOT_LOADED = "Bad data format"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(3)


def populate(r: redis.Redis, rng: np.random.Generator) -> None:
    """Tensors of every dtype and some shapes, shared (COPY) and written ones."""
    for dtype in NP_DTYPES:
        for shape in [(1,), (5, 3), (2, 1, 4, 1)]:
            put(r, f"{dtype}{shape}", random_array(rng, dtype, shape), dtype)
    r.execute_command(
        "AI.TENSORSET", "raw", "FLOAT", 64, "BLOB", rng.bytes(256)
    )  # NaN payloads too
    r.execute_command("AI.TENSORSET", "zeros", "DOUBLE", 1000)
    r.copy("raw", "raw-copy")
    r.copy("raw", "raw-copy-written")
    r.execute_command("SPIRT.TENSORWRITE", "raw-copy-written", 10, b"written")
    r.execute_command("AI.TENSORSET", b"bin\x00key\xff", "INT8", 2, "VALUES", -1, 1)
    r.set("plain-string", "kept")


def state(r: redis.Redis) -> dict[bytes, object]:
    """Every key's type and content; tensors with dtype, shape and bytes."""
    out: dict[bytes, object] = {}
    for key in r.keys("*"):
        if r.type(key) == b"AI_TENSOR":
            out[key] = (r.execute_command("AI.TENSORGET", key, "META", "BLOB"), digest(r, key))
        else:
            out[key] = r.dump(key)
    return out


def debug_digest(r: redis.Redis) -> bytes:
    reply = r.execute_command("DEBUG", "DIGEST")
    return reply if isinstance(reply, bytes) else reply.encode()


def wait_for_rewrite(r: redis.Redis) -> None:
    def done() -> bool:
        info = r.info("persistence")
        return info["aof_rewrite_in_progress"] == 0 and info["aof_rewrite_scheduled"] == 0

    wait_until(done, "the AOF rewrite to finish")
    assert r.info("persistence")["aof_last_bgrewrite_status"] == "ok"


def aof_bytes(server) -> bytes:
    """The AOF's content: one file up to Redis 6.2, the parts listed in the
    manifest of appendonlydir/ from Redis 7 on."""
    single = server.cfg.data_dir / "appendonly.aof"
    if single.exists():
        return single.read_bytes()
    folder = server.cfg.data_dir / "appendonlydir"
    manifest = (folder / "appendonly.aof.manifest").read_text().split("\n")
    parts = [line.split()[1] for line in manifest if line.startswith("file ")]
    return b"".join((folder / part).read_bytes() for part in parts)


# ---- whole keyspace through each path ----


def test_rdb_save_and_restart_keeps_every_tensor(start_redis, rng):
    server = start_redis(persistence="rdb")
    r = server.client()
    populate(r, rng)
    before, before_digest = state(r), debug_digest(r)
    assert r.save()
    server.restart()
    r = server.client()
    assert state(r) == before
    assert debug_digest(r) == before_digest


def test_debug_reload_keeps_every_tensor(sr, rng):
    populate(sr, rng)
    before, before_digest = state(sr), debug_digest(sr)
    assert sr.execute_command("DEBUG", "RELOAD") in (b"OK", "OK", True)
    assert state(sr) == before
    assert debug_digest(sr) == before_digest


@pytest.mark.parametrize("preamble", ["no", "yes"], ids=["commands", "rdb-preamble"])
def test_aof_rewrite_and_restart_keeps_every_tensor(start_redis, rng, preamble):
    server = start_redis(persistence="aof")
    r = server.client()
    r.config_set("aof-use-rdb-preamble", preamble)
    populate(r, rng)
    before = state(r)
    r.bgrewriteaof()
    wait_for_rewrite(r)
    if preamble == "no":
        assert aof_bytes(server).startswith(b"*")  # the module's emitted commands
        assert b"AI.TENSORSET" in aof_bytes(server)
    else:
        assert aof_bytes(server).startswith(b"REDIS")
    server.restart()
    assert state(server.client()) == before


def test_plain_aof_replays_every_writing_command(start_redis, rng):
    """No rewrite: the AOF holds what each command propagated. Job results
    (inline or from the worker threads) must be in it as tensors."""
    server = start_redis(persistence="aof")
    r = server.client()
    populate(r, rng)
    small = [rng.standard_normal(40).astype(np.float32) for _ in range(5)]
    large = [rng.standard_normal(100_000).astype(np.float32) for _ in range(5)]
    for k in range(5):
        put(r, f"s{k}", small[k])
        put(r, f"l{k}", large[k])
    r.execute_command("SPIRT.TENSORWRITE", "s0", 4, b"\x00\x00\x80\x7f")  # +inf into s0[1]
    put(r, "s0", small[0])
    skeys, lkeys = [f"s{k}" for k in range(5)], [f"l{k}" for k in range(5)]
    done = spirt_info(r)["jobs_queued"]
    r.execute_command("SPIRT.AGGREGATE", "agg-inline", "mean", "INPUTS", 5, *skeys)
    r.execute_command("SPIRT.AGGREGATE", "agg-pool", "median", "INPUTS", 5, *lkeys)
    r.execute_command("SPIRT.AGGREGATE", "krum-pool", "multikrum", "INPUTS", 5, *lkeys, "F", 1)
    r.execute_command("SPIRT.AGGREGATE", "l4", "mean", "INPUTS", 2, "l4", "l3")  # dst is an input
    for _ in range(2):
        r.execute_command("SPIRT.SGD", "s1", "s2", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "s-buf")
        r.execute_command(
            "SPIRT.SGD", "l1", "l2", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "l-buf", "NESTEROV"
        )
        r.execute_command(
            "SPIRT.ADAM",
            "s3",
            "s2",
            "LR",
            0.01,
            "EXP_AVG",
            "s-m",
            "EXP_AVG_SQ",
            "s-v",
            "STEP",
            "s-step",
        )
        r.execute_command(
            "SPIRT.ADAM",
            "l3",
            "l2",
            "LR",
            0.01,
            "EXP_AVG",
            "l-m",
            "EXP_AVG_SQ",
            "l-v",
            "STEP",
            "l-step",
        )
    script = "return redis.call('SPIRT.AGGREGATE', KEYS[1], 'krum', 'INPUTS', 3, KEYS[2], KEYS[3], KEYS[4], 'F', 0)"
    r.eval(script, 4, "lua-krum", "l0", "l1", "l2")
    with pytest.raises(redis.ResponseError):  # a failed job propagates nothing
        r.execute_command("SPIRT.AGGREGATE", "never", "mean", "INPUTS", 1, "missing")
    digest(r, "l0")
    assert spirt_info(r)["jobs_queued"] > done
    before = state(r)
    server.restart()
    r = server.client()
    assert state(r) == before
    assert r.exists("never") == 0
    aof = aof_bytes(server)
    for command in (b"SPIRT.AGGREGATE", b"SPIRT.SGD", b"SPIRT.ADAM", b"SPIRT.DIGEST"):
        assert command not in aof


def test_plain_aof_keeps_results_of_jobs_in_multi(start_redis, rng):
    server = start_redis(persistence="aof")
    r = server.client()
    for k in range(3):
        put(r, f"x{k}", rng.standard_normal(70_000))
    with r.pipeline(transaction=True) as pipe:
        pipe.execute_command(
            "SPIRT.AGGREGATE", "d", "trimmed_mean", "INPUTS", 3, "x0", "x1", "x2", "B", 1
        )
        pipe.execute_command("SPIRT.SGD", "x0", "x1", "LR", 0.5)
        pipe.execute()
    before = state(r)
    server.restart()
    assert state(server.client()) == before


def test_job_results_count_as_changes_for_snapshots(start_redis, rng):
    """Redis schedules RDB snapshots ("save" rules) by its count of changes;
    a command that replaced a key must count, whether or not an AOF or a
    replica made it propagate anything."""
    r = start_redis(persistence="rdb").client()
    for k in range(3):
        put(r, f"x{k}", rng.standard_normal(10).astype(np.float32))
    commands = [
        ("SPIRT.AGGREGATE", "d", "mean", "INPUTS", 3, "x0", "x1", "x2"),
        ("SPIRT.SGD", "x0", "x1", "LR", 0.1),
        ("SPIRT.ADAM", "x0", "x1", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", "s"),
    ]
    for command in commands:
        r.save()
        assert r.info("persistence")["rdb_changes_since_last_save"] == 0
        r.execute_command(*command)
        assert r.info("persistence")["rdb_changes_since_last_save"] > 0, command[0]


# ---- a tensor bigger than one 64 MiB piece ----


@pytest.fixture(scope="module")
def big_blob() -> bytes:
    return np.random.default_rng(70).bytes(BIG_BYTES)


def test_big_tensor_survives_rdb_restart(start_redis, big_blob):
    server = start_redis(persistence="rdb")
    r = server.client()
    r.execute_command("AI.TENSORSET", "big", "FLOAT", 2, BIG_BYTES // 8, "BLOB", big_blob)
    assert r.save()
    server.restart()
    r = server.client()
    assert r.execute_command("AI.TENSORGET", "big", "META") == [
        b"dtype",
        b"FLOAT",
        b"shape",
        [2, BIG_BYTES // 8],
    ]
    assert digest(r, "big") == sha256_hex(big_blob)


def test_big_tensor_survives_aof_rewrite_and_job_propagation(start_redis, big_blob):
    """The rewrite emits AI.TENSORSET (zeros) then SPIRT.TENSORWRITE pieces;
    a job's big result is propagated the same way."""
    server = start_redis(persistence="aof")
    r = server.client()
    r.config_set("aof-use-rdb-preamble", "no")
    r.execute_command("AI.TENSORSET", "big", "UINT8", BIG_BYTES, "BLOB", big_blob)
    r.bgrewriteaof()
    wait_for_rewrite(r)
    aof = aof_bytes(server)
    assert aof.count(b"SPIRT.TENSORWRITE") == 2
    finite = np.frombuffer(big_blob, np.uint32) & np.uint32(
        0xBFFFFFFF
    )  # exponent below 255: finite
    r.execute_command("AI.TENSORSET", "f", "FLOAT", BIG_BYTES // 4, "BLOB", finite.tobytes())
    r.execute_command("SPIRT.AGGREGATE", "mean", "mean", "INPUTS", 2, "f", "f")
    expected_mean = digest(r, "mean")
    server.restart()
    r = server.client()
    assert digest(r, "big") == sha256_hex(big_blob)
    assert digest(r, "mean") == expected_mean
    assert r.execute_command("AI.TENSORGET", "mean", "META") == [
        b"dtype",
        b"FLOAT",
        b"shape",
        [BIG_BYTES // 4],
    ]


# ---- DUMP / RESTORE ----


def test_dump_restore_round_trips_every_dtype(sr, rng):
    populate(sr, rng)
    for key in sr.keys("*"):
        if sr.type(key) != b"AI_TENSOR":
            continue
        sr.restore(b"restored:" + key, 0, sr.dump(key))
        assert sr.execute_command("AI.TENSORGET", b"restored:" + key) == sr.execute_command(
            "AI.TENSORGET", key
        )


@pytest.fixture
def frame(sr) -> rp.Frame:
    sr.execute_command("AI.TENSORSET", "model", "FLOAT", 1)
    return rp.Frame.from_dump(sr.dump("model"))


F32 = 0  # the module's dtype codes, in RedisAI's order
U8 = 6
RESTORE_CASES = [
    pytest.param(rp.tensor_opcodes(F32, [2], [bytes(8)], magic=0x5350525432), id="wrong-magic"),
    pytest.param(rp.tensor_opcodes(9, [2], [bytes(2)]), id="dtype-out-of-range"),
    pytest.param(rp.tensor_opcodes(F32, [], [b""]), id="no-dims"),
    pytest.param(rp.tensor_opcodes(U8, [1] * 33, [b"x"]), id="33-dims"),
    pytest.param(rp.tensor_opcodes(F32, [2, 0], [b""]), id="zero-dim"),
    pytest.param(rp.tensor_opcodes(F32, [2**63], [bytes(8)], nbytes=8), id="dim-over-int64"),
    pytest.param(rp.tensor_opcodes(F32, [2], [bytes(8)], nbytes=12), id="nbytes-mismatch"),
    pytest.param(rp.tensor_opcodes(F32, [2], [], nbytes=8), id="no-chunks"),
    pytest.param(rp.tensor_opcodes(F32, [2], [bytes(4)], nbytes=8), id="short-chunk"),
    pytest.param(rp.tensor_opcodes(F32, [2], [bytes(4), bytes(8)], nbytes=8), id="chunks-overrun"),
    pytest.param(rp.tensor_opcodes(F32, [2], [bytes(12)], nbytes=8), id="long-chunk"),
    pytest.param(rp.tensor_opcodes(F32, [2], [bytes(8)], nchunks=3), id="missing-chunks"),
    pytest.param(rp.tensor_opcodes(U8, [1 << 30], [bytes(8)], nbytes=1 << 30), id="claims-1-GiB"),
    pytest.param(
        rp.tensor_opcodes(U8, [2**31, 2**31, 2**31], [b""], nbytes=0), id="elements-overflow"
    ),
    pytest.param(rp.uint(rp.MAGIC) + rp.uint(F32), id="truncated-header"),
    pytest.param(rp.tensor_opcodes(F32, [2], [bytes(8)])[:-3], id="truncated-chunk"),
    pytest.param(rp.uint(rp.MAGIC) + rp.string(b"xx") + rp.uint(1), id="string-for-uint"),
    pytest.param(b"", id="empty"),
]


@pytest.mark.parametrize("opcodes", RESTORE_CASES)
def test_restore_refuses_inconsistent_tensor(sr, frame, opcodes):
    assert error_of(sr, "RESTORE", "k", 0, frame.payload(opcodes)) == NOT_LOADED
    assert sr.exists("k") == 0
    assert sr.ping()


@pytest.mark.parametrize(
    "dtype,dims,chunks",
    [
        (F32, [2], [np.array([1.5, -2], np.float32).tobytes()]),
        (U8, [3, 2], [b"ab", b"", b"cdef"]),
        (U8, [1], [b"z"]),
    ],
    ids=["one-chunk", "several-chunks", "one-byte"],
)
def test_restore_accepts_a_handmade_tensor(sr, frame, dtype, dims, chunks):
    assert sr.restore("k", 0, frame.payload(rp.tensor_opcodes(dtype, dims, chunks)))
    assert sr.execute_command("AI.TENSORGET", "k", "META", "BLOB") == [
        b"dtype",
        [b"FLOAT", b"DOUBLE", b"INT8", b"INT16", b"INT32", b"INT64", b"UINT8"][dtype],
        b"shape",
        dims,
        b"blob",
        b"".join(chunks),
    ]


def test_restore_refuses_a_tensor_over_max_tensor_bytes(start_redis):
    r = start_redis(max_tensor_bytes=16).client()
    r.execute_command("AI.TENSORSET", "model", "FLOAT", 1)
    frame = rp.Frame.from_dump(r.dump("model"))
    assert r.restore("ok", 0, frame.payload(rp.tensor_opcodes(U8, [16], [bytes(16)])))
    assert (
        error_of(r, "RESTORE", "k", 0, frame.payload(rp.tensor_opcodes(U8, [17], [bytes(17)])))
        == NOT_LOADED
    )
