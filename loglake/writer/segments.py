"""Batches: the sealed unit of the lossless path (see DESIGN.md and README "How nothing is lost").

A batch holds a contiguous range of source lines: one `spool/<table>/<id>.csv.open` per table that
got rows and one `dead-letter/<id>.jsonl.open`. Sealing fsyncs them, writes the manifest
`spool/_batches/<id>.json` atomically (the commit point), then renames the data files to their
closed names. Before the first write an intent file records the source, so a restarted writer
knows how to recover a batch a kill -9 left open.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from loglake.config import Config
from loglake.fsutil import atomic_write_json, fsync_dir, process_token

BATCHES = "_batches"
_SEQ = itertools.count(1)
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loglake-csv")


def new_batch_id(host_id: str) -> str:
    """Unique across hosts and restarts, and sorting by start time: `<utc time>-<host>-<pid>-<seq>`."""
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{now}-{host_id}-{os.getpid()}-{next(_SEQ):06d}"


@dataclass(frozen=True)
class SourceInfo:
    """Where a batch's lines came from; `replayable` sources can be re-read after a crash."""

    kind: str  # file | gzip | stdin
    path: str
    replayable: bool
    dev: int = 0
    inode: int = 0
    fingerprint: str = ""
    fp_len: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DeadLetter:
    """One rejected line with enough context to find it in the source and replay it."""

    offset: int
    line_no: int
    reason: str
    raw: bytes


@dataclass
class _TableFile:
    path: Path
    handle: pa.NativeFile
    writer: pacsv.CSVWriter


