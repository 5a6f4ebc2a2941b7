"""Query planning cost against the number of partitions, embedded catalog.

    python bench/catalog.py [--partitions 100,1000,10000] [--repeat 5]

A table of N hourly partitions (one small Parquet file each, real column types) registered
through the DuckDB catalog. Timed, median of --repeat: a one-partition query through
`DuckDBCatalog.query` (views built per query from the partitions its WHERE can touch), beside the
previous design in the same invocation: one view over every partition's glob, planned per query.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from common import fresh_dir, print_table

from loglake.catalog.base import Partition
from loglake.catalog.duckdb import DuckDBCatalog
from loglake.schema import quote_literal


def build(n: int) -> tuple[DuckDBCatalog, list[Partition], str]:
    d = fresh_dir(f"catalog-{n}")
    lake = d / "lake" / "access_log"
    start = datetime(2025, 1, 1)
    parts = []
    for i in range(n):
        t = start + timedelta(hours=i)
        p = Partition(t.strftime("%Y-%m-%d"), t.hour)
        folder = lake / p.path
        folder.mkdir(parents=True)
        table = pa.table(
            {
                "ts": pa.array([t + timedelta(seconds=s) for s in range(10)], pa.timestamp("us")),
                "path": [f"/p{s}" for s in range(10)],
                "status": pa.array([200] * 9 + [503], pa.int16()),
            }
        )
        pq.write_table(table, folder / "seg.parquet")
        parts.append(p)
    cat = DuckDBCatalog(d / "catalog.duckdb")
    cat.ensure_table("access_log", ["ts", "path", "status"], str(lake))
    cat.register_partitions("access_log", parts, str(lake))
    return cat, parts, str(lake)


def time_new(cat: DuckDBCatalog, p: Partition, repeat: int) -> float:
    sql = f"SELECT count(*), count_if(status >= 500) FROM access_log WHERE dt = DATE '{p.dt}' AND hour = {p.hour}"
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        assert cat.query(sql).rows[0] == (10, 1)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_old(parts: list[Partition], lake: str, p: Partition, repeat: int) -> float:
    """The previous design: one view listing a glob per registered partition."""
    globs = ", ".join(quote_literal(f"{lake}/{q.path}/*.parquet") for q in parts)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        con = duckdb.connect()
        con.execute(
            f"CREATE VIEW access_log AS SELECT * FROM read_parquet([{globs}], hive_partitioning = true, "
            "union_by_name = true, hive_types = {'dt': DATE, 'hour': INTEGER})"
        )
        sql = f"SELECT count(*), count_if(status >= 500) FROM access_log WHERE dt = DATE '{p.dt}' AND hour = {p.hour}"
        assert con.execute(sql).fetchone() == (10, 1)
        con.close()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--partitions", default="100,1000,10000")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for n in (int(x) for x in args.partitions.split(",")):
        cat, parts, lake = build(n)
        target = parts[len(parts) // 2]
        new, old = time_new(cat, target, args.repeat), time_old(parts, lake, target, args.repeat)
        rows.append([f"{n:,}", f"{new * 1000:.1f}", f"{old * 1000:.1f}", f"{old / new:.1f}x"])
    print(f"one-partition query, median of {args.repeat} (ms)")
    print_table(["partitions", "per-query views", "one view of every glob (before)", "speed-up"], rows)


if __name__ == "__main__":
    main()
