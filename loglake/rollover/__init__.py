"""Rollover: closed CSV segments -> Hive-partitioned Parquet -> registered partitions (issue #3).

Idempotent by construction (DESIGN.md): output names derive from the segment id, files become
visible whole, partitions are registered before the segment is retired, so a crash at any step is
finished by the next run without a duplicate or a lost row.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from loglake.catalog import Catalog, load_catalog
from loglake.catalog.base import Partition
from loglake.config import Config
from loglake.errors import LoglakeError, SegmentError
from loglake.faults import FAULT_ENV, fault_point
from loglake.fsutil import atomic_write_json, private_dir, touch_private
from loglake.rollover.compact import partition_lock, place_late_file
from loglake.rollover.convert import PartitionFile, read_segment, write_partitions
from loglake.rollover.segments import Claim, Segment, closed_segments, park_failed, retire
from loglake.storage import open_lake


class InjectedFault(Exception):
    """Raised by `fail_after` in tests to stop a rollover between two steps."""


@dataclass
class RolloverReport:
    segments: int = 0
    rows: int = 0
    csv_bytes: int = 0
    parquet_bytes: int = 0
    files: int = 0
    partitions: set[tuple[str, str, int]] = field(default_factory=set)
    new_partitions: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0  # claimed by another rollover
    seconds: float = 0.0


def _fault(step: str, fail_after: str | None) -> None:
    """Steps written, registered, retired of a segment: `fail_after` raises (in-process tests),
    `LOGLAKE_FAULT` kills (subprocess crash tests, only when armed: loglake/faults.py)."""
    if fail_after == step:
        raise InjectedFault(step)
    fault_point(step)


def run_rollover(
    cfg: Config,
    catalog: Catalog | None = None,
    on_segment: Callable[[Segment, int], None] | None = None,
    fail_after: str | None = None,
) -> RolloverReport:
    """Convert every closed segment; returns what was done. Catalog errors propagate (retry later);
    a segment that cannot be read is parked in `_failed/` and the others continue."""
    started = time.monotonic()
    report = RolloverReport()
    own_catalog = catalog is None
    catalog = catalog or load_catalog(cfg)
    lake = open_lake(cfg)
    ensured: set[str] = set()
    workers = max(1, cfg.rollover.workers)
    # Conversion (CSV read, split, Parquet write) runs `workers` segments at a time: Arrow releases
    # the GIL. Registration and retirement stay on this thread, in segment order.
    pending: deque[tuple[Segment, Claim, int, Future[tuple[pa.Table, list[PartitionFile]]]]] = deque()

    def finish(segment: Segment, claim: Claim, size: int, fut: Future) -> None:
        try:
            try:
                table, files = fut.result()
            except SegmentError as e:
                park_failed(cfg, segment, e)
                report.failed.append(segment.id)
                return
            _fault("written", fail_after)
            location = lake.uri(segment.table)
            if segment.table not in ensured:
                known = {t.name: list(t.columns) for t in cfg.tables}
                catalog.ensure_table(segment.table, known.get(segment.table, table.column_names), location)
                ensured.add(segment.table)
            report.new_partitions += catalog.register_partitions(
                segment.table, sorted({f.partition for f in files}), location
            )
            _fault("registered", fail_after)
            retire(cfg, segment)
            _fault("retired", fail_after)
            _account(report, segment, files, size, table.num_rows)
            if on_segment:
                on_segment(segment, size)
        finally:
            claim.release()

    def convert(segment: Segment) -> tuple[pa.Table, list[PartitionFile]]:
        table = read_segment(str(segment.path))
        r = cfg.rollover
        meta = _file_metadata(cfg, segment)

        def place(partition: Partition, name: str, data: bytes) -> str | None:
            # Under the partition's lock: a compaction of the same hour never misses this file.
            with partition_lock(cfg, segment.table, partition):  # None: a compaction holds these rows
                return place_late_file(cfg, lake, segment.table, partition, name, data)

        return table, write_partitions(
            lake, segment.table, segment.id, table, r.compression, r.row_group_size, meta, place
        )

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loglake-rollover") as pool:
            try:
                for segment in closed_segments(cfg):
                    claim = Claim(segment)
                    if not claim.acquire():
                        report.skipped += 1
                        continue
                    pending.append((segment, claim, segment.path.stat().st_size, pool.submit(convert, segment)))
                    while len(pending) >= workers:
                        finish(*pending.popleft())
                while pending:
                    finish(*pending.popleft())
            finally:
                for _segment, claim, _size, fut in pending:  # after an error: let work stop, drop claims
                    fut.cancel()
                    with contextlib.suppress(BaseException):
                        fut.result()
                    claim.release()
    finally:
        if own_catalog:
            catalog.close()
    _keep_state_bounded(cfg)
    report.seconds = time.monotonic() - started
    if report.segments or report.failed:
        private_dir(cfg.state_dir)
        atomic_write_json(
            cfg.state_dir / "last_rollover.json",
            {"at": time.time(), "segments": report.segments, "rows": report.rows, "failed": report.failed},
        )
    return report


def _keep_state_bounded(cfg: Config) -> None:
    """Fold day-old manifests into the ledger (at most once a minute) and, once an hour, prune
    checkpoints of content that no file holds any more."""
    from loglake.writer.ledger import fold, prune_checkpoints

    fold(cfg)
    stamp = cfg.state_dir / ".checkpoints-pruned"
    with contextlib.suppress(OSError):
        if time.time() - stamp.stat().st_mtime < 3600:
            return
    prune_checkpoints(cfg, cfg.writer.state_retention)
    touch_private(stamp)


def _file_metadata(cfg: Config, segment: Segment) -> dict[str, str]:
    """Parquet key-value metadata from the batch's manifest: which PII key pseudonymized the file's
    values (its id, never the key), so a key rotation is visible to every reader."""
    from loglake.fsutil import read_json
    from loglake.writer.segments import BATCHES

    try:
        manifest = read_json(cfg.spool_dir / BATCHES / f"{segment.id}.json")
    except (OSError, ValueError):
        return {}
    return {
        "loglake.batch": segment.id,
        **({"loglake.pii_key_id": manifest["pii_key_id"]} if "pii_key_id" in manifest else {}),
    }


def _account(report: RolloverReport, segment: Segment, files: list[PartitionFile], size: int, rows: int) -> None:
    report.segments += 1
    report.rows += rows
    report.csv_bytes += size
    report.files += len(files)
    report.parquet_bytes += sum(f.bytes for f in files)
    report.partitions.update((segment.table, f.partition.dt, f.partition.hour) for f in files)


__all__ = ["FAULT_ENV", "InjectedFault", "LoglakeError", "RolloverReport", "run_rollover"]
