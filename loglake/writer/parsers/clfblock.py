"""Combined and common log lines cut straight from the block that was read, with no per-line array.

The Arrow path (`clf.py`) splits the block into lines, splits every line at its quotes and copies
each piece out with a `take`: on real traffic (long user agents, mostly distinct times) those passes
were ~2/3 of the writer's time. Here Arrow's CSV tokenizer, with `"` as the *delimiter*, cuts the
block into the pieces between quotes in one C++ pass (a line with the wrong number of quotes is an
invalid row, handed back whole). Referer, user agent and request are those pieces as they are; the
short pieces around them are checked and cut by byte position with numpy. Anything that is not the
plainest shape (escapes, odd requests, invalid times, trailing fields) goes to `ClfParser.parse`,
so this path only decides lines the Arrow path would decide identically; tests hold both to the
per-line parser.

It is also the cheaper path for small blocks (3 lines: 2.4 ms against 4.1 ms), so it takes every
block it can. numpy is imported by pyarrow anyway once installed, so it adds no start-up time.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from loglake.writer.kernels import cast, cast_table, from_numpy, join, pc, take
from loglake.writer.lines import known_newline_positions, newline_positions
from loglake.writer.parsers import ParseResult
from loglake.writer.parsers.clf import _MIN_PARTS, space_like, swap_escapes
from loglake.writer.parsers.clfbytes import find_all, spans
from loglake.writer.parsers.clfcut import _PIECES, _TRAILING, Cut

if TYPE_CHECKING:
    import numpy as np

    from loglake.writer.parsers.clf import ClfParser


def parse_block(parser: ClfParser, data: bytes, max_line_bytes: int) -> tuple[ParseResult, int] | None:
    """Parse a block of whole lines; (result, line count), or None when `split_lines` must decide
    (NUL, invalid UTF-8, empty, over-long or lone-CR lines: it rejects those with their reason).
    `_line` and reject indices count the block's lines."""
    ascii = data.isascii()  # once: `_eligible` and `space_like` both need it
    if not _eligible(data, ascii):
        return None
    return _parse(parser, data, max_line_bytes, _width(parser.fmt, data), True, ascii)


def _width(fmt: str, data: bytes) -> int:
    """Pieces per line of most lines, from the block's first lines: a block tokenized at the other
    width would see most of its lines as invalid rows (a Python call each)."""
    if fmt != "combined":
        return _PIECES[fmt]
    head = data[:16384].split(b"\n")[:-1] or [data]
    trailing = sum(line.count(b'"') == _TRAILING - 1 for line in head)
    return _TRAILING if trailing * 2 > len(head) else _PIECES[fmt]


def _parse(
    parser: ClfParser, data: bytes, max_line_bytes: int, width: int, other_width: bool, ascii: bool | None = None
) -> tuple[ParseResult, int] | None:
    """`parse_block` with `width` pieces per line; `other_width`: cut many lines of the other
    combined shape as a block of their own (`_other_shape`); `ascii`: `data.isascii()`, if known."""
    import numpy

    escapes = _Escapes(numpy, data) if b"\\" in data else None
    if escapes is not None and not escapes.ok:
        return None
    read = _read_pieces(data, width, escapes is not None and escapes.needed)
    if read is None or not read[0].num_rows:
        return None  # None: not one line of the shape, nothing to gain here
    pieces, invalid = read
    count = pieces.num_rows + len(invalid)
    if b"\r" in data and count != len(newline_positions(data)) + (not data.endswith(b"\n")):
        return None  # a lone CR ended a row for the tokenizer but not a line for us
    cut = Cut(numpy, pieces, parser.fmt, space_like(data, ascii), ascii is True)
    if (
        cut.shortest == 0
        or cut.longest > max_line_bytes
        or any(len(text) * 4 > max_line_bytes and len(text.encode()) > max_line_bytes for _, text in invalid)
    ):
        return None
    line_of = numpy.arange(count, dtype=numpy.int32)
    if invalid:
        line_of = numpy.delete(line_of, [number - 1 for number, _ in invalid])
    if escapes is not None:
        escapes.demote(
            cut.ok, line_of, None if escapes.needed else _line_starts(numpy, cut, line_of, invalid, len(data))
        )
    table = cut.table(parser.needed, line_of)
    demoted = numpy.flatnonzero(~cut.ok)
    if not len(demoted) and not invalid:
        return ParseResult(table), count
    other = None
    if other_width and parser.fmt == "combined":
        shape = _TRAILING if width == _PIECES["combined"] else _PIECES["combined"]
        other, invalid = _other_shape(numpy, parser, invalid, max_line_bytes, shape)
    if escapes is not None and escapes.needed:  # pieces hold unescaped text: raw lines from the block
        texts = escapes.lines(line_of[demoted])
    else:
        texts = join([take(col, from_numpy(demoted)) for col in cut.pieces], '"')
    return _with_demoted(numpy, parser, table, cut, demoted, texts, line_of, invalid, other), count


