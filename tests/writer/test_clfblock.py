"""The block path (`clfblock.py`) against the line-array path and the per-line parser, on real lines
and on real lines damaged at random: every line must come out the same whichever path cut it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake.config import WriterConfig
from loglake.schema import DEFAULT_COLUMNS
from loglake.writer.lines import Chunk, parse_chunk
from loglake.writer.parsers import clfblock, load_parser
from loglake.writer.parsers.clf import ClfParser
from loglake.writer.parsers.clf import space_like as clf_space_like
from tests.conftest import CROWDSEC, ELASTIC, real_file
from tests.helpers import EXAMPLES

ALL = [*DEFAULT_COLUMNS, "request"]
#: Bytes that matter to some check of the block path: delimiters, escapes, digits at fixed offsets,
#: Apache's escapes and nginx's, signs, brackets, a CR, a tab, a multi-byte character.
DAMAGE = [
    b" ",
    b'"',
    b"\\",
    b'\\"',
    b"\\\\",
    b"\\x41",
    b"-",
    b"0",
    b"9",
    b"+",
    b"[",
    b"]",
    b"/",
    b":",
    b"\r",
    b"\t",
    "é".encode(),
    b"x",
    b"A",
    b"",  # a byte deleted
]
#: An nginx `log_format` with one more quoted field after the agent: such lines have 8 quotes, and
#: a block of many of them is cut as a block of 9 pieces (`clfblock._other_shape`).
TRAILING = b' "10.0.0.1, 10.0.0.2" 0.003'


def _rows(parser: ClfParser, data: bytes, by_lines: bool) -> tuple[dict, dict]:
    split, result = parse_chunk(parser, Chunk(data, 0, 1), 1 << 20, by_lines=by_lines)
    index = split.index.to_pylist() if split.index is not None else list(range(split.parsed))
    rows = {index[r.pop("_line")]: r for r in result.table.to_pylist()}
    rejects = {i: reason for i, reason in split.rejects}
    rejects.update({index[i]: reason for i, reason in result.rejects})
    return rows, rejects


def _assert_per_line_agrees(parser: ClfParser, lines: list[bytes], rows: dict, rejects: dict) -> None:
    """Every line's row or reason is what the per-line parser gives it."""
    for i, raw in enumerate(lines):
        if rejects.get(i, "").startswith("invalid_utf8"):
            continue  # split_lines' reason: no parser sees such a line
        row, reason = parser.parse_line(raw.removesuffix(b"\r").decode())  # split_lines strips one CR
        assert (reason, row) == ((rejects[i], None) if i in rejects else ("", rows[i])), raw


def _cut_alike(lines: list[bytes]) -> tuple[bytes, dict, dict]:
    """The block of `lines` (combined), cut by the block path itself: its rows and reasons, which
    the line-array path and the per-line parser give too."""
    data = b"\n".join(lines) + b"\n"
    parser = ClfParser("combined", ALL)
    assert parser.parse_block(data, 1 << 20) is not None
    rows, rejects = _rows(parser, data, False)
    assert (rows, rejects) == _rows(parser, data, True)
    _assert_per_line_agrees(parser, lines, rows, rejects)
    return data, rows, rejects


def _sample(name: str) -> list[bytes]:
    return real_file(name).read_bytes().splitlines()


@pytest.mark.parametrize("fmt", ["combined", "common"])
def test_real_samples_cut_alike(fmt: str) -> None:
    parser = ClfParser(fmt, ALL if fmt == "combined" else [c for c in ALL if c not in ("referer", "user_agent")])
    data = b"\n".join(_sample(ELASTIC) + _sample(CROWDSEC)) + b"\n"
    by_block = _rows(parser, data, False)
    assert by_block == _rows(parser, data, True)
    rows, rejects = by_block
    assert len(rows) + len(rejects) == 10_012


