"""AI.TENSORSET / AI.TENSORGET: RedisAI's syntax, reply layouts and error
texts, for every dtype; every error leaves the target key as it was."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import redis

from spirtd.store.server import StoreServerConfig, prepare
from tests.conftest import SERVER_START_TIMEOUT_S, _sanitizer_env

from .helpers import (
    FLOAT_DTYPES,
    INT_DTYPES,
    NP_DTYPES,
    add_module_args,
    error_of,
    random_array,
    snapshot,
    spirt_info,
)

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"

# Values at the edges of each integer dtype, negative INT64 included (which
# RedisAI refused).
INT_EDGES = {
    "INT8": [-128, 127, -1, 0, 1],
    "INT16": [-32768, 32767, -1, 0],
    "INT32": [-(2**31), 2**31 - 1, -1, 0],
    "INT64": [-(2**63), 2**63 - 1, -1, -(2**40), 0],
    "UINT8": [0, 255, 1],
    "UINT16": [0, 65535, 1],
    "BOOL": [0, 1, 1, 0],
}
FLOAT_EDGES = {
    "FLOAT": [
        "0",
        "-0",
        "inf",
        "-inf",
        repr(float(np.finfo(np.float32).max)),
        "1.401298464324817e-45",
    ],
    "DOUBLE": [
        "0",
        "-0",
        "inf",
        "-inf",
        repr(float(np.finfo(np.float64).max)),
        "5e-324",
        "2.2250738585072014e-308",
    ],
}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


# ---- round trips ----


@pytest.mark.parametrize("dtype", NP_DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 4, 5), (2, 1, 3, 1)], ids=str)
def test_tensorset_blob_round_trips_every_dtype(sr, rng, dtype, shape):
    arr = random_array(rng, dtype, shape)
    assert sr.execute_command("AI.TENSORSET", "t", dtype, *shape, "BLOB", arr.tobytes()) == b"OK"
    assert sr.execute_command("AI.TENSORGET", "t") == [
        b"dtype",
        dtype.encode(),
        b"shape",
        list(shape),
        b"blob",
        arr.tobytes(),
    ]


@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_tensorset_blob_keeps_arbitrary_bytes(sr, rng, dtype):
    """A blob is stored as given: NaN payloads, BOOL bytes other than 0/1."""
    size = NP_DTYPES[dtype].itemsize * 64
    blob = rng.bytes(size)
    sr.execute_command("AI.TENSORSET", "t", dtype, 8, 8, "BLOB", blob)
    assert sr.execute_command("AI.TENSORGET", "t", "BLOB") == blob


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_tensorset_values_round_trips_integers(sr, rng, dtype):
    values = [int(v) for v in random_array(rng, dtype, (20,))] + INT_EDGES[dtype]
    arr = np.array(values, dtype=NP_DTYPES[dtype])
    sr.execute_command("AI.TENSORSET", "t", dtype, len(values), "VALUES", *values)
    assert sr.execute_command("AI.TENSORGET", "t", "VALUES") == values
    assert sr.execute_command("AI.TENSORGET", "t", "BLOB") == arr.tobytes()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_tensorset_values_round_trips_floats(sr, rng, dtype):
    """Values are parsed as doubles and rounded once to the dtype."""
    texts = [repr(float(v)) for v in random_array(rng, dtype, (20,))] + FLOAT_EDGES[dtype]
    arr = np.array([float(t) for t in texts], dtype=NP_DTYPES[dtype])
    sr.execute_command("AI.TENSORSET", "t", dtype, len(texts), "VALUES", *texts)
    assert sr.execute_command("AI.TENSORGET", "t", "BLOB") == arr.tobytes()
    got = sr.execute_command("AI.TENSORGET", "t", "VALUES")
    assert all(isinstance(v, float) for v in got)
    np.testing.assert_array_equal(np.array(got, dtype=np.float64), arr.astype(np.float64))


def test_tensorset_values_rounds_doubles_to_nearest_float(sr):
    """Parsed as doubles, rounded once; beyond float32's range that is ±inf."""
    texts = ["0.1", "1e-3", "16777217", "3.4028235e38", "1e39", "-1e300"]
    sr.execute_command("AI.TENSORSET", "t", "FLOAT", len(texts), "VALUES", *texts)
    with np.errstate(over="ignore"):
        expected = np.array([float(t) for t in texts]).astype(np.float32)
    assert expected[-2:].tolist() == [np.inf, -np.inf]
    assert sr.execute_command("AI.TENSORGET", "t", "BLOB") == expected.tobytes()


