"""Compaction: a partition's small files merged into few large ones, switched in without a gap.

The Hive layout has no atomic multi-file swap, so a compaction never touches the files readers are
reading. For partition P (folder `dt=D/hour=H/`, or the folder of its last compaction):

1. under P's lock and lease (lease.py: hosts sharing the lake), list P's current folder; merge its
   small files, one merge per PII key (merge.py), into `dt=D/hour=H/_compacted/g<N>/` beside
   copies of the files already large; the record lists every input as consumed, so neither a
   file nor its copy is ever served or merged twice;
2. write P's record `dt=D/hour=H/_compaction.json` saying generation N is *pending* (the commit
   point: from here on a rerun finishes the switch instead of redoing the merge);
3. point the catalog at the new folder: DuckDB in one SQLite UPDATE (a reader sees the old files or
   the new, never both or neither); Trino by unregister + register (Trino has no atomic partition
   location change, trinodb/trino#3501: a Trino query planned in those milliseconds misses P);
4. mark the record *switched* and list the old files as retired: they are deleted by a later run
   once `grace` has passed, so a query that started before the switch still finds them (while a
   DuckDB session holds `catalog.duckdb` on stale views, up to `compact_view_wait` later, no more).

Rollover writes into P's current folder under the same lock, and skips a segment whose rows a
compaction already holds (a rollover rerun after a crash), so a late file is neither lost nor
doubled. A plain-glob reader of `dt=*/hour=*/*.parquet` sees every hour never compacted exactly
once; a recursive glob sees compacted hours twice during the grace period and once after it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loglake.catalog.base import Catalog, Partition
from loglake.config import Config
from loglake.faults import fault_point
from loglake.rollover.lease import Held, Lease, acquire
from loglake.rollover.merge import by_key_id, write_merged
from loglake.storage import Lake

RECORD = "_compaction.json"
_STRIPES = 64


@dataclass
class CompactReport:
    partitions: int = 0  # partitions merged
    files_in: int = 0
    files_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    deleted: int = 0  # retired files removed after their grace period
    finished: int = 0  # switches left pending by an interrupted run, finished now
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)


@contextlib.contextmanager
def partition_lock(cfg: Config, table: str, p: Partition) -> Iterator[None]:
    """An flock shared by rollover and compaction of one partition (striped over 64 files, so the
    lock files never grow with history). Excludes processes on this host only: run compaction
    for a shared lake on one host."""
    folder = cfg.state_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stripe = zlib.crc32(f"{table}/{p.path}".encode()) % _STRIPES
    fd = os.open(folder / f"partition-{stripe:02d}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_record(lake: Lake, table: str, p: Partition) -> dict[str, Any] | None:
    try:
        return json.loads(lake.fs.cat_file(lake.path(table, p.path, RECORD)))
    except FileNotFoundError:
        return None


def _write_record(lake: Lake, table: str, p: Partition, record: dict[str, Any]) -> None:
    lake.write_atomic(lake.path(table, p.path, RECORD), json.dumps(record, sort_keys=True).encode())


def current_location(lake: Lake, table: str, p: Partition) -> str:
    """The URI of P's latest compaction folder, or "" when P was never compacted."""
    record = read_record(lake, table, p)
    return record["location"] if record else ""


def target_folder(cfg: Config, lake: Lake, table: str, p: Partition, name: str) -> str | None:
    """Where rollover writes `name` for P (call under `partition_lock`): P's current folder, or
    None when a compaction already merged that segment's rows."""
    record = read_record(lake, table, p)
    if record is None:
        return lake.path(table, p.path)
    if name in record.get("consumed", []):
        return None
    return _path(lake, record["location"])


