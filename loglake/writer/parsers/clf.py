"""Apache/nginx combined and common log format, vectorized with Arrow compute.

Most lines of a real log have one rigid shape. The fast path checks that shape with one RE2 match
(no captures: capture extraction cost 2 us/line, matching 0.3 us), then cuts fields by splitting on
quotes and spaces, all inside Arrow. Lines with escapes, odd requests or bad values fall to a
per-line Python parser that knows every oddity and gives a reason when it rejects a line.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from datetime import datetime

import pyarrow as pa

from loglake.schema import CLF_COLUMNS
from loglake.writer.kernels import pc, take
from loglake.writer.parsers import ParseResult
from loglake.writer.parsers.values import (
    PARSED_TYPES,
    clf_time_to_iso,
    clf_typed,
    rows_to_table,
    split_request,
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_SET = pa.array(_MONTHS)
_MONTH_NUM = pa.array([f"{i:02d}" for i in range(1, 13)])
_TIME_RX = r"\[[0-9]{2}/(?:" + "|".join(_MONTHS) + r")/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\]"
# The fast path checks the shape of each quote-delimited piece instead of the whole line: the
# pieces before the request and after it are short, so this scans ~1/3 of the bytes a whole-line
# match would. Backslashes (escapes) are looked for once per chunk.
_PRE_RX = r"^[^ ]+ [^ ]+ [^ ]+ " + _TIME_RX + " $"  # `ip ident user [time] ` (no quotes by construction)
_STATUS_RX = {
    "combined": r"^ [1-5][0-9]{2} (?:[0-9]{1,18}|-) $",
    "common": r"^ [1-5][0-9]{2} (?:[0-9]{1,18}|-)(?: .*)?$",
}
#: A common-format status piece with more quotes after it: the bytes must end at a space.
_COMMON_STATUS_BEFORE_QUOTE = r"^ [1-5][0-9]{2} (?:[0-9]{1,18}|-) "
_MIN_PARTS = {"combined": 7, "common": 3}
_REQUEST_RX = r"^(?P<method>[A-Z][A-Z0-9_-]*) (?P<path>[^ ]+)(?: (?P<protocol>HTTP/[0-9.]+))?$"

#: A quoted value, escapes allowed; the closing quote is matched by the caller. Unrolled
#: (`a*(?:\\.a*)*`, not `(?:a|\\.)*`): the same matches, but Python's engine takes the plain runs
#: at once instead of one alternation per character, 2.5x faster on long escaped probes.
_Q = r'"([^"\\]*(?:\\.[^"\\]*)*)'
#: `_Q` for a value a quote must follow (request, referer): possessive, as it can end nowhere but at
#: its first unescaped quote (from the left, a backslash and the byte after it are one unit, so no
#: shorter match is followed by a quote). The same matches; without the backtracking state `re`
#: keeps for each escape (a probe of `\xHH` runs: 7.4 -> 5.6 us a line).
_QP = r'"([^"\\]*+(?:\\.[^"\\]*+)*+)'
_SLOW = {
    "combined": re.compile(
        r"^(\S+) (\S+) (\S+) \[([^\]]*)\] " + _QP + r'" (\S+) (\S+)'
        # The last quote may be missing when a server truncated the line (seen in real logs).
        r"(?: " + _QP + r'" ' + _Q + r'"?)?(?: .*)?$'
    ),
    "common": re.compile(r"^(\S+) (\S+) (\S+) \[([^\]]*)\] " + _QP + r'" (\S+) (\S+)(?: .*)?$'),
}
_STR_NULL = pa.scalar(None, pa.string())
#: Whitespace other than the space, in UTF-8 (tab and the other ASCII controls Python's `\S`
#: excludes, NEL, NBSP, U+1680, the U+2000 block, U+205F, U+3000): a field holding one ends where the
#: per-line regex says, not where a split at spaces would, so such lines go per line. `\xe2\x80`
#: takes all of U+2000..U+203F (curly quotes too): conservative, and rare in access logs.
_SPACE_ASCII = (b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
_SPACE_UTF8 = (b"\xc2\x85", b"\xc2\xa0", b"\xe1\x9a\x80", b"\xe2\x80", b"\xe2\x81\x9f", b"\xe3\x80\x80")


def space_like(data: bytes, ascii: bool | None = None) -> list[bytes]:
    """Which of those occur in `data`: single bytes are a memchr each; a multi-byte needle is only
    searched for when its lead byte occurs (a search for two bytes costs ~7x one for one).
    `ascii`: `data.isascii()` when the caller knows it (a pass of ~0.4 ms over a 4 MiB block)."""
    found = [c for c in _SPACE_ASCII if c in data]
    if not (data.isascii() if ascii is None else ascii):
        found += [c for c in _SPACE_UTF8 if c[:1] in data and c in data]
    return found


def _element(lists: pa.ListArray, k: int) -> pa.Array:
    """`pc.list_element` via one `take` on the flat values: 10x faster, and safe here because the
    strict match guarantees every list has more than `k` elements."""
    return lists.values.take(pc.add(lists.offsets.slice(0, len(lists)), k))


def _dash_to_null(arr: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(arr, "-"), _STR_NULL, arr)


class ClfParser:
    """Combined (`common` + referer + user agent) or common log format."""

    def __init__(self, fmt: str, needed: list[str]) -> None:
        self.fmt = fmt
        self.needed = [c for c in PARSED_TYPES if c in needed]
        missing = set(self.needed) - CLF_COLUMNS[fmt]
        if missing:
            raise ValueError(f"the {fmt} format has no {', '.join(sorted(missing))} field")

    def parse(self, lines: pa.StringArray) -> ParseResult:
        n = len(lines)
        if n == 0:
            return ParseResult(rows_to_table([], self.needed, []))
        original = lines
        raw = _bytes_of(lines)  # once: each search below reads the same buffer
        lines, masked, escaped = _mask_escapes(lines, raw)
        odd = space_like(raw) + ([b"\r"] if b"\r" in raw else [])  # a CR left inside a line
        if odd:
            escaped = sorted(set(escaped).union(*(_lines_with(original, c, raw) for c in odd)))
        quoted = pc.split_pattern(lines, '"')
        fast_mask = self._shape_ok(lines, quoted, escaped)
        fast_idx = pc.indices_nonzero(fast_mask)
        parts: list[pa.Table] = []
        slow_idx: list[int] = []
        if len(fast_idx):
            fast_quoted = quoted if len(fast_idx) == n else quoted.take(fast_idx)
            table, bad = self._fast(fast_quoted, fast_idx)
            parts.append(_unmask(table, masked, n) if masked else table)
            slow_idx.extend(bad)
        if len(fast_idx) < n:
            slow_idx.extend(pc.indices_nonzero(pc.invert(fast_mask)).to_pylist())
        rejects: list[tuple[int, str]] = []
        if slow_idx:
            slow_idx.sort()
            table, rejects = self._slow(original, slow_idx)
            parts.append(table)
        if len(parts) == 1:
            return ParseResult(parts[0], rejects)
        merged = pa.concat_tables(parts)
        return ParseResult(merged.take(pc.sort_indices(merged["_line"])), rejects)

    def parse_block(self, data: bytes, max_line_bytes: int) -> tuple[ParseResult, int] | None:
        """Parse a whole block by byte position (`clfblock.py`); None: split it into lines first."""
        from loglake.writer.parsers.clfblock import parse_block

        return parse_block(self, data, max_line_bytes)

    def _shape_ok(self, lines: pa.StringArray, quoted: pa.ListArray, escaped: list[int]) -> pa.BooleanArray:
        """Which lines have exactly the rigid shape the fast path cuts (everything else goes slow:
        `escaped`, lines with escapes other than `\\"` and `\\\\`, among them)."""
        enough = pc.greater_equal(pc.list_value_length(quoted), _MIN_PARTS[self.fmt])
        all_enough = pc.all(enough).as_py()
        q = quoted if all_enough else quoted.filter(enough)  # _element needs enough parts per list
        status = _element(q, 2)
        ok = pc.and_(
            pc.match_substring_regex(_element(q, 0), _PRE_RX), pc.match_substring_regex(status, _STATUS_RX[self.fmt])
        )
        if self.fmt == "common":
            # Bytes run to the next space: when a quote follows them directly (`200 9"46`) the
            # token is `9"46`, which the per-line parser rejects, so such lines go there.
            last = pc.equal(pc.list_value_length(q), 3)
            ok = pc.and_(ok, pc.or_(last, pc.match_substring_regex(status, _COMMON_STATUS_BEFORE_QUOTE)))
        if self.fmt == "combined":
            after_ua = _element(q, 6)
            ok = pc.and_(
                ok,
                pc.and_(
                    pc.equal(_element(q, 4), " "),
                    pc.or_(
                        pc.and_(pc.equal(after_ua, ""), pc.equal(pc.list_value_length(q), 7)),
                        pc.starts_with(after_ua, " "),
                    ),
                ),
            )
        if not all_enough:
            full = pa.array([False] * len(lines))
            ok = pc.replace_with_mask(full, enough, ok)
        if escaped:  # escapes the fast path cannot undo need the per-line parser
            ok = pc.replace_with_mask(ok, _mask(len(lines), escaped), pa.array([False] * len(escaped)))
        return ok

    def _fast(self, quoted: pa.ListArray, idx: pa.Array) -> tuple[pa.Table, list[int]]:
        """Cut the rigidly-shaped lines (already split at quotes); returns rows plus indices whose
        time turned out invalid."""
        need = set(self.needed)
        # `ip ident user [time zone] ` -> `ip ident user ` and `time zone] `, cut at the fixed
        # width `_PRE_RX` checked: a `[` inside the user name must not be taken for the time's.
        pre = _element(quoted, 0)
        cols: dict[str, pa.Array] = {}
        if need & {"client_ip", "username"}:
            head = pc.split_pattern(pc.utf8_slice_codeunits(pre, 0, -29), " ", max_splits=3)
            if "client_ip" in need:
                cols["client_ip"] = _element(head, 0)
            if "username" in need:
                cols["username"] = _dash_to_null(_element(head, 2))
        if need & {"status", "bytes"}:
            sb = pc.split_pattern(_element(quoted, 2), " ", max_splits=3)
            if "status" in need:
                cols["status"] = pc.cast(_element(sb, 1), pa.int16())
            if "bytes" in need:
                cols["bytes"] = pc.cast(_dash_to_null(_element(sb, 2)), pa.int64())
        if need & {"request", "method", "path", "protocol"}:
            request = _element(quoted, 1)
            if "request" in need:
                cols["request"] = _dash_to_null(request)  # `""` stays an empty string
            if need & {"method", "path", "protocol"}:
                cols.update(_split_requests(request, need))
        if self.fmt == "combined":
            if "referer" in need:
                cols["referer"] = _dash_to_null(_element(quoted, 3))
            if "user_agent" in need:
                cols["user_agent"] = _dash_to_null(_element(quoted, 5))
        bad: list[int] = []
        keep = None
        if "ts" in need:
            ts, ok = _clf_times(pc.utf8_slice_codeunits(pre, -28))
            cols["ts"] = ts
            if ok is not None:
                keep = ok
                bad = pc.filter(idx, pc.invert(ok)).to_pylist()
        cols["_line"] = pc.cast(idx, pa.int32())
        table = pa.table({c: cols[c] for c in [*self.needed, "_line"]})
        if keep is not None:
            table = table.filter(keep)
        return table, bad

    def _slow(self, lines: pa.Array, idx: list[int]) -> tuple[pa.Table, list[tuple[int, str]]]:
        rx = _SLOW[self.fmt]
        rows, kept, rejects = [], [], []
        texts = take(lines, pa.array(idx, pa.int64())).to_pylist()
        for i, text in zip(idx, texts, strict=True):
            row, reason = self._line_row(text, rx)  # rows_to_table takes the needed columns
            if row is None:
                rejects.append((i, reason))
            else:
                rows.append(row)
                kept.append(i)
        return rows_to_table(rows, self.needed, kept), rejects

    def parse_line(self, text: str, rx: re.Pattern[str] | None = None) -> tuple[dict | None, str]:
        """Parse one line the slow, forgiving way; (row, "") or (None, reason)."""
        row, reason = self._line_row(text, rx)
        return ({c: row.get(c) for c in self.needed} if row is not None else None), reason

    def _line_row(self, text: str, rx: re.Pattern[str] | None = None) -> tuple[dict | None, str]:
        """`parse_line` with every field the line has, needed or not."""
        m = (rx or _SLOW[self.fmt]).match(text)
        if m is None:
            return None, f"unparseable: not {self.fmt} log format"
        g = m.groups()
        iso = clf_time_to_iso(g[3])
        if iso is None:
            return None, f"invalid_time: {g[3][:64]!r}"
        # `""` is an empty request (kept, as peers do); `-` is no request
        row, reason = clf_typed(g, self.fmt == "combined")
        if row is None:
            return None, reason
        row["ts"] = iso
        row["method"], row["path"], row["protocol"] = split_request(row["request"] or "")
        return row, ""


def _bytes_of(lines: pa.StringArray) -> bytes:
    data = lines.buffers()[2]
    return data.to_pybytes() if data is not None else b""


def _lines_with(lines: pa.StringArray, byte: bytes, raw: bytes) -> list[int]:
    """Indices of the lines holding `byte` (`raw`: their data buffer, `_bytes_of`): one `find` per
    hit, and a binary search in the offsets (a per-line `match_substring` over a block cost 14 ms
    for the rare hit)."""
    if not raw or not len(lines):
        return []
    offsets = memoryview(lines.buffers()[1]).cast("i")[lines.offset : lines.offset + len(lines) + 1]
    out: list[int] = []
    pos, end = raw.find(byte, offsets[0]), offsets[-1]
    while 0 <= pos < end:
        i = bisect_right(offsets, pos) - 1
        out.append(i)
        pos = raw.find(byte, offsets[i + 1])
    return out


def _mask(n: int, idx: list[int]) -> pa.BooleanArray:
    flags = [False] * n
    for i in idx:
        flags[i] = True
    return pa.array(flags, pa.bool_())


#: Stand-ins for `\\` and `\"` while the fast path cuts at quotes; put back in every value after.
_BACKSLASH, _QUOTE = "\x02", "\x03"


def _mask_escapes(lines: pa.StringArray, raw: bytes) -> tuple[pa.StringArray, list[int], list[int]]:
    """Apache's `\\"` and `\\\\` (an agent or a path with a quote) swapped for stand-ins, so those
    lines stay on the fast path; (lines, masked line indices, indices of lines with other escapes).
    `raw` is the lines' data buffer (`_bytes_of`)."""
    with_bs = _lines_with(lines, b"\\", raw)
    if not with_bs:
        return lines, [], []
    if b"\x02" in raw or b"\x03" in raw:
        return lines, [], with_bs  # the stand-ins occur in the block itself: no swapping
    swapped = swap_escapes(lines.take(pa.array(with_bs, pa.int64())))
    other = pc.match_substring(swapped, "\\").to_pylist()
    masked = [i for i, o in zip(with_bs, other, strict=True) if not o]
    escaped = [i for i, o in zip(with_bs, other, strict=True) if o]
    if not masked:
        return lines, [], with_bs
    keep = pc.invert(pa.array(other, pa.bool_()))
    lines = pc.replace_with_mask(lines, _mask(len(lines), masked), swapped.filter(keep))
    return lines, masked, escaped


