"""One contribution on the wire: a header, then chunks that land in the
store at their offsets. Pure checks of both, for the receiving side: every
refusal says why in words and names the counter it goes to, and nothing of
a refused stream is kept (the driver writes chunks to a staging tensor and
installs it only once the stream checks out).

    expect = ContributionCheck(me, job, key, owned={shard: (start, stop)})
    refusal = expect.header(header, caller)    # None, or a Refusal (why, and its counter)
    chunks = ChunkCheck(header)
    refusal = chunks.chunk(offset, data)       # for each chunk, in order
    refusal = chunks.finish()                  # every byte came, and the SHA-256 is right
    expect.accepted(header)

A contribution is a shard of a participant's local aggregate on its way to
the shard's owner (SCATTER) or an owner's aggregated shard on its way to
every other participant (GATHER).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from spirtd.exchange.messages import AttemptKey

# The dtypes a contribution may travel in (fp16 is the job's option to halve
# the bytes; the aggregate is computed in float32 either way).
WIRE_DTYPES = {"FLOAT": 4, "HALF": 2}


class RefusalKind(enum.Enum):
    """Why a stream was refused: the counter it goes to (exchange.refused.<kind>)."""

    NOT_SENDER = "not_sender"  # the certificate's owner is not the header's sender
    NOT_PARTICIPANT = "not_participant"
    WRONG_ATTEMPT = "wrong_attempt"  # another round, attempt or participant set
    WRONG_SHARD = "wrong_shard"  # not a shard this peer owns, or not its bounds
    BAD_DTYPE = "bad_dtype"
    BAD_SIZE = "bad_size"  # byte size does not match shape and dtype
    BAD_CHUNK = "bad_chunk"  # out of order, overlapping, past the end
    TRUNCATED = "truncated"
    BAD_CHECKSUM = "bad_checksum"
    DUPLICATE = "duplicate"  # this sender's contribution to the shard is in already
    LATE = "late"  # the shard was aggregated before the part came


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    reason: str

    @property
    def counter(self) -> str:
        return f"exchange.refused.{self.kind.value}"


class Stage(enum.Enum):
    SCATTER = "scatter"  # a participant's shard of its local aggregate, to the shard's owner
    GATHER = "gather"  # an owner's aggregated shard, to every other participant


@dataclass(frozen=True)
class ContributionHeader:
    """samples and loss: SCATTER, the sender's samples and sample-weighted
    loss; GATHER, those of the contributors the owner aggregated."""

    job: str
    key: AttemptKey
    sender: str
    shard: int
    start: int  # the shard's first element in the flat vector
    n_elements: int
    dtype: str
    nbytes: int
    sha256: str  # hex, of the nbytes that follow
    stage: Stage = Stage.SCATTER
    samples: float = 0.0
    loss: float = 0.0
    contributors: tuple[str, ...] = ()  # GATHER: whose parts the owner aggregated


@dataclass
class ContributionCheck:
    """What this peer expects of contributions in one attempt: parts of the
    shards it owns (SCATTER) and, from their owners, the aggregated other
    shards (GATHER; owners and bounds of every shard, when given)."""

    me: str
    job: str
    key: AttemptKey
    owned: dict[int, tuple[int, int]]  # shard -> [start, stop) that this peer aggregates
    owners: tuple[str, ...] = ()  # owner of each shard
    bounds: tuple[tuple[int, int], ...] = ()  # [start, stop) of each shard
    received: set[tuple[int, str]] = field(default_factory=set)  # (shard, sender) already in

    def header(self, h: ContributionHeader, caller: str) -> Refusal | None:
        """caller: who the connection's certificate names."""
        if h.sender != caller:
            return Refusal(RefusalKind.NOT_SENDER, f"the certificate is {caller!r} but the header says {h.sender!r}")
        if h.sender not in self.key.participants:
            return Refusal(RefusalKind.NOT_PARTICIPANT,
                           f"{h.sender} is not a participant of round {self.key.round} attempt {self.key.attempt}")  # fmt: skip
        if h.job != self.job or h.key != self.key:
            return Refusal(RefusalKind.WRONG_ATTEMPT, f"the stream is for job {h.job} round {h.key.round} attempt "
                           f"{h.key.attempt}; this peer runs job {self.job} round {self.key.round} attempt "
                           f"{self.key.attempt} ({self.key.digest})")  # fmt: skip
        refusal = self._shard(h)
        if refusal is not None:
            return refusal
        itemsize = WIRE_DTYPES.get(h.dtype)
        if itemsize is None:
            return Refusal(RefusalKind.BAD_DTYPE, f"dtype {h.dtype!r}; contributions travel as {', '.join(WIRE_DTYPES)}")
        if h.nbytes != h.n_elements * itemsize:
            return Refusal(RefusalKind.BAD_SIZE, f"{h.nbytes} bytes for {h.n_elements} {h.dtype} elements "
                           f"(expected {h.n_elements * itemsize})")  # fmt: skip
        if (h.shard, h.sender) in self.received:
            return Refusal(RefusalKind.DUPLICATE, f"{h.sender}'s contribution to shard {h.shard} is in already")
        return None

    def _shard(self, h: ContributionHeader) -> Refusal | None:
        span = (h.start, h.start + h.n_elements)
        if h.stage is Stage.SCATTER:
            if self.owned.get(h.shard) != span:
                return Refusal(RefusalKind.WRONG_SHARD, f"shard {h.shard} [{span[0]}, {span[1]}) is not one this "
                               f"peer aggregates ({_owned(self.owned)})")  # fmt: skip
            return None
        if not 0 <= h.shard < len(self.owners) or self.owners[h.shard] != h.sender or h.shard in self.owned:
            return Refusal(RefusalKind.WRONG_SHARD, f"{h.sender} sent the aggregate of shard {h.shard}, which it "
                           "does not own in this attempt")  # fmt: skip
        if self.bounds[h.shard] != span:
            return Refusal(RefusalKind.WRONG_SHARD, f"shard {h.shard} is [{self.bounds[h.shard][0]}, "
                           f"{self.bounds[h.shard][1]}), not [{span[0]}, {span[1]})")  # fmt: skip
        return None

    def accepted(self, h: ContributionHeader) -> None:
        """The stream checked out to its end: a second one is a duplicate."""
        self.received.add((h.shard, h.sender))


