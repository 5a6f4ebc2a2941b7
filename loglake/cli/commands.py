"""`write`, `rollover`, `query`, `report`, `status`, `demo`, `send`: each a thin wrapper over the library."""

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loglake.cli.app import ConfigOpt, app, catalog_app, config_from, dead_letter_app, err
from loglake.errors import LoglakeError

if TYPE_CHECKING:
    from loglake.config import Config
    from loglake.rollover import RolloverReport
    from loglake.rollover.autocompact import AutoCompactor
    from loglake.rollover.compact import CompactReport


MetricsOpt = Annotated[
    int | None, typer.Option("--metrics-port", min=1, max=65535, help="Serve Prometheus metrics on 127.0.0.1:PORT")
]


def _serve_metrics(port: int | None) -> None:
    if port:
        from loglake import metrics

        metrics.serve(port)


@app.command("write")
def write(
    files: Annotated[list[str] | None, typer.Argument(help="Log files (gzip too); '-' or none: stdin")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Tail the file across rotations")] = False,
    metrics_port: MetricsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Parse access logs into crash-safe CSV segments under spool/, bad lines to dead-letter/."""
    from loglake.writer import Writer

    cfg = config_from(config)
    files = files or ["-"]
    if follow and (len(files) != 1 or files[0] == "-"):
        raise typer.BadParameter("--follow takes exactly one file")
    sizes = sum(os.path.getsize(f) for f in files if f != "-" and os.path.isfile(f))
    _serve_metrics(metrics_port)
    started = time.monotonic()
    with err.progress() as progress:
        task = progress.add_task("write", total=sizes or None)
        writer = Writer(cfg, on_bytes=lambda n: progress.advance(task, n))
        if writer.recovery:
            r = writer.recovery
            err.print(
                f"recovered spool: {len(r.finished)} committed batch(es) finished, "
                f"{len(r.discarded)} unsealed discarded (re-read), {len(r.salvaged)} salvaged"
            )
            for rel in r.missing:
                err.print(f"[red]error:[/red] a committed batch's file is missing: {rel}")
        try:
            with writer.signals():
                for f in files:
                    if writer.stopping:
                        break
                    if f == "-":
                        writer.write_stream(sys.stdin.fileno())
                    else:
                        progress.update(task, description=f"write {Path(f).name}")
                        writer.write_file(f, follow=follow)
        finally:
            writer.close()
    t = writer.totals
    elapsed = time.monotonic() - started
    rows = ", ".join(f"{k}={v}" for k, v in sorted(t.rows.items())) or "none"
    filtered = ", ".join(f"{k}={v}" for k, v in sorted(t.filtered.items()) if v)
    for skipped in t.skipped_files:
        err.print(f"{skipped}: already written up to its end (checkpoint); nothing to do")
    err.print(
        f"lines read {t.lines_read}, rows {rows}"
        + (f", filtered {filtered}" if filtered else "")
        + f", dead-lettered {t.dead_lettered}, batches {t.batches}, {elapsed:.2f}s"
        + ("" if t.reconciles([tb.name for tb in cfg.tables]) else "  [red]COUNTS DO NOT RECONCILE[/red]")
    )


FormatOpt = Annotated[str, typer.Option("--format", help="table | csv | json")]
EngineOpt = Annotated[str | None, typer.Option("--engine", help="duckdb | trino (default: the configured catalog)")]


def _check_format(fmt: str) -> None:
    from loglake.cli.output import FORMATS

    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")


@app.command("rollover")
def rollover(
    watch: Annotated[bool, typer.Option("--watch", help="Keep converting as segments close")] = False,
    interval: Annotated[float | None, typer.Option(min=0.0, help="Seconds between passes with --watch")] = None,
    metrics_port: MetricsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Convert closed segments to Hive-partitioned Parquet and register the partitions."""
    from loglake.lifecycle import on_stop_signals

    cfg = config_from(config)
    _serve_metrics(metrics_port)
    stop = {"now": False}
    with on_stop_signals(lambda signum: stop.__setitem__("now", True)) if watch else contextlib.nullcontext():
        report, passes, totals = _rollover_passes(cfg, watch, interval, stop)
    if watch:
        err.print(
            f"rollover --watch: stopped after {passes} pass(es): {totals[0]} segment(s), {totals[1]} rows, "
            f"{totals[2]} failed"
        )
    if report.failed and not watch:
        raise typer.Exit(3)


def _rollover_passes(
    cfg: "Config", watch: bool, interval: float | None, stop: dict[str, bool]
) -> tuple["RolloverReport", int, tuple[int, int, int]]:
    """One pass, or passes until `stop` with --watch; the last report and the totals.

    With --watch a transient failure (catalog unreachable or busy, storage refusing) is retried
    with back-off: a slow query or a restarting Trino must never stop the pipeline."""
    from loglake.rollover import RolloverReport
    from loglake.rollover.autocompact import AutoCompactor

    passes, totals = 0, (0, 0, 0)
    compactor = AutoCompactor(cfg) if watch else None
    backoff = 0.0
    report = RolloverReport()
    while True:
        try:
            report = _one_pass(cfg, watch)
            if compactor is not None:
                compactor.note(report.partitions)
                _auto_compact(cfg, compactor)
                _auto_expire(cfg)
            backoff = 0.0
        except LoglakeError as e:
            if not (watch and e.transient):
                raise
            backoff = min(max(backoff * 2, 1.0), 60.0)
            err.print(f"[yellow]rollover --watch: {e}; retrying in {backoff:.0f}s[/yellow]")
        passes += 1
        totals = (totals[0] + report.segments, totals[1] + report.rows, totals[2] + len(report.failed))
        if not watch or stop["now"]:
            break
        deadline = time.monotonic() + max(backoff, interval or cfg.rollover.watch_interval)
        while time.monotonic() < deadline and not stop["now"]:
            time.sleep(0.1)
        if stop["now"]:
            break
    return report, passes, totals


def _one_pass(cfg: "Config", watch: bool) -> "RolloverReport":
    from loglake import metrics
    from loglake.rollover import run_rollover
    from loglake.rollover.segments import closed_segments

    pending = closed_segments(cfg)
    total = sum(s.path.stat().st_size for s in pending if s.path.exists())
    with err.progress() as progress:
        task = progress.add_task("rollover", total=total or None)
        report = run_rollover(cfg, on_segment=lambda seg, size, t=task: progress.advance(t, size))
    metrics.observe_rollover(report.segments, closed_segments(cfg))
    if not watch or report.segments or report.failed:  # idle --watch passes stay quiet
        _print_rollover(report)
    return report


def _auto_compact(cfg: "Config", compactor: "AutoCompactor") -> None:
    from loglake.catalog import load_catalog

    if not compactor.enabled or time.monotonic() < compactor.next_at:
        return
    catalog = load_catalog(cfg)
    try:
        done = compactor.maybe_run(catalog)
    finally:
        catalog.close()
    if done and (done.partitions or done.deleted or done.finished or done.skipped):
        _print_compact(done)


def _auto_expire(cfg: "Config") -> None:
    """Retention, once an hour from `rollover --watch` (when [retention] sets anything)."""
    from loglake.rollover.expire import due, run_expire

    r = cfg.retention
    if not (r.lake or r.done_segments or r.dead_letters or any(t.retention for t in cfg.tables)) or not due(cfg):
        return
    from loglake.catalog import load_catalog
    from loglake.storage import open_lake

    catalog = load_catalog(cfg)
    try:
        done = run_expire(cfg, catalog, open_lake(cfg))
    finally:
        catalog.close()
    if done.partitions or done.deferred or done.done_segments[0] or done.dead_letters[0]:
        err.print(
            f"expire: {len(done.partitions)} partition(s), {done.rows:,} rows; "
            f"{done.done_segments[0]} done segment(s), {done.dead_letters[0]} dead-letter file(s)"
        )


def _print_compact(r: "CompactReport") -> None:
    err.print(
        f"compact: {r.partitions} partition(s) merged, {r.files_in} -> {r.files_out} file(s), "
        f"{r.bytes_in:,} -> {r.bytes_out:,} bytes, {r.deleted} retired file(s) deleted, "
        f"{r.finished} interrupted switch(es) finished, {r.seconds:.2f}s"
    )
    for why in r.skipped:
        err.print(f"compact: skipped {why}")


def _print_rollover(report: "RolloverReport") -> None:
    """One summary line per pass: what was converted, how small, how fast."""
    ratio = f" ({report.csv_bytes / report.parquet_bytes:.1f}x smaller)" if report.parquet_bytes else ""
    rate = f", {report.rows / report.seconds:,.0f} rows/s" if report.seconds and report.rows else ""
    err.print(
        f"rollover: {report.segments} segment(s), {report.rows} rows, {report.files} Parquet file(s) "
        f"in {len(report.partitions)} partition(s) ({report.new_partitions} new), "
        f"{report.parquet_bytes:,} bytes{ratio}, {len(report.failed)} failed, "
        f"{report.skipped} claimed elsewhere, {report.seconds:.2f}s{rate}"
    )
    for seg_id in report.failed:
        err.print(f"[red]failed:[/red] {seg_id} (see spool/_failed/*/{seg_id}.error)")


@app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run (the engine's dialect)")],
    fmt: FormatOpt = "table",
    engine: EngineOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run SQL against the lake's tables."""
    from loglake.catalog import load_catalog
    from loglake.cli.output import print_result

    _check_format(fmt)
    cfg = config_from(config)
    catalog = load_catalog(cfg, engine)
    try:
        print_result(catalog.query(sql), fmt)
    finally:
        catalog.close()


@app.command("report")
def report(
    name: Annotated[str | None, typer.Argument(help="Report name (see --list)")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the reports")] = False,
    since: Annotated[str | None, typer.Option(help="Start: ISO time or 90m/24h/7d ago")] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive): ISO time or 90m/24h/7d ago")] = None,
    show_sql: Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it")] = False,
    fmt: FormatOpt = "table",
    engine: EngineOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run a named report from loglake/queries/ (one Trino SQL text, any engine)."""
    from loglake.queries import list_reports, load_report, render_report
    from loglake.queries.runner import parse_when

    if list_ or not name:
        for r in list_reports():
            typer.echo(f"{r.name:24s} {r.description}")
        return
    _check_format(fmt)
    start, end = (parse_when(since) if since else None), (parse_when(until) if until else None)
    rep = load_report(name)
    cfg = config_from(config)
    from loglake.catalog import load_catalog
    from loglake.cli.output import print_result

    catalog = load_catalog(cfg, engine)
    try:
        columns = set(_table_columns(catalog, rep.table))
        sql = render_report(rep, catalog.engine, start, end, columns)
        if show_sql:
            typer.echo(sql)
            return
        print_result(catalog.query(sql), fmt, title=f"{rep.name}: {rep.description}")
    finally:
        catalog.close()


def _table_columns(catalog: object, table: str) -> list[str]:
    from loglake.schema import quote_identifier

    return catalog.query(f"SELECT * FROM {quote_identifier(table)} LIMIT 0").columns


@app.command("status")
def status(
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    config: ConfigOpt = None,
) -> None:
    """Spool backlog, lake contents, dead letters, last rollover and freshness."""
    import json as _json

    from loglake.status import collect_status, render_status

    if fmt not in ("table", "json"):
        raise typer.BadParameter("--format must be table or json")
    cfg = config_from(config)
    st = collect_status(cfg)
    if fmt == "json":
        typer.echo(_json.dumps(st, indent=2, default=str))
    else:
        render_status(st)


@app.command("demo")
def demo(
    lines: Annotated[int, typer.Option("--lines", help="Lines to generate")] = 200_000,
    input_: Annotated[Path | None, typer.Option("--input", help="Use this log file instead")] = None,
    config: ConfigOpt = None,
) -> None:
    """Generate (or take) a log, then write -> rollover -> reports, timing each stage."""
    from loglake.demo import run_demo

    run_demo(config_from(config), lines, input_)


@app.command("generate")
def generate(
    output: Annotated[Path, typer.Argument(help="File to write")],
    lines: Annotated[int, typer.Option("--lines")] = 100_000,
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """Write realistic synthetic combined-format logs (Zipf users and pages, mixed agents)."""
    from loglake.generate import write_log

    write_log(output, lines, seed)
    err.print(f"wrote {lines} lines to {output}")


@app.command("send")
def send(
    files: Annotated[list[str], typer.Argument(help="Log files to send")],
    url: Annotated[str, typer.Option(help="A loglake serve endpoint, e.g. https://logs:8514/v1/logs")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Tail the file across rotations")] = False,
    token_file: Annotated[Path | None, typer.Option(help="Bearer token file (or LOGLAKE_SEND_TOKEN)")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle that signed the server's certificate")] = None,
    allow_plain_http: Annotated[bool, typer.Option(help="Send over plain HTTP to a non-loopback host")] = False,
    config: ConfigOpt = None,
) -> None:
    """Read files like `write` (checkpoints, rotations) and POST them to `loglake serve`, exactly once."""
    from loglake.ingest.send import Sender, token_from

    if follow and len(files) != 1:
        raise typer.BadParameter("--follow takes exactly one file")
    token = token_from(str(token_file) if token_file else None)
    sender = Sender(
        config_from(config), url, token, str(ca_file) if ca_file else None, allow_plain_http=allow_plain_http
    )
    started = time.monotonic()
    try:
        with sender.signals():
            for f in files:
                if sender.stopping:
                    break
                sender.write_file(f, follow=follow)
    finally:
        sender.close()
    err.print(
        f"send: {sender.sent} lines in {sender.totals.batches} batch(es) to {url}, {time.monotonic() - started:.2f}s"
        + (f"; {sender.rejected} refused for good, kept in {sender.rejected_dir}" if sender.rejected else "")
    )


@app.command("reveal")
def reveal(
    values: Annotated[list[str], typer.Argument(help="Values an `encrypt` transform wrote (enc:...)")],
    column: Annotated[str, typer.Option("--column", help="The column they came from (part of the cipher)")],
    config: ConfigOpt = None,
) -> None:
    """Decrypt values of an `encrypt` transform with the configured PII key (an operator's tool)."""
    from loglake.writer.transforms import Sealer, load_key

    sealer = Sealer(load_key(config_from(config).pii))
    for v in values:
        typer.echo(sealer.open(v, column).decode("utf-8", "backslashreplace"))


@dead_letter_app.command("show")
def dead_letter_show(
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many records (0: all)")] = 0,
    config: ConfigOpt = None,
) -> None:
    """Dead-letter records as JSON lines, encrypted lines decrypted with the PII key."""
    import json as _json

    from loglake.writer.transforms import Sealer, load_key

    cfg = config_from(config)
    sealer = None
    shown = 0
    for path in sorted(cfg.dead_letter_dir.glob("*.jsonl")):
        # Records end at "\n" only: a line may hold NEL, U+2028 and the like, which
        # str.splitlines would split inside a record (the writer keeps them unescaped).
        for text in path.read_text(encoding="utf-8").split("\n"):
            if not text:
                continue
            rec = _json.loads(text)
            if "line_enc" in rec:
                sealer = sealer or Sealer(load_key(cfg.pii))
                if "reason_enc" in rec:
                    rec["reason"] = sealer.open(rec.pop("reason_enc"), "_dead_letter_reason").decode("utf-8")
                raw = sealer.open(rec.pop("line_enc"), "_dead_letter")
                try:
                    rec["line"] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    import base64

                    rec["line_b64"] = base64.b64encode(raw).decode("ascii")
            typer.echo(_json.dumps(rec, ensure_ascii=False))
            shown += 1
            if limit and shown >= limit:
                return
    err.print(f"{shown} dead-letter record(s)")


@catalog_app.command("repair")
def catalog_repair(
    engine: EngineOpt = None,
    table: Annotated[list[str] | None, typer.Option("--table", help="Table(s); default: all configured")] = None,
    config: ConfigOpt = None,
) -> None:
    """Register partitions found on storage (Trino: system.sync_partition_metadata ADD)."""
    from loglake.catalog import load_catalog
    from loglake.errors import UsageError
    from loglake.storage import open_lake

    cfg = config_from(config)
    configured = [t.name for t in cfg.tables]
    names = table or configured
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise UsageError(f"unknown table(s) {', '.join(map(repr, unknown))}; configured: {', '.join(configured)}")
    catalog = load_catalog(cfg, engine)
    lake = open_lake(cfg)
    try:
        for name in names:
            columns = list(cfg.table(name).columns)
            before = len(catalog.list_partitions(name))
            catalog.repair(name, lake, columns)
            after = len(catalog.list_partitions(name))
            err.print(f"catalog repair ({catalog.engine}): {name}: {after} partitions ({after - before} added)")
    finally:
        catalog.close()
