"""Retention: partitions, converted segments and dead letters older than their configured age go.

A partition leaves in an order that no reader and no crash can see half-done:

1. its rows are recorded in `state/expired.json` as *expiring* (status still counts it while the
   folder exists, and a rerun knows to finish it);
2. it is unregistered from the catalog (DuckDB: its stored views are rebuilt without it; while a
   user holds `catalog.duckdb` that waits, and so does step 3);
3. its folder (Parquet, compactions, the compaction record) is deleted;
4. the record moves from *expiring* to the table's expired rows, which `status` subtracts from
   what the manifests say was written, so counts still reconcile after an expiry.

A kill -9 anywhere leaves the partition served (before 2) or gone (after it), and the next run
finishes what the record says. Guards: the current UTC day is never expired, nor an hour whose
compaction is still in its grace period or locked by a running compaction, and an automatic
(config-driven) run that would remove *every* partition of a table refuses: a clock set forward,
not a real retention, is the likelier cause (`--before` does it explicitly).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loglake.catalog.base import Catalog, Partition
from loglake.config import Config
from loglake.durations import parse_duration
from loglake.fsutil import atomic_write_json, read_json
from loglake.rollover.compact import footer_rows, partition_lock, partitions_on_storage, read_record, served
from loglake.storage import Lake

EXPIRED = "expired.json"


@dataclass
class Expiring:
    """One partition that goes (or would go, in a dry run)."""

    table: str
    partition: Partition
    rows: int
    bytes: int
    files: int


@dataclass
class ExpireReport:
    partitions: list[Expiring] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (table, partition or "*", why)
    deferred: list[Expiring] = field(default_factory=list)  # unregistered; files wait for the views
    done_segments: tuple[int, int] = (0, 0)  # files, bytes
    dead_letters: tuple[int, int] = (0, 0)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.partitions)

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.partitions)


# ---- the record of what was expired -----------------------------------------------------------
def read_expired(cfg: Config) -> dict[str, Any]:
    """`{"tables": {T: {"rows": N, "expiring": {"dt=…/hour=HH": rows}}}}`; empty when none."""
    try:
        data = read_json(cfg.state_dir / EXPIRED)
    except (OSError, ValueError):
        return {"tables": {}}
    return data if isinstance(data.get("tables"), dict) else {"tables": {}}


def _save(cfg: Config, data: dict[str, Any]) -> None:
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_json(cfg.state_dir / EXPIRED, data, durable=cfg.writer.fsync != "off")


def expired_rows(cfg: Config, lake: Lake) -> dict[str, int]:
    """Rows per table that expiry removed from the lake: what `status` subtracts from the written
    rows. Of a partition still *expiring* (a run was killed while deleting it), the rows its
    remaining files no longer hold."""
    out: dict[str, int] = {}
    for table, entry in read_expired(cfg)["tables"].items():
        gone = 0
        for key, rows in entry.get("expiring", {}).items():
            dt, hour = key.split("/")
            gone += max(0, int(rows) - _rows_left(lake, table, Partition.parse(dt[3:], hour[5:])))
        out[table] = int(entry.get("rows", 0)) + gone
    return out


def _rows_left(lake: Lake, table: str, p: Partition) -> int:
    if not lake.fs.exists(lake.path(table, p.path)):
        return 0
    rows = 0
    for path, _size in served(lake, table, p)[0]:
        with contextlib.suppress(FileNotFoundError):
            rows += footer_rows(lake, path)
    return rows


def _retention_text(cfg: Config, table: str) -> str:
    """The table's own `retention.lake`, else `[retention] lake` ("" = forever)."""
    return next((t.retention.get("lake", "") for t in cfg.tables if t.name == table), "") or cfg.retention.lake


def lake_retention(cfg: Config, table: str) -> float | None:
    """Seconds a table's partitions are kept, or None (forever)."""
    text = _retention_text(cfg, table)
    return parse_duration(text) if text else None


def _measure(lake: Lake, table: str, p: Partition) -> tuple[int, int, int]:
    """(rows served, bytes under the folder, files under the folder)."""
    rows = sum(footer_rows(lake, path) for path, _size in served(lake, table, p)[0])
    everything = lake.fs.find(lake.path(table, p.path), detail=True)
    return rows, sum(int(d.get("size") or 0) for d in everything.values()), len(everything)


def plan(
    cfg: Config, catalog: Catalog, lake: Lake, now: float, tables: list[str] | None = None, before: float | None = None
) -> tuple[list[Expiring], list[tuple[str, str, str]]]:
    """The partitions older than their table's retention (or than `before`), with rows and bytes."""
    today = datetime.fromtimestamp(now, UTC).date().isoformat()
    going: list[Expiring] = []
    skipped: list[tuple[str, str, str]] = []
    for table in tables or [t.name for t in cfg.tables]:
        keep = lake_retention(cfg, table)
        cutoff = before if before is not None else (now - keep if keep is not None else None)
        if cutoff is None:
            continue
        known = sorted(set(partitions_on_storage(lake, table)) | set(_registered(catalog, table)))
        old = [p for p in known if p.end <= cutoff and p.dt < today]
        skipped += [
            (table, p.path, "the current day is never expired") for p in known if p.end <= cutoff and p.dt >= today
        ]
        if before is None and old and len(old) == len(known):
            text = _retention_text(cfg, table)
            skipped.append(
                (
                    table,
                    "*",
                    f"every partition is older than {text}: the clock may be wrong; nothing "
                    "expired (use --before to expire them explicitly)",
                )
            )
            continue
        for p in old:
            record = read_record(lake, table, p) or {}
            if record.get("state") == "pending" or any(r["after"] > now for r in record.get("retired", [])):
                skipped.append((table, p.path, "a compaction is pending or in its grace period"))
                continue
            going.append(Expiring(table, p, *_measure(lake, table, p)))
    return going, skipped


