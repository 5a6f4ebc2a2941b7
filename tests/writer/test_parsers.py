"""Parser behaviour line by line, on hand-made hostile lines and on every line of the real samples."""

from __future__ import annotations

import pyarrow as pa
import pytest

from loglake.config import WriterConfig
from loglake.schema import DEFAULT_COLUMNS
from loglake.writer.lines import Chunk, parse_chunk
from loglake.writer.parsers import load_parser
from loglake.writer.parsers.clf import ClfParser
from loglake.writer.parsers.values import unescape
from tests.conftest import CROWDSEC, ELASTIC, real_file

ALL = [*DEFAULT_COLUMNS, "request"]
UA = "Mozilla/5.0 (X11)"
BASE = '1.2.3.4 - alice [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 1234 "http://ref/" "' + UA + '"'


def parse(text: str | bytes, fmt: str = "combined", columns: list[str] | None = None, **kw: object):
    """Parse one chunk of lines; returns (rows by line index, rejects by line index).

    Every chunk goes through both chunk paths, the line-array one and the block one (which
    `ClfParser` takes for big blocks), and both must give the same rows and reasons."""
    cfg = WriterConfig(format=fmt, **kw)  # type: ignore[arg-type]
    parser = load_parser(cfg, columns or ALL)
    data = text.encode("utf-8") if isinstance(text, str) else text
    by_lines = _parse_chunk(parser, data, cfg.max_line_bytes, by_lines=True)
    by_block = _parse_chunk(parser, data, cfg.max_line_bytes, by_lines=False)
    assert by_block == by_lines
    return by_lines


def _parse_chunk(parser: object, data: bytes, max_line_bytes: int, by_lines: bool):
    split, result = parse_chunk(parser, Chunk(data, 0, 1), max_line_bytes, by_lines=by_lines)  # type: ignore[arg-type]
    index = split.index.to_pylist() if split.index is not None else list(range(split.parsed))
    rows = {index[r.pop("_line")]: r for r in result.table.to_pylist()}
    rejects = {i: reason for i, reason in split.rejects}
    rejects.update({index[i]: reason for i, reason in result.rejects})
    return rows, rejects


def one(line: str, fmt: str = "combined", **kw: object) -> dict:
    rows, rejects = parse(line + "\n", fmt, **kw)
    assert not rejects, rejects
    return rows[0]


def reason_of(line: str | bytes, fmt: str = "combined", **kw: object) -> str:
    data = line + (b"\n" if isinstance(line, bytes) else "\n")
    rows, rejects = parse(data, fmt, **kw)  # type: ignore[arg-type]
    assert not rows, rows
    return rejects[0]


