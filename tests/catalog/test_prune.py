"""Which days a query reads: bounds from its WHERE clause, conservative whenever in doubt."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from loglake.catalog.prune import DayRange, day_range
from tests.catalog.time_conditions import APPLIED, REPORTED, conditions, pruned_sql, unpruned_sql, write_log
from tests.conftest import run_cli
from tests.helpers import EXAMPLES


@pytest.mark.parametrize(
    ("sql", "lo", "hi"),
    [
        ("SELECT * FROM access_log WHERE dt = DATE '2026-11-30'", "2026-11-30", "2026-11-30"),
        ("SELECT * FROM access_log WHERE dt = '2026-11-30' AND hour = 3", "2026-11-30", "2026-11-30"),
        ("SELECT * FROM access_log WHERE dt BETWEEN '2026-11-01' AND '2026-11-03'", "2026-11-01", "2026-11-03"),
        ("SELECT * FROM access_log WHERE dt IN ('2026-11-05', '2026-11-02')", "2026-11-02", "2026-11-05"),
        ("SELECT * FROM access_log WHERE ts >= TIMESTAMP '2026-11-30 23:10:00'", "2026-11-30", "9999-12-31"),
        ("SELECT * FROM access_log WHERE '2026-11-29' <= dt AND dt < '2026-12-01'", "2026-11-29", "2026-12-01"),
        ("SELECT * FROM access_log a WHERE a.ts < '2026-11-30T10:00:00+02:00'", "0001-01-01", "2026-12-01"),
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


@pytest.mark.parametrize(
    ("sql", "lo", "hi"),
    [
        # an offset is read a day either side of its wall-clock date: DuckDB drops it casting a string to
        # TIMESTAMP or DATE, keeps it for TIMESTAMPTZ; Trino compares a zoned literal in the session zone
        ("SELECT * FROM access_log WHERE ts >= '2026-01-01T23:30:00-01:00'", "2025-12-31", "9999-12-31"),
        ("SELECT * FROM access_log WHERE ts = TIMESTAMPTZ '2026-01-02 00:30+01'", "2026-01-01", "2026-01-03"),
        ("SELECT * FROM access_log WHERE ts <= '2026-01-01T23:30:00Z'", "0001-01-01", "2026-01-01"),  # UTC itself
        ("SELECT * FROM access_log WHERE (dt >= '2026-01-01' AND (ts < '2026-01-03'))", "2026-01-01", "2026-01-03"),
    ],
)
def test_offsets_widen_bounds_and_parentheses_still_narrow(sql: str, lo: str, hi: str) -> None:
    assert day_range(sql, "access_log") == DayRange(lo, hi)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM access_log WHERE ts >= CAST('2026-01-02' AS VARCHAR)",  # compared as text
        "SET TimeZone = 'Asia/Tokyo'; SELECT * FROM access_log WHERE ts >= TIMESTAMPTZ '2026-01-02 00:30'",
    ],
)
def test_casts_to_text_and_several_statements_read_every_day(sql: str) -> None:
    assert day_range(sql, "access_log").everything


@pytest.fixture
def midnight_lake(data_dir: Path, tmp_path: Path, make_config):
    """The lake of time_conditions.write_log, behind the embedded catalog."""
    from loglake.catalog import load_catalog

    lines = write_log(tmp_path / "midnights.log")
    for args in (["write", str(tmp_path / "midnights.log")], ["rollover"]):
        proc = run_cli(args, data_dir)
        assert proc.returncode == 0, proc.stderr
    catalog = load_catalog(make_config())
    assert catalog.query("SELECT count(*) FROM access_log").rows == [(lines,)]
    yield catalog
    catalog.close()


def test_the_reported_offsets_read_the_days_they_need(midnight_lake) -> None:
    for cond in REPORTED + APPLIED:
        pruned = midnight_lake.query(pruned_sql(cond)).rows
        assert pruned == midnight_lake.query(unpruned_sql(cond)).rows, cond
        assert not day_range(pruned_sql(cond), "access_log").everything, cond  # still pruned
        assert pruned[0][0] > 0, cond


def test_pruning_never_changes_an_answer_on_duckdb(midnight_lake) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
    @given(conditions("duckdb"))
    def check(cond: str) -> None:
        assert midnight_lake.query(pruned_sql(cond)).rows == midnight_lake.query(unpruned_sql(cond)).rows, cond

    check()


def test_casts_that_round_to_whole_seconds_read_the_next_day(midnight_lake) -> None:
    """DuckDB rounds a cast to TIMESTAMP_S/_MS: 23:59:59.6 is the next day's 00:00:00."""
    for cond in (
        "ts <= CAST('2026-01-01 23:59:59.6' AS TIMESTAMP_S)",
        "ts = CAST('2026-01-01 23:59:59.6' AS TIMESTAMP_S)",
        "ts <= CAST('2026-01-01 23:59:59.9996' AS TIMESTAMP_MS)",
        "ts in ('2026-01-01 23:59:59.6'::TIMESTAMP_S)",
    ):
        pruned = midnight_lake.query(pruned_sql(cond)).rows
        assert pruned == midnight_lake.query(unpruned_sql(cond)).rows, cond
        assert pruned[0][0] > 0, cond
