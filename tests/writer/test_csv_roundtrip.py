"""Hostile values survive the CSV segment exactly: what the parser produced is what rollover reads."""

from __future__ import annotations

import json
from pathlib import Path

from loglake.writer import Writer
from tests.helpers import spool_rows

HOSTILE = [
    "plain",
    "comma, inside",
    'double "quotes" and ""doubled""',
    "new\nline and\r\ncarriage return",
    "",  # empty string is not NULL
    "trailing backslash \\",
    "unicode ✓ ünïcødé 日本語 🚀",
    '","," looks like a CSV separator',
    "tab\tand\x0bvertical tab",
    " leading and trailing spaces ",
]


def test_hostile_values_round_trip_through_segments(make_config, tmp_path: Path) -> None:
    cfg = make_config(
        """
[writer]
format = "json"

[tables.access_log]
columns = ["ts", "username", "path", "user_agent", "referer", "status"]
"""
    )
    log = tmp_path / "app.jsonl"
    with open(log, "w", encoding="utf-8") as f:
        for i, value in enumerate(HOSTILE):
            rec = {
                "ts": f"2026-11-29T10:00:{i:02d}Z",
                "username": value,
                "path": f"/{i}",
                "user_agent": value,
                "referer": None,
                "status": 200,
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    w = Writer(cfg)
    w.write_file(str(log))
    assert w.totals.rows == {"access_log": len(HOSTILE)} and w.totals.dead_lettered == 0
    rows = spool_rows(cfg.data_dir)
    assert [r["user_agent"] for r in rows] == HOSTILE
    assert [r["username"] for r in rows] == HOSTILE
    assert all(r["referer"] is None for r in rows)  # NULL stays NULL, distinct from ""
