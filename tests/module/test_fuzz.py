"""Random argument lists for every command (hypothesis, derandomized so the
run is the same every time): the server stays up, every reply is a value or
an error reply, an error leaves every key as it was, and whatever a command
stored is a well-formed tensor. RESTORE gets random AI_TENSOR payloads."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import rdb_payload as rp
from .helpers import NP_DTYPES, running_server

MAX_TENSOR_BYTES = 1 << 20  # keeps random shapes from allocating much
INLINE_BYTES = 64  # small jobs inline, the rest (most with the 256-byte tensors) on the pool
SETTINGS = dict(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STRUCTURED_EXAMPLES = 500  # per command
RANDOM_EXAMPLES = 250  # per command

# The keyspace every example starts from.
BASELINE: list[tuple[str, list[Any]]] = [
    ("f4", ["FLOAT", 4, "VALUES", 1, -2, 3.5, 0]),
    ("f4b", ["FLOAT", 4, "VALUES", 0.25, 8, -1, 2]),
    ("f22", ["FLOAT", 2, 2, "VALUES", 1, 2, 3, 4]),
    ("d4", ["DOUBLE", 4, "VALUES", 1e10, -1e-10, 5, 6]),
    ("big", ["FLOAT", 64, "BLOB", np.linspace(-3, 3, 64, dtype=np.float32).tobytes()]),
    ("big2", ["FLOAT", 64, "BLOB", np.linspace(5, -1, 64, dtype=np.float32).tobytes()]),
    ("step", ["INT64", 1, "VALUES", 3]),
    ("u8", ["UINT8", 10, "VALUES", *range(10)]),
    ("nan", ["FLOAT", 4, "BLOB", np.array([1, np.nan, 2, np.inf], np.float32).tobytes()]),
]
STRING_KEY = "str"
KEY_NAMES = [k for k, _ in BASELINE] + [STRING_KEY, "missing", "new", "new2"]
COMMANDS = [
    "AI.TENSORSET",
    "AI.TENSORGET",
    "SPIRT.TENSORWRITE",
    "SPIRT.TENSORREAD",
    "SPIRT.DIGEST",
    "SPIRT.AGGREGATE",
    "SPIRT.SGD",
    "SPIRT.ADAM",
]
KEYWORDS = [
    *NP_DTYPES,
    "float",
    "BLOB",
    "VALUES",
    "META",
    "INPUTS",
    "WEIGHTS",
    "F",
    "M",
    "B",
    "mean",
    "median",
    "trimmed_mean",
    "krum",
    "multikrum",
    "LR",
    "MOMENTUM",
    "BUFFER",
    "DAMPENING",
    "NESTEROV",
    "WEIGHT_DECAY",
    "MAXIMIZE",
    "EXP_AVG",
    "EXP_AVG_SQ",
    "STEP",
    "BETA1",
    "BETA2",
    "EPS",
    "DECOUPLED",
]

keys = st.sampled_from(KEY_NAMES)
float_keys = st.sampled_from(["f4", "f4b", "nan", "big", "big2", "f22", "d4"])
keywords = st.sampled_from(KEYWORDS)
numbers = st.one_of(
    st.integers(-3, 70),
    st.sampled_from([0, 1, 2, 3, 4, 64, -1, 2**31, 2**32, 2**63 - 1, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "nan",
            "-nan",
            "inf",
            "-inf",
            "1e308",
            "1e-400",
            "0.5",
            "-0",
            "0x10",
            " 1",
            "",
            "1,5",
            "5e-324",
        ]
    ),
)
blobs = st.binary(max_size=300)
token = st.one_of(keys, keywords, numbers, blobs)
tokens = st.lists(token, max_size=14)


def mostly(draw, good, bad, percent: int = 85):
    """A draw from good most of the time, else from bad: arguments that get
    past the first checks often enough to reach the deeper ones."""
    return draw(good) if draw(st.integers(0, 99)) < percent else draw(bad)


def few_tokens(draw) -> list:
    return mostly(draw, st.just([]), st.lists(token, min_size=1, max_size=2))


@st.composite
def tensorset_args(draw) -> list:
    dtype = mostly(draw, st.sampled_from(list(NP_DTYPES)), token)
    dims = mostly(
        draw, st.lists(st.integers(1, 5), min_size=1, max_size=3), st.lists(numbers, max_size=4)
    )
    nelem = int(np.prod([d for d in dims if isinstance(d, int) and 0 < d < 100] or [1]))
    nelem = min(nelem, 64)  # the exact-size data below is right only for the good shapes
    itemsize = NP_DTYPES[dtype].itemsize if dtype in NP_DTYPES else 4
    data = draw(
        st.one_of(
            st.just([]),
            st.builds(
                lambda b: ["BLOB", b],
                st.binary(min_size=nelem * itemsize, max_size=nelem * itemsize),
            ),
            st.builds(lambda b: ["BLOB", b], blobs),
            st.builds(
                lambda vs: ["VALUES", *vs],
                st.lists(st.one_of(st.integers(-2, 300), numbers), min_size=nelem, max_size=nelem),
            ),
            st.builds(lambda vs: ["VALUES", *vs], st.lists(numbers, max_size=12)),
            tokens,
        )
    )
    return [draw(keys), dtype, *dims, *data, *few_tokens(draw)]


@st.composite
def aggregate_args(draw) -> list:
    rule = mostly(
        draw, st.sampled_from(["mean", "median", "trimmed_mean", "krum", "multikrum"]), token
    )
    same_shape = st.sampled_from(["f4", "f4b", "nan"] if draw(st.booleans()) else ["big", "big2"])
    inputs = draw(
        st.lists(
            st.one_of(same_shape, same_shape, same_shape, float_keys, keys), min_size=1, max_size=8
        )
    )
    n = mostly(draw, st.just(len(inputs)), numbers)
    fitting = {"mean": ["WEIGHTS"], "trimmed_mean": ["B"], "krum": ["F"], "multikrum": ["F", "M"]}
    names = [n for n in fitting.get(rule, []) if n != "M" or draw(st.booleans())]
    if draw(st.integers(0, 9)) < 3:
        names = draw(st.lists(st.sampled_from(["WEIGHTS", "F", "M", "B", "w"]), max_size=3))
    options: list = []
    for name in names:
        if name == "WEIGHTS":
            options += [
                "WEIGHTS",
                *mostly(
                    draw,
                    st.lists(st.integers(0, 5), min_size=len(inputs), max_size=len(inputs)),
                    st.lists(numbers, max_size=len(inputs) + 1),
                ),
            ]
        else:
            options += [name, mostly(draw, st.integers(0, 3), numbers)]
    inputs_word = mostly(draw, st.just("INPUTS"), st.sampled_from(["inputs", "IN", "F"]), 95)
    return [draw(keys), rule, inputs_word, n, *inputs, *options, *few_tokens(draw)]


OPT_NUMBERS = st.one_of(st.sampled_from([0, 0.1, 0.9, 0.999, 1, 1e-8]), numbers)


@st.composite
def optimizer_args(
    draw, numeric: list[str], key_names: list[str], flags: list[str], groups: list[list[str]]
) -> list:
    """param, grad, then options: usually a workable group of them (e.g. LR
    with MOMENTUM and BUFFER), plus a few more, in any order."""
    out = [mostly(draw, float_keys, keys), mostly(draw, float_keys, keys)]
    wanted = draw(st.sampled_from(groups)) if draw(st.integers(0, 9)) < 8 else []
    others = [n for n in numeric + key_names + flags if n not in wanted]
    chosen = wanted + draw(st.lists(st.sampled_from(others), max_size=3, unique=True))
    state_keys = iter(
        draw(st.permutations(["new", "new2", "missing", "f4b", "step", "big2", "f4", "d4"]))
    )
    for name in draw(st.permutations(chosen)):
        out.append(name)
        if name in numeric:
            out.append(mostly(draw, st.sampled_from([0, 0.1, 0.5, 0.9, 0.999, 1e-8]), OPT_NUMBERS))
        elif name in key_names:
            out.append(mostly(draw, st.just(next(state_keys)), keys))
    return out + few_tokens(draw)


@st.composite
def key_and(draw, *parts) -> list:
    return (
        [mostly(draw, st.sampled_from(["f4", "big", "u8", "f22", "nan", "step"]), keys)]
        + [draw(p) for p in parts]
        + few_tokens(draw)
    )


small_ints = st.integers(0, 300)
STRUCTURED = {
    "AI.TENSORSET": tensorset_args(),
    "AI.TENSORGET": key_and(
        st.lists(st.one_of(st.sampled_from(["META", "BLOB", "VALUES", "meta"]), token), max_size=2)
    ).map(lambda a: [a[0], *a[1], *a[2:]]),
    "SPIRT.TENSORWRITE": key_and(st.one_of(small_ints, numbers), blobs),
    "SPIRT.TENSORREAD": key_and(st.one_of(small_ints, numbers), st.one_of(small_ints, numbers)),
    "SPIRT.DIGEST": key_and(),
    "SPIRT.AGGREGATE": aggregate_args(),
    "SPIRT.SGD": optimizer_args(
        ["LR", "MOMENTUM", "DAMPENING", "WEIGHT_DECAY"],
        ["BUFFER"],
        ["NESTEROV", "MAXIMIZE"],
        [["LR"], ["LR", "MOMENTUM", "BUFFER"]],
    ),
    "SPIRT.ADAM": optimizer_args(
        ["LR", "BETA1", "BETA2", "EPS", "WEIGHT_DECAY"],
        ["EXP_AVG", "EXP_AVG_SQ", "STEP"],
        ["DECOUPLED", "MAXIMIZE"],
        [["LR", "EXP_AVG", "EXP_AVG_SQ", "STEP"]],
    ),
}


# ---- the server and one example's checks ----


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[Any]:
    with running_server(inline_bytes=INLINE_BYTES, max_tensor_bytes=MAX_TENSOR_BYTES) as server:
        yield server


@pytest.fixture(scope="module")
def fr(fuzz_server) -> redis.Redis:
    return fuzz_server.client()


def reset(r: redis.Redis) -> None:
    with r.pipeline(transaction=False) as pipe:
        pipe.flushall()
        for key, args in BASELINE:
            pipe.execute_command("AI.TENSORSET", key, *args)
        pipe.set(STRING_KEY, "a string")
        pipe.execute()


def keyspace(r: redis.Redis) -> dict[bytes, bytes | None]:
    names = set(r.keys("*")) | {k.encode() for k in KEY_NAMES}
    with r.pipeline(transaction=False) as pipe:
        for k in sorted(names):
            pipe.dump(k)
        dumps = pipe.execute()
    return dict(zip(sorted(names), dumps))


def check_tensors_well_formed(r: redis.Redis) -> None:
    for key in r.keys("*"):
        if r.type(key) != b"AI_TENSOR":
            continue
        _, dtype, _, shape, _, blob = r.execute_command("AI.TENSORGET", key)
        dtype = dtype.decode() if isinstance(dtype, bytes) else dtype
        assert 1 <= len(shape) <= 32 and all(d > 0 for d in shape)
        assert (
            len(blob)
            == int(np.prod(shape, dtype=object)) * NP_DTYPES[dtype].itemsize
            <= MAX_TENSOR_BYTES
        )


def run_example(r: redis.Redis, server, command: str, args: list) -> None:
    reset(r)
    before = keyspace(r)
    try:
        reply = r.execute_command(command, *args)
    except redis.ResponseError:
        assert r.ping()
        assert keyspace(r) == before, f"{command} {args!r} failed but changed the keyspace"
        return
    except redis.ConnectionError as exc:
        raise AssertionError(
            f"{command} {args!r} lost the server: {exc}\n{server.log_tail()}"
        ) from exc
    assert reply is not None or command == "AI.TENSORGET"
    assert r.ping()
    check_tensors_well_formed(r)


@pytest.mark.parametrize("command", COMMANDS)
def test_fuzz_structured_arguments(fuzz_server, fr, command):
    @settings(max_examples=STRUCTURED_EXAMPLES, **SETTINGS)
    @given(args=STRUCTURED[command])
    def check(args):
        run_example(fr, fuzz_server, command, args)

    check()


@pytest.mark.parametrize("command", COMMANDS)
def test_fuzz_random_tokens(fuzz_server, fr, command):
    @settings(max_examples=RANDOM_EXAMPLES, **SETTINGS)
    @given(args=tokens)
    def check(args):
        run_example(fr, fuzz_server, command, args)

    check()


@pytest.mark.parametrize("command", ["SPIRT.AGGREGATE", "SPIRT.SGD", "SPIRT.ADAM"])
def test_fuzz_command_getkeys(fuzz_server, fr, command):
    """Key positions come from the module (getkeys-api) for any arguments."""

    @settings(max_examples=RANDOM_EXAMPLES, **SETTINGS)
    @given(args=st.one_of(STRUCTURED[command], tokens))
    def check(args):
        try:
            got = fr.command_getkeys(command, *args)
        except redis.ResponseError:
            pass
        else:
            assert isinstance(got, list)
        assert fr.ping()

    check()


# ---- RESTORE of random AI_TENSOR payloads ----


@st.composite
def tensor_payload_opcodes(draw) -> bytes:
    dims = draw(
        st.lists(
            st.one_of(st.integers(1, 8), st.sampled_from([0, 2**31, 2**63, 2**64 - 1])), max_size=4
        )
    )
    chunks = draw(st.lists(st.binary(max_size=40), max_size=3))
    overrides = {}
    for name in draw(
        st.lists(st.sampled_from(["magic", "nbytes", "nchunks", "ndim"]), max_size=2, unique=True)
    ):
        overrides[name] = draw(
            st.one_of(st.integers(0, 70), st.sampled_from([2**32, 2**64 - 1, rp.MAGIC]))
        )
    opcodes = rp.tensor_opcodes(draw(st.integers(0, 10)), dims, chunks, **overrides)
    if draw(st.booleans()) and opcodes:
        at = draw(st.integers(0, len(opcodes) - 1))
        opcodes = (
            opcodes[:at] + draw(st.binary(max_size=3)) + opcodes[at + draw(st.integers(0, 3)) :]
        )
    return opcodes


def test_fuzz_restore_payloads(fuzz_server, fr):
    fr.flushall()
    fr.execute_command("AI.TENSORSET", "model", "UINT8", 1)
    frame = rp.Frame.from_dump(fr.dump("model"))

    @settings(max_examples=STRUCTURED_EXAMPLES, **SETTINGS)
    @given(opcodes=tensor_payload_opcodes())
    def check(opcodes):
        fr.delete("k")
        try:
            fr.restore("k", 0, frame.payload(opcodes))
        except redis.ResponseError as exc:
            assert str(exc) == "Bad data format"
            assert fr.exists("k") == 0
        except redis.ConnectionError as exc:
            raise AssertionError(
                f"RESTORE of {opcodes!r} lost the server\n{fuzz_server.log_tail()}"
            ) from exc
        assert fr.ping()
        check_tensors_well_formed(fr)

    check()