def test_standard_combined_line_fields() -> None:
    assert one(BASE) == {
        "ts": "2015-05-17T10:05:03Z",
        "username": "alice",
        "client_ip": "1.2.3.4",
        "method": "GET",
        "path": "/index.html",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 1234,
        "referer": "http://ref/",
        "user_agent": UA,
        "request": "GET /index.html HTTP/1.1",
    }


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # `-` is a missing value
        (BASE.replace("alice", "-").replace('"http://ref/"', '"-"'), {"username": None, "referer": None}),
        (BASE.replace(" 1234 ", " - "), {"bytes": None}),
        # the line's own offset is converted to UTC
        (BASE.replace("+0000", "-0700"), {"ts": "2015-05-17T17:05:03Z"}),
        (BASE.replace("17/May/2015:10:05:03 +0000", "01/Jan/2016:00:30:00 +0100"), {"ts": "2015-12-31T23:30:00Z"}),
        # IPv6 clients and host names
        (BASE.replace("1.2.3.4", "2001:db8::1"), {"client_ip": "2001:db8::1"}),
        (BASE.replace("1.2.3.4", "proxy.example.com"), {"client_ip": "proxy.example.com"}),
        # Apache escapes quotes as \" and nginx as \x22; other \xHH runs decode when they are text
        (BASE.replace(UA, r"Evil \"quoted\" agent"), {"user_agent": 'Evil "quoted" agent'}),
        (BASE.replace(UA, r"nginx \x22quoted\x22"), {"user_agent": 'nginx "quoted"'}),
        (BASE.replace("/index.html", r"/caf\xC3\xA9"), {"path": "/café"}),
        (BASE.replace(UA, r"back\\slash"), {"user_agent": "back\\slash"}),
        # trailing extra fields ($http_x_forwarded_for) are ignored
        (BASE + ' "10.0.0.1, 10.0.0.2"', {"user_agent": UA}),
        (BASE + " 0.003 upstream=1", {"status": 200}),
        # invalid requests are kept as rows: the request text stays, method/path/protocol are null
        (
            BASE.replace("GET /index.html HTTP/1.1", r"\x16\x03\x01\x00"),
            {"method": None, "path": None, "protocol": None, "request": r"\x16\x03\x01\x00"},
        ),
        # an empty request stays the empty string (as peers keep it); `-` is no request
        (BASE.replace("GET /index.html HTTP/1.1", ""), {"method": None, "path": None, "request": ""}),
        (BASE.replace('"GET /index.html HTTP/1.1"', '"-"'), {"method": None, "path": None, "request": None}),
        (BASE.replace("GET /index.html HTTP/1.1", "HELP"), {"method": None, "request": "HELP"}),
        # HTTP/0.9 has no protocol
        (BASE.replace("GET /index.html HTTP/1.1", "GET /old"), {"method": "GET", "path": "/old", "protocol": None}),
        # a user agent whose closing quote is missing (real: elastic sample line 8899) keeps the text
        (BASE[:-1], {"user_agent": UA}),
        # methods are RFC 9110 tokens: `-` and digits after the first letter (SSDP, WebDAV)
        (BASE.replace("GET /index.html", "M-SEARCH *"), {"method": "M-SEARCH", "path": "*", "protocol": "HTTP/1.1"}),
        (BASE.replace("GET /index.html", "VERSION-CONTROL /x"), {"method": "VERSION-CONTROL", "path": "/x"}),
        # status `-` (nginx logs it for a request it never answered) is NULL, the line is a row
        (
            BASE.replace("GET /index.html", "OPTIONS /remote.php/").replace(" 200 1234 ", " - 7908 "),
            {"status": None, "bytes": 7908, "method": "OPTIONS"},
        ),
        # status range edges
        (BASE.replace(" 200 ", " 100 "), {"status": 100}),
        (BASE.replace(" 200 ", " 599 "), {"status": 599}),
    ],
)
def test_odd_but_valid_lines(line: str, expected: dict) -> None:
    row = one(line)
    for key, value in expected.items():
        assert row[key] == value, key


def test_crlf_and_last_line_without_newline() -> None:
    rows, rejects = parse(BASE + "\r\n" + BASE.replace("alice", "bob"))
    assert not rejects
    assert rows[0]["user_agent"] == UA and rows[1]["username"] == "bob"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (BASE.replace(" 200 ", " 600 "), "status_out_of_range"),
        (BASE.replace(" 200 ", " 099 "), "status_out_of_range"),
        (BASE.replace(" 200 ", " abc "), "invalid_status"),
        (BASE.replace(" 1234 ", " 12x "), "invalid_bytes"),
        (BASE.replace("17/May/2015", "31/Feb/2015"), "invalid_time"),
        (BASE.replace("10:05:03", "25:05:03"), "invalid_time"),
        (BASE.replace("17/May/2015", "17/Foo/2015"), "invalid_time"),
        # Valid for strptime, out of datetime's range once in UTC: a reason, not an OverflowError.
        (BASE.replace("17/May/2015:10:05:03 +0000", "31/Dec/9999:23:59:59 -0001"), "invalid_time"),
        (BASE.replace("17/May/2015:10:05:03 +0000", "01/Jan/0001:00:00:00 +0100"), "invalid_time"),
        ("this is not an access log line", "unparseable"),
        ("", "empty_line"),
    ],
)
def test_invalid_lines_are_rejected_with_reason(line: str, reason: str) -> None:
    assert reason_of(line).startswith(reason)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (BASE.encode().replace(b"alice", b"al\x00ce"), "nul_bytes"),
        (BASE.encode().replace(b"X11", b"\xff\xfe"), "invalid_utf8"),
        (b"x" * 70_000, "too_long"),
    ],
)
def test_bytes_no_parser_should_see(raw: bytes, reason: str) -> None:
    assert reason_of(raw).startswith(reason)


def test_line_size_limit_is_configurable() -> None:
    assert reason_of(BASE, max_line_bytes=50).startswith("too_long")
    assert one(BASE, max_line_bytes=len(BASE))["status"] == 200