def place_late_file(cfg: Config, lake: Lake, table: str, p: Partition, name: str, data: bytes) -> str | None:
    """Rollover's write of `name` into P (call under `partition_lock`); the path written, or None
    when a compaction already holds its rows. The flock does not reach other hosts: if one of them
    switched P to a new folder while we wrote, the file is moved there (the compaction does the
    same for files it finds after its switch), so no row is left in a folder nobody serves."""
    folder = target_folder(cfg, lake, table, p, name)
    if folder is None:
        return None
    lake.write_atomic(f"{folder}/{name}", data)
    now = target_folder(cfg, lake, table, p, name)
    if now is None or now == folder:
        return f"{folder}/{name}"  # still served there, or merged by a compaction that saw it
    lake.write_atomic(f"{now}/{name}", data)
    with contextlib.suppress(FileNotFoundError):
        lake.fs.rm_file(f"{folder}/{name}")
    return f"{now}/{name}"


def _adopt_strays(lake: Lake, table: str, p: Partition, record: dict[str, Any], before: dict[str, Any]) -> None:
    """After a switch: files another host's rollover wrote into P's previous folders while we
    merged (it read the old record) are copied into the new folder, so the catalog serves them."""
    location = _path(lake, record["location"])
    seen = set(record.get("consumed", [])) | {_name(f) for f, _ in _list(lake, location)}
    folders = {lake.path(table, p.path), _path(lake, before.get("location") or lake.uri(table, p.path))}
    for folder in sorted(folders - {location}):
        for path, _size in _list(lake, folder):
            name = _name(path)
            if name in seen or name.startswith("part-g"):
                continue
            with contextlib.suppress(FileNotFoundError):
                lake.write_atomic(f"{location}/{name}", lake.fs.cat_file(path))
                lake.fs.rm_file(path)
            seen.add(name)


def _path(lake: Lake, uri: str) -> str:
    return uri.removeprefix("s3://")


def _list(lake: Lake, folder: str) -> list[tuple[str, int]]:
    return list_parquet(lake.fs, folder)


def list_parquet(fs: Any, folder: str) -> list[tuple[str, int]]:
    """(path, size) of the Parquet files directly in `folder`, sorted; names starting `.` or `_`
    are in flight or loglake's own, and a folder that does not exist has none."""
    try:
        entries = fs.ls(folder, detail=True, refresh=True)
    except FileNotFoundError:
        return []
    out = []
    for e in entries:
        name = e["name"].rstrip("/").rsplit("/", 1)[-1]
        if e.get("type") == "file" and name.endswith(".parquet") and name[0] not in "._":
            out.append((e["name"], int(e.get("size") or 0)))
    return sorted(out)


def compact_partition(
    cfg: Config, lake: Lake, catalog: Catalog, table: str, p: Partition, report: CompactReport, purge: bool = True
) -> None:
    """One partition, under its lock and its lease (other hosts compacting the same lake skip it
    while we hold it, and we skip it while they do; `report.skipped` says so)."""
    with partition_lock(cfg, table, p):
        lease = acquire(lake, lake.path(table, p.path), cfg.host_id, cfg.rollover.compact_lease)
        if isinstance(lease, Held):
            report.skipped.append(f"{table} {p.path}: {lease}")
            return
        try:
            _compact_leased(cfg, lake, catalog, table, p, report, purge, lease)
        except _LeaseLost:
            report.skipped.append(f"{table} {p.path}: our lease expired and another host took it; nothing committed")
        finally:
            lease.release()


class _LeaseLost(Exception):
    """The lease expired mid-compaction and another host holds it now: commit nothing."""


def _hold(lease: Lease) -> None:
    """Renew the lease right before a step other hosts must not repeat (the commit, the switch)."""
    if not lease.renew():
        raise _LeaseLost