@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_tensorset_without_data_is_zeros(sr, dtype):
    sr.execute_command("AI.TENSORSET", "t", dtype, 2, 3)
    assert sr.execute_command("AI.TENSORGET", "t") == [
        b"dtype",
        dtype.encode(),
        b"shape",
        [2, 3],
        b"blob",
        bytes(6 * NP_DTYPES[dtype].itemsize),
    ]


def test_tensorset_accepts_32_dimensions(sr):
    dims = [1] * 31 + [2]
    sr.execute_command("AI.TENSORSET", "t", "INT8", *dims, "VALUES", 5, -5)
    assert sr.execute_command("AI.TENSORGET", "t", "META") == [b"dtype", b"INT8", b"shape", dims]


def test_tensorset_replaces_a_tensor_of_another_dtype_and_shape(sr):
    sr.execute_command("AI.TENSORSET", "t", "DOUBLE", 4, "VALUES", 1, 2, 3, 4)
    sr.execute_command("AI.TENSORSET", "t", "INT16", 1, 2, "VALUES", -7, 7)
    assert sr.execute_command("AI.TENSORGET", "t", "META", "VALUES") == [
        b"dtype",
        b"INT16",
        b"shape",
        [1, 2],
        b"values",
        [-7, 7],
    ]


def test_ttl_is_dropped_by_replacing_commands_and_kept_by_tensorwrite(sr):
    sr.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    sr.expire("t", 1000)
    sr.execute_command("SPIRT.TENSORWRITE", "t", 0, b"abcd")
    assert 0 < sr.ttl("t") <= 1000
    sr.execute_command("AI.TENSORSET", "t", "FLOAT", 2)
    assert sr.ttl("t") == -1
    sr.expire("t", 1000)
    sr.execute_command("SPIRT.AGGREGATE", "t", "mean", "INPUTS", 1, "t")
    assert sr.ttl("t") == -1


def test_tensor_key_names_may_be_binary(sr):
    key = b"\x00key\xff\r\n'"
    sr.execute_command("AI.TENSORSET", key, "UINT8", 2, "VALUES", 1, 2)
    assert sr.execute_command("AI.TENSORGET", key, "VALUES") == [1, 2]
    assert sr.type(key) == b"AI_TENSOR"


@pytest.mark.parametrize(
    "args",
    [
        ("float", 2, "values", 1.5, -2),
        ("Float", 2, "Values", 1.5, -2),
        ("FLOAT", 2, "blob", np.array([1.5, -2], np.float32).tobytes()),
        ("fLoAt", 2, "bLoB", np.array([1.5, -2], np.float32).tobytes()),
    ],
    ids=["lower", "title", "lower-blob", "mixed"],
)
def test_tensorset_keywords_ignore_case(sr, args):
    sr.execute_command("AI.TENSORSET", "t", *args)
    assert sr.execute_command("AI.TENSORGET", "t", "meta", "values") == [
        b"dtype",
        b"FLOAT",
        b"shape",
        [2],
        b"values",
        [1.5, -2.0],
    ]


@pytest.mark.parametrize("dtype", ["int64", "Int64", "bool", "Uint16", "double"])
def test_tensorset_dtype_names_ignore_case(sr, dtype):
    sr.execute_command("AI.TENSORSET", "t", dtype, 1, "VALUES", 1)
    assert sr.execute_command("AI.TENSORGET", "t", "META")[1] == dtype.upper().encode()


# ---- AI.TENSORGET reply layouts ----

