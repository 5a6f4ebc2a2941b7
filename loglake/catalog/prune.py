"""Which days a query can touch, read from its WHERE clause before DuckDB plans it.

The embedded catalog builds each query's views from the partitions it needs, so planning lists
(and DuckDB opens the footers of) a day's files, not a year's. Pruning must never change an
answer, so the bounds are conservative: only top-level AND conditions of the one SELECT that reads
the table narrow them, only date/timestamp constants count, and anything not understood leaves the
whole table. DuckDB still applies every condition itself.

A literal's UTC offset is not trusted to mean one instant: DuckDB drops it when it casts a string
to TIMESTAMP or DATE (`'2026-01-01 23:30-01:00'::TIMESTAMP` is 23:30) and applies it for
TIMESTAMPTZ, and Trino's `TIMESTAMP '… +01:00'` is a zoned value compared in the session zone. So
a literal with a non-zero offset bounds the days around its wall-clock date, a day either side:
every reading of it (offset dropped or applied, |offset| < 24 h) lies in that range.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

_MIN, _MAX = "0001-01-01", "9999-12-31"
_DAY = _dt.timedelta(days=1)
#: Casts a bound may look through: to a date or a timestamp (a cast to text compares as text).
_TEMPORAL = exp.DataType.TEMPORAL_TYPES - {exp.DataType.Type.TIME, exp.DataType.Type.TIMETZ}
#: Casts to a coarser precision round (DuckDB's TIMESTAMP_S/_MS), which can cross midnight.
_ROUNDING = {exp.DataType.Type.TIMESTAMP_S, exp.DataType.Type.TIMESTAMP_MS}

Days = tuple[_dt.date, _dt.date]


@dataclass(frozen=True)
class DayRange:
    lo: str = _MIN
    hi: str = _MAX

    @property
    def everything(self) -> bool:
        return self.lo == _MIN and self.hi == _MAX


def _constant_days(node: exp.Expression) -> Days | None:
    """The UTC days a date or timestamp constant (a literal, possibly cast) can mean, or None."""
    if node.find(exp.Column) is not None or node.find(exp.Placeholder) is not None:
        return None
    rounds = False
    while isinstance(node, (exp.Cast, exp.TryCast, exp.Paren)):
        if isinstance(node, (exp.Cast, exp.TryCast)) and node.to.this not in _TEMPORAL:
            return None
        rounds = rounds or (isinstance(node, (exp.Cast, exp.TryCast)) and node.to.this in _ROUNDING)
        node = node.this
    if not (isinstance(node, exp.Literal) and node.is_string):
        return None
    text = node.this.strip().replace("Z", "+00:00")
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    day = when.date()
    if rounds and day < _dt.date.max:  # 23:59:59.6 cast to whole seconds is the next day's 00:00:00
        return (day - _DAY if when.utcoffset() and day > _dt.date.min else day), day + _DAY
    if when.utcoffset():  # engines differ on whether the offset counts: both readings stay in
        return (day - _DAY if day > _dt.date.min else day), (day + _DAY if day < _dt.date.max else day)
    return day, day


def _bound(cond: exp.Expression, names: set[str]) -> tuple[_dt.date | None, _dt.date | None]:
    """(lowest, highest) day allowed by one condition on `dt` or `ts`; None for no bound."""
    if isinstance(cond, exp.Between) and _is_time_column(cond.this, names):
        low, high = _constant_days(cond.args["low"]), _constant_days(cond.args["high"])
        if cond.args.get("symmetric"):  # either end may be the lower one
            if low is None or high is None:
                return None, None
            return min(low[0], high[0]), max(low[1], high[1])
        return (low[0] if low else None), (high[1] if high else None)
    if isinstance(cond, exp.In) and _is_time_column(cond.this, names) and cond.expressions:
        days = [_constant_days(e) for e in cond.expressions]
        if all(d is not None for d in days):
            return min(d[0] for d in days), max(d[1] for d in days)  # type: ignore[index]
        return None, None
    ops = {exp.EQ: "=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
    op = ops.get(type(cond))
    if op is None:
        return None, None
    left, right = cond.this, cond.expression
    if _is_time_column(right, names):  # literal <op> column: mirror it
        left, right = right, left
        op = {">": "<", ">=": "<=", "<": ">", "<=": ">="}.get(op, op)
    if not _is_time_column(left, names):
        return None, None
    days = _constant_days(right)
    if days is None:
        return None, None
    # `ts < '2026-11-30 00:00'` allows the 29th only, but a day bound is inclusive: keep it simple
    # and conservative (one extra day read at most).
    return (days[0] if op in ("=", ">", ">=") else None), (days[1] if op in ("=", "<", "<=") else None)


def _is_time_column(node: exp.Expression, names: set[str]) -> bool:
    if not isinstance(node, exp.Column) or node.name.lower() not in ("dt", "ts"):
        return False
    return not node.table or node.table in names


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    """The conditions a WHERE requires all of: AND chains, looked into through parentheses."""
    if isinstance(node, (exp.Where, exp.Paren)):
        return _conjuncts(node.this)
    if isinstance(node, exp.And):
        return [c for part in node.flatten() for c in _conjuncts(part)]
    return [node]


def day_range(sql: str, table: str, dialect: str = "duckdb") -> DayRange:
    """The days of `table` that `sql` can read (everything when in doubt)."""
    try:
        statements = sqlglot.parse(sql, read=dialect)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError):
        return DayRange()
    if len(statements) != 1 or statements[0] is None:
        return DayRange()  # several statements: a SET before the SELECT could change what it means
    tree = statements[0]
    refs = [t for t in tree.find_all(exp.Table) if t.name.lower() == table.lower() and not t.db]
    if len(refs) != 1:
        return DayRange()
    select = refs[0].find_ancestor(exp.Select)
    if select is None or select.args.get("where") is None:
        return DayRange()
    from_ = select.args.get("from_") or select.args.get("from")
    if from_ is None or refs[0] not in list(from_.find_all(exp.Table)) or select.args.get("joins"):
        return DayRange()  # a join or a subquery around the table: bounds could belong to another
    names = {refs[0].name, refs[0].alias_or_name}
    lo, hi = None, None
    for cond in _conjuncts(select.args["where"]):
        c_lo, c_hi = _bound(cond, names)
        lo = c_lo if lo is None or (c_lo is not None and c_lo > lo) else lo
        hi = c_hi if hi is None or (c_hi is not None and c_hi < hi) else hi
    return DayRange(lo.isoformat() if lo else _MIN, hi.isoformat() if hi else _MAX)


__all__ = ["DayRange", "day_range"]
