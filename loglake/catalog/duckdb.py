"""The embedded catalog: a partition list in SQLite, views built per query by DuckDB.

The partition list lives in `catalog.sqlite` (see meta.py), never inside a DuckDB file lock, so no
query however slow can stall registration. `query` opens an in-memory DuckDB, builds each table's
view from the partitions the SQL can touch (prune.py) and the files present in their folders now,
and runs: a missing partition folder is skipped (`status` reports it) and planning costs the same
at 10,000 partitions as at 10. `catalog.duckdb` still holds the same views for people who open it
with their own DuckDB; it is refreshed whenever nobody holds it, never waited for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from loglake.catalog.base import Partition, QueryResult, table_name
from loglake.catalog.meta import MetaStore, PartitionMeta, TableMeta
from loglake.catalog.prune import DayRange, day_range
from loglake.config import Config
from loglake.errors import CatalogError, QueryError
from loglake.fsutil import FILE_MODE, shared_modes
from loglake.schema import quote_identifier, quote_literal, sql_columns

if TYPE_CHECKING:
    from loglake.storage import Lake

_HIVE = "hive_partitioning = true, union_by_name = true, hive_types = {'dt': DATE, 'hour': INTEGER}"


class DuckDBCatalog:
    """Registers partitions in SQLite; reads them with DuckDB."""

    engine = "duckdb"

    def __init__(
        self, path: Path, filesystem: Any = None, busy_timeout: float = 30.0, file_mode: int = FILE_MODE
    ) -> None:
        self.path = Path(path)
        self.filesystem = filesystem  # an fsspec filesystem for s3:// lakes (no httpfs download needed)
        self.file_mode = file_mode  # of the catalog files it creates: they list raw values' files
        self.meta = MetaStore(self.path.with_suffix(".sqlite"), busy_timeout, file_mode)
        self._imported = False
        self._dirty = False  # stored views behind the partition list: refreshed at close()

    @classmethod
    def from_config(cls, cfg: Config) -> DuckDBCatalog:
        fs = None
        if cfg.lake_url.startswith("s3://"):
            from loglake.storage import open_lake

            fs = open_lake(cfg).fs
        return cls(cfg.catalog_path, fs, file_mode=shared_modes(cfg.storage.group_readable)[0])

    # ---- Catalog protocol --------------------------------------------------------------------
    def ensure_table(self, table: str, columns: Sequence[str], location: str) -> None:
        name = table_name(table)
        self._import_legacy()
        row = self.meta.table(name)
        if row is not None and row.location != location:
            raise CatalogError(f"table {name} is registered at {row.location}, not {location}")
        # A table's column set may grow (config change): union_by_name reads old files with nulls.
        known = list(row.columns) if row else []
        merged = known + [c for c in columns if c not in known]
        if row is None or merged != known:
            self.meta.put_table(name, location, merged)
            self._changed()

    def register_partitions(self, table: str, partitions: Sequence[Partition], location: str = "") -> int:
        name = table_name(table)
        self._import_legacy()
        added = self.meta.add_partitions(name, [Partition.parse(p.dt, p.hour) for p in partitions])
        if added:
            self._changed()
        return added

    def list_partitions(self, table: str) -> list[Partition]:
        self._import_legacy()
        return [m.partition for m in self.meta.partitions(table_name(table))]

    def set_location(self, table: str, partition: Partition, location: str) -> None:
        """Switch a partition to another folder in one transaction (compaction's commit)."""
        meta = self.meta.table(table_name(table))
        default = f"{meta.location.rstrip('/')}/{partition.path}" if meta else ""
        self.meta.set_location(table_name(table), partition, "" if location == default else location)
        self._changed()

    def drop_partition(self, table: str, partition: Partition) -> bool:
        dropped = self.meta.drop_partition(table_name(table), partition)
        if dropped:
            self._changed()
        return dropped

    def repair(self, table: str, lake: Lake, columns: Sequence[str]) -> None:
        """Register every `dt=/hour=` folder found on storage (like Trino's sync_partition_metadata
        ADD): rebuilds the embedded catalog from the lake alone, e.g. beside a Trino catalog."""
        from loglake.rollover.compact import current_location, partitions_on_storage

        name = table_name(table)
        found = partitions_on_storage(lake, name)
        self.ensure_table(name, columns, lake.uri(name))
        self.register_partitions(name, found, lake.uri(name))
        for p in found:  # a compacted partition is read from its latest compaction
            location = current_location(lake, name, p)
            if location:
                self.set_location(name, p, location)

    def tables(self) -> list[str]:
        self._import_legacy()
        return [t.name for t in self.meta.tables()]

    def query(self, sql: str) -> QueryResult:
        self._import_legacy()
        con = duckdb.connect()
        try:
            self._prepare(con)
            for t in self.meta.tables():
                if re.search(rf"\b{re.escape(t.name)}\b", sql, re.IGNORECASE):
                    self._create_view(con, t, self.served_files(t, day_range(sql, t.name)), temporary=True)
            cur = con.execute(sql)
            columns = [d[0] for d in cur.description] if cur.description else []
            return QueryResult(columns, cur.fetchall())
        except duckdb.Error as e:
            raise QueryError(_query_error(e)) from e
        finally:
            con.close()

    def close(self) -> None:
        """Nothing stays open between calls; stored views catch up with this process's changes."""
        if self._dirty:
            self.refresh_file()

    def _changed(self) -> None:
        if not self._dirty:
            self._dirty = True
            self.meta.put_setting("views_stale", "1")

    def views_current(self) -> bool:
        """Whether the views stored in catalog.duckdb match the partition list (compaction deletes
        replaced files only then, so a user's DuckDB never loses rows to a stale view)."""
        return self.meta.setting("views_stale") != "1" or self.refresh_file()

    # ---- views -------------------------------------------------------------------------------
    def _prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("SET TimeZone = 'UTC'")
        if self.filesystem is not None:
            con.register_filesystem(self.filesystem)

    def served_files(self, table: TableMeta, days: DayRange | None = None) -> list[str]:
        """The Parquet files the table's view reads now (a partition whose folder is gone has none)."""
        from fsspec.implementations.local import LocalFileSystem

        from loglake.rollover.compact import list_parquet

        fs = self.filesystem or LocalFileSystem()
        prefix = "s3://" if self.filesystem is not None else ""
        days = days or DayRange()
        files: list[str] = []
        for m in self.meta.partitions(table.name, days.lo, days.hi):
            files += [prefix + path for path, _ in list_parquet(fs, _folder(table, m).removeprefix("s3://"))]
        return files

    def _create_view(self, con: duckdb.DuckDBPyConnection, t: TableMeta, sources: list[str], temporary: bool) -> None:
        """`t` as a view over `sources` (files, or folder globs), typed as the schema says."""
        typed = sql_columns(list(t.columns), "duckdb")
        if sources:
            select = ", ".join(f"CAST({quote_identifier(c)} AS {ty}) AS {quote_identifier(c)}" for c, ty in typed)
            listed = ", ".join(quote_literal(f) for f in sources)
            body = f"SELECT {select}, dt, hour FROM read_parquet([{listed}], {_HIVE})"
        else:
            nulls = ", ".join(f"CAST(NULL AS {ty}) AS {quote_identifier(c)}" for c, ty in typed)
            body = f"SELECT {nulls}, CAST(NULL AS DATE) AS dt, CAST(NULL AS INTEGER) AS hour WHERE false"
        kind = "TEMPORARY VIEW" if temporary else "VIEW"
        con.execute(f"CREATE OR REPLACE {kind} {quote_identifier(t.name)} AS {body}")

    def refresh_file(self) -> bool:
        """Rebuild the views stored in `catalog.duckdb` if nobody holds it; False when skipped.

        Never waits: a user's open DuckDB shell must not stall rollover. The stored views list
        folders as globs (a user's DuckDB re-lists them per query); the next registration retries."""
        new = not self.path.exists()
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.Error:
            return False
        try:
            if new:  # DuckDB refuses an empty file, so its mode is set once it made the file
                self.path.chmod(self.file_mode)
            self._prepare(con)
            for t in self.meta.tables():
                globs = [f"{_folder(t, m)}/*.parquet" for m in self.meta.partitions(t.name)]
                self._create_view(con, t, globs, temporary=False)
            self.meta.put_setting("views_stale", "0")
            self._dirty = False
            return True
        except duckdb.Error:
            return False
        finally:
            con.close()

    # ---- upgrade -----------------------------------------------------------------------------
    def _import_legacy(self) -> None:
        """Once: copy tables and partitions registered inside `catalog.duckdb` by earlier
        versions into the SQLite list (read-only; the old tables are left in place)."""
        if self._imported:
            return
        self._imported = True
        if self.meta.setting("legacy_imported") is not None:
            return
        if self.path.exists():
            try:
                con = duckdb.connect(str(self.path), read_only=True)
            except duckdb.Error as e:
                raise CatalogError(f"cannot read {self.path} to upgrade it (held by another process?): {e}") from e
            try:
                has = con.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = '_loglake_tables'"
                ).fetchone()[0]
                tables = con.execute("SELECT name, location, columns FROM _loglake_tables").fetchall() if has else []
                parts = (
                    con.execute("SELECT table_name, strftime(dt, '%Y-%m-%d'), hour FROM _partitions").fetchall()
                    if has
                    else []
                )
            finally:
                con.close()
            for name, location, columns in tables:
                self.meta.put_table(name, location, columns.split(","))
            by_table: dict[str, list[Partition]] = {}
            for name, dt, hour in parts:
                by_table.setdefault(name, []).append(Partition(dt, hour))
            for name, found in by_table.items():
                self.meta.add_partitions(name, found)
        self.meta.put_setting("legacy_imported", "1")


def _folder(table: TableMeta, m: PartitionMeta) -> str:
    return m.location or f"{table.location.rstrip('/')}/{m.partition.path}"


def _query_error(e: Exception) -> str:
    """DuckDB's message, first line only (it adds caret diagrams), with a hint for an empty lake."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    m = re.search(r"Table with name (\S+) does not exist", first)
    if m:
        return f"duckdb: no table {m.group(1)} in the lake yet (tables appear after `loglake rollover`)"
    return f"duckdb: {first}"