def _compact_leased(
    cfg: Config,
    lake: Lake,
    catalog: Catalog,
    table: str,
    p: Partition,
    report: CompactReport,
    purge: bool,
    lease: Lease,
) -> None:
    """Finish a pending switch, delete what has served its grace (`purge`: every stored view points
    at current folders), then merge the small files of each PII key of which there are two or more
    (one merged file per key: a key rotation stays visible in every hour)."""
    record = read_record(lake, table, p) or {}
    if record.get("state") == "pending":
        _hold(lease)
        _switch(cfg, lake, catalog, table, p, record)
        report.finished += 1
    if record:  # a user's DuckDB session on stale views delays deletion, by compact_view_wait at most
        report.deleted += _purge(lake, table, p, record, 0.0 if purge else cfg.rollover.compact_view_wait)
    files = _serving(lake, table, p, record)
    target = cfg.rollover.compact_target_bytes
    small = [f for f in files if f[1] < target]
    by_key = by_key_id(lake, small) if len(small) >= 2 else {}
    groups = {key: group for key, group in by_key.items() if len(group) >= 2}
    if groups:
        _merge(cfg, lake, catalog, table, p, record, files, groups, report, lease)


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _merge(
    cfg: Config,
    lake: Lake,
    catalog: Catalog,
    table: str,
    p: Partition,
    record: dict[str, Any],
    files: list[tuple[str, int]],
    groups: dict[str, list[tuple[str, int]]],
    report: CompactReport,
    lease: Lease,
) -> None:
    generation = int(record.get("generation", 0)) + 1
    folder = lake.path(table, p.path, "_compacted", f"g{generation}")
    with contextlib.suppress(FileNotFoundError):
        lake.fs.rm(folder, recursive=True)  # a merge interrupted before its record: not served, redo
    merged = [f for g in groups.values() for f in g]
    out: list[tuple[str, int]] = []
    for j, (key_id, group) in enumerate(groups.items()):  # one merged file (or more) per PII key
        prefix = f"g{generation}" if len(groups) == 1 else f"g{generation}-k{j}"
        out += write_merged(cfg, lake, [f for f, _ in group], folder, prefix, key_id)
    for path, size in files:
        if (path, size) not in merged:
            lake.fs.copy(path, f"{folder}/{_name(path)}")  # a file already large: moved as it is
    _fault("compact-merged")
    # Every input's name, merged or copied: rollover never writes it again, and the Hive folder's
    # original of a copied file is never served (nor merged) beside its copy.
    inputs = [_name(f) for f, _ in files if not _name(f).startswith("part-g")]
    new = {
        "generation": generation,
        "location": lake.uri(table, p.path, "_compacted", f"g{generation}"),
        "state": "pending",
        "consumed": sorted(set(record.get("consumed", [])) | set(inputs)),
        # rows per consumed segment (from its footer): the merged files mix hosts, and a host's
        # `status` counts its own rows in the lake by segment name (the name carries its host id)
        "consumed_rows": {
            **record.get("consumed_rows", {}),
            **{_name(f): footer_rows(lake, f) for f, _ in files if not _name(f).startswith("part-g")},
        },
        "retired": [
            *record.get("retired", []),
            {"files": [f for f, _ in files], "after": time.time() + cfg.rollover.compact_grace},
        ],
        "at": datetime.now(UTC).isoformat(),
    }
    _hold(lease)
    _write_record(lake, table, p, new)  # the commit point
    _fault("compact-recorded")
    _switch(cfg, lake, catalog, table, p, new)
    _adopt_strays(lake, table, p, new, record)
    _fault("compact-switched")
    report.partitions += 1
    report.files_in += len(merged)
    report.bytes_in += sum(s for _, s in merged)
    report.files_out += len(out)
    report.bytes_out += sum(s for _, s in out)


def _fault(step: str) -> None:
    """Crash tests (loglake/faults.py): a kill right after `step`, only when the tests armed it."""
    fault_point(step)


def _switch(cfg: Config, lake: Lake, catalog: Catalog, table: str, p: Partition, record: dict[str, Any]) -> None:
    catalog.set_location(table, p, record["location"])
    record["state"] = "switched"
    _write_record(lake, table, p, record)


def _purge(lake: Lake, table: str, p: Partition, record: dict[str, Any], wait: float = 0.0) -> int:
    """Delete retired files whose grace (plus `wait`) has passed; the record keeps the rest."""
    now = time.time() - wait
    due = [r for r in record.get("retired", []) if r["after"] <= now]
    if not due:
        return 0
    current = _path(lake, record["location"])
    deleted = 0
    for entry in due:
        for path in entry["files"]:
            if path.startswith(current + "/"):
                continue  # never the files being served
            with contextlib.suppress(FileNotFoundError):
                lake.fs.rm_file(path)
                deleted += 1
    record["retired"] = [r for r in record["retired"] if r["after"] > now]
    _write_record(lake, table, p, record)
    for old in range(1, int(record["generation"])):  # emptied generation folders
        with contextlib.suppress(FileNotFoundError, OSError):
            folder = lake.path(table, p.path, "_compacted", f"g{old}")
            if lake.fs.exists(folder) and not lake.fs.ls(folder):
                lake.fs.rmdir(folder)
    return deleted