_BLOB = np.array([1.5, -2.0, 0.25, 8.0], np.float32).tobytes()
_META = [b"dtype", b"FLOAT", b"shape", [2, 2]]
_VALUES = [1.5, -2.0, 0.25, 8.0]
TENSORGET_LAYOUTS = [
    pytest.param((), _META + [b"blob", _BLOB], id="default"),
    pytest.param(("META",), _META, id="meta"),
    pytest.param(("BLOB",), _BLOB, id="blob"),
    pytest.param(("VALUES",), _VALUES, id="values"),
    pytest.param(("META", "BLOB"), _META + [b"blob", _BLOB], id="meta-blob"),
    pytest.param(("BLOB", "META"), _META + [b"blob", _BLOB], id="blob-meta"),
    pytest.param(("META", "VALUES"), _META + [b"values", _VALUES], id="meta-values"),
    pytest.param(("VALUES", "META"), _META + [b"values", _VALUES], id="values-meta"),
    pytest.param(("META", "META"), _META, id="meta-twice"),
    pytest.param(("BLOB", "BLOB"), _BLOB, id="blob-twice"),
    pytest.param(("VALUES", "VALUES"), _VALUES, id="values-twice"),
    pytest.param(("meta", "Blob"), _META + [b"blob", _BLOB], id="any-case"),
]


@pytest.mark.parametrize("args,expected", TENSORGET_LAYOUTS)
def test_tensorget_reply_layout(sr, args, expected):
    sr.execute_command("AI.TENSORSET", "t", "FLOAT", 2, 2, "BLOB", _BLOB)
    assert sr.execute_command("AI.TENSORGET", "t", *args) == expected


@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_tensorget_values_reply_types_over_resp2(node, dtype):
    """RESP2: floats come as bulk strings of a double, integers as integers."""
    r2 = node.client(protocol=2)
    r2.flushall()
    arr = np.array([0, 1, 1, 0, 1], dtype=NP_DTYPES[dtype])
    if dtype in FLOAT_DTYPES:
        arr = np.array([0.5, -1.25, 3e-3, 1e30, -7.0], dtype=NP_DTYPES[dtype])
    r2.execute_command("AI.TENSORSET", "t", dtype, 5, "BLOB", arr.tobytes())
    got = r2.execute_command("AI.TENSORGET", "t", "META", "VALUES")
    assert got[:5] == [b"dtype", dtype.encode(), b"shape", [5], b"values"]
    if dtype in FLOAT_DTYPES:
        assert all(isinstance(v, bytes) for v in got[5])
        assert [float(v) for v in got[5]] == [float(x) for x in arr]
    else:
        assert got[5] == [int(x) for x in arr]


@pytest.mark.parametrize("protocol", [2, 3])
def test_tensorget_values_of_non_finite_floats(node, protocol):
    r = node.client(protocol=protocol)
    r.flushall()
    blob = np.array([np.inf, -np.inf, np.nan], np.float32).tobytes()
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 3, "BLOB", blob)
    got = [float(v) for v in r.execute_command("AI.TENSORGET", "t", "VALUES")]
    assert got[:2] == [np.inf, -np.inf] and np.isnan(got[2])


# ---- errors: exact text, and the key is left as it was ----