@dataclass
class Batch:
    """An open batch; `write`/`dead_letter` append, `seal` commits, `abort` discards."""

    cfg: Config
    source: SourceInfo
    start_offset: int
    start_line: int
    id: str = ""
    end_offset: int = 0
    end_line: int = 0
    lines_read: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    created: float = field(default_factory=time.monotonic)
    _tables: dict[str, _TableFile] = field(default_factory=dict)
    _dead: IO[bytes] | None = None
    _last_sync: float = field(default_factory=time.monotonic)
    _inflight: Future[None] | None = None
    _sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.id = self.id or new_batch_id(self.cfg.host_id)
        self.end_offset, self.end_line = self.start_offset, self.start_line - 1
        batches = self.cfg.spool_dir / BATCHES
        batches.mkdir(parents=True, exist_ok=True)
        intent = {
            "id": self.id,
            "source": self.source.as_dict(),
            "start_offset": self.start_offset,
            "start_line": self.start_line,
            "writer": process_token(),
        }
        atomic_write_json(batches / f"{self.id}.open.json", intent, durable=self.cfg.writer.fsync != "off")

    @property
    def age(self) -> float:
        return time.monotonic() - self.created

    def size(self) -> int:
        """Largest file of the batch: the quantity `segment_max_bytes` bounds."""
        return max(self._sizes.values(), default=0)

    def write(self, table: str, rows: pa.Table) -> None:
        """Queue `rows` for the table's segment. CSV encoding runs on one background thread (Arrow
        releases the GIL), so parsing the next block overlaps it; one write is in flight at most."""
        self._wait()
        self.rows[table] = self.rows.get(table, 0) + rows.num_rows
        self._inflight = _EXECUTOR.submit(self._write_sync, table, rows)

    def _wait(self) -> None:
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            inflight.result()  # re-raises a write error (e.g. ENOSPC) in the caller's thread

    def _write_sync(self, table: str, rows: pa.Table) -> None:
        tf = self._tables.get(table)
        if tf is None:
            folder = self.cfg.spool_dir / table
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self.id}.csv.open"
            # Arrow's native file: the CSV writer's output skips Python's file layer entirely.
            handle = pa.OSFile(str(path), "wb")
            try:
                tf = _TableFile(path, handle, pacsv.CSVWriter(handle, rows.schema))  # writes the header
            except BaseException:
                handle.close()
                path.unlink(missing_ok=True)
                raise
            self._tables[table] = tf
        tf.writer.write_table(rows)
        self._sizes[table] = tf.handle.tell()
        self._maybe_sync()

    def dead_letter(self, records: list[DeadLetter]) -> None:
        """Queue rejected lines as JSON lines; on the same writer thread as the CSV, so all file I/O
        of a batch happens in one thread, in order."""
        if not records:
            return
        out = []
        for r in records:
            rec: dict[str, Any] = {
                "source": self.source.path,
                "offset": r.offset,
                "line_no": r.line_no,
                "reason": r.reason,
                "batch": self.id,
            }
            try:
                rec["line"] = r.raw.decode("utf-8")
            except UnicodeDecodeError:
                rec["line_b64"] = base64.b64encode(r.raw).decode("ascii")
            out.append(json.dumps(rec, ensure_ascii=False).encode("utf-8") + b"\n")
        self._wait()
        self.dead_lettered += len(records)
        self._inflight = _EXECUTOR.submit(self._dead_sync, b"".join(out))

    def _dead_sync(self, payload: bytes) -> None:
        if self._dead is None:
            self.cfg.dead_letter_dir.mkdir(parents=True, exist_ok=True)
            self._dead = open(self.cfg.dead_letter_dir / f"{self.id}.jsonl.open", "wb")  # noqa: SIM115
        self._dead.write(payload)
        self._sizes["_dead_letter"] = self._dead.tell()
        self._maybe_sync()

    def _maybe_sync(self) -> None:
        w = self.cfg.writer
        if w.fsync == "interval" and time.monotonic() - self._last_sync >= w.fsync_interval:
            for h in self._handles():
                h.flush()
            for p in self._paths():
                _fsync_path(p)
            self._last_sync = time.monotonic()

    def _handles(self) -> list[Any]:
        hs: list[Any] = [t.handle for t in self._tables.values()]
        return hs + ([self._dead] if self._dead is not None else [])

    def _close(self, sync: bool) -> None:
        try:
            self._wait()
        finally:
            self._close_files(sync)

    def _close_files(self, sync: bool) -> None:
        for t in self._tables.values():
            t.writer.close()
        for h in self._handles():
            h.flush()
            h.close()
        if sync:  # pa.OSFile has no fileno(): fsync by path after close, which is equivalent
            for p in self._paths():
                _fsync_path(p)

    def _paths(self) -> list[Path]:
        ps = [t.path for t in self._tables.values()]
        return ps + ([self.cfg.dead_letter_dir / f"{self.id}.jsonl.open"] if self._dead is not None else [])

    def manifest(self) -> dict[str, Any]:
        files = {t: str(tf.path.relative_to(self.cfg.data_dir))[: -len(".open")] for t, tf in self._tables.items()}
        if self._dead is not None:
            files["_dead_letter"] = f"dead-letter/{self.id}.jsonl"
        return {
            "id": self.id,
            "host": self.cfg.host_id,
            "source": self.source.as_dict(),
            "start_offset": self.start_offset,
            "end_offset": self.end_offset,
            "first_line": self.start_line,
            "last_line": self.end_line,
            "lines_read": self.lines_read,
            "rows": self.rows,
            "filtered": self.filtered,
            "dead_lettered": self.dead_lettered,
            "files": files,
            "sealed_at": datetime.now(UTC).isoformat(),
        }

    def seal(self) -> dict[str, Any] | None:
        """Commit the batch; returns its manifest, or None if it held no lines (nothing to commit)."""
        durable = self.cfg.writer.fsync != "off"
        self._close(sync=durable)
        batches = self.cfg.spool_dir / BATCHES
        if self.lines_read == 0:
            self._remove_files()
            (batches / f"{self.id}.open.json").unlink(missing_ok=True)
            return None
        manifest = self.manifest()
        atomic_write_json(batches / f"{self.id}.json", manifest, durable=durable)  # the commit point
        finish_renames(self.cfg.data_dir, manifest, durable)
        (batches / f"{self.id}.open.json").unlink(missing_ok=True)
        return manifest

    def abort(self) -> None:
        """Discard everything the batch wrote (the lines will be read again)."""
        with contextlib.suppress(OSError):  # a full disk may refuse the final flush; files go anyway
            self._close(sync=False)
        self._remove_files()
        (self.cfg.spool_dir / BATCHES / f"{self.id}.open.json").unlink(missing_ok=True)

    def _remove_files(self) -> None:
        for t in self._tables.values():
            t.path.unlink(missing_ok=True)
        (self.cfg.dead_letter_dir / f"{self.id}.jsonl.open").unlink(missing_ok=True)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finish_renames(data_dir: Path, manifest: dict[str, Any], durable: bool = True) -> None:
    """Rename a committed batch's `.open` files to their closed names (idempotent, used by recovery)."""
    dirs = set()
    for rel in manifest["files"].values():
        final = data_dir / rel
        opened = final.with_name(final.name + ".open")
        if opened.exists():
            os.replace(opened, final)
            dirs.add(final.parent)
    if durable:
        for d in dirs:
            fsync_dir(d)
