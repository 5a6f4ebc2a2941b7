"""`compact` and `alert`: keeping the lake small and saying when the site is down."""

import contextlib
import time
from typing import TYPE_CHECKING, Annotated

import typer

from loglake.cli.app import ConfigOpt, app, config_from, err
from loglake.errors import LoglakeError, UsageError

if TYPE_CHECKING:
    from loglake.catalog import Catalog
    from loglake.config import Config
    from loglake.queries.alerts import Verdict


@app.command("compact")
def compact(
    table: Annotated[list[str] | None, typer.Option("--table", help="Only this table (repeatable)")] = None,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Only hours that ended at least this long ago: 0, 90s, 10m, 1h, 2d")
    ] = "0",
    config: ConfigOpt = None,
) -> None:
    """Merge each closed hour's small Parquet files into few large ones (no reader sees a gap)."""
    from loglake.catalog import load_catalog
    from loglake.cli.commands import _print_compact
    from loglake.queries.alerts import window_seconds

    cfg = config_from(config)
    try:
        age = 0.0 if older_than.strip() == "0" else window_seconds(older_than)
    except ValueError as e:
        raise UsageError(f"--older-than: {e}") from None
    known = {t.name for t in cfg.tables}
    for name in table or []:
        if name not in known:
            raise UsageError(f"unknown table {name!r}; configured: {', '.join(sorted(known))}")
    from loglake.rollover.compact import run_compact

    catalog = load_catalog(cfg)
    try:
        report = run_compact(cfg, catalog, table or None, age)
    finally:
        catalog.close()
    _print_compact(report)
    if report.files_in:
        err.print(
            f"compact: the {report.files_in} replaced file(s) stay {cfg.rollover.compact_grace:.0f}s for queries "
            "already running (rollover.compact_grace), then the next compaction deletes them"
        )


@app.command("alert")
def alert(
    watch: Annotated[bool, typer.Option("--watch", help="Re-evaluate every alerting.interval; notify changes")] = False,
    rule: Annotated[list[str] | None, typer.Option("--rule", help="Only this rule (repeatable)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    engine: Annotated[str | None, typer.Option("--engine", help="duckdb | trino (default: the catalog)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Evaluate the alert rules: exit 1 if one fires, else 75 if one could not be evaluated, else 0."""
    from loglake.catalog import load_catalog

    if fmt not in ("table", "json"):
        raise typer.BadParameter("--format must be table or json")
    cfg = config_from(config)
    rules = [r for r in cfg.alerts if not rule or r.name in rule]
    unknown = set(rule or []) - {r.name for r in cfg.alerts}
    if unknown:
        raise UsageError(f"unknown rule(s) {', '.join(sorted(unknown))}; configured: {_names(cfg)}")
    try:
        catalog = load_catalog(cfg, engine)
        try:
            if watch:
                _watch(cfg, catalog, rules)
                return
            verdicts = _evaluate(catalog, rules)
        finally:
            catalog.close()
    except LoglakeError as e:  # exit 1 means "firing": an evaluation that failed is 75, never 1
        err.print(f"error: could not evaluate the alert rules: {e}")
        raise typer.Exit(75) from None
    _print_verdicts(verdicts, fmt)
    if any(v.firing for v in verdicts):
        raise typer.Exit(1)  # a firing rule pages even when another one is broken
    if any(v.error for v in verdicts):
        raise typer.Exit(75)


def _names(cfg: "Config") -> str:
    return ", ".join(r.name for r in cfg.alerts)


def _evaluate(catalog: "Catalog", rules: list) -> list["Verdict"]:
    from loglake.queries.alerts import evaluate_all

    return evaluate_all(catalog, rules)


def _print_verdicts(verdicts: list["Verdict"], fmt: str) -> None:
    import json

    if fmt == "json":
        typer.echo(json.dumps([v.as_dict() for v in verdicts], indent=2, default=str))
        return
    marks = {"firing": "[bold red]FIRING[/bold red]", "ok": "[green]ok[/green]", "error": "[yellow]ERROR[/yellow]"}
    for v in verdicts:
        err.print(f"{marks[v.state]} {v.rule}: {v.message}")
    firing, broken = sum(v.firing for v in verdicts), sum(v.error for v in verdicts)
    err.print(f"alert: {len(verdicts)} rule(s), {firing} firing" + (f", {broken} not evaluated" if broken else ""))


def _watch(cfg: "Config", catalog: "Catalog", rules: list) -> None:
    """Evaluate every interval; send each change of state once; stop cleanly on SIGTERM/SIGINT."""
    from loglake.lifecycle import on_stop_signals
    from loglake.queries.notify import AlertState, Notifier, NotifyError

    notifier = Notifier(cfg)
    state = AlertState(cfg.state_dir / "alerts.json")
    stop = {"now": False}
    rounds = sent = 0
    with on_stop_signals(lambda signum: stop.__setitem__("now", True)):
        while not stop["now"]:
            verdicts = _evaluate(catalog, rules)  # a rule that fails is an `error` verdict, notified once
            rounds += 1
            for event in state.transitions(verdicts):
                err.print(f"[bold]{event['state'].upper()}[/bold] {event['rule']}: {event['message']}")
                try:
                    notifier.send(event)
                except NotifyError as e:
                    err.print(f"[yellow]alert --watch: {e} (sent again next round)[/yellow]")
                    continue
                state.mark(event)
                sent += 1
            deadline = time.monotonic() + cfg.alerting.interval
            while time.monotonic() < deadline and not stop["now"]:
                with contextlib.suppress(InterruptedError):
                    time.sleep(0.1)
    err.print(f"alert --watch: stopped after {rounds} round(s), {sent} notification(s) sent")
