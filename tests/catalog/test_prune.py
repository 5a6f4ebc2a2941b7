"""Which days a query reads: bounds from its WHERE clause, conservative whenever in doubt."""

from __future__ import annotations

import pytest

from loglake.catalog.prune import DayRange, day_range


@pytest.mark.parametrize(
    ("sql", "lo", "hi"),
    [
        ("SELECT * FROM access_log WHERE dt = DATE '2026-11-30'", "2026-11-30", "2026-11-30"),
        ("SELECT * FROM access_log WHERE dt = '2026-11-30' AND hour = 3", "2026-11-30", "2026-11-30"),
        ("SELECT * FROM access_log WHERE dt BETWEEN '2026-11-01' AND '2026-11-03'", "2026-11-01", "2026-11-03"),
        ("SELECT * FROM access_log WHERE dt IN ('2026-11-05', '2026-11-02')", "2026-11-02", "2026-11-05"),
        ("SELECT * FROM access_log WHERE ts >= TIMESTAMP '2026-11-30 23:10:00'", "2026-11-30", "9999-12-31"),
        ("SELECT * FROM access_log WHERE '2026-11-29' <= dt AND dt < '2026-12-01'", "2026-11-29", "2026-12-01"),
        ("SELECT * FROM access_log a WHERE a.ts < '2026-11-30T10:00:00+02:00'", "0001-01-01", "2026-11-30"),
        # a time with an offset is a UTC day: 01:30 at +03:00 is the previous day in UTC
        ("SELECT * FROM access_log WHERE ts >= '2026-11-30T01:30:00+03:00'", "2026-11-29", "9999-12-31"),
        (
            "SELECT dt FROM access_log WHERE dt BETWEEN CAST(CAST('2026-11-01 00:00:00' AS TIMESTAMP) AS DATE) "
            "AND CAST(CAST('9999-12-31 00:00:00' AS TIMESTAMP) AS DATE)",
            "2026-11-01",
            "9999-12-31",
        ),
    ],
)
def test_bounds_from_conditions(sql: str, lo: str, hi: str) -> None:
    assert day_range(sql, "access_log") == DayRange(lo, hi)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM access_log",
        "SELECT * FROM access_log WHERE dt = '2026-11-30' OR status = 500",  # OR: could be any day
        "SELECT * FROM access_log WHERE NOT (dt = '2026-11-30')",
        "SELECT * FROM access_log WHERE dt = current_date",  # not a constant we evaluate
        "SELECT * FROM access_log WHERE CAST(dt AS VARCHAR) = '2026-11-30'",
        "SELECT * FROM access_log a JOIN access_log b ON a.ts = b.ts WHERE a.dt = '2026-11-30'",
        "SELECT * FROM (SELECT * FROM access_log) WHERE dt = '2026-11-30'",  # the bound is outside
        "SELECT * FROM access_log x JOIN other o ON true WHERE o.dt = '2026-11-30'",
        "SELECT * FROM access_log WHERE dt = 'yesterday'",
        "this is not sql",
    ],
)
def test_anything_not_understood_reads_every_day(sql: str) -> None:
    assert day_range(sql, "access_log").everything
