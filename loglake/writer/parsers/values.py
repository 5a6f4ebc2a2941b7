"""Per-line value handling shared by every parser's Python path: unescaping, times, typing.

The vectorized fast path and this per-line path must produce identical values; tests feed the same
lines through both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from loglake.schema import FIELD_TYPES

if TYPE_CHECKING:
    from loglake.writer.parsers import ParseResult

#: In parse results `ts` is an ISO 8601 UTC string: that is what segments store, and formatting it
#: once here is far cheaper than letting the CSV writer format timestamps.
PARSED_TYPES: dict[str, pa.DataType] = {**FIELD_TYPES, "ts": pa.string()}

_MISSING = "-"
_TYPED = {"ts", "status", "bytes", "request_time"}
_ESCAPE = re.compile(r'(?:\\x[0-9A-Fa-f]{2})+|\\["\\]')


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _unescape_match(m: re.Match[str]) -> str:
    text = m.group(0)
    if text in ('\\"', "\\\\"):
        return text[1]
    raw = bytes.fromhex(text.replace("\\x", ""))  # a run of \xHH: scanners send thousands
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return text  # not text: keep the server's escape, lossless and valid UTF-8
    if _CONTROL.search(decoded):
        return text  # control bytes (e.g. a TLS ClientHello) stay visible as \xHH
    return decoded


def unescape(value: str) -> str:
    r"""Undo Apache's `\"`/`\\` and nginx's `\xHH` escapes where the result is printable UTF-8.

    Runs of `\xHH` that decode to UTF-8 text become that text (`\x22` -> `"`, `\xC3\xA9` -> `é`);
    anything else (binary probes, control bytes) keeps its escaped spelling so no byte is lost.
    """
    if "\\" not in value:
        return value
    if len(value) <= 512:  # scanners send the same escaped probe thousands of times
        return _unescape_short(value)
    return _ESCAPE.sub(_unescape_match, value)


@lru_cache(maxsize=2048)
def _unescape_short(value: str) -> str:
    return _ESCAPE.sub(_unescape_match, value)


@lru_cache(maxsize=4096)  # a server logs the same second many times; strptime costs ~40 us
def clf_time_to_iso(text: str) -> str | None:
    """`17/May/2015:10:05:03 +0000` -> `2015-05-17T10:05:03Z`, or None if invalid."""
    try:
        dt = datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z")
    except ValueError:
        return None
    return _iso_utc(dt)


def _iso_utc(dt: datetime) -> str | None:
    try:
        utc = dt.astimezone(UTC)
    except OverflowError:
        return None  # `31/Dec/9999:23:59:59 -0001` is past year 9999 in UTC; year 1 east of UTC before it
    if not 1970 <= utc.year <= 9999:
        return None
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def zone(name: str) -> tzinfo:
    """The zone that times without an offset are in (`writer.timezone`, validated by the config)."""
    return UTC if name == "UTC" else ZoneInfo(name)


#: Epoch seconds or milliseconds as text, in ASCII digits (`\d` would take other scripts' digits).
_EPOCH = re.compile(r"[0-9]{9,13}(?:\.[0-9]+)?")


def any_time_to_iso(value: Any, fmt: str = "", tz: tzinfo = UTC) -> str | None:
    """Parse a time from JSON/regex sources: `fmt` if given, else epoch seconds/ms, ISO 8601 or CLF.
    A time without an offset is in `tz` (`writer.timezone`, UTC by default)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, (int, float)) or (isinstance(value, str) and _EPOCH.fullmatch(value)):
            num = float(value)
            if num > 1e11:  # milliseconds
                num /= 1000.0
            return _iso_utc(datetime.fromtimestamp(num, tz=UTC))
        if not isinstance(value, str):
            return None
        if fmt:
            dt = datetime.strptime(value, fmt)
        elif re.match(r"\d{2}/[A-Za-z]{3}/\d{4}:", value):
            return clf_time_to_iso(value)
        else:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return _iso_utc(dt)


#: A method is an upper-case RFC 9110 token: letters first, then letters, digits, `-` or `_`
#: (M-SEARCH, VERSION-CONTROL, MKCOL).
_REQUEST = re.compile(r"^([A-Z][A-Z0-9_-]*) (\S+)(?: (HTTP/[0-9.]+))?$")


def split_request(request: str) -> tuple[str | None, str | None, str | None]:
    """`GET /x HTTP/1.1` -> (method, path, protocol); anything not an HTTP request line -> Nones."""
    m = _REQUEST.match(request)
    if not m:
        return None, None, None
    return m.group(1), m.group(2), m.group(3)