def _serving(
    lake: Lake, table: str, p: Partition, record: dict[str, Any], hive: list[tuple[str, int]] | None = None
) -> list[tuple[str, int]]:
    """P's files now: its Hive folder (`hive`, when already listed), or its compaction folder plus
    the files another host's rollover left in the Hive folder since (the next merge adopts them)."""
    hive = _list(lake, lake.path(table, p.path)) if hive is None else hive
    if not record:
        return hive
    current = _list(lake, _path(lake, record["location"]))
    seen = set(record.get("consumed", [])) | {_name(f) for f, _ in current}  # a file and its copy: once
    return current + [f for f in hive if _name(f[0]) not in seen]


def footer_rows(lake: Lake, path: str) -> int:
    """A Parquet file's row count from its footer (no scan)."""
    import pyarrow.parquet as pq

    with lake.fs.open(path, "rb") as fh:
        return int(pq.ParquetFile(fh).metadata.num_rows)


def served(lake: Lake, table: str, p: Partition) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(files the catalog serves for P, replaced files still waiting out their grace period)."""
    record = read_record(lake, table, p)
    if record is None:
        return _list(lake, lake.path(table, p.path)), []
    hive = _list(lake, lake.path(table, p.path))
    files = _serving(lake, table, p, record, hive)
    retired = {path for r in record.get("retired", []) for path in r["files"]}
    grace = [f for f in hive if f[0] in retired]
    if record["location"] != lake.uri(table, p.path):
        for g in range(1, int(record["generation"])):
            grace += [f for f in _list(lake, lake.path(table, p.path, "_compacted", f"g{g}")) if f[0] in retired]
    return files, grace


def partitions_on_storage(lake: Lake, table: str) -> list[Partition]:
    """Every `dt=/hour=` folder of the table, sorted; folders whose names do not parse are not ours."""
    found = set()
    for path in lake.fs.glob(lake.path(table, "dt=*", "hour=*")):
        dt_part, hour_part = path.rstrip("/").split("/")[-2:]
        try:
            found.add(Partition.parse(dt_part[3:], hour_part[5:]))
        except ValueError:
            continue  # a stray folder: never register what we cannot parse
    return sorted(found)


def closed_partitions(catalog: Catalog, table: str, older_than: float, now: float | None = None) -> list[Partition]:
    """Registered partitions whose hour ended at least `older_than` seconds ago."""
    now = time.time() if now is None else now
    return [p for p in catalog.list_partitions(table) if p.end + older_than <= now]


def run_compact(
    cfg: Config,
    catalog: Catalog,
    tables: list[str] | None = None,
    older_than: float = 0.0,
    on_partition: Callable[[str, Partition], None] | None = None,
) -> CompactReport:
    """Compact every closed partition of the tables (all configured ones by default)."""
    from loglake.storage import open_lake

    started = time.monotonic()
    lake = open_lake(cfg)
    report = CompactReport()
    known = set(catalog.tables())
    purge = catalog.views_current()
    for table in tables or [t.name for t in cfg.tables]:
        if table not in known:
            continue
        for p in closed_partitions(catalog, table, older_than):
            compact_partition(cfg, lake, catalog, table, p, report, purge)
            if on_partition:
                on_partition(table, p)
    report.seconds = time.monotonic() - started
    return report


__all__ = [
    "RECORD",
    "CompactReport",
    "closed_partitions",
    "compact_partition",
    "current_location",
    "footer_rows",
    "list_parquet",
    "partition_lock",
    "partitions_on_storage",
    "place_late_file",
    "read_record",
    "run_compact",
    "served",
    "target_folder",
]
