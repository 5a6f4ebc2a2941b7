"""Durations written in config and on the command line: `90s`, `15m`, `36h`, `90d`, `2w`.

A retention is a promise to delete data, so its text must mean one thing only: a whole number or
decimal and one unit, nothing else (no bare numbers, whose unit a reader would have to guess).
"""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with the accepted shape otherwise."""
    m = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 36h, 90d or 2w")
    return float(m.group(1)) * UNITS[m.group(2)]


__all__ = ["UNITS", "parse_duration"]
