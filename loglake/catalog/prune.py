"""Which days a query can touch, read from its WHERE clause before DuckDB plans it.

The embedded catalog builds each query's views from the partitions it needs, so planning lists
(and DuckDB opens the footers of) a day's files, not a year's. The bounds are conservative: only
top-level AND conditions of the one SELECT that reads the table narrow them, and anything not
understood leaves the whole table. DuckDB still applies every condition itself.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

_MIN, _MAX = "0001-01-01", "9999-12-31"


@dataclass(frozen=True)
class DayRange:
    lo: str = _MIN
    hi: str = _MAX

    @property
    def everything(self) -> bool:
        return self.lo == _MIN and self.hi == _MAX


def _constant_day(node: exp.Expression) -> _dt.date | None:
    """The UTC day of a constant expression (a date or timestamp literal, possibly cast), or None."""
    if node.find(exp.Column) is not None or node.find(exp.Placeholder) is not None:
        return None
    while isinstance(node, (exp.Cast, exp.TryCast, exp.Paren)):
        node = node.this
    if not (isinstance(node, exp.Literal) and node.is_string):
        return None
    text = node.this.strip().replace("Z", "+00:00")
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(_dt.UTC)
    return when.date()


def _bound(cond: exp.Expression, names: set[str]) -> tuple[_dt.date | None, _dt.date | None]:
    """(lowest, highest) day allowed by one condition on `dt` or `ts`; None for no bound."""
    if isinstance(cond, exp.Between) and _is_time_column(cond.this, names):
        return _constant_day(cond.args["low"]), _constant_day(cond.args["high"])
    if isinstance(cond, exp.In) and _is_time_column(cond.this, names) and cond.expressions:
        days = [_constant_day(e) for e in cond.expressions]
        if all(d is not None for d in days):
            return min(days), max(days)  # type: ignore[type-var]
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
    day = _constant_day(right)
    if day is None:
        return None, None
    # `ts < '2026-11-30 00:00'` allows the 29th only, but a day bound is inclusive: keep it simple
    # and conservative (one extra day read at most).
    return (day if op in ("=", ">", ">=") else None), (day if op in ("=", "<", "<=") else None)


def _is_time_column(node: exp.Expression, names: set[str]) -> bool:
    if not isinstance(node, exp.Column) or node.name.lower() not in ("dt", "ts"):
        return False
    return not node.table or node.table in names


def _conjuncts(where: exp.Expression) -> list[exp.Expression]:
    node = where.this if isinstance(where, exp.Where) else where
    return list(node.flatten()) if isinstance(node, exp.And) else [node]


def day_range(sql: str, table: str, dialect: str = "duckdb") -> DayRange:
    """The days of `table` that `sql` can read (everything when in doubt)."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError):
        return DayRange()
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
