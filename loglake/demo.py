"""`loglake demo`: the whole pipeline on the embedded default, timed stage by stage."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from loglake.catalog import load_catalog
from loglake.cli.output import print_result
from loglake.config import Config
from loglake.generate import write_log
from loglake.queries import list_reports, render_report
from loglake.rollover import run_rollover
from loglake.schema import quote_identifier
from loglake.writer import Writer


def run_demo(cfg: Config, lines: int, input_file: Path | None) -> None:
    console = Console(stderr=True)
    timings: list[tuple[str, float, str]] = []
    t0 = time.monotonic()
    if input_file is None:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        rate = max(1.0, lines / (6 * 3600))  # the last six hours, so hourly reports have rows
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=lines / rate)
        input_file = cfg.data_dir / f"demo-{start:%Y%m%dT%H%M%S}.log"
        with console.status(f"generating {lines:,} lines"):
            write_log(input_file, lines, start=start, rate=rate)
        timings.append(("generate", time.monotonic() - t0, f"{lines:,} lines -> {input_file}"))
    t = time.monotonic()
    writer = Writer(cfg)
    with console.status("write"), writer.signals():
        writer.write_file(str(input_file))
    tot = writer.totals
    dt = time.monotonic() - t
    timings.append(
        (
            "write",
            dt,
            f"{tot.lines_read:,} lines read, rows {tot.rows}, dead-lettered "
            f"{tot.dead_lettered:,} ({tot.lines_read / dt:,.0f} lines/s)"
            if dt
            else "",
        )
    )
    t = time.monotonic()
    with console.status("rollover"):
        rep = run_rollover(cfg)
    timings.append(
        (
            "rollover",
            time.monotonic() - t,
            f"{rep.rows:,} rows -> {rep.files} Parquet files in {len(rep.partitions)} partitions, "
            f"{rep.parquet_bytes:,} bytes",
        )
    )
    catalog = load_catalog(cfg)
    try:
        columns = set(catalog.query(f"SELECT * FROM {quote_identifier('access_log')} LIMIT 0").columns)
        present = set(catalog.tables())
        for report in [r for r in list_reports() if r.table in present]:
            t = time.monotonic()
            result = catalog.query(render_report(report, catalog.engine, table_columns=columns))
            elapsed = time.monotonic() - t
            result.rows = result.rows[:10]
            print_result(result, "table", title=f"{report.name}: {report.description} ({elapsed * 1000:.0f} ms)")
            timings.append((f"report {report.name}", elapsed, f"{len(result.rows)} rows shown"))
    finally:
        catalog.close()
    for stage, seconds, note in timings:
        console.print(f"  {stage:32s} {seconds:8.2f}s  {note}")
    console.print(
        f"demo: done in {time.monotonic() - t0:.1f}s; data in {cfg.data_dir}; try: "
        f'loglake query "select count(*) from access_log"'
    )
