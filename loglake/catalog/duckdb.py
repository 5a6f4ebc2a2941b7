"""The embedded catalog: a DuckDB database file whose views read the registered partitions.

A DuckDB file admits one writing process at a time, so every operation opens, acts and closes, and
retries briefly while another loglake process holds it: `loglake query` waits at most a moment
for `rollover --watch` and never breaks it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from loglake.catalog.base import Partition, QueryResult, table_name
from loglake.config import Config
from loglake.errors import CatalogBusyError, CatalogError, QueryError
from loglake.schema import quote_identifier, quote_literal, sql_columns

if TYPE_CHECKING:
    from loglake.storage import Lake

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _loglake_tables (
    name VARCHAR PRIMARY KEY, location VARCHAR NOT NULL, columns VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS _partitions (
    table_name VARCHAR NOT NULL, dt DATE NOT NULL, hour INTEGER NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (table_name, dt, hour));
"""


class DuckDBCatalog:
    """Views per table over `read_parquet([...registered partitions...], hive_partitioning)`."""

    engine = "duckdb"

    def __init__(self, path: Path, filesystem: Any = None, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.filesystem = filesystem  # an fsspec filesystem for s3:// lakes (no httpfs download needed)
        self.busy_timeout = busy_timeout

    @classmethod
    def from_config(cls, cfg: Config) -> DuckDBCatalog:
        fs = None
        if cfg.lake_url.startswith("s3://"):
            from loglake.storage import open_lake

            fs = open_lake(cfg).fs
        return cls(cfg.catalog_path, fs)

    def _connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if read_only and not self.path.exists():
            read_only = False  # first use: create it
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    if "lock" in str(e).lower():
                        raise CatalogBusyError(f"{self.path} is held by another process: {e}") from e
                    raise CatalogError(f"cannot open {self.path}: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        con.execute("SET TimeZone = 'UTC'")
        if self.filesystem is not None:
            con.register_filesystem(self.filesystem)
        if not read_only:
            con.execute(_SCHEMA)
        return con

    def ensure_table(self, table: str, columns: Sequence[str], location: str) -> None:
        name = table_name(table)
        con = self._connect()
        try:
            row = con.execute("SELECT location, columns FROM _loglake_tables WHERE name = ?", [name]).fetchone()
            if row is not None and row[0] != location:
                raise CatalogError(f"table {name} is registered at {row[0]}, not {location}")
            # A table's column set may grow (config change): union_by_name reads old files with nulls.
            known = row[1].split(",") if row else []
            merged = known + [c for c in columns if c not in known]
            if row is None or merged != known:
                con.execute(
                    "INSERT OR REPLACE INTO _loglake_tables VALUES (?, ?, ?)", [name, location, ",".join(merged)]
                )
                self._rebuild_view(con, name)
        finally:
            con.close()

    def register_partitions(self, table: str, partitions: Sequence[Partition], location: str = "") -> int:
        name = table_name(table)
        con = self._connect()
        try:
            before = con.execute("SELECT count(*) FROM _partitions WHERE table_name = ?", [name]).fetchone()[0]
            con.executemany(
                "INSERT INTO _partitions (table_name, dt, hour) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [[name, p.dt, p.hour] for p in partitions],
            )
            after = con.execute("SELECT count(*) FROM _partitions WHERE table_name = ?", [name]).fetchone()[0]
            if after != before:
                self._rebuild_view(con, name)
            return after - before
        finally:
            con.close()

    def list_partitions(self, table: str) -> list[Partition]:
        name = table_name(table)
        con = self._connect(read_only=True)
        try:
            if not self._has_meta(con):
                return []
            rows = con.execute(
                "SELECT strftime(dt, '%Y-%m-%d'), hour FROM _partitions WHERE table_name = ? ORDER BY 1, 2", [name]
            ).fetchall()
            return [Partition(dt, hour) for dt, hour in rows]
        finally:
            con.close()

    def drop_partition(self, table: str, partition: Partition) -> bool:
        name = table_name(table)
        con = self._connect()
        try:
            n = con.execute(
                "DELETE FROM _partitions WHERE table_name = ? AND dt = ? AND hour = ? RETURNING 1",
                [name, partition.dt, partition.hour],
            ).fetchall()
            if n:
                self._rebuild_view(con, name)
            return bool(n)
        finally:
            con.close()

    def repair(self, table: str, lake: Lake, columns: Sequence[str]) -> None:
        """Register every `dt=/hour=` folder found on storage (like Trino's sync_partition_metadata
        ADD): rebuilds the embedded catalog from the lake alone, e.g. beside a Trino catalog."""
        name = table_name(table)
        found = set()
        for path in lake.fs.glob(lake.path(name, "dt=*", "hour=*")):
            dt_part, hour_part = path.rstrip("/").split("/")[-2:]
            try:
                found.add(Partition.parse(dt_part[3:], hour_part[5:]))
            except ValueError:
                continue  # not ours (a stray folder): never register what we cannot parse
        self.ensure_table(name, columns, lake.uri(name))
        self.register_partitions(name, sorted(found), lake.uri(name))

    def tables(self) -> list[str]:
        con = self._connect(read_only=True)
        try:
            if not self._has_meta(con):
                return []
            return [r[0] for r in con.execute("SELECT name FROM _loglake_tables ORDER BY 1").fetchall()]
        finally:
            con.close()

    def query(self, sql: str) -> QueryResult:
        con = self._connect(read_only=True)
        try:
            cur = con.execute(sql)
            columns = [d[0] for d in cur.description] if cur.description else []
            return QueryResult(columns, cur.fetchall())
        except duckdb.Error as e:
            raise QueryError(_query_error(e)) from e
        finally:
            con.close()

    def close(self) -> None:
        """Nothing stays open between calls."""

    @staticmethod
    def _has_meta(con: duckdb.DuckDBPyConnection) -> bool:
        return bool(
            con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = '_loglake_tables'"
            ).fetchone()[0]
        )

    def _rebuild_view(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        location, columns = con.execute(
            "SELECT location, columns FROM _loglake_tables WHERE name = ?", [name]
        ).fetchone()
        parts = con.execute(
            "SELECT strftime(dt, '%Y-%m-%d'), hour FROM _partitions WHERE table_name = ? ORDER BY 1, 2", [name]
        ).fetchall()
        typed = sql_columns(columns.split(","), "duckdb")
        select = ", ".join(f"CAST({quote_identifier(c)} AS {t}) AS {quote_identifier(c)}" for c, t in typed)
        if parts:
            globs = ", ".join(
                quote_literal(f"{location.rstrip('/')}/{Partition(dt, hour).path}/*.parquet") for dt, hour in parts
            )
            body = (
                f"SELECT {select}, dt, hour FROM read_parquet([{globs}], hive_partitioning = true, "
                "union_by_name = true, hive_types = {'dt': DATE, 'hour': INTEGER})"
            )
        else:
            nulls = ", ".join(f"CAST(NULL AS {t}) AS {quote_identifier(c)}" for c, t in typed)
            body = f"SELECT {nulls}, CAST(NULL AS DATE) AS dt, CAST(NULL AS INTEGER) AS hour WHERE false"
        con.execute(f"CREATE OR REPLACE VIEW {quote_identifier(name)} AS {body}")


def _query_error(e: Exception) -> str:
    """DuckDB's message, first line only (it adds caret diagrams), with a hint for an empty lake."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    m = re.search(r"Table with name (\S+) does not exist", first)
    if m:
        return f"duckdb: no table {m.group(1)} in the lake yet (tables appear after `loglake rollover`)"
    return f"duckdb: {first}"
