"""Run SQL on an engine; reports are Trino SQL, transpiled to DuckDB with sqlglot.

A report file starts with `-- description` and may declare `-- optional-columns: a, b`: columns
dropped from the query (select list, GROUP BY, ORDER BY) when the table lacks them, so one text
serves tables with and without, say, a `location` column. `:since`/`:until` are bound as timestamp
literals built here from validated datetimes, never from raw user text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

import sqlglot
from sqlglot import exp

from loglake.catalog import Catalog, QueryResult
from loglake.errors import UsageError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class Report:
    name: str
    description: str
    sql: str
    optional_columns: tuple[str, ...] = ()
    table: str = "access_log"  # `-- table: NAME`: the table the report reads (and whose columns count)


def list_reports() -> list[Report]:
    out = []
    for entry in sorted(resources.files("loglake.queries").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            out.append(load_report(entry.name[:-4]))
    return out


def load_report(name: str) -> Report:
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise UsageError(f"no report {name!r}")
    entry = resources.files("loglake.queries") / f"{name}.sql"
    if not entry.is_file():
        known = ", ".join(r.name for r in list_reports())
        raise UsageError(f"no report {name!r}; known: {known}")
    text = entry.read_text(encoding="utf-8")
    lines = text.splitlines()
    description = lines[0].lstrip("- ").strip() if lines and lines[0].startswith("--") else ""
    optional: tuple[str, ...] = ()
    table = "access_log"
    for line in lines:
        m = re.match(r"--\s*optional-columns:\s*(.+)", line)
        if m:
            optional = tuple(c.strip() for c in m.group(1).split(","))
        m = re.match(r"--\s*table:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", line)
        if m:
            table = m.group(1)
    return Report(name, description, text, optional, table)


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """ISO date/time (UTC unless an offset is given) or a relative span back from now: 90m, 24h, 7d.

    Bad or out-of-range input is a usage error (exit 2), whatever its shape."""
    now = now or datetime.now(UTC)
    spec = text.strip()
    m = re.fullmatch(r"(\d+)([mhd])", spec)
    try:
        if m:
            n, unit = int(m.group(1)), m.group(2)
            return now - timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: n})
        try:
            dt = datetime.fromisoformat(spec.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"invalid time {text!r}: use ISO 8601 (2026-11-29T10:00) or 90m/24h/7d") from None
        dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise UsageError(f"time {text!r} is out of range (years 1 to 9999, UTC)") from None


def _timestamp_literal(when: datetime) -> exp.Expression:
    utc = when.astimezone(UTC)
    text = f"{utc.year:04d}-{utc:%m-%d %H:%M:%S.%f}"  # %Y does not pad years before 1000
    return exp.cast(exp.Literal.string(text), exp.DataType.build("timestamp"))


def render_report(
    report: Report,
    engine: str,
    since: datetime | None = None,
    until: datetime | None = None,
    table_columns: set[str] | None = None,
) -> str:
    """The report's SQL for `engine`, with the time window bound and missing optional columns dropped."""
    tree = sqlglot.parse_one(report.sql, read="trino")
    values = {"since": _timestamp_literal(since or _EPOCH), "until": _timestamp_literal(until or _FAR)}
    tree = tree.transform(
        lambda node: values[node.name] if isinstance(node, exp.Placeholder) and node.name in values else node
    )
    missing = [c for c in report.optional_columns if table_columns is not None and c not in table_columns]
    if missing:
        tree = _drop_columns(tree, set(missing))
    return tree.sql(dialect=engine, comments=False)


def _drop_columns(tree: exp.Expression, names: set[str]) -> exp.Expression:
    def is_dropped(node: exp.Expression) -> bool:
        target = node.this if isinstance(node, (exp.Alias, exp.Ordered)) else node
        return isinstance(target, exp.Column) and target.name in names

    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
    select.set("expressions", [e for e in select.expressions if not is_dropped(e)])
    group = select.args.get("group")
    if group:
        group.set("expressions", [e for e in group.expressions if not is_dropped(e)])
    order = select.args.get("order")
    if order:
        order.set("expressions", [e for e in order.expressions if not is_dropped(e)])
    return tree


def run_query(catalog: Catalog, sql: str) -> QueryResult:
    return catalog.query(sql)
