"""A contribution's header and chunks, checked on the receiving side."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from spirtd.exchange.messages import AttemptKey
from spirtd.exchange.streams import ChunkCheck, ContributionCheck, ContributionHeader, RefusalKind

KEY = AttemptKey(round=7, attempt=1, participants=("a", "b", "c"))
DATA = bytes(range(256)) * 3  # 768 bytes: 192 float32


def header(**changes) -> ContributionHeader:
    base = ContributionHeader(job="j1", key=KEY, sender="b", shard=0, start=0, n_elements=192, dtype="FLOAT",
                              nbytes=len(DATA), sha256=hashlib.sha256(DATA).hexdigest())  # fmt: skip
    return replace(base, **changes)


def expect() -> ContributionCheck:
    return ContributionCheck(me="a", job="j1", key=KEY, owned={0: (0, 192)})


def test_a_good_stream_passes_and_a_second_copy_is_a_duplicate():
    check, h = expect(), header()
    assert check.header(h, caller="b") is None
    chunks = ChunkCheck(h)
    for offset in range(0, len(DATA), 100):
        assert chunks.chunk(offset, DATA[offset : offset + 100]) is None
    assert chunks.finish() is None
    check.accepted(h)
    refusal = check.header(h, caller="b")
    assert refusal.kind is RefusalKind.DUPLICATE and refusal.counter == "exchange.refused.duplicate"


def test_half_precision_travels_in_half_the_bytes():
    assert expect().header(header(dtype="HALF", nbytes=384), caller="b") is None


@pytest.mark.parametrize(
    "changes, caller, kind, words",
    [
        ({}, "c", RefusalKind.NOT_SENDER, "the certificate is 'c' but the header says 'b'"),
        ({"sender": "x"}, "x", RefusalKind.NOT_PARTICIPANT, "x is not a participant of round 7 attempt 1"),
        ({"key": replace(KEY, round=6)}, "b", RefusalKind.WRONG_ATTEMPT, "round 6 attempt 1"),
        ({"key": replace(KEY, participants=("a", "b"))}, "b", RefusalKind.WRONG_ATTEMPT, "this peer runs job j1 round 7"),
        ({"job": "j2"}, "b", RefusalKind.WRONG_ATTEMPT, "job j2"),
        ({"shard": 1}, "b", RefusalKind.WRONG_SHARD, "shard 1 [0, 192) is not one this peer aggregates (shard 0 [0, 192))"),
        ({"n_elements": 191, "nbytes": 764}, "b", RefusalKind.WRONG_SHARD, "[0, 191)"),
        ({"dtype": "DOUBLE"}, "b", RefusalKind.BAD_DTYPE, "travel as FLOAT, HALF"),
        ({"nbytes": 767}, "b", RefusalKind.BAD_SIZE, "767 bytes for 192 FLOAT elements (expected 768)"),
    ],
)
def test_a_bad_header_is_refused_saying_why(changes, caller, kind, words):
    refusal = expect().header(header(**changes), caller=caller)
    assert refusal.kind is kind and words in refusal.reason


def test_chunks_out_of_order_or_past_the_end_are_refused():
    chunks = ChunkCheck(header())
    assert chunks.chunk(0, DATA[:100]) is None
    assert chunks.chunk(200, DATA[200:300]).kind is RefusalKind.BAD_CHUNK  # a gap
    assert chunks.chunk(50, DATA[50:150]).kind is RefusalKind.BAD_CHUNK  # an overlap
    assert "ends past the stream's 768 bytes" in chunks.chunk(100, DATA[100:] + b"x").reason


def test_a_truncated_stream_and_a_corrupted_byte_are_refused():
    short = ChunkCheck(header())
    short.chunk(0, DATA[:700])
    assert short.finish().kind is RefusalKind.TRUNCATED
    corrupted = ChunkCheck(header())
    corrupted.chunk(0, DATA[:10] + b"\x00" + DATA[11:])
    assert corrupted.finish().kind is RefusalKind.BAD_CHECKSUM