def test_block_path_takes_clean_blocks_and_leaves_the_rest() -> None:
    """What the pipeline runs: a clean block (big or tiny) is cut as a block; one holding an empty
    line, a NUL, invalid UTF-8 or a lone CR goes to split_lines, which gives those their reasons."""
    parser = load_parser(WriterConfig(), ALL)
    sample = real_file(ELASTIC).read_bytes()
    assert parser.parse_block(sample * 2, 1 << 20) is not None  # type: ignore[attr-defined]
    assert parser.parse_block(sample[: sample.index(b"\n") + 1], 1 << 20) is not None  # type: ignore[attr-defined]
    head = b"".join(sample.splitlines(keepends=True)[:3])
    for damage, reason in [
        (b"\n", "empty_line"),
        (b"a\x00b\n", "nul_bytes"),
        (b"\xff\xfe\n", "invalid_utf8"),
        (b"x\ry\n", "unparseable"),
    ]:
        data = head + damage + head
        assert parser.parse_block(data, 1 << 20) is None  # type: ignore[attr-defined]
        rows, rejects = _rows(parser, data, False)
        assert sorted(rows) == [0, 1, 2, 4, 5, 6] and rejects[3].startswith(reason)
    assert parser.parse_block(head, 50) is None  # type: ignore[attr-defined]  # over-long: split_lines says so


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 9_999), st.integers(0, 400), st.sampled_from(DAMAGE), st.booleans()),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(["combined", "common"]),
    st.sampled_from([0, 1, 2]),
)
def test_damaged_lines_cut_alike(edits: list[tuple[int, int, bytes, bool]], fmt: str, tails: int) -> None:
    """Real lines (none, every other one or all with a trailing quoted field) with a byte replaced,
    deleted or inserted somewhere, among untouched ones: the block path, the line-array path and
    the per-line parser agree on every line, rows and reasons."""
    lines = [line + TRAILING if tails > k % 2 else line for k, line in enumerate(_sample(ELASTIC)[:300])]
    for line_no, pos, byte, insert in edits:
        i = line_no % len(lines)
        line = lines[i]
        at = pos % (len(line) + 1)
        lines[i] = line[:at] + byte + line[at + (0 if insert else 1) :]
    data = b"\n".join(lines) + b"\n"
    columns = ALL if fmt == "combined" else [c for c in ALL if c not in ("referer", "user_agent")]
    parser = ClfParser(fmt, columns)
    by_block = _rows(parser, data, False)
    assert by_block == _rows(parser, data, True)
    _assert_per_line_agrees(parser, lines, *by_block)


@pytest.mark.parametrize("first", ["plain", "trailing"])
def test_lines_with_and_without_a_trailing_field_are_cut_as_blocks(first: str) -> None:
    """Every other line with a quoted field after the agent, a few odd ones among them: `""` right
    after the agent (the per-line parser then backtracks to the agent's last space), a bad escape,
    a bad time. Whichever shape the first line has, the block path cuts the other shape's lines as
    a block of their own, and agrees with the line-array path and the per-line parser."""
    tailed = {k for k in range(200) if k % 2 == (1 if first == "plain" else 0)}
    lines = [line + TRAILING if k in tailed else line for k, line in enumerate(_sample(ELASTIC)[:200])]
    odd = sorted(tailed)[3:6]
    lines[odd[0]] = lines[odd[0]].replace(b'" "10.0.0.1', b'""10.0.0.1')
    lines[odd[1]] = lines[odd[1]].replace(b"Mozilla", b"Mo\\x41zilla")
    lines[odd[2]] = lines[odd[2]].replace(b"/2015:", b"/2O15:")
    data = b"\r\n".join(lines) + b"\r\n"
    parser = ClfParser("combined", ALL)
    assert parser.parse_block(data, 1 << 20) is not None
    rows, rejects = _rows(parser, data, False)
    assert (rows, rejects) == _rows(parser, data, True)
    assert rows[odd[0]]["user_agent"].endswith("Chrome/32.0.1700.77")
    assert rows[odd[1]]["user_agent"].startswith("MoAzilla")
    assert list(rejects) == [odd[2]] and len(rows) == 199
    _assert_per_line_agrees(parser, lines, rows, rejects)


def test_many_odd_requests_with_probes_and_garbage_cut_alike() -> None:
    """A scan: 450 lines whose request is a request line but not `METHOD /path HTTP/d.d` (HTTP/0.9,
    a method with a dash: the block path leaves them, and there are enough for the line-array path
    to take them), among the crowdsec probes (escapes, other shapes: the per-line parser's) and
    lines of garbage."""
    real, probes = _sample(ELASTIC)[:600], _sample(CROWDSEC)[:200]
    lines = []
    for k, line in enumerate(real):
        head, _, rest = line.split(b'"', 2)
        odd = b"GET /x" if k % 4 else b"M-SEARCH * HTTP/1.1"
        lines.append(head + b'"' + odd + b'"' + rest if k < 450 else line)
        if k % 3 == 0:
            lines.append(probes[k % len(probes)])
        if k % 20 == 0:
            lines.append(b"garbage %d that is no log line" % k)
    data = b"\n".join(lines) + b"\n"
    parser = ClfParser("combined", ALL)
    rows, rejects = _rows(parser, data, False)
    assert (rows, rejects) == _rows(parser, data, True)
    odd = sum(r["protocol"] is None or r["method"] == "M-SEARCH" for r in rows.values() if r["method"])
    assert len(rows) + len(rejects) == len(lines) and odd >= 450
    _assert_per_line_agrees(parser, lines, rows, rejects)