_B8 = bytes(8)
TENSORSET_ERRORS = [
    pytest.param(["FLOATX", 2], "invalid data type", id="unknown-dtype"),
    pytest.param(["", 2], "invalid data type", id="empty-dtype"),
    pytest.param(["FLOAT32", 2], "invalid data type", id="torch-dtype-name"),
    pytest.param(["FLOAT", 0], "invalid or negative value found in tensor shape", id="zero-dim"),
    pytest.param(
        ["FLOAT", -1], "invalid or negative value found in tensor shape", id="negative-dim"
    ),
    pytest.param(
        ["FLOAT", 2, 0], "invalid or negative value found in tensor shape", id="zero-second-dim"
    ),
    pytest.param(["FLOAT", "x"], "invalid or negative value found in tensor shape", id="word-dim"),
    pytest.param(
        ["FLOAT", "2.5"], "invalid or negative value found in tensor shape", id="fraction-dim"
    ),
    pytest.param(
        ["FLOAT", "META"], "invalid or negative value found in tensor shape", id="meta-as-dim"
    ),
    pytest.param(
        ["FLOAT", "9223372036854775808"],
        "invalid or negative value found in tensor shape",
        id="dim-over-int64",
    ),
    pytest.param(
        ["FLOAT", "BLOB", _B8],
        "tensor shape is missing: give at least one dimension",
        id="no-shape-blob",
    ),
    pytest.param(
        ["FLOAT", "VALUES", 1],
        "tensor shape is missing: give at least one dimension",
        id="no-shape-values",
    ),
    pytest.param(["FLOAT"] + [1] * 33, "a tensor has at most 32 dimensions", id="33-dims"),
    pytest.param(["FLOAT", 2**62], "tensor would exceed MAX_TENSOR_BYTES", id="huge"),
    pytest.param(["DOUBLE", 2**61], "tensor would exceed MAX_TENSOR_BYTES", id="bytes-overflow"),
    pytest.param(
        ["INT8", 2**40, 2**40], "tensor would exceed MAX_TENSOR_BYTES", id="elements-overflow"
    ),
    pytest.param(
        ["FLOAT", 2, "BLOB", bytes(7)],
        "data length does not match tensor shape and type",
        id="blob-short",
    ),
    pytest.param(
        ["FLOAT", 2, "BLOB", bytes(9)],
        "data length does not match tensor shape and type",
        id="blob-long",
    ),
    pytest.param(
        ["FLOAT", 2, "BLOB", b""],
        "data length does not match tensor shape and type",
        id="blob-empty",
    ),
    pytest.param(
        ["DOUBLE", 2, "BLOB", _B8],
        "data length does not match tensor shape and type",
        id="blob-wrong-type",
    ),
    pytest.param(
        ["FLOAT", 2, "BLOB"],
        "a single binary string should come after the BLOB argument in 'AI.TENSORSET' command",
        id="blob-missing",
    ),
    pytest.param(
        ["FLOAT", 2, "BLOB", b"abcd", b"efgh"],
        "a single binary string should come after the BLOB argument in 'AI.TENSORSET' command",
        id="blob-two-strings",
    ),
    pytest.param(
        ["FLOAT", 2, "BLOB", _B8, "VALUES"], "both BLOB and VALUES specified", id="blob-then-values"
    ),
    pytest.param(
        ["FLOAT", 2, "BLOB", _B8, "values", 1, 2],
        "both BLOB and VALUES specified",
        id="blob-then-values-2",
    ),
    pytest.param(
        ["FLOAT", 1, "VALUES", 1, "BLOB"], "both BLOB and VALUES specified", id="values-then-blob"
    ),
    pytest.param(
        ["FLOAT", 2, "VALUES", 1, "blob", _B8],
        "both BLOB and VALUES specified",
        id="values-then-blob-2",
    ),
    pytest.param(
        ["FLOAT", 2, "VALUES", 1],
        "wrong number of values was given in 'AI.TENSORSET' command",
        id="too-few-values",
    ),
    pytest.param(
        ["FLOAT", 2, "VALUES", 1, 2, 3],
        "wrong number of values was given in 'AI.TENSORSET' command",
        id="too-many-values",
    ),
    pytest.param(
        ["FLOAT", 2, "VALUES"],
        "wrong number of values was given in 'AI.TENSORSET' command",
        id="no-values",
    ),
    pytest.param(["INT8", 1, "VALUES", 200], "invalid value", id="int8-over"),
    pytest.param(["INT8", 1, "VALUES", -129], "invalid value", id="int8-under"),
    pytest.param(["INT16", 1, "VALUES", 32768], "invalid value", id="int16-over"),
    pytest.param(["INT32", 1, "VALUES", 2**31], "invalid value", id="int32-over"),
    pytest.param(["INT32", 1, "VALUES", -(2**31) - 1], "invalid value", id="int32-under"),
    pytest.param(["INT64", 1, "VALUES", 2**63], "invalid value", id="int64-over"),
    pytest.param(["INT64", 1, "VALUES", -(2**63) - 1], "invalid value", id="int64-under"),
    pytest.param(["UINT8", 1, "VALUES", 256], "invalid value", id="uint8-over"),
    pytest.param(["UINT8", 1, "VALUES", -1], "invalid value", id="uint8-negative"),
    pytest.param(["UINT16", 1, "VALUES", 65536], "invalid value", id="uint16-over"),
    pytest.param(["BOOL", 1, "VALUES", 2], "invalid value", id="bool-2"),
    pytest.param(["BOOL", 1, "VALUES", -1], "invalid value", id="bool-negative"),
    pytest.param(["INT32", 1, "VALUES", "1.5"], "invalid value", id="int-fraction"),
    pytest.param(["INT32", 1, "VALUES", "1e3"], "invalid value", id="int-exponent"),
    pytest.param(["INT64", 1, "VALUES", " 1"], "invalid value", id="int-space"),
    pytest.param(["INT64", 2, "VALUES", 1, "abc"], "invalid value", id="int-word-second"),
    pytest.param(["FLOAT", 1, "VALUES", "abc"], "invalid value", id="float-word"),
    pytest.param(["FLOAT", 1, "VALUES", "nan"], "invalid value", id="float-nan"),
    pytest.param(["DOUBLE", 1, "VALUES", "1e400"], "invalid value", id="double-overflow"),
    pytest.param(["DOUBLE", 1, "VALUES", "1e-400"], "invalid value", id="double-underflow"),
    pytest.param(["DOUBLE", 1, "VALUES", ""], "invalid value", id="double-empty"),
    pytest.param(["DOUBLE", 2, "VALUES", 1, "1,5"], "invalid value", id="double-comma"),
]