def typed_row(raw: dict[str, Any], time_format: str = "", tz: tzinfo = UTC) -> tuple[dict[str, Any] | None, str]:
    """Validate and type one row of raw values; returns (row, "") or (None, reason).

    `-` and empty strings are missing values (the CLF convention). Validation follows issue #2:
    status 100-599, bytes an integer or missing, time valid.
    """
    row: dict[str, Any] = {}
    for key, value in raw.items():
        # `-` is CLF's "no value"; an empty string is a value for text columns ("" is not NULL)
        # but means "no value" for typed ones.
        if value is None or value == _MISSING or (value == "" and key in _TYPED):
            row[key] = None
            continue
        if key == "ts":
            iso = any_time_to_iso(value, time_format, tz)
            if iso is None:
                return None, f"invalid_time: {shown(value, 64)}"
            row[key] = iso
        elif key in ("status", "bytes"):
            num, reason = _integer(value, key)
            if num is None:
                return None, reason
            row[key] = num
        elif key == "request_time":
            seconds = _seconds(value)
            if seconds is None:
                return None, f"invalid_request_time: {shown(value)}"
            row[key] = seconds
        else:
            row[key] = unescape(value) if isinstance(value, str) else str(value)
    if row.get("ts") is None and "ts" in raw:
        return None, "missing_time"
    return row, ""


def _text(value: str | None) -> str | None:
    if value is None or value == _MISSING:
        return None
    return value if "\\" not in value else unescape(value)  # no call for the usual value


#: More digits than any status or int64 `bytes` has: a longer run is rejected by its length, before
#: `int` sees it (which refuses more than 4,300 digits with a ValueError, and is quadratic before).
_MAX_DIGITS = 19


def _integer(value: Any, name: str) -> tuple[int | None, str]:
    """A status or bytes value (`name`) as its number: (number, "") or (None, reason). Text must be
    ASCII digits, what a server writes and the vectorized paths accept (`int` would also take
    `+1`, `1_000`, ` 1 ` and other scripts' digits); a JSON number must be integral and finite
    (`200.0` is 200; `1.5`, NaN, `1e400` are invalid)."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            return None, f"invalid_{name}: {shown(value)}"
        if len(value) > _MAX_DIGITS:
            return None, f"invalid_{name}: {len(value)} digits"
        num = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        num = value
    elif isinstance(value, float) and value.is_integer():
        num = int(value)
    else:
        return None, f"invalid_{name}: {shown(value)}"
    if name == "status" and not 100 <= num <= 599:
        return None, f"status_out_of_range: {shown(num)}"
    if name == "bytes" and not 0 <= num < 2**63:
        return None, f"invalid_bytes: {shown(num)}"
    return num, ""


def _seconds(value: Any) -> float | None:
    """A request time in seconds, or None: finite (NaN and infinities are no duration), and no
    bool (JSON's `true` is not 1 second)."""
    if isinstance(value, bool):
        return None
    try:
        num = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int of 400 digits
        return None
    return num if math.isfinite(num) else None


def shown(value: Any, limit: int = 32) -> str:
    """A bounded spelling of a rejected value for its reason: its first `limit` characters quoted,
    or the size of an integer too long to be worth printing (`str` of one over 4,300 digits
    raises)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit integer"
    return repr(str(value)[:limit])


def clf_typed(g: tuple[str | None, ...], combined: bool) -> tuple[dict[str, Any] | None, str]:
    """`typed_row` of the per-line CLF regex's groups, without its loop over every key and type:
    the same row and the same first reason (status before bytes), at half the cost on the lines
    that take this path (probes, odd requests)."""
    status = bytes_ = None
    if g[5] not in (None, _MISSING, ""):  # typed_row's missing value of a typed column
        status, reason = _integer(g[5], "status")
        if status is None:
            return None, reason
    if g[6] not in (None, _MISSING, ""):
        bytes_, reason = _integer(g[6], "bytes")
        if bytes_ is None:
            return None, reason
    row = {"client_ip": _text(g[0]), "username": _text(g[2]), "status": status, "bytes": bytes_, "request": _text(g[4])}
    if combined:
        row["referer"], row["user_agent"] = _text(g[7]), _text(g[8])
    return row, ""


def rows_to_table(rows: list[dict[str, Any]], columns: list[str], line_idx: list[int]) -> pa.Table:
    """Build a parse-result table (PARSED_TYPES plus `_line`) from per-line rows."""
    arrays = {c: pa.array([r.get(c) for r in rows], PARSED_TYPES[c]) for c in columns}
    arrays["_line"] = pa.array(line_idx, pa.int32())
    return pa.table(arrays)


def parse_each(
    lines: pa.StringArray, parse_line: Callable[[str], tuple[dict[str, Any] | None, str]], columns: list[str]
) -> ParseResult:
    """Run a per-line parser over a chunk (the json and regex formats have no vectorized path)."""
    from loglake.writer.parsers import ParseResult

    rows, kept, rejects = [], [], []
    for i, text in enumerate(lines.to_pylist()):
        row, reason = parse_line(text)
        if row is None:
            rejects.append((i, reason))
        else:
            rows.append(row)
            kept.append(i)
    return ParseResult(rows_to_table(rows, columns, kept), rejects)
