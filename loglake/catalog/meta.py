"""The embedded catalog's partition list, kept in SQLite beside the DuckDB file.

A DuckDB database file admits one writing process and no writer while any other process reads it,
so a slow `loglake query` (or a user's DuckDB shell) on `catalog.duckdb` used to stall
`rollover --watch` and, after 30 s, stop it. SQLite in WAL mode lets readers and one writer run at
once: registration is a short write transaction that never waits for a reader, and the switch of a
compacted partition's location is one UPDATE that every reader sees whole or not at all.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loglake.catalog.base import Partition
from loglake.errors import CatalogBusyError, CatalogError
from loglake.fsutil import FILE_MODE, create_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tables (
    name TEXT PRIMARY KEY, location TEXT NOT NULL, columns TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    table_name TEXT NOT NULL, dt TEXT NOT NULL, hour INTEGER NOT NULL,
    location TEXT NOT NULL DEFAULT '', registered_at REAL NOT NULL,
    PRIMARY KEY (table_name, dt, hour));
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class TableMeta:
    name: str
    location: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class PartitionMeta:
    """A registered partition and the folder its files are read from (its Hive folder, or the
    folder of its latest compaction)."""

    partition: Partition
    location: str


class MetaStore:
    """Tables, partitions and their locations; every call is one short transaction."""

    def __init__(self, path: Path, busy_timeout: float = 30.0, file_mode: int = FILE_MODE) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.file_mode = file_mode

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Created first with its mode (an empty file is an empty database): SQLite gives its WAL
        # and shared-memory files the database's mode.
        create_file(self.path, self.file_mode)
        try:
            con = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoint, never corrupt
            con.executescript(_SCHEMA)
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise CatalogBusyError(f"{self.path} stayed locked for {self.busy_timeout:.0f} s: {e}") from e
            raise CatalogError(f"cannot open {self.path}: {e}") from e
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"{self.path} is not a loglake catalog: {e}") from e
        return con

    def _write(self, statements: Iterable[tuple[str, Sequence[object]]]) -> list[int]:
        """Run statements in one immediate transaction; returns each one's changed-row count."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            counts = [con.execute(sql, params).rowcount for sql, params in statements]
            con.execute("COMMIT")
            return counts
        except sqlite3.OperationalError as e:
            raise CatalogBusyError(f"{self.path}: {e}") from e
        finally:
            con.close()

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        con = self._connect()
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    # ---- tables ------------------------------------------------------------------------------
    def table(self, name: str) -> TableMeta | None:
        rows = self._read("SELECT name, location, columns FROM tables WHERE name = ?", [name])
        return TableMeta(rows[0][0], rows[0][1], tuple(rows[0][2].split(","))) if rows else None

    def tables(self) -> list[TableMeta]:
        rows = self._read("SELECT name, location, columns FROM tables ORDER BY name")
        return [TableMeta(n, loc, tuple(c.split(","))) for n, loc, c in rows]

    def put_table(self, name: str, location: str, columns: Sequence[str]) -> None:
        self._write([("INSERT OR REPLACE INTO tables VALUES (?, ?, ?)", [name, location, ",".join(columns)])])

    # ---- partitions --------------------------------------------------------------------------
    def add_partitions(self, table: str, partitions: Sequence[Partition]) -> int:
        now = time.time()
        sql = "INSERT OR IGNORE INTO partitions (table_name, dt, hour, registered_at) VALUES (?, ?, ?, ?)"
        return sum(self._write((sql, [table, p.dt, p.hour, now]) for p in partitions))

    def partitions(self, table: str, dt_from: str = "", dt_to: str = "9999-12-31") -> list[PartitionMeta]:
        rows = self._read(
            "SELECT dt, hour, location FROM partitions WHERE table_name = ? AND dt BETWEEN ? AND ? ORDER BY dt, hour",
            [table, dt_from, dt_to],
        )
        return [PartitionMeta(Partition(dt, hour), loc) for dt, hour, loc in rows]

    def count(self, table: str) -> int:
        return int(self._read("SELECT count(*) FROM partitions WHERE table_name = ?", [table])[0][0])

    def drop_partition(self, table: str, p: Partition) -> bool:
        sql = "DELETE FROM partitions WHERE table_name = ? AND dt = ? AND hour = ?"
        return bool(self._write([(sql, [table, p.dt, p.hour])])[0])

    def set_location(self, table: str, p: Partition, location: str) -> bool:
        """Point a partition at another folder: one UPDATE, so a reader sees the old files or the
        new ones, never both and never neither."""
        sql = "UPDATE partitions SET location = ? WHERE table_name = ? AND dt = ? AND hour = ?"
        return bool(self._write([(sql, [location, table, p.dt, p.hour])])[0])

    # ---- settings ----------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM settings WHERE key = ?", [key])
        return rows[0][0] if rows else None

    def put_setting(self, key: str, value: str) -> None:
        self._write([("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value])])


__all__ = ["MetaStore", "PartitionMeta", "TableMeta"]