@pytest.mark.parametrize("existing", [False, True], ids=["absent", "tensor"])
@pytest.mark.parametrize("args,message", TENSORSET_ERRORS)
def test_tensorset_error_leaves_key_unchanged(sr, existing, args, message):
    if existing:
        sr.execute_command("AI.TENSORSET", "k", "INT16", 3, "VALUES", 1, -2, 3)
    before = snapshot(sr, ["k"])
    assert error_of(sr, "AI.TENSORSET", "k", *args) == message
    assert snapshot(sr, ["k"]) == before
    assert sr.dbsize() == (1 if existing else 0)


@pytest.mark.parametrize(
    "args",
    [["FLOAT", 2], ["FLOATX", 2], ["FLOAT", 2, "BLOB", bytes(8)]],
    ids=["ok", "bad-dtype", "blob"],
)
def test_tensorset_on_a_key_of_another_type_is_wrongtype(sr, args):
    sr.set("k", "text")
    assert error_of(sr, "AI.TENSORSET", "k", *args) == WRONGTYPE
    assert sr.get("k") == b"text"


@pytest.mark.parametrize("args", [[], ["k"], ["k", "FLOAT"]], ids=["no-key", "no-type", "no-shape"])
def test_tensorset_arity(sr, args):
    assert (
        error_of(sr, "AI.TENSORSET", *args)
        == "wrong number of arguments for 'AI.TENSORSET' command"
    )


TENSORGET_ERRORS = [
    pytest.param(["t", "FOO"], "unsupported data format", id="unknown-format"),
    pytest.param(["t", "META", "FOO"], "unsupported data format", id="meta-unknown"),
    pytest.param(["t", ""], "unsupported data format", id="empty-format"),
    pytest.param(["t", "BLOB", "VALUES"], "both BLOB and VALUES specified", id="blob-values"),
    pytest.param(["t", "values", "blob"], "both BLOB and VALUES specified", id="values-blob"),
    pytest.param(
        ["t", "META", "BLOB", "VALUES"],
        "wrong number of arguments for 'AI.TENSORGET' command",
        id="three-formats",
    ),
    pytest.param([], "wrong number of arguments for 'AI.TENSORGET' command", id="no-key"),
    pytest.param(["missing"], "tensor key is empty or in a different shard", id="missing"),
    pytest.param(
        ["missing", "FOO"], "tensor key is empty or in a different shard", id="missing-bad-format"
    ),
    pytest.param(["s"], WRONGTYPE, id="string"),
    pytest.param(["s", "FOO"], WRONGTYPE, id="string-bad-format"),
]