def test_fast_and_slow_paths_agree() -> None:
    """The vectorized path and the per-line path must give identical rows for the same lines."""
    lines = [
        BASE,
        BASE.replace("+0000", "+0530"),
        BASE.replace("alice", "-").replace(" 1234 ", " - "),
        BASE.replace("GET /index.html HTTP/1.1", "POST /login HTTP/2.0"),
        BASE.replace("GET /index.html HTTP/1.1", "HELP"),
        BASE.replace('"http://ref/"', '""').replace(UA, ""),  # empty quoted values stay "" on both paths
        BASE.replace("GET /index.html HTTP/1.1", ""),
        # Apache's escapes, which the fast path swaps for stand-ins and puts back
        BASE.replace(UA, r"Mozilla \"quoted\" agent"),
        BASE.replace(UA, "ends with a backslash \\\\"),  # `\\` then the closing quote
        BASE.replace(UA, r"\\\"mixed\\"),
        BASE.replace("/index.html", r"/a\"b").replace("alice", r"al\"ice"),
        BASE.replace('"http://ref/"', r'"\"-\""'),
        BASE.replace(UA, r"nginx \x22 and \""),  # \xHH: per-line path
        BASE.replace(UA, r"lone \ backslash"),
    ]
    parser = ClfParser("combined", ALL)
    rows, rejects = parse("\n".join(lines) + "\n")
    assert not rejects
    for i, line in enumerate(lines):
        slow, reason = parser.parse_line(line)
        assert reason == ""
        assert slow == rows[i], line


def test_mixed_chunk_keeps_line_order() -> None:
    lines = [BASE, "garbage", BASE.replace(UA, r"esc \"q\""), BASE.replace("alice", "zed")]
    rows, rejects = parse("\n".join(lines) + "\n")
    assert sorted(rows) == [0, 2, 3] and list(rejects) == [1]
    assert rows[2]["user_agent"] == 'esc "q"' and rows[3]["username"] == "zed"


def test_common_format() -> None:
    line = '10.0.0.1 - bob [17/May/2015:10:05:03 +0000] "GET / HTTP/1.0" 304 -'
    row = one(line, "common", columns=["ts", "username", "status", "bytes", "path"])
    assert row == {"ts": "2015-05-17T10:05:03Z", "username": "bob", "path": "/", "status": 304, "bytes": None}
    with pytest.raises(ValueError, match="no referer"):
        load_parser(WriterConfig(format="common"), ["referer"])


def test_json_lines() -> None:
    kw = {"json_fields": {"ts": "time", "client_ip": "remote.ip", "username": "user", "path": "url"}}
    cols = ["ts", "client_ip", "username", "path", "status", "user_agent"]
    text = (
        "\n".join(
            [
                '{"time": "2026-11-29T10:00:00+01:00", "remote": {"ip": "::1"}, "user": "ann", "url": "/a", '
                '"status": 200}',
                '{"time": 1764410400, "remote": {"ip": "1.1.1.1"}, "status": "404", "user_agent": "a,b\\"c\\nd"}',
                '{"time": "yesterday", "status": 200}',
                "[1, 2]",
                "{not json",
                '{"status": 200}',
                '{"time": "9999-12-31T23:59:59-00:01", "status": 200}',
            ]
        )
        + "\n"
    )
    rows, rejects = parse(text, "json", columns=cols, **kw)
    assert rows[0] == {
        "ts": "2026-11-29T09:00:00Z",
        "client_ip": "::1",
        "username": "ann",
        "path": "/a",
        "status": 200,
        "user_agent": None,
    }
    assert rows[1]["ts"] == "2025-11-29T10:00:00Z" and rows[1]["status"] == 404
    assert rows[1]["user_agent"] == 'a,b"c\nd'
    assert rejects[2].startswith("invalid_time") and rejects[3].startswith("invalid_json")
    assert rejects[4].startswith("invalid_json") and rejects[5].startswith("missing_time")
    assert rejects[6].startswith("invalid_time")


def test_regex_format() -> None:
    pattern = r"^(?P<ts>\S+) (?P<client_ip>\S+) (?P<request>[^|]*)\|(?P<status>\d+)$"
    rows, rejects = parse(
        "2026-11-29T10:00:00Z 9.9.9.9 GET /x HTTP/1.1|201\nnope\n",
        "regex",
        pattern=pattern,
        columns=["ts", "client_ip", "method", "path", "status"],
    )
    assert rows[0] == {
        "ts": "2026-11-29T10:00:00Z",
        "client_ip": "9.9.9.9",
        "method": "GET",
        "path": "/x",
        "status": 201,
    }
    assert rejects[1].startswith("unparseable")


def test_nginx_log_format() -> None:
    std = (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent"'
    )
    assert isinstance(load_parser(WriterConfig(format="nginx", log_format=std), ALL), ClfParser)
    custom = '$remote_addr [$time_local] "$request" $status $request_time "$http_host"'
    line = '1.2.3.4 [17/May/2015:10:05:03 +0000] "GET /q?a=1 HTTP/1.1" 502 0.250 "shop.example"'
    row = one(line, "nginx", log_format=custom, columns=["ts", "path", "status", "request_time", "host"])
    assert row == {
        "ts": "2015-05-17T10:05:03Z",
        "path": "/q?a=1",
        "status": 502,
        "request_time": 0.25,
        "host": "shop.example",
    }


