"""Parsers turn a chunk of decoded lines into typed rows plus rejected lines with reasons.

Every parser has the same shape (`parse(lines) -> ParseResult`), so the writer pipeline never
needs to know which log format it reads. `load_parser` is the one place formats are chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from loglake.config import WriterConfig


@dataclass
class ParseResult:
    """Rows for the lines that parsed (with `_line`, their index in the chunk) and the rest."""

    table: pa.Table
    rejects: list[tuple[int, str]] = field(default_factory=list)


class Parser(Protocol):
    """What the writer needs from a parser."""

    def parse(self, lines: pa.StringArray) -> ParseResult: ...


def load_parser(cfg: WriterConfig, needed: list[str]) -> Parser:
    """Build the parser that `cfg.format` names, producing only the `needed` columns."""
    from loglake.writer.parsers.clf import ClfParser
    from loglake.writer.parsers.jsonl import JsonParser
    from loglake.writer.parsers.nginx import nginx_pattern
    from loglake.writer.parsers.pattern import RegexParser

    if cfg.format in ("combined", "common"):
        return ClfParser(cfg.format, needed)
    if cfg.format == "json":
        return JsonParser(needed, cfg.json_fields, cfg.time_format, cfg.timezone)
    if cfg.format == "nginx":
        pattern, clf = nginx_pattern(cfg.log_format)
        if clf is not None:  # the standard formats get the vectorized parser
            return ClfParser(clf, needed)
        return RegexParser(pattern, needed, cfg.time_format, cfg.timezone)
    return RegexParser(cfg.pattern, needed, cfg.time_format, cfg.timezone)
