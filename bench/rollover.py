"""Rollover and query speed: CSV segments -> Parquet, then every report on DuckDB beside PostgreSQL.

    python bench/rollover.py [--rows 10000000] [--runs 3]

Measures, in one run: CSV->Parquet rows/s (median of --runs rollovers of the same segments),
raw-log bytes vs Parquet bytes, and each report's latency on DuckDB over the Parquet lake beside
the same report text (transpiled by sqlglot) on PostgreSQL 15 loaded with COPY.
Targets (issue #3): rollover >= 2M rows/s; Parquet <= 1/10 of the raw log; reports >= 10x PG.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from common import cached_log, fresh_dir, median, print_table
from pg import Postgres

from loglake.catalog import load_catalog
from loglake.config import load_config
from loglake.queries import list_reports, render_report
from loglake.rollover import run_rollover
from loglake.writer import Writer


def lake_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.parquet"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--query-runs", type=int, default=5)
    ap.add_argument("--no-postgres", action="store_true", help="skip the report comparison")
    args = ap.parse_args()
    log = cached_log(args.rows, rate=120.0)  # ~1 day of a busy server at 120 lines/s per 10M
    raw = log.stat().st_size
    base = fresh_dir("rollover")
    (base / "empty.toml").write_text("")
    spool_copy = base / "spool-copy"
    cfg = load_config(
        base / "empty.toml",
        environ={"LOGLAKE_DATA_DIR": str(base / "data"), "LOGLAKE_HOST_ID": "bench", "LOGLAKE_WRITER_FSYNC": "off"},
    )
    t = time.perf_counter()
    Writer(cfg).write_file(str(log))
    print(f"write: {time.perf_counter() - t:.1f}s", file=sys.stderr)
    shutil.copytree(cfg.spool_dir, spool_copy)
    csv_bytes = sum(p.stat().st_size for p in (cfg.spool_dir / "access_log").glob("*.csv"))
    times = []
    for i in range(args.runs):
        if i:  # same segments again, from a clean lake and catalog
            shutil.rmtree(cfg.data_dir / "lake")
            cfg.catalog_path.unlink()
            shutil.rmtree(cfg.spool_dir)
            shutil.copytree(spool_copy, cfg.spool_dir)
        t = time.perf_counter()
        rep = run_rollover(cfg)
        times.append(time.perf_counter() - t)
        print(f"rollover run {i + 1}: {times[-1]:.2f}s, {rep.rows:,} rows, {rep.files} files", file=sys.stderr)
    parquet = lake_bytes(cfg.data_dir / "lake")
    rows = rep.rows
    print(
        f"\n{rows:,} rows; raw log {raw / 1e6:,.0f} MB, CSV segments {csv_bytes / 1e6:,.0f} MB, "
        f"Parquet {parquet / 1e6:,.1f} MB ({rep.files} files in {len(rep.partitions)} partitions)"
    )
    print_table(
        ["measure", "value", "target"],
        [
            ["rollover rows/s (median)", f"{rows / median(times):,.0f}", ">= 2,000,000"],
            ["rollover seconds (median)", f"{median(times):.2f}", ""],
            ["raw log / Parquet", f"{raw / parquet:.1f}x", ">= 10x"],
            ["Parquet bytes per row", f"{parquet / rows:.1f}", ""],
        ],
    )
    if args.no_postgres:
        return
    catalog = load_catalog(cfg)
    columns = set(catalog.query("SELECT * FROM access_log LIMIT 0").columns)
    pg = Postgres().start()
    try:
        export = base / "export.csv"
        catalog.query(f"COPY (SELECT * FROM access_log) TO '{export}' (HEADER, FORMAT CSV)")
        shutil.chown(export, "postgres") if pg.as_user else None
        shutil.chown(base, "postgres") if pg.as_user else None
        t = time.perf_counter()
        pg.psql(
            "CREATE TABLE access_log (ts timestamptz, username text, client_ip text, method text, path text, "
            "protocol text, status smallint, bytes bigint, referer text, user_agent text, dt date, hour int);\n"
            f"\\copy access_log FROM '{export}' CSV HEADER\nANALYZE access_log;\n"
        )
        load = time.perf_counter() - t
        size, _ = pg.psql("SELECT pg_total_relation_size('access_log');")
        print(
            f"\nPostgreSQL: COPY + ANALYZE {load:.1f}s ({rows / load:,.0f} rows/s), "
            f"{int(size.strip()) / 1e6:,.0f} MB on disk vs {parquet / 1e6:,.1f} MB Parquet"
        )
        out = []
        for report in list_reports():
            duck_sql = render_report(report, "duckdb", table_columns=columns)
            pg_sql = render_report(report, "postgres", table_columns=columns)
            duck = []
            for _ in range(args.query_runs):
                t = time.perf_counter()
                catalog.query(duck_sql)
                duck.append((time.perf_counter() - t) * 1000)
            pgt = [pg.psql(pg_sql + ";", timing=True)[1] for _ in range(max(1, args.query_runs // 2 + 1))]
            d, p = median(duck), median(pgt)
            out.append([report.name, f"{d:,.0f}", f"{p:,.0f}", f"{p / d:.1f}x"])
        print(
            f"\nreport latency, ms (median; DuckDB {args.query_runs} runs incl. opening the catalog, "
            "PostgreSQL server time)"
        )
        print_table(["report", "DuckDB", "PostgreSQL", "DuckDB speedup (target >= 10x)"], out)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