def test_nginx_combined_with_trailing_columns_reads_them() -> None:
    """The combined fields followed by variables that are columns must not take the combined fast
    path, which skips trailing fields; followed by variables that are not, they may."""
    std = (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent"'
    )
    extended = std + ' $request_time "$http_x_forwarded_for" "$host"'
    line = (
        '10.0.0.9 - bob [17/May/2015:10:05:03 +0000] "POST /login HTTP/1.1" 200 3 "-" "curl/8" 0.004 '
        '"198.51.100.7, 10.0.0.1" "shop.example"'
    )
    cols = ["ts", "username", "method", "path", "request_time", "forwarded_for", "host"]
    assert one(line, "nginx", log_format=extended, columns=cols) == {
        "ts": "2015-05-17T10:05:03Z",
        "username": "bob",
        "method": "POST",
        "path": "/login",
        "request_time": 0.004,
        "forwarded_for": "198.51.100.7, 10.0.0.1",
        "host": "shop.example",
    }
    unknown_only = std + ' "$http_x_request_id"'
    assert isinstance(load_parser(WriterConfig(format="nginx", log_format=unknown_only), ALL), ClfParser)


def test_unescape_keeps_binary_escaped() -> None:
    assert unescape(r"\x16\x03\x01") == r"\x16\x03\x01"
    assert unescape(r"Gh0st\xAD\x00") == r"Gh0st\xAD\x00"
    assert unescape(r"a\x20b") == "a b"


def _parse_file(path, fmt="combined"):
    data = path.read_bytes()
    return (*parse(data, fmt), data.count(b"\n") + (0 if data.endswith(b"\n") else 1))


def test_every_line_of_the_elastic_sample() -> None:
    rows, rejects, n = _parse_file(real_file(ELASTIC))
    assert n == 10_000 and len(rows) + len(rejects) == n
    assert rejects == {}  # every line of this real log is a valid combined line
    ua_8899 = rows[8898]["user_agent"]  # no closing quote in the source: the text is kept
    assert ua_8899 == "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html"
    long_row = rows[3028]  # the 1,363-byte line
    assert sum(len(long_row[k] or "") for k in ("path", "referer", "user_agent")) > 1000
    assert all(r["ts"].startswith("2015-05-") for r in rows.values())
    statuses = {r["status"] for r in rows.values()}
    assert statuses == {200, 206, 301, 304, 403, 404, 416, 500}


def test_every_line_of_the_crowdsec_probe_sample() -> None:
    rows, rejects, n = _parse_file(real_file(CROWDSEC))
    assert n == 12 and not rejects  # probes are real requests nginx answered with 400: kept as rows
    assert all(r["status"] == 400 and r["method"] is None and r["path"] is None for r in rows.values())
    assert all(r["ts"].startswith("2023-07-29T17:26:0") for r in rows.values())  # -0700 -> UTC
    requests = [rows[i]["request"] for i in range(n)]
    assert requests[4] == "HELP" and requests[6] == "batman"
    assert requests[7].startswith(r"\x16\x03\x01")  # a TLS ClientHello stays escaped, valid UTF-8
    assert requests[1].startswith(r"Gh0st\xAD")
    for r in requests:
        assert r is not None
        r.encode("utf-8")


def test_parse_result_types_match_schema() -> None:
    rows_table = load_parser(WriterConfig(), ALL).parse(pa.array([BASE])).table
    assert rows_table.schema.field("status").type == pa.int16()
    assert rows_table.schema.field("bytes").type == pa.int64()


def test_apache_escapes_stay_on_the_fast_path() -> None:
    """`\\"` and `\\\\` are swapped for stand-ins (the fast path); `\\xHH` and lone backslashes go
    per-line. Values are compared with the per-line parser in test_fast_and_slow_paths_agree."""
    import pyarrow as pa

    from loglake.writer.parsers.clf import _bytes_of, _mask_escapes

    lines = pa.array([BASE, BASE.replace(UA, r"a \"b\" \\"), BASE.replace(UA, r"c \x22"), BASE.replace(UA, "d \\ e")])
    swapped, masked, escaped = _mask_escapes(lines, _bytes_of(lines))
    assert masked == [1] and escaped == [2, 3]
    assert "\\" not in swapped[1].as_py() and swapped[0].as_py() == BASE
