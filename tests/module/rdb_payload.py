"""Builds DUMP payloads of AI_TENSOR values by hand, to feed RESTORE with
values that the module's rdb_load must refuse (or accept).

A DUMP payload is: the RDB object (type byte, module id, the module's
opcodes, an EOF opcode), the RDB version (2 bytes, little-endian) and the
CRC-64 (Jones, reflected, as Redis computes it) of everything before it.
The module writes (encoding version 1): magic, dtype, ndim, dims..., nbytes,
nchunks as unsigned integers, then nchunks string buffers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 0x5350525431
OPCODE_EOF = 0
OPCODE_UINT = 2
OPCODE_STRING = 5

_POLY = 0x95AC9329AC4BC9B5  # 0xad93d23594c935a9 reflected
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc64(data: bytes, crc: int = 0) -> int:
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def encode_len(n: int) -> bytes:
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def decode_len(data: bytes, pos: int) -> tuple[int, int]:
    kind = data[pos] >> 6
    if kind == 0:
        return data[pos] & 0x3F, pos + 1
    if kind == 1:
        return ((data[pos] & 0x3F) << 8) | data[pos + 1], pos + 2
    if data[pos] == 0x80:
        return struct.unpack(">I", data[pos + 1 : pos + 5])[0], pos + 5
    if data[pos] == 0x81:
        return struct.unpack(">Q", data[pos + 1 : pos + 9])[0], pos + 9
    raise ValueError(f"special string encoding at {pos}")


@dataclass(frozen=True)
class Frame:
    """What surrounds the module's opcodes in a DUMP payload of this server."""

    header: bytes  # type byte and module id
    version: bytes  # RDB version, 2 bytes

    @classmethod
    def from_dump(cls, payload: bytes) -> "Frame":
        body, trailer = payload[:-8], payload[-8:]
        if struct.unpack("<Q", trailer)[0] != crc64(body):
            raise ValueError("DUMP payload CRC does not match: wrong CRC-64 variant")
        _, pos = decode_len(body, 1)  # module id after the type byte
        return cls(header=body[:pos], version=body[-2:])

    def payload(self, opcodes: bytes) -> bytes:
        body = self.header + opcodes + encode_len(OPCODE_EOF) + self.version
        return body + struct.pack("<Q", crc64(body))


def uint(v: int) -> bytes:
    return encode_len(OPCODE_UINT) + encode_len(v)


def string(b: bytes) -> bytes:
    return encode_len(OPCODE_STRING) + encode_len(len(b)) + b


def tensor_opcodes(
    dtype: int,
    dims: list[int],
    chunks: list[bytes],
    *,
    magic: int = MAGIC,
    nbytes: int | None = None,
    nchunks: int | None = None,
    ndim: int | None = None,
) -> bytes:
    """The module's encoding of a tensor; keyword overrides make it lie."""
    out = uint(magic) + uint(dtype) + uint(len(dims) if ndim is None else ndim)
    out += b"".join(uint(d) for d in dims)
    out += uint(sum(len(c) for c in chunks) if nbytes is None else nbytes)
    out += uint(len(chunks) if nchunks is None else nchunks)
    out += b"".join(string(c) for c in chunks)
    return out
