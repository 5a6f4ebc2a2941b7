"""Byte-level helpers of the block path (`clfblock.py`): a piece column seen as numpy, spans cut
out of a buffer with one copy, memchr searches, and checks of eight bytes at once (SWAR on 64-bit
words), which cost one numpy operation per word where a byte matrix costs one per byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loglake.writer.kernels import byte_slice, find, from_numpy, pc, take

if TYPE_CHECKING:
    import numpy as np


def spans(np: Any, data: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> pa.StringArray:
    """data[starts[i]:ends[i]] (ascending, not overlapping) with one copy: the spans and the gaps
    between them are consecutive, so a string array over `data` (offsets start, end, start, ...)
    holds them all, and `take` copies every other value out."""
    n = len(starts)
    offsets = np.empty(2 * n + 1, np.int32)
    offsets[0:-1:2], offsets[1::2] = starts, ends
    offsets[-1] = ends[-1] if n else 0
    both = pa.StringArray.from_buffers(2 * n, pa.py_buffer(offsets), data)
    return take(both, from_numpy(np.arange(0, 2 * n, 2, dtype=np.int32)))


class Piece:
    """One piece column as numpy: value i is `buf[start[i]:end[i]]`."""

    def __init__(self, np: Any, arr: pa.StringArray) -> None:
        self.arr = arr
        offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
        self.start, self.end = offsets[:-1], offsets[1:]
        data = arr.buffers()[2]
        self.buf = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        self.np = np
        self.words: np.ndarray | None = None
        self.cuts: dict[tuple[int, int], pa.BinaryArray] = {}  # `edge`'s, by (start, width)

    def at(self, pos: np.ndarray) -> np.ndarray:
        return self.buf[self.np.clip(pos, 0, max(len(self.buf) - 1, 0))] if len(self.buf) else pos * 0

    def window(self, pos: np.ndarray, width: int) -> np.ndarray:
        """The `width` bytes (a multiple of 8, at most 32) from each position, zeros past the end,
        as rows of a uint8 matrix: one gather per 8 bytes, from a view of the buffer as a 64-bit
        word at every byte offset."""
        np = self.np
        if self.words is None:
            padded = np.concatenate([self.buf, np.zeros(40, np.uint8)])
            self.words = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
        at = np.clip(pos, 0, len(self.buf))
        got = self.words[at] if width == 8 else self.words[at[:, None] + np.arange(0, width, 8)]
        return np.ascontiguousarray(got).view(np.uint8).reshape(len(pos), width)

    def edge(self, start: int, width: int) -> np.ndarray:
        """Bytes `start:start + width` of every value (`start` < 0: from its end) as rows of an
        (n, width) uint8 matrix; a shorter value's row runs into its neighbours (`window`). When
        no value is shorter, Arrow's `binary_slice` cuts them: it copies each value's bytes once,
        ~1/4 of the cost of `window`'s gathers (unaligned 8-byte loads, a fancy index each)."""
        np, n = self.np, len(self.arr)
        cut = byte_slice(self.arr.view(pa.binary()), start, start + width or None)
        offsets = np.frombuffer(cut.buffers()[1], np.int32)
        if n and offsets[n] - offsets[0] == n * width:  # no value is longer: all are this wide
            self.cuts[start, width] = cut
            return np.frombuffer(cut.buffers()[2], np.uint8, n * width, offsets[0]).reshape(n, width)
        return self.window(self.start + start if start >= 0 else self.end + start, width)

    def spaces(self) -> np.ndarray:
        return self.np.flatnonzero(self.buf == 32)

    def is_dash(self) -> np.ndarray:
        return (self.end - self.start == 1) & (self.at(self.start) == 45)

    def as_is(self, null: np.ndarray | None) -> pa.StringArray:
        """The piece itself, zero-copy, null where `null` (`-`)."""
        arr = self.arr
        if null is None or not null.any():
            return arr
        if arr.offset:  # the validity bits would need shifting; not worth it for a rare case
            return pc.if_else(pa.array(null), pa.scalar(None, pa.string()), arr)
        validity = pa.py_buffer(self.np.packbits(~null, bitorder="little"))
        return pa.StringArray.from_buffers(len(arr), arr.buffers()[1], arr.buffers()[2], validity)

    def slices(
        self, ok: np.ndarray, starts: np.ndarray, ends: np.ndarray, null: np.ndarray | None = None
    ) -> pa.StringArray:
        """buf[starts[i]:ends[i]] (`spans`). Rows not `ok` (their positions may be anything) get
        an empty string at their own value's start, which keeps the spans in order."""
        np, n = self.np, len(starts)
        if null is not None and null.all():  # a user name column is mostly `-`: often all of it
            return pa.nulls(n, pa.string())
        if not ok.all():
            starts, ends = np.where(ok, starts, self.start), np.where(ok, ends, self.start)
        out = spans(np, self.arr.buffers()[2], starts, ends)
        if null is None or not null.any():
            return out
        # Nulls set on the result (zero-copy) rather than carried through `take`, which is slower
        # with a validity bitmap (a user name column is mostly `-`).
        validity = pa.py_buffer(np.packbits(~null, bitorder="little"))
        return pa.StringArray.from_buffers(n, out.buffers()[1], out.buffers()[2], validity)