def swap_escapes(lines: pa.StringArray) -> pa.StringArray:
    """`\\\\` and `\\"` swapped for their stand-ins: a backslash left after it is another escape."""
    return pc.replace_substring(pc.replace_substring(lines, "\\\\", _BACKSLASH), '\\"', _QUOTE)


def _unmask(table: pa.Table, masked: list[int], n: int) -> pa.Table:
    """Put `"` and `\\` back in the values of the lines `_mask_escapes` swapped (what `unescape`
    makes of `\\"` and `\\\\` on the per-line path)."""
    rows = pc.take(_mask(n, masked), table["_line"].combine_chunks())
    for name in table.column_names:
        col = table[name]
        if name in ("ts", "_line") or not pa.types.is_string(col.type):
            continue
        col = col.combine_chunks()
        fixed = pc.replace_substring(pc.replace_substring(col.filter(rows), _QUOTE, '"'), _BACKSLASH, "\\")
        table = table.set_column(table.schema.get_field_index(name), name, pc.replace_with_mask(col, rows, fixed))
    return table


def _strict_local(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value or "", "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


def _split_requests(request: pa.Array, need: set[str]) -> dict[str, pa.Array]:
    """Method, path and protocol of `METHOD TARGET PROTOCOL` requests, by splitting; the rare
    other shapes (HTTP/0.9, probes, empty) go through the regex, which costs 7x more per line."""
    out: dict[str, pa.Array] = {}
    parts = pc.split_pattern(request, " ")
    if pc.all(pc.equal(pc.list_value_length(parts), 3)).as_py():
        method, target, protocol = (_element(parts, k) for k in range(3))
        usual = pc.and_(
            pc.and_(pc.utf8_is_upper(method), pc.utf8_is_alpha(method)),
            pc.match_substring_regex(protocol, r"^HTTP/[0-9.]+$"),
        )
        if pc.all(usual).as_py():
            for name, arr in (("method", method), ("path", target), ("protocol", protocol)):
                if name in need:
                    out[name] = arr
            return out
    req = pc.extract_regex(request, _REQUEST_RX)
    for name in ("method", "path", "protocol"):
        if name in need:
            val = req.field(name)
            out[name] = pc.if_else(pc.or_kleene(pc.is_null(req), pc.equal(val, "")), _STR_NULL, val)
    return out


def _clf_times(stamp: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """`17/May/2015:10:05:03 +0000] ` -> ISO UTC strings, and a validity mask if any is invalid.

    Busy servers log thousands of lines per second, so times repeat: convert each distinct value
    once (dictionary encoding) and spread the results with one `take`.
    """
    encoded = pc.dictionary_encode(stamp)
    iso, ok = _convert_stamps(encoded.dictionary)
    iso = iso.take(encoded.indices)
    return iso, (None if ok is None else ok.take(encoded.indices))


def _convert_stamps(stamp: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Built from string slices and Arrow's ISO parser (which checks day-of-month and ranges); that is
    ~5x faster than `strptime`. Non-UTC offsets need a real conversion, done on timestamps."""
    day = pc.utf8_slice_codeunits(stamp, 0, 2)
    month = pc.take(_MONTH_NUM, pc.index_in(pc.utf8_slice_codeunits(stamp, 3, 6), value_set=_MONTH_SET))
    year = pc.utf8_slice_codeunits(stamp, 7, 11)
    hms = pc.utf8_slice_codeunits(stamp, 12, 20)
    local = pc.binary_join_element_wise(year, "-", month, "-", day, "T", hms, "")
    ok = None
    try:
        local_ts = pc.cast(local, pa.timestamp("s"))
    except pa.ArrowInvalid:
        # Arrow's strptime accepts 31/Feb; check each distinct value strictly instead (few, rare).
        local_ts = pa.array([_strict_local(v) for v in local.to_pylist()], pa.timestamp("s"))
        ok = pc.is_valid(local_ts)
    zone = pc.utf8_slice_codeunits(stamp, 21, 26)
    if pc.all(pc.equal(zone, "+0000")).as_py():
        iso = pc.binary_join_element_wise(local, "Z", "")
        secs = pc.cast(local_ts, pa.int64())
    else:
        sign = pc.if_else(pc.equal(pc.utf8_slice_codeunits(zone, 0, 1), "-"), -1, 1)
        hours = pc.cast(pc.utf8_slice_codeunits(zone, 1, 3), pa.int64())
        minutes = pc.cast(pc.utf8_slice_codeunits(zone, 3, 5), pa.int64())
        offset = pc.multiply(sign, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))
        secs = pc.subtract(pc.cast(local_ts, pa.int64()), offset)
        # An offset of a day or more (`+9000`) is no zone: Python's %z rejects it too.
        zone_ok = pc.and_(pc.less_equal(hours, 23), pc.less_equal(minutes, 59))
        if not pc.all(zone_ok).as_py():
            ok = zone_ok if ok is None else pc.and_(ok, zone_ok)
        utc = pc.cast(secs, pa.timestamp("s", tz="UTC"))
        iso = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ")
    # Years before 1970 or after 9999 are damage, not traffic: the slow path rejects them with a reason.
    in_range = pc.and_(pc.greater_equal(secs, 0), pc.less(secs, 253402300800))
    if not pc.all(in_range).as_py():
        ok = in_range if ok is None else pc.and_(ok, in_range)
    if ok is not None:
        ok = pc.fill_null(ok, False)
    return iso, ok