def _other_shape(
    np: Any, parser: ClfParser, invalid: list[tuple[int, str]], max_line_bytes: int, width: int
) -> tuple[ParseResult | None, list[tuple[int, str]]]:
    """Combined lines with and without a trailing quoted field (7 and 9 pieces) mixed in a block:
    the tokenizer's invalid rows include the other shape's lines, and many of them are cut as a
    block of their own rather than through the line-array path. (Their rows, with block line
    numbers; the other invalid rows.)"""
    picked = [k for k, (_, text) in enumerate(invalid) if text.count('"') == width - 1]
    if len(picked) <= _FEW:
        return None, invalid
    block = "\n".join([invalid[k][1] for k in picked]).encode() + b"\n"
    got = _parse(parser, block, max_line_bytes, width, False)
    if got is None:
        return None, invalid
    result, _ = got
    numbers = np.array([invalid[k][0] - 1 for k in picked], np.int32)
    table = result.table
    table = table.set_column(table.schema.get_field_index("_line"), "_line", take(from_numpy(numbers), table["_line"]))
    taken = set(picked)
    rest = [row for k, row in enumerate(invalid) if k not in taken]
    return ParseResult(table, [(int(numbers[i]), reason) for i, reason in result.rejects]), rest


class _Escapes:
    """Apache's `\\"` and `\\\\` let the tokenizer undo them (its escape character), which is what
    `values.unescape` makes of them; any other escape (`\\xHH`, a lone backslash) would lose its
    backslash there, so its line goes to the other paths. A run of backslashes pairs up from its
    left: an odd run escapes the byte after it."""

    def __init__(self, np: Any, data: bytes) -> None:
        self.np, self.data = np, data
        buf = np.frombuffer(data, np.uint8)
        at = find_all(np, buf, data, b"\\")
        first = np.flatnonzero(np.concatenate([[True], at[1:] != at[:-1] + 1]))
        length = np.diff(np.append(first, len(at)))
        last = at[first + length - 1]
        odd = length % 2 == 1
        after = buf[np.minimum(last + 1, len(buf) - 1)]
        # An escaped line end would join two lines into one row: then split_lines decides.
        self.ok = bool(last[-1] + 1 < len(buf) and not (odd & ((after == 10) | (after == 13))).any())
        # The tokenizer's escaping costs ~50% of its pass: on only when a `\\"` or `\\\\` is there
        # (a block of nginx's `\\xHH` alone has every backslash line demoted anyway).
        self.needed = bool((length >= 2).any() or (odd & (after == 34)).any())
        self.bad = last[odd & (after != 34)]  # ascending

    @property
    def newlines(self) -> np.ndarray:
        return newline_positions(self.data)

    def _line_numbers(self, buf: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The line each (ascending) position is on. Real traffic has a few lines of `\\xHH` runs
        per block: newlines are counted from one such line to the next (a position inside the
        line just counted costs one comparison), which skips the position array of every newline
        (~1 ms a block) unless it was found already (a block with CRs)."""
        np = self.np
        if len(positions) > 4096 or known_newline_positions(self.data) is not None:
            return np.searchsorted(self.newlines, positions)
        out, line, prev, end = [], 0, 0, -1
        scratch = _scratch(np, len(buf))  # a fresh 4 MiB temporary per count cost page faults
        for pos in positions.tolist():
            if pos > end:
                line += int(np.count_nonzero(np.equal(buf[prev:pos], 10, out=scratch[: pos - prev])))
                prev, end = pos, self.data.find(b"\n", pos)
                end = len(buf) if end < 0 else end
            out.append(line)
        return np.array(out, np.int64)

    def demote(self, ok: np.ndarray, line_of: np.ndarray, starts: np.ndarray | None) -> None:
        """Rows whose lines hold a bad escape are not `ok`; `starts` (each line's offset, when
        known from the pieces) places the escapes without looking at the block again."""
        np = self.np
        if not len(self.bad):
            return
        if starts is not None:
            bad = np.searchsorted(starts, self.bad, side="right") - 1
        else:
            bad = self._line_numbers(np.frombuffer(self.data, np.uint8), self.bad)
        bad = bad[np.concatenate([[True], bad[1:] != bad[:-1]])]
        rows = np.searchsorted(line_of, bad)
        rows = rows[rows < len(line_of)]
        ok[rows[line_of[rows] == bad[: len(rows)]]] = False

    def lines(self, numbers: np.ndarray) -> pa.StringArray:
        """The raw text of lines `numbers` (ascending), CR stripped as the tokenizer strips it."""
        np, nl, data = self.np, self.newlines, self.data
        starts = np.where(numbers > 0, nl[np.maximum(numbers - 1, 0)] + 1, 0)
        ends = np.where(numbers < len(nl), nl[np.minimum(numbers, len(nl) - 1)], len(data))
        buf = np.frombuffer(data, np.uint8)
        ends = ends - ((ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13))
        return spans(np, pa.py_buffer(data), starts, ends)


def _line_starts(
    np: Any, cut: Cut, line_of: np.ndarray, invalid: list[tuple[int, str]], size: int
) -> np.ndarray | None:
    """Each line's offset in the block: a line is its pieces, the quotes between them and its
    newline (the tokenizer's pieces are the raw bytes when it unescapes nothing). None when the
    lengths do not add up to the block (CRs, which the tokenizer drops): count newlines then."""
    lengths = np.empty(len(line_of) + len(invalid), np.int64)
    lengths[line_of] = cut.lengths + len(cut.p)
    for number, text in invalid:
        lengths[number - 1] = len(text.encode("utf-8")) + 1
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return starts[:-1] if starts[-1] in (size, size + 1) else None  # +1: a last line without newline


_LOCAL = threading.local()


def _scratch(np: Any, size: int) -> np.ndarray:
    """A bool array of at least `size`, kept per thread and reused block after block."""
    buf = getattr(_LOCAL, "scratch", None)
    if buf is None or len(buf) < size:
        buf = _LOCAL.scratch = np.empty(max(size, 1), bool)
    return buf


def _eligible(data: bytes, ascii: bool) -> bool:
    # Empty lines are found after tokenizing (a row of empty pieces: `Cut.shortest`); searching
    # for b"\n\n" here cost more than the tokenizer's whole pass.
    if not data or b"\x00" in data:
        return False
    return ascii or _is_utf8(data)


def _is_utf8(data: bytes) -> bool:
    """Arrow's validation (SIMD) rather than `bytes.decode`, which would build a str of the block."""
    whole = pa.Array.from_buffers(
        pa.binary(), 1, [None, pa.array([0, len(data)], pa.int32()).buffers()[1], pa.py_buffer(data)]
    )
    try:
        cast(whole, pa.string())
    except pa.ArrowInvalid:
        return False
    return True


def _read_pieces(data: bytes, pieces: int, escapes: bool) -> tuple[pa.Table, list[tuple[int, str]]] | None:
    names = [f"p{i}" for i in range(pieces)]
    invalid: list[tuple[int, str]] = []

    def handler(row: Any) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    read = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=max(64 << 20, len(data) + 1))
    parse = pacsv.ParseOptions(
        delimiter='"',
        quote_char=False,
        escape_char="\\" if escapes else False,
        newlines_in_values=False,
        ignore_empty_lines=False,
        invalid_row_handler=handler,
    )
    # Binary columns, viewed as strings after: the block is valid UTF-8 (`_eligible`), and pieces
    # end at ASCII bytes, so validating each column again would only cost (~20% of the pass).
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.binary()), strings_can_be_null=False)
    try:
        table = pacsv.read_csv(pa.py_buffer(data), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if any(number < 1 for number, _ in invalid):
        return None  # rows without a number cannot be put back in place
    table = table.combine_chunks()
    return pa.table(
        [table.column(i).chunk(0).view(pa.string()) for i in range(pieces)], names=names
    ) if table.num_rows else table, invalid


#: Up to this many lines of the other combined shape are left to the per-line paths (`_other_shape`);
#: up to this many rows dropped from the block's table or inserted into it are spliced in between
#: zero-copy slices of it (`_splice`); more are merged by one `take`.
_FEW = 64
#: The line-array path costs ~3.5 ms a call plus ~0.3 us a line, the per-line parser ~9 us a plain
#: line (and 1-2 us for garbage it rejects at once): it takes more than this many lines.
_ARROW_MIN = 400


def _with_demoted(
    np: Any,
    parser: ClfParser,
    table: pa.Table,
    cut: Cut,
    demoted: np.ndarray,
    texts: pa.StringArray,
    line_of: np.ndarray,
    invalid: list[tuple[int, str]],
    other: ParseResult | None = None,
) -> ParseResult:
    """Lines of other shapes (`texts`: the `demoted` rows' lines) through the Arrow path's parser,
    merged back in line order with the rows of `other` (`_other_shape`)."""
    lines = np.concatenate([line_of[demoted], np.array([n - 1 for n, _ in invalid], np.int32)])
    order = np.argsort(lines, kind="stable")
    lines = lines[order]
    texts = take(pa.concat_arrays([texts, pa.array([t for _, t in invalid], pa.string())]), from_numpy(order))
    sub_table, local = _parse_demoted(np, parser, texts)
    sub_table = cast_table(
        sub_table.set_column(
            sub_table.schema.get_field_index("_line"), "_line", take(from_numpy(lines), sub_table["_line"])
        ),
        table.schema,
    )
    rejects = [(int(lines[i]), reason) for i, reason in local]
    # What the splice costs is the rows it drops and inserts: garbage, rejected whole, inserts none
    # (a scan of bad lines would otherwise pay a `take` of every column of the block).
    if len(demoted) + sub_table.num_rows <= _FEW and other is None:
        return ParseResult(_splice(np, table, demoted, line_of, sub_table), rejects)
    kept = np.flatnonzero(cut.ok)
    others = [sub_table] if other is None else [sub_table, cast_table(other.table, table.schema)]
    if other is not None:
        rejects += other.rejects
    merged = pa.concat_tables([table, *others])
    lines_all = np.concatenate([line_of[kept], *(t["_line"].to_numpy() for t in others)])
    rows = np.concatenate([kept, np.arange(table.num_rows, merged.num_rows)])
    return ParseResult(take(merged, from_numpy(rows[np.argsort(lines_all, kind="stable")])), rejects)


def _parse_demoted(np: Any, parser: ClfParser, texts: pa.StringArray) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Rows (`_line`: index in `texts`, any order) and rejects of lines the block path left. The
    per-line parser gives what `parse` gives (tests hold them equal): it takes the few, and the
    lines `parse` would hand it anyway (`_surely_per_line`); the line-array path the rest, when
    there are enough of them to be worth its fixed cost (`_ARROW_MIN`)."""
    quotes = _quote_counts(np, texts) if len(texts) > _ARROW_MIN else None
    # The line-array path takes only lines with quotes enough: too few of them, and it is not asked.
    if quotes is not None and np.count_nonzero(quotes >= _MIN_PARTS[parser.fmt] - 1) > _ARROW_MIN:
        per_line = _surely_per_line(np, parser.fmt, texts, quotes)
        rest = np.flatnonzero(~per_line)
        if len(rest) > _ARROW_MIN:
            sub = parser.parse(take(texts, from_numpy(rest)))
            arrow = sub.table.set_column(
                sub.table.schema.get_field_index("_line"), "_line", take(from_numpy(rest), sub.table["_line"])
            )
            table, rejects = parser._slow(texts, np.flatnonzero(per_line).tolist())
            rejects += [(int(rest[i]), reason) for i, reason in sub.rejects]
            return pa.concat_tables([cast_table(arrow, table.schema), table]), rejects
    return parser._slow(texts, list(range(len(texts))))


def _quote_counts(np: Any, texts: pa.StringArray) -> np.ndarray:
    """The number of `"` in each of `texts`, by one numpy pass over their bytes (Arrow's
    `count_substring` goes byte by byte: ~1 ms on a scan's leftover lines)."""
    _, offsets, data = texts.buffers()
    if data is None:
        return np.zeros(len(texts), np.int64)
    offsets = np.frombuffer(offsets, np.int32)[texts.offset : texts.offset + len(texts) + 1]
    return np.diff(np.searchsorted(np.flatnonzero(np.frombuffer(data, np.uint8) == 34), offsets))


def _surely_per_line(np: Any, fmt: str, texts: pa.StringArray, quotes: np.ndarray) -> np.ndarray:
    """Lines `ClfParser.parse` would give its per-line parser: too few quotes for its shape
    (`quotes`: each line's count), or an escape other than `\\"` and `\\\\` (its `_mask_escapes`).
    Probes and garbage are mostly these."""
    escaped = pc.match_substring(swap_escapes(texts), "\\").to_numpy(zero_copy_only=False)
    return (quotes < _MIN_PARTS[fmt] - 1) | escaped


def _splice(np: Any, table: pa.Table, demoted: np.ndarray, line_of: np.ndarray, sub: pa.Table) -> pa.Table:
    """`table` without its `demoted` rows and with `sub`'s rows in their line order, as chunks:
    slices of `table` around a few single rows, so nothing is copied."""
    at = np.searchsorted(line_of, sub["_line"].to_numpy())  # the table row each goes before
    events = sorted([(int(p), 0, k) for k, p in enumerate(at)] + [(int(d), 1, -1) for d in demoted])
    out, prev = [], 0
    for pos, kind, k in events:
        if pos > prev:
            out.append(table.slice(prev, pos - prev))
            prev = pos
        if kind == 0:
            out.append(sub.slice(k, 1))
        else:
            prev = pos + 1  # the demoted row itself
    out.append(table.slice(prev))
    return pa.concat_tables(out)
