"""Alert rules evaluated as SQL on the freshest rows, on either engine.

Each rule is one aggregate query over its window (`ts` within the last `window`, with a `dt`
bound so both engines prune to a day or two of partitions). A rule's `where` is operator config,
but it still reaches SQL only after sqlglot parsed it as a single condition on columns: no
subquery, no statement separator. The `stale` rule watches the pipeline, not the site: the newest
row visible to SQL is older than `stale_after` seconds.

Rules are evaluated one by one: a rule that cannot be evaluated (its query fails: a column the
lake does not have yet, an unreachable engine) is a verdict of its own, `error`, with the reason,
and never stops the others firing. A configured table with no rows yet is not an error: its rules
see zero rows (so `stale` fires, and a share rule stays quiet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loglake.config import AlertRule, Config
from loglake.errors import LoglakeError
from loglake.schema import FIELD_TYPES, quote_identifier, validate_identifier

if TYPE_CHECKING:
    from sqlglot import exp

    from loglake.catalog import Catalog

_KINDS = ("share_over", "requests_below", "count_over", "stale_after")


@dataclass(frozen=True)
class Verdict:
    """One rule's outcome: firing, quiet, or not evaluated (`error`, the reason in `message`)."""

    rule: str
    firing: bool
    value: float | None
    threshold: float
    rows: int | None
    message: str
    error: bool = False

    @property
    def state(self) -> str:
        return "error" if self.error else "firing" if self.firing else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "firing": self.firing,
            "error": self.error,
            "value": self.value,
            "threshold": self.threshold,
            "rows": self.rows,
            "message": self.message,
        }


def kind(rule: AlertRule) -> str:
    return next(k for k in _KINDS if getattr(rule, k) >= 0)


def window_seconds(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not m:
        raise ValueError(f"window {text!r} is not a duration like 90s, 2m, 1h")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _condition(text: str) -> exp.Expression:
    """Parse a rule's `where` as one condition on known columns; ValueError otherwise."""
    import sqlglot  # imported here: loading a config must stay fast
    from sqlglot import exp

    try:
        node = sqlglot.parse_one(text, read="trino")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as e:
        raise ValueError(f"is not a SQL condition: {str(e).splitlines()[0]}") from None
    if isinstance(node, (exp.Select, exp.Query, exp.Command)) or node.find(exp.Select, exp.Subquery):
        raise ValueError("must be a condition, not a query")
    unknown = sorted(_columns(node) - set(FIELD_TYPES) - {"dt", "hour"})
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(unknown)}")
    return node


def _columns(node: exp.Expression) -> set[str]:
    from sqlglot import exp

    return {c.name for c in node.find_all(exp.Column)}


def validate_alerts(cfg: Config) -> list[str]:
    problems = []
    for r in cfg.alerts:
        where = f"alerts.{r.name}"
        try:
            validate_identifier(r.name.replace("-", "_"), "alert name")
            validate_identifier(r.table, "table name")
        except ValueError as e:
            problems.append(f"{where}: {e}")
        set_kinds = [k for k in _KINDS if getattr(r, k) >= 0]
        if len(set_kinds) != 1:
            problems.append(f"{where}: set exactly one of {', '.join(_KINDS)} (got {len(set_kinds)})")
        if r.share_over > 1:
            problems.append(f"{where}.share_over: a share between 0 and 1 (0.05 = 5%)")
        try:
            window_seconds(r.window)
        except ValueError as e:
            problems.append(f"{where}.window: {e}")
        table = next((t for t in cfg.tables if t.name == r.table), None)
        if table is None:
            problems.append(
                f"{where}.table: {r.table!r} is not a configured table ({', '.join(t.name for t in cfg.tables)})"
            )
        if r.where:
            try:
                node = _condition(r.where)
            except ValueError as e:
                problems.append(f"{where}.where: {r.where!r} {e}")
            else:
                absent = sorted(_columns(node) - {"dt", "hour", *(table.columns if table else ())})
                if table is not None and absent:
                    problems.append(
                        f"{where}.where: {r.where!r} uses column(s) {', '.join(absent)} that table {r.table} does not "
                        f"have (its columns: {', '.join(table.columns)})"
                    )
        elif r.share_over >= 0:
            problems.append(f"{where}: share_over needs `where` (the rows whose share is measured)")
    a = cfg.alerting
    url = a.webhook_url
    if url and not (url.startswith("https://") or re.match(r"http://(127\.0\.0\.1|localhost|\[::1\])[:/]", url)):
        problems.append("alerting.webhook_url: must be https:// (plain http only to localhost)")
    if a.interval <= 0 or a.timeout <= 0:
        problems.append("alerting.interval and alerting.timeout: must be positive")
    return problems