def test_many_rejects_and_few_demoted_rows_are_spliced_in_order() -> None:
    """200 lines of garbage (rejected whole, so no row to insert) among real lines, a few of which
    the block path leaves (an nginx `\\xHH` escape: the per-line parser's): the rows are spliced
    around the few (several chunks, no `take` of the block), in line order, and agree."""
    real = _sample(ELASTIC)[:900]
    lines = []
    for k, line in enumerate(real):
        if k % 100 == 7:
            line = line.replace(b'" ', b'\\x01" ', 1)  # in the request: the per-line parser's
        lines.append(line)
        if k % 9 == 0:
            lines.append(b"garbage %d that is no log line" % k)
            lines.append(b'garbage with a quote" %d' % k)
    _, rows, rejects = _cut_alike(lines)
    assert len(rejects) >= 200 and len(rows) == 900
    parser = ClfParser("combined", ALL)
    table = parser.parse_block(b"\n".join(lines) + b"\n", 1 << 20)[0].table
    assert table.column("_line").num_chunks > 1  # spliced
    assert table.column("_line").to_pylist() == sorted(rows)
    assert sum("\\x01" in r["request"] for r in rows.values()) == 9


@pytest.mark.parametrize("longest", [32, 33])
def test_heads_of_every_length_near_the_window_cut_alike(longest: int) -> None:
    """`ip ident user ` of 6 to `longest` bytes, with empty tokens, doubled and missing spaces: up
    to 32 bytes the block path finds the head's spaces in one window per line; one longer head
    sends the whole block to the search of every space. Both agree with the per-line parser."""
    real = _sample(ELASTIC)[:400]
    lines = []
    for k, line in enumerate(real):
        time_and_rest = line[line.index(b" [") :]
        ip = [b"10.0.0.1", b"2001:db8:85a3::8a2e:370:7334", b"h", b""][k % 4]
        user = b"u" * (k % 24) or b"-"
        head = [ip + b" - " + user, ip + b"  - " + user, ip + b" -" + user, ip + b" - " + user + b" x"][k // 4 % 4]
        lines.append(head[: longest - 1] + time_and_rest)
    lines.append(b"1.2.3.4 - " + b"v" * (longest - 11) + real[0][real[0].index(b" [") :])
    _, rows, rejects = _cut_alike(lines)
    assert len(rows) > 40 and len(rejects) > 200
    assert len(rows[len(lines) - 1]["username"]) == longest - 11


#: Times the block path turns into UTC by arithmetic: zones either side, leap days, a year and the
#: epoch crossed by the zone, impossible days and zones, and every month's name.
STAMPS = [
    b"17/May/2015:10:05:03 -0700",
    b"17/May/2015:10:05:03 +0530",
    b"31/Dec/2015:23:59:59 -0100",
    b"01/Jan/2016:00:00:00 +1400",
    b"29/Feb/2016:12:00:00 +0000",
    b"29/Feb/2015:12:00:00 +0000",
    b"29/Feb/2000:12:00:00 -1200",
    b"29/Feb/1900:12:00:00 +0000",
    b"01/Jan/1970:00:30:00 +0100",
    b"01/Jan/1970:00:30:00 -0100",
    b"31/Dec/1969:23:30:00 -0100",
    b"31/Dec/1969:23:59:59 +0000",
    b"31/Apr/2015:10:05:03 +0000",
    b"17/May/2015:24:05:03 +0000",
    b"17/May/2015:10:05:03 +9000",
    b"31/Dec/9999:23:59:59 +0000",
    b"31/Dec/9999:23:59:59 -0001",
    *(b"15/%s/2015:08:09:10 +0000" % m for m in b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec May".split()),
    b"15/MAY/2015:08:09:10 +0000",
]


@pytest.mark.parametrize("utc_only", [True, False])
def test_times_in_any_zone_and_short_pieces_cut_alike(utc_only: bool) -> None:
    """Real lines with the times above (only the UTC ones: the block path then reorders digits;
    all: it computes seconds), and a few requests and heads shorter than the byte windows the
    block path cuts from each value's start or end (it gathers those blocks' windows instead)."""
    stamps = [s for s in STAMPS if s.endswith(b"+0000")] if utc_only else STAMPS
    lines = []
    for k, line in enumerate(_sample(ELASTIC)[:300]):
        at = line.index(b" [") + 2
        line = line[:at] + stamps[k % len(stamps)] + line[at + 26 :]
        if k % 50 == 7:
            line = b"h " + line[line.index(b'"') :]  # a 2-byte head, no time: a reject
        if k % 50 == 9:
            line = line[: line.index(b'"') + 1] + b"GET /" + line[line.index(b'" ') :]  # a 5-byte request
        lines.append(line)
    data, rows, rejects = _cut_alike(lines)
    assert len(rows) > 150 and len(rejects) > 10
    assert {r["ts"][:4] for r in rows.values()} >= ({"2015"} if utc_only else {"2015", "2016", "2000", "1970"})
    # The block path itself cut every row but those of bare requests and of `MAY` (strptime's
    # months ignore case; a line it leaves still comes out right, from the per-line parser: this
    # says the fast path did the work).
    pieces, _ = clfblock._read_pieces(data, 7, False)
    cut = clfblock.Cut(np, pieces, "combined", [])
    left = sum(r["protocol"] is None or b"/MAY/" in lines[i] for i, r in rows.items())
    assert int(cut.ok.sum()) == len(rows) - left and left < 20


#: Requests around the block path's shape (`METHOD /path HTTP/d.d`, exactly two spaces) and what
#: it makes of each: cut ("plain"), cut with no method, path or protocol ("none": no request line
#: for any parser), or left to the per-line parser ("left").
REQUESTS = [
    (b"GET /a HTTP/1.1", "plain"),
    (b"PROPFIND /a/b?c=d HTTP/1.0", "plain"),
    (b"G /a HTTP/2.0", "plain"),
    (b"GET / HTTP/1.1", "plain"),
    ("GET /é HTTP/1.1".encode(), "plain"),
    (b"GET /a b HTTP/1.1", "none"),
    (b"GET  /a HTTP/1.1", "none"),
    (b"GET /a  HTTP/1.1", "none"),
    (b"GET /a HTTP/1.1 ", "none"),
    (b" GET /a HTTP/1.1", "none"),
    (b"GET  HTTP/1.1", "none"),
    (b"get /a HTTP/1.1", "none"),
    (b"GET /a HTTPS/1.1", "none"),
    (b"GET /a http/1.1", "none"),
    (b"GET", "none"),
    (b"HELP", "none"),
    (b"lv|'|'|VHJvamFuX0M0NkY2RTk=|'|'|MARK", "none"),
    (b"-", "none"),
    (b"", "none"),
    (b"GETTINGIT /a HTTP/1.1", "left"),
    (b"GET /a HTTP/11", "left"),
    (b"GET /a", "left"),
    (b"M-SEARCH * HTTP/1.1", "left"),
    (b"GET /a\tb HTTP/1.1", "left"),
    (b"GET /a\xc2\xa0b HTTP/1.1", "left"),
]


def test_requests_of_every_shape_cut_alike() -> None:
    """Each request above in real lines: the block path cuts the plain ones and those of no request
    line itself and leaves the rest, and every line comes out as the line-array path and the
    per-line parser say."""
    lines = []
    for k, line in enumerate(_sample(ELASTIC)[: 20 * len(REQUESTS)]):
        head, _, rest = line.split(b'"', 2)
        lines.append(head + b'"' + REQUESTS[k % len(REQUESTS)][0] + b'"' + rest)
    data = b"\n".join(lines) + b"\n"
    parser = ClfParser("combined", ALL)
    rows, rejects = _rows(parser, data, False)
    assert (rows, rejects) == _rows(parser, data, True)
    _assert_per_line_agrees(parser, lines, rows, rejects)
    pieces, _ = clfblock._read_pieces(data, 7, False)
    cut = clfblock.Cut(np, pieces, "combined", clf_space_like(data))
    kinds = [REQUESTS[k % len(REQUESTS)][1] for k in range(len(lines))]
    assert cut.ok.tolist() == [kind != "left" for kind in kinds]
    assert all(rows[k]["method"] is None for k, kind in enumerate(kinds) if kind == "none")
    assert all(rows[k]["method"] is not None for k, kind in enumerate(kinds) if kind == "plain")
