"""A small log of valid and hostile lines with the values each line must become."""

from __future__ import annotations

import os
import time
from pathlib import Path

BASE = '1.2.3.4 - alice [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 1234 "http://ref/" "UA/1.0"'

#: (raw line bytes, expected row subset or None when the line must be dead-lettered with reason prefix)
CASES: list[tuple[bytes, dict | None, str]] = [
    (BASE.encode(), {"username": "alice", "path": "/index.html", "status": 200, "bytes": 1234}, ""),
    (BASE.replace("UA/1.0", r"with \"quotes\", commas").encode(), {"user_agent": 'with "quotes", commas'}, ""),
    (BASE.replace("UA/1.0", r"nginx \x22q\x22").encode(), {"user_agent": 'nginx "q"'}, ""),
    (BASE.replace("1.2.3.4", "2001:db8::7").encode(), {"client_ip": "2001:db8::7"}, ""),
    (BASE.replace("alice", "-").replace(" 1234 ", " - ").encode(), {"username": None, "bytes": None}, ""),
    (BASE.replace("GET /index.html HTTP/1.1", r"\x16\x03\x01\x00").encode(), {"method": None, "status": 200}, ""),
    (BASE.replace("GET /index.html HTTP/1.1", "").encode(), {"method": None, "path": None}, ""),
    (BASE.encode() + b' "203.0.113.9"', {"user_agent": "UA/1.0"}, ""),
    (BASE.encode() + b"\r", {"user_agent": "UA/1.0"}, ""),
    (BASE.replace("+0000", "-0700").encode(), {"ts_iso": "2015-05-17T17:05:03"}, ""),
    (BASE.replace(" 200 ", " 700 ").encode(), None, "status_out_of_range"),
    (BASE.replace("17/May", "32/May").encode(), None, "invalid_time"),
    (b"garbage, not a log line", None, "unparseable"),
    (BASE.encode().replace(b"UA/1.0", b"\xc0\xaf bad utf8"), None, "invalid_utf8"),
    (BASE.encode().replace(b"alice", b"a\x00b"), None, "nul_bytes"),
    (b"", None, "empty_line"),
    (b"A" * 70_000, None, "too_long"),
    # last line, no newline
    (BASE.replace("alice", "last").encode(), {"username": "last"}, ""),
]


def write_hostile(path: Path) -> Path:
    """The cases as a finished log (no final newline, last modified an hour ago: a live file's
    half-written last line would be held back until it is complete)."""
    path.write_bytes(b"\n".join(raw for raw, _, _ in CASES))
    age_file(path)
    return path


def age_file(path: Path, seconds: float = 3600) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))
