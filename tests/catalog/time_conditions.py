"""Generated WHERE conditions on `ts`/`dt` and a small lake around midnights, for the property test
that partition pruning never changes an answer (DuckDB in tests/catalog, Trino in the Trino suite).

The rows sit on both sides of four midnights, so a bound one day too narrow loses some; each row's
`bytes` is a distinct power of two, so `sum(bytes)` names exactly which rows a condition kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import strategies as st

DAYS = ("2025-12-31", "2026-01-01", "2026-01-02", "2026-01-03")
TIMES = ("00:00:00", "00:29:59", "00:30:00", "01:00:00", "11:00:00", "22:30:00", "23:30:00", "23:59:59")
#: Literal times: most are near a midnight with an offset that moves them across it, the cases where
#: dropping or applying the offset gives different days.
EARLY, LATE = ("00:00:00", "00:30:00", "01:00:00"), ("22:30:00", "23:30:00", "23:59:59")
EAST, WEST = ("+01:00", "+02:00", "+03:00", "+05:30", "+14:00"), ("-01:00", "-05:00", "-12:00")
PLAIN = ("", "Z", "+00:00")

#: The issue's table: each of these read too few days on DuckDB before pruning took offsets apart.
REPORTED = (
    "ts >= '2026-01-01T23:30:00-01:00'",
    "ts <= TIMESTAMP '2026-01-02 00:30:00+01:00'",
    "dt >= '2026-01-01 22:00:00-05:00'",
    "ts < '2026-01-02T01:00:00+02:00'",
    "ts between '2026-01-01T20:00:00-05:00' and '2026-01-02T02:00:00+03:00'",
)
#: ... and offsets an engine applies: a bound at the literal's wall-clock day would read too few.
APPLIED = (
    "ts > CAST('2026-01-02 00:00:00+01:00' AS TIMESTAMP WITH TIME ZONE)",
    "dt <= TIMESTAMPTZ '2026-01-01 23:30:00-01:00'",
    "ts IN (TIMESTAMPTZ '2026-01-02 00:30:00+01:00')",
)


def write_log(path: Path) -> int:
    """One combined-format line per (day, time) in UTC; returns the number of lines."""
    lines = []
    for i, (day, time) in enumerate((d, t) for d in DAYS for t in TIMES):
        when = datetime.fromisoformat(f"{day}T{time}")
        lines.append(f'192.0.2.{i} - - [{when:%d/%b/%Y:%H:%M:%S} +0000] "GET /r{i} HTTP/1.1" 200 {1 << i} "-" "t"\n')
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def pruned_sql(cond: str) -> str:
    """The condition in WHERE: the catalog (DuckDB) or the engine (Trino) prunes partitions by it."""
    return f"SELECT count(*), coalesce(sum(bytes), 0) FROM access_log WHERE {cond}"


def unpruned_sql(cond: str) -> str:
    """The same rows chosen in the select list: no WHERE, so every partition is read."""
    return f"SELECT count_if({cond}), coalesce(sum(CASE WHEN {cond} THEN bytes END), 0) FROM access_log"


def _instant(engine: str) -> st.SearchStrategy[str]:
    """A wall-clock time, mostly near a midnight with an offset across it; sometimes plain or `Z`."""
    near = st.one_of(
        st.tuples(st.sampled_from(EARLY), st.sampled_from(EAST)),
        st.tuples(st.sampled_from(LATE), st.sampled_from(WEST)),
        st.tuples(st.sampled_from(TIMES), st.sampled_from(PLAIN + EAST + WEST)),
    )
    sep = st.sampled_from((" ", "T")) if engine == "duckdb" else st.just(" ")  # Trino wants a space
    return st.builds(
        lambda d, tz, nudge, p: (
            (datetime.fromisoformat(f"{d}T{tz[0]}") + timedelta(seconds=nudge)).strftime(f"%Y-%m-%d{p}%H:%M:%S") + tz[1]
        ),
        st.sampled_from(DAYS),
        near,
        st.sampled_from((0, 0, 1, -1)),
        sep,
    )


def literal(engine: str) -> st.SearchStrategy[str]:
    """A date or timestamp constant in a form `engine` accepts, as often one that drops an offset
    (DuckDB's casts to TIMESTAMP/DATE, a bare string) as one that applies it (TIMESTAMPTZ, Trino's
    zoned TIMESTAMP literal), or one without (dates, intervals)."""
    instant, day = _instant(engine), st.sampled_from(DAYS)
    spaced = instant.map(lambda s: s.replace("T", " "))
    typed = spaced.map(lambda s: f"TIMESTAMP '{s}'")
    drops = [spaced.map(lambda s: f"CAST('{s}' AS TIMESTAMP)"), typed.map(lambda s: f"CAST({s} AS DATE)")]
    applies = [spaced.map(lambda s: f"CAST('{s}' AS TIMESTAMP WITH TIME ZONE)")]
    (drops if engine == "duckdb" else applies).append(typed)
    if engine == "duckdb":
        drops.append(instant.map(lambda s: f"'{s}'"))
        applies.append(instant.map(lambda s: f"TIMESTAMPTZ '{s}'"))
    neither = st.one_of(
        day.map(lambda d: f"DATE '{d}'"),
        day.map(lambda d: f"CAST('{d}' AS DATE)"),
        st.builds(
            lambda s, sign, n, unit: f"{s} {sign} INTERVAL '{n}' {unit}",
            typed,
            st.sampled_from("+-"),
            st.integers(1, 3),
            st.sampled_from(("HOUR", "DAY", "MINUTE")),
        ),
    )
    return st.one_of(st.one_of(drops), st.one_of(applies), neither)


def _comparison(engine: str) -> st.SearchStrategy[str]:
    col = st.sampled_from(("ts", "dt", "access_log.ts", "access_log.dt"))
    lit = literal(engine)
    op = st.sampled_from(("=", "<", "<=", ">", ">="))
    return st.one_of(
        st.builds(lambda c, o, v: f"{c} {o} {v}", col, op, lit),
        st.builds(lambda v, o, c: f"{v} {o} {c}", lit, op, col),
        st.builds(lambda c, a, b: f"{c} BETWEEN {a} AND {b}", col, lit, lit),
        st.builds(lambda c, vs: f"{c} IN ({', '.join(vs)})", col, st.lists(lit, min_size=1, max_size=3)),
    )


def conditions(engine: str) -> st.SearchStrategy[str]:
    """Conditions on the time columns (and a few others), combined with AND, OR and NOT: mostly one
    comparison or an AND (the shapes pruning narrows), some that must read everything."""
    atom = _comparison(engine)
    other = st.sampled_from(("status = 200", "bytes > 1024", "hour = 23", "hour < 1"))
    return st.one_of(
        atom,
        st.builds(lambda a, b: f"{a} AND {b}", atom, atom),
        st.builds(lambda a, b: f"({a}) AND {b}", atom, other),
        st.builds(lambda a, b, c: f"{a} AND ({b} OR {c})", atom, atom, other),
        st.builds(lambda a, b: f"{a} OR {b}", atom, atom),
        atom.map(lambda a: f"NOT ({a})"),
        st.builds(lambda a, b: f"NOT ({a}) AND {b}", atom, atom),
    )