def _since(seconds: float, now: datetime) -> tuple[str, str]:
    """Timestamp and day literals for `now - seconds` (UTC), the day bound letting both engines
    prune partitions."""
    start = now - timedelta(seconds=seconds)
    return f"{start:%Y-%m-%d %H:%M:%S.%f}", f"{start:%Y-%m-%d}"


def rule_sql(rule: AlertRule, engine: str, now: datetime) -> str:
    """The rule's query in the engine's dialect."""
    import sqlglot

    table = quote_identifier(validate_identifier(rule.table, "table name"))
    k = kind(rule)
    if k == "stale_after":
        ts, day = _since(max(rule.stale_after * 2, 86400.0), now)
        sql = f"SELECT max(ts) AS newest, count(*) AS n FROM {table} WHERE dt >= DATE '{day}'"
    else:
        ts, day = _since(window_seconds(rule.window), now)
        match = _condition(rule.where).sql(dialect="trino") if rule.where else "true"
        sql = (
            f"SELECT count(*) AS n, count_if({match}) AS matched FROM {table} "
            f"WHERE dt >= DATE '{day}' AND ts >= TIMESTAMP '{ts}'"
        )
    return sqlglot.transpile(sql, read="trino", write=engine)[0]


def evaluate_all(catalog: Catalog, rules: list[AlertRule], now: datetime | None = None) -> list[Verdict]:
    """Every rule's verdict, each on its own: one that cannot be evaluated is an `error` verdict."""
    now = now or datetime.now(UTC)
    try:
        present = set(catalog.tables())
    except LoglakeError as e:
        return [_not_evaluated(r, e) for r in rules]
    verdicts = []
    for r in rules:
        try:
            verdicts.append(evaluate(catalog, r, now) if r.table in present else _verdict(r, _NO_ROWS[kind(r)], now))
        except LoglakeError as e:
            verdicts.append(_not_evaluated(r, e))
    return verdicts


#: What a rule's query returns on a table with no rows (one a rollover has not created yet).
_NO_ROWS: dict[str, tuple[Any, ...]] = {k: ((None, 0) if k == "stale_after" else (0, 0)) for k in _KINDS}


def _not_evaluated(rule: AlertRule, e: Exception) -> Verdict:
    threshold = float(getattr(rule, kind(rule)))
    return Verdict(rule.name, False, None, threshold, None, f"could not evaluate: {e}", error=True)


def evaluate(catalog: Catalog, rule: AlertRule, now: datetime | None = None) -> Verdict:
    """Run one rule; catalog errors propagate (evaluate_all turns them into an `error` verdict)."""
    now = now or datetime.now(UTC)
    return _verdict(rule, catalog.query(rule_sql(rule, catalog.engine, now)).rows[0], now)


def _verdict(rule: AlertRule, row: tuple[Any, ...], now: datetime) -> Verdict:
    """A rule's verdict from its query's one row."""
    k = kind(rule)
    if k == "stale_after":
        newest, n = row
        if newest is None:
            return Verdict(rule.name, True, None, rule.stale_after, 0, f"no rows in {rule.table} for a day or more")
        newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        age = (now - newest).total_seconds()
        firing = age > rule.stale_after
        text = f"newest row in {rule.table} is {age:.0f}s old (limit {rule.stale_after:.0f}s)"
        return Verdict(rule.name, firing, round(age, 1), rule.stale_after, n, text)
    n, matched = int(row[0]), int(row[1] or 0)
    scope = f"in the last {rule.window} of {rule.table}"
    if k == "share_over":
        share = matched / n if n else 0.0
        firing = n >= rule.min_requests and share > rule.share_over
        text = f"{share:.1%} of {n} rows {scope} match {rule.where} (limit {rule.share_over:.1%})"
        return Verdict(rule.name, firing, round(share, 4), rule.share_over, n, text)
    counted = matched if rule.where else n
    what = f"rows matching {rule.where}" if rule.where else "rows"
    if k == "requests_below":
        firing = counted < rule.requests_below
        text = f"{counted} {what} {scope} (at least {rule.requests_below} expected)"
        return Verdict(rule.name, firing, counted, rule.requests_below, n, text)
    firing = counted > rule.count_over
    text = f"{counted} {what} {scope} (limit {rule.count_over})"
    return Verdict(rule.name, firing, counted, rule.count_over, n, text)


__all__ = ["Verdict", "evaluate", "evaluate_all", "kind", "rule_sql", "validate_alerts", "window_seconds"]