def first_of(np: Any, arr: pa.StringArray, needle: str) -> np.ndarray:
    """The offset of `needle`'s first occurrence in each value, -1 where there is none."""
    found = find(arr.view(pa.binary()), needle)  # int32, no nulls: `arr` has none
    return np.frombuffer(found.buffers()[1], np.int32, len(found), found.offset * 4)


def find_all(np: Any, buf: np.ndarray, data: bytes, needle: bytes) -> np.ndarray:
    """Start positions of `needle` in `data`: `bytes.find` hops (memchr) while hits are few, which
    is ~10x cheaper than a numpy pass over the block; a numpy pass once they are many (256 hops
    cost about one pass: the adversarial mix has thousands of backslashes a block)."""
    found: list[int] = []
    at = data.find(needle)
    while at >= 0:
        found.append(at)
        if len(found) > 256 and len(needle) == 1:
            return np.flatnonzero(buf == needle[0])
        at = data.find(needle, at + 1)
    return np.array(found, np.int64)


class Swar:
    """Constants for checking eight bytes at once in a little-endian 64-bit word (byte i is bits
    8i..8i+7). A check yields a word with bit 7 of each failing byte set."""

    def __init__(self, np: Any) -> None:
        u = np.uint64
        self.high, self.low7 = u(0x8080808080808080), u(0x7F7F7F7F7F7F7F7F)
        #: first[h]: bit 7 of bytes 0..h-1.
        self.first = np.array([sum(0x80 << (8 * i) for i in range(h)) for h in range(9)], np.uint64)
        self.skip_five = ~self.first[5]
        self.status_digits = u((0x80 << 16) | (0x80 << 24))
        self.proto_mask = u(0xFF00FFFFFFFFFF)
        self.proto = u(int.from_bytes(b"HTTP/\x00.", "little"))
        self.proto_digits = u((0x80 << 40) | (0x80 << 56))
        self.np = np

    def at_least(self, w: np.ndarray, c: int) -> np.ndarray:
        """Bit 7 set in bytes >= c (1 <= c <= 128), for bytes below 128: (b + 128 - c) has bit 7;
        no byte carries into the next, as b & 0x7F + 127 < 256."""
        return ((w & self.low7) + self.np.uint64((128 - c) * 0x0101010101010101)) & self.high


_SWAR: list[Swar] = []


def swar(np: Any) -> Swar:
    if not _SWAR:
        _SWAR.append(Swar(np))
    return _SWAR[0]


def not_digit(np: Any, w: np.ndarray) -> np.ndarray:
    """Bit 7 of every byte of `w` that is not an ASCII digit."""
    sw = swar(np)
    x = w ^ np.uint64(0x3030303030303030)  # digits become 0..9
    return (sw.at_least(x, 10) | x) & sw.high


def not_capital(np: Any, w: np.ndarray) -> np.ndarray:
    """Bit 7 of every byte of `w` that is not A-Z."""
    sw = swar(np)
    capital = sw.at_least(w, 65) & ~sw.at_least(w, 91) & ~w
    return ~capital & sw.high