def _registered(catalog: Catalog, table: str) -> list[Partition]:
    return catalog.list_partitions(table) if table in set(catalog.tables()) else []


# ---- doing it -----------------------------------------------------------------------------------
def _expire(cfg: Config, catalog: Catalog, lake: Lake, going: list[Expiring]) -> bool:
    """Steps 1-4 for a set of partitions (one record write and one view rebuild for all of them);
    False when their files must wait for the views (step 2)."""
    data = read_expired(cfg)
    for e in going:
        entry = data["tables"].setdefault(e.table, {"rows": 0, "expiring": {}})
        entry.setdefault("expiring", {}).setdefault(e.partition.path, e.rows)
    _save(cfg, data)
    registered = {t: set(_registered(catalog, t)) for t in {e.table for e in going}}
    for e in going:  # under each partition's lock: a compaction running on it finishes first
        if e.partition in registered[e.table]:
            with partition_lock(cfg, e.table, e.partition):
                catalog.drop_partition(e.table, e.partition)
    if not catalog.views_current():
        return False
    for e in going:  # no compaction starts on an unregistered partition
        with partition_lock(cfg, e.table, e.partition):
            lake.remove_tree(lake.path(e.table, e.partition.path))
        if lake.is_local:  # the day's folder once its last hour is gone
            with contextlib.suppress(OSError):
                os.rmdir(lake.path(e.table, f"dt={e.partition.dt}"))
        entry = data["tables"][e.table]
        entry["rows"] = int(entry.get("rows", 0)) + int(entry["expiring"].pop(e.partition.path))
    _save(cfg, data)
    return True


def _unfinished(cfg: Config, lake: Lake, tables: list[str] | None) -> list[Expiring]:
    """Partitions a killed run recorded as expiring: the rerun finishes them first."""
    out = []
    for table, entry in read_expired(cfg)["tables"].items():
        if tables and table not in tables:
            continue
        for key, rows in entry.get("expiring", {}).items():
            dt, hour = key.split("/")
            out.append(Expiring(table, Partition.parse(dt[3:], hour[5:]), int(rows), 0, 0))
    return out


def _old_files(folder: Path, pattern: str, cutoff: float) -> tuple[list[Path], int]:
    """(files older than `cutoff`, how many files there are in all)."""
    old, total = [], 0
    for path in folder.glob(pattern) if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            if path.is_file():
                total += 1
                if path.stat().st_mtime <= cutoff:
                    old.append(path)
    return old, total


def run_expire(
    cfg: Config,
    catalog: Catalog,
    lake: Lake,
    *,
    now: float | None = None,
    tables: list[str] | None = None,
    before: float | None = None,
    dry_run: bool = False,
) -> ExpireReport:
    """Apply retention (or expire everything before `before`); with `dry_run`, only list it."""
    started = time.monotonic()
    now = time.time() if now is None else now
    report = ExpireReport(dry_run=dry_run)
    going, report.skipped = plan(cfg, catalog, lake, now, tables, before)
    if not dry_run:
        pending = {(e.table, e.partition) for e in going}
        going = [e for e in _unfinished(cfg, lake, tables) if (e.table, e.partition) not in pending] + going
    if dry_run:
        report.partitions = going
    elif going:
        done = _expire(cfg, catalog, lake, going)
        (report.partitions if done else report.deferred).extend(going)
    report.done_segments = _sweep(cfg, report, "done_segments", cfg.spool_dir / "_done", "**/*.csv", now)
    report.dead_letters = _sweep(cfg, report, "dead_letters", cfg.dead_letter_dir, "*.jsonl", now)
    report.seconds = time.monotonic() - started
    return report


def _sweep(cfg: Config, report: ExpireReport, kind: str, folder: Path, pattern: str, now: float) -> tuple[int, int]:
    """Delete the kind's files older than its retention; like partitions, never all of them at once
    (a clock set forward would otherwise empty the folder)."""
    text = getattr(cfg.retention, kind)
    if not text:
        return 0, 0
    old, total = _old_files(folder, pattern, now - parse_duration(text))
    if old and len(old) == total:
        report.skipped.append((kind, "*", f"every file is older than {text}: the clock may be wrong; none deleted"))
        return 0, 0
    size = 0
    for path in old:
        with contextlib.suppress(FileNotFoundError):
            size += path.stat().st_size
            if not report.dry_run:
                path.unlink()
    return len(old), size


def due(cfg: Config, every: float = 3600.0, now: float | None = None) -> bool:
    """Whether `rollover --watch` should expire now (once an hour, across restarts)."""
    stamp = cfg.state_dir / ".expired-at"
    now = time.time() if now is None else now
    try:
        if now - stamp.stat().st_mtime < every:
            return False
    except OSError:
        pass
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp.touch(mode=0o600)
    os.utime(stamp, (now, now))
    return True


__all__ = ["EXPIRED", "ExpireReport", "Expiring", "due", "expired_rows", "plan", "read_expired", "run_expire"]