@pytest.mark.parametrize("args,message", TENSORGET_ERRORS)
def test_tensorget_errors(sr, args, message):
    sr.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    sr.set("s", "text")
    before = snapshot(sr, ["t", "s", "missing"])
    assert error_of(sr, "AI.TENSORGET", *args) == message
    assert snapshot(sr, ["t", "s", "missing"]) == before


@pytest.mark.parametrize(
    "args",
    [
        ["AI.TENSORSET", "t", "FLOATX", 2],
        ["AI.TENSORSET", "absent", "FLOAT", 0],
        ["SPIRT.TENSORWRITE", "t", 100, b"x"],
        ["SPIRT.TENSORWRITE", "t", -1, b"x"],
    ],
    ids=["tensorset-existing", "tensorset-absent", "write-out-of-range", "write-bad-offset"],
)
def test_failed_write_does_not_abort_a_watch(node, sr, args):
    """A command that wrote nothing must not look like a write to WATCH
    (Redis's own commands only signal a key they modified)."""
    sr.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    watcher = node.client()
    with watcher.pipeline() as pipe:
        pipe.watch(args[1])
        with pytest.raises(redis.ResponseError):
            sr.execute_command(*args)
        pipe.multi()
        pipe.ping()
        assert pipe.execute() == [True]


def test_successful_write_aborts_a_watch(node, sr):
    sr.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    watcher = node.client()
    with watcher.pipeline() as pipe:
        pipe.watch("t")
        sr.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 3, 4)
        pipe.multi()
        pipe.ping()
        with pytest.raises(redis.WatchError):
            pipe.execute()


# ---- load arguments ----


@pytest.mark.parametrize(
    "size,dtype,ok",
    [
        (16, "FLOAT", True),
        (17, "FLOAT", False),
        (8, "DOUBLE", True),
        (9, "DOUBLE", False),
        (64, "BOOL", True),
        (65, "UINT8", False),
    ],
)
@pytest.mark.parametrize("fmt", ["zeros", "BLOB", "VALUES"])
def test_tensorset_respects_max_tensor_bytes(start_redis, size, dtype, ok, fmt):
    r = start_redis(max_tensor_bytes=64).client()
    assert spirt_info(r)["max_tensor_bytes"] == 64
    data = {
        "zeros": [],
        "BLOB": ["BLOB", bytes(size * NP_DTYPES[dtype].itemsize)],
        "VALUES": ["VALUES"] + [1] * size,
    }[fmt]
    args = ["AI.TENSORSET", "t", dtype, size, *data]
    if ok:
        assert r.execute_command(*args) == b"OK"
    else:
        assert error_of(r, *args) == "tensor would exceed MAX_TENSOR_BYTES"
        assert r.exists("t") == 0


def test_module_info_reports_load_arguments(start_spirt):
    r = start_spirt(module_threads=3, max_tensor_bytes=12345, inline_bytes=777).client()
    info = spirt_info(r)
    assert (info["threads"], info["max_tensor_bytes"], info["inline_bytes"]) == (3, 12345, 777)
    assert (info["jobs_queued"], info["jobs_done"]) == (0, 0)


@pytest.mark.parametrize(
    "args",
    [
        ["THREADS", "0"],
        ["THREADS", "257"],
        ["THREADS", "x"],
        ["THREADS"],
        ["MAX_TENSOR_BYTES", "0"],
        ["INLINE_BYTES", "-1"],
        ["BOGUS", "1"],
    ],
    ids=[
        "threads-0",
        "threads-257",
        "threads-word",
        "threads-no-value",
        "max-0",
        "inline-negative",
        "unknown",
    ],
)
def test_module_load_refuses_bad_arguments(short_tmp, args):
    cfg = StoreServerConfig(data_dir=short_tmp / "bad", persistence="none")
    prepared = prepare(cfg)
    add_module_args(cfg.conf_path, *args)
    proc = subprocess.run(
        list(prepared.argv),
        env=_sanitizer_env(),
        capture_output=True,
        timeout=SERVER_START_TIMEOUT_S,
    )
    assert proc.returncode != 0
    assert "spirt: bad load argument" in cfg.log_path.read_text()
