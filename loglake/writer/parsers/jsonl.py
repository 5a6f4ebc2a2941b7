"""JSON lines: one object per line, columns mapped from (dotted) keys."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from loglake.writer.parsers import ParseResult
from loglake.writer.parsers.values import PARSED_TYPES, parse_each, split_request, typed_row, zone

_MISSING = object()


def _lookup(obj: dict[str, Any], dotted: str) -> Any:
    """`a.b` finds obj["a"]["b"]; a literal key containing a dot wins, as in Vector's paths."""
    if dotted in obj:
        return obj[dotted]
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _utf8(value: Any) -> bool:
    """Whether a row value can be stored: JSON's `\\ud800` escape decodes to a lone surrogate,
    which is no Unicode text (Arrow, like UTF-8, refuses it)."""
    if not isinstance(value, str) or value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class JsonParser:
    """Maps JSON keys to columns; by default each column is read from the key of the same name."""

    def __init__(
        self, needed: list[str], mapping: dict[str, str], time_format: str = "", timezone: str = "UTC"
    ) -> None:
        self.needed = [c for c in PARSED_TYPES if c in needed]
        self.mapping = {c: mapping.get(c, c) for c in PARSED_TYPES}
        self.time_format = time_format
        self.tz = zone(timezone)

    def parse(self, lines: pa.StringArray) -> ParseResult:
        return parse_each(lines, self.parse_line, self.needed)

    def parse_line(self, text: str) -> tuple[dict[str, Any] | None, str]:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            return None, f"invalid_json: {e}"
        except RecursionError:
            return None, "invalid_json: nested too deeply"
        except ValueError:  # an integer of more than 4,300 digits (sys.get_int_max_str_digits)
            return None, "invalid_json: a number too long to convert"
        if not isinstance(obj, dict):
            return None, f"invalid_json: expected an object, got {type(obj).__name__}"
        raw = {c: _lookup(obj, self.mapping[c]) for c in PARSED_TYPES}
        if raw["ts"] is None and "ts" in self.needed:
            return None, f"missing_time: no {self.mapping['ts']!r} key"
        for key, value in raw.items():
            if isinstance(value, (dict, list)):
                raw[key] = json.dumps(value, separators=(",", ":"))
        row, reason = typed_row(raw, self.time_format, self.tz)
        if row is None:
            return None, reason
        if "\\u" in text and not all(_utf8(v) for v in row.values()):
            return None, "invalid_json: a lone surrogate escape (\\uD800-\\uDFFF) in a value"
        if row.get("request") and not any(row.get(k) for k in ("method", "path", "protocol")):
            row["method"], row["path"], row["protocol"] = split_request(row["request"])
        return {c: row.get(c) for c in self.needed}, ""