class ChunkCheck:
    """Chunks of one stream: in order, no gaps or overlaps, no byte past the
    header's size, and the SHA-256 of all of them the header's."""

    def __init__(self, header: ContributionHeader) -> None:
        self._header = header
        self._next = 0
        self._hash = hashlib.sha256()

    def chunk(self, offset: int, data: bytes | memoryview) -> Refusal | None:
        itemsize = WIRE_DTYPES.get(self._header.dtype, 1)
        if self._header.dtype != "FLOAT" and len(data) % itemsize:  # converted element by element
            return Refusal(RefusalKind.BAD_CHUNK, f"a chunk of {len(data)} bytes is not whole {self._header.dtype} "
                           f"elements of {itemsize} bytes")  # fmt: skip
        if offset != self._next:
            return Refusal(RefusalKind.BAD_CHUNK, f"a chunk at byte {offset}; the next expected is {self._next}")
        if offset + len(data) > self._header.nbytes:
            return Refusal(RefusalKind.BAD_CHUNK, f"a chunk of {len(data)} bytes at {offset} ends past the "
                           f"stream's {self._header.nbytes} bytes")  # fmt: skip
        self._hash.update(data)
        self._next += len(data)
        return None

    def finish(self) -> Refusal | None:
        if self._next != self._header.nbytes:
            return Refusal(RefusalKind.TRUNCATED, f"the stream ended after {self._next} of {self._header.nbytes} bytes")
        if self._hash.hexdigest() != self._header.sha256:
            return Refusal(RefusalKind.BAD_CHECKSUM, "the bytes' SHA-256 is not the header's")
        return None


def _owned(owned: dict[int, tuple[int, int]]) -> str:
    return ", ".join(f"shard {s} [{a}, {b})" for s, (a, b) in sorted(owned.items())) or "none"
