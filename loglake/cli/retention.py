"""`loglake expire`: apply retention, or expire a table's hours before a date on request."""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from loglake.cli.app import ConfigOpt, app, config_from, err
from loglake.errors import UsageError

if TYPE_CHECKING:
    from loglake.rollover.expire import ExpireReport


@app.command("expire")
def expire(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would go, with rows and bytes; delete nothing")
    ] = False,
    table: Annotated[list[str] | None, typer.Option("--table", help="Table(s); default: all configured")] = None,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Expire hours ending before this: ISO date/time, or 30d (30 days ago)"),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before an explicit --before expiry")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    config: ConfigOpt = None,
) -> None:
    """Delete partitions, converted segments and dead letters older than the retention settings."""
    from loglake.catalog import load_catalog
    from loglake.queries.runner import parse_when
    from loglake.rollover.expire import run_expire
    from loglake.storage import open_lake

    cfg = config_from(config)
    if fmt not in ("table", "json"):
        raise UsageError(f"--format: {fmt!r} is not one of table, json")
    unknown = [t for t in table or [] if t not in {tc.name for tc in cfg.tables}]
    if unknown:
        raise UsageError(f"unknown table(s): {', '.join(unknown)}")
    cutoff = parse_when(before).timestamp() if before else None
    if cutoff is not None and not (dry_run or yes):
        if not sys.stdin.isatty():
            raise UsageError("--before deletes data: add --yes to confirm (or --dry-run to list it)")
        if not typer.confirm(f"expire every hour before {before} of {', '.join(table or ['all tables'])}?"):
            err.print("expire: declined; nothing expired")
            raise typer.Exit(1)
    catalog = load_catalog(cfg)
    try:
        report = run_expire(cfg, catalog, open_lake(cfg), tables=table or None, before=cutoff, dry_run=dry_run)
    finally:
        catalog.close()
    _print(report, fmt)


def _print(report: "ExpireReport", fmt: str) -> None:
    import json

    verb = "would expire" if report.dry_run else "expired"
    if fmt == "json":
        print(
            json.dumps(
                {
                    "dry_run": report.dry_run,
                    "partitions": [
                        {"table": e.table, "partition": e.partition.path, "rows": e.rows, "bytes": e.bytes}
                        for e in report.partitions
                    ],
                    "deferred": [{"table": e.table, "partition": e.partition.path} for e in report.deferred],
                    "skipped": [{"table": t, "partition": p, "reason": why} for t, p, why in report.skipped],
                    "rows": report.rows,
                    "bytes": report.bytes,
                    "done_segments": {"files": report.done_segments[0], "bytes": report.done_segments[1]},
                    "dead_letters": {"files": report.dead_letters[0], "bytes": report.dead_letters[1]},
                },
                indent=2,
            )
        )
    else:
        for e in report.partitions:
            print(f"{verb}\t{e.table}\t{e.partition.path}\t{e.rows} rows\t{e.bytes} bytes")
        for e in report.deferred:
            print(f"unregistered\t{e.table}\t{e.partition.path}\tfiles deleted once catalog.duckdb is free")
        for t, p, why in report.skipped:
            err.print(f"[yellow]kept[/yellow] {t} {p}: {why}")
    err.print(
        f"expire{' (dry run)' if report.dry_run else ''}: {len(report.partitions)} partition(s), "
        f"{report.rows:,} rows, {report.bytes:,} bytes; {len(report.deferred)} deferred; "
        f"done segments {report.done_segments[0]} ({report.done_segments[1]:,} bytes); "
        f"dead letters {report.dead_letters[0]} ({report.dead_letters[1]:,} bytes); "
        f"{len(report.skipped)} kept by a guard; {report.seconds:.2f}s"
    )
