"""A user's regular expression with named groups (Python `re` syntax), one line at a time."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from loglake.writer.parsers import ParseResult
from loglake.writer.parsers.values import PARSED_TYPES, parse_each, split_request, typed_row, zone


class RegexParser:
    """Named groups are column names; a `request` group fills method/path/protocol when they are absent."""

    def __init__(self, pattern: str, needed: list[str], time_format: str = "", timezone: str = "UTC") -> None:
        self.rx = re.compile(pattern)
        self.groups = set(self.rx.groupindex)
        self.needed = [c for c in PARSED_TYPES if c in needed]
        self.time_format = time_format
        self.tz = zone(timezone)
        derivable = {"method", "path", "protocol"} if "request" in self.groups else set()
        missing = set(self.needed) - self.groups - derivable
        if missing:
            raise ValueError(f"the pattern has no group for {', '.join(sorted(missing))}")

    def parse(self, lines: pa.StringArray) -> ParseResult:
        return parse_each(lines, self.parse_line, self.needed)

    def parse_line(self, text: str) -> tuple[dict[str, Any] | None, str]:
        m = self.rx.match(text)
        if m is None:
            return None, "unparseable: does not match the configured pattern"
        row, reason = typed_row(m.groupdict(), self.time_format, self.tz)
        if row is None:
            return None, reason
        if row.get("request") is not None and not self.groups & {"method", "path", "protocol"}:
            row["method"], row["path"], row["protocol"] = split_request(row["request"])
        return {c: row.get(c) for c in self.needed}, ""
