"""Cut a block of bytes into decoded lines, setting aside those no parser should see.

NUL bytes, invalid UTF-8, empty lines and lines over `max_line_bytes` are rejected here with their
reason; the common case (a clean block) is decoded and split entirely inside Arrow.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from loglake.writer.kernels import pc

if TYPE_CHECKING:
    import numpy as np

    from loglake.writer.parsers import Parser, ParseResult


@dataclass
class Chunk:
    """A run of whole source lines: `data` ends with a newline unless the source ended without one."""

    data: bytes
    start_offset: int
    start_line: int  # 1-based number of the first line in the source

    @property
    def end_offset(self) -> int:
        return self.start_offset + len(self.data)

    @cached_property
    def line_count(self) -> int:
        if not self.data:
            return 0
        return self.data.count(b"\n") + (0 if self.data.endswith(b"\n") else 1)

    def raw_lines(self, wanted: list[int]) -> list[tuple[int, bytes]]:
        """(source offset, raw bytes without newline) of the lines numbered `wanted` (0-based, in
        order); only used for rejected lines, so the block is not cut into every line for them."""
        ends = newline_positions(self.data)
        out = []
        for i in wanted:
            start = int(ends[i - 1]) + 1 if i else 0
            end = int(ends[i]) if i < len(ends) else len(self.data)
            out.append((self.start_offset + start, bytes(self.data[start:end])))
        return out


_LAST = threading.local()


def newline_positions(data: bytes) -> np.ndarray:
    """Where `data`'s newlines are, found once per block: the block parser (escapes, CRs) and the
    dead letters (raw lines) both need them, and each scan of a 4 MiB block costs ~1.5 ms. Only
    the last block of this thread is kept, by identity (a strong reference: its id cannot be
    reused while it is kept)."""
    import numpy

    if getattr(_LAST, "data", None) is not data:
        _LAST.positions = numpy.flatnonzero(numpy.frombuffer(data, numpy.uint8) == 10)
        _LAST.data = data
    return _LAST.positions


def known_newline_positions(data: bytes) -> np.ndarray | None:
    """`newline_positions(data)` when this thread has found them already, else None."""
    return _LAST.positions if getattr(_LAST, "data", None) is data else None


@dataclass
class SplitLines:
    """Decoded lines for the parser, with `index[i]` the chunk line of `lines[i]` (None: identity)."""

    lines: pa.StringArray
    index: pa.Array | None
    rejects: list[tuple[int, str]]
    #: How many lines the parser was given: `len(lines)`, or the block's count when a parser cut the
    #: block itself (then `lines` is empty).
    parsed: int = -1

    def __post_init__(self) -> None:
        if self.parsed < 0:
            self.parsed = len(self.lines)


def parse_chunk(
    parser: Parser, chunk: Chunk, max_line_bytes: int, by_lines: bool = False
) -> tuple[SplitLines, ParseResult]:
    """Split and parse one chunk. A parser with `parse_block` cuts the block itself (no per-line
    array at all) unless the block holds lines `split_lines` must reject; everything else is split
    here first. `by_lines` forces the split (tests hold both paths to the same result)."""
    block = None if by_lines else getattr(parser, "parse_block", None)
    if block is not None:
        done = block(chunk.data, max_line_bytes)
        if done is not None:
            result, count = done
            return SplitLines(pa.array([], pa.string()), None, [], parsed=count), result
    split = split_lines(chunk, max_line_bytes)
    return split, parser.parse(split.lines)


def split_lines(chunk: Chunk, max_line_bytes: int) -> SplitLines:
    """Decode and split `chunk`, rejecting NUL, non-UTF-8, empty and over-long lines."""
    data = chunk.data
    body = data[:-1] if data.endswith(b"\n") else data
    if not body and not data:
        return SplitLines(pa.array([], pa.string()), None, [])
    if b"\x00" in body:
        return _split_slowly(body, max_line_bytes)
    if b"\r" in body or b"\x01" in body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _split_slowly(body, max_line_bytes)
        lines = pc.list_flatten(pc.split_pattern(pa.array([text], pa.string()), "\n"))
        lines = pc.replace_substring_regex(lines, "\r$", "")
    else:
        try:
            lines = _read_lines(data if data.endswith(b"\n") else data + b"\n")
        except pa.ArrowInvalid:  # invalid UTF-8 somewhere in the block
            return _split_slowly(body, max_line_bytes)
    lengths = pc.binary_length(lines)
    bad = pc.or_(pc.equal(lengths, 0), pc.greater(lengths, max_line_bytes))
    if not pc.any(bad).as_py():
        return SplitLines(lines, None, [])
    rejects = []
    for i in pc.indices_nonzero(bad).to_pylist():
        size = lengths[i].as_py()
        rejects.append((i, "empty_line" if size == 0 else f"too_long: {size} bytes > {max_line_bytes}"))
    good = pc.indices_nonzero(pc.invert(bad))
    return SplitLines(lines.take(good), good, rejects)


_LINE_READ = pacsv.ReadOptions(column_names=["line"], use_threads=False, block_size=64 << 20)
# \x01 never occurs in the block (checked), so each line is exactly one field; no quoting, no escapes.
_LINE_PARSE = pacsv.ParseOptions(
    delimiter="\x01", quote_char=False, escape_char=False, newlines_in_values=False, ignore_empty_lines=False
)
_LINE_CONVERT = pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False)


def _read_lines(data: bytes) -> pa.StringArray:
    """Split a block into lines with Arrow's CSV tokenizer: it also validates UTF-8, and is ~40%
    faster than `split_pattern`. Only used for blocks without \r (the tokenizer ends lines there)."""
    table = pacsv.read_csv(
        pa.py_buffer(data), read_options=_LINE_READ, parse_options=_LINE_PARSE, convert_options=_LINE_CONVERT
    )
    return table["line"].combine_chunks()


def _split_slowly(body: bytes, max_line_bytes: int) -> SplitLines:
    keep: list[str] = []
    index: list[int] = []
    rejects: list[tuple[int, str]] = []
    for i, raw in enumerate(body.split(b"\n")):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            rejects.append((i, "empty_line"))
        elif len(raw) > max_line_bytes:
            rejects.append((i, f"too_long: {len(raw)} bytes > {max_line_bytes}"))
        elif b"\x00" in raw:
            rejects.append((i, "nul_bytes: the line holds NUL bytes (file damage or a binary write)"))
        else:
            try:
                keep.append(raw.decode("utf-8"))
                index.append(i)
            except UnicodeDecodeError as e:
                rejects.append((i, f"invalid_utf8: byte {e.start}"))
    return SplitLines(pa.array(keep, pa.string()), pa.array(index, pa.int64()), rejects)
