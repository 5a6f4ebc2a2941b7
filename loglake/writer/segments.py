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
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from loglake.config import Config
from loglake.fsutil import atomic_write_json, fsync_dir, private_dir, process_token

BATCHES = "_batches"
_SEQ = itertools.count(1)
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loglake-csv")
#: fdatasync of an open segment every this many bytes, on its own thread (`Batch._sync_ahead`).
#: What is left at a seal is up to this much plus the sync in flight: the seal of a 140 MB segment
#: of real traffic waited ~45 ms with 16 MiB, ~30 ms with 4 MiB (2 MiB gained nothing more).
SYNC_AHEAD_BYTES = 4 << 20
_SYNCER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loglake-sync")


def new_batch_id(host_id: str) -> str:
    """Unique across hosts and restarts, and sorting by start time: `<utc time>-<host>-<pid>-<seq>`."""
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{now}-{host_id}-{os.getpid()}-{next(_SEQ):06d}"


_BATCH_ID = re.compile(r"^\d{8}T\d{12}Z-(?P<host>[a-z0-9][a-z0-9-]*)-\d+-\d{6,}$")


def batch_host(batch_id: str) -> str | None:
    """The host that wrote a batch (`new_batch_id`'s second field), None for another name: a
    host's `status` counts its own rows in a lake that several hosts share by this."""
    m = _BATCH_ID.match(batch_id)
    return m.group("host") if m else None


@dataclass(frozen=True)
class SourceInfo:
    """Where a batch's lines came from; `replayable` sources can be re-read after a crash."""

    kind: str  # file | gzip | stdin | http | handler
    path: str
    replayable: bool
    dev: int = 0
    inode: int = 0
    fingerprint: str = ""
    fp_len: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def reason_check(reason: str) -> str:
    """The check a reason names (`invalid_time` of `invalid_time: 'x'`): what metrics count, and all
    of a reason kept in clear when dead letters are encrypted, as its detail may quote the value."""
    return reason.split(":", 1)[0]


@dataclass
class DeadLetter:
    """One rejected line with enough context to find it in the source and replay it."""

    offset: int
    line_no: int
    reason: str
    raw: bytes
    length: int = 0  # the whole line's length when `raw` holds only its first bytes


@dataclass
class _TableFile:
    path: Path
    handle: pa.NativeFile
    writer: pacsv.CSVWriter
    synced: int = 0  # bytes a background fdatasync was started for


@dataclass
class Batch:
    """An open batch; `write`/`dead_letter` append, `seal` commits, `abort` discards."""

    cfg: Config
    source: SourceInfo
    start_offset: int
    start_line: int
    writer_id: str = ""  # the WriterLease that recovery checks for liveness
    key_id: str = ""  # names the PII key of hash/encrypt transforms (never the key)
    sealer: Any = None  # encrypts dead-letter lines when pii.encrypt_dead_letters is on
    id: str = ""
    end_offset: int = 0
    end_line: int = 0
    lines_read: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # dead letters by reason (metrics)
    extra: dict[str, Any] = field(default_factory=dict)  # more manifest fields (HTTP idempotency keys)
    created: float = field(default_factory=time.monotonic)
    _tables: dict[str, _TableFile] = field(default_factory=dict)
    _dead: IO[bytes] | None = None
    _last_sync: float = field(default_factory=time.monotonic)
    _inflight: Future[None] | None = None
    _syncing: Future[None] | None = None
    _sizes: dict[str, int] = field(default_factory=dict)
    _closed: bool = False

    def __post_init__(self) -> None:
        self.id = self.id or new_batch_id(self.cfg.host_id)
        self.end_offset, self.end_line = self.start_offset, self.start_line - 1
        batches = private_dir(self.cfg.spool_dir / BATCHES)
        intent = {
            "id": self.id,
            "source": self.source.as_dict(),
            "start_offset": self.start_offset,
            "start_line": self.start_line,
            "writer": self.writer_id or process_token(),
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
            folder = private_dir(self.cfg.spool_dir / table)
            path = folder / f"{self.id}.csv.open"
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private before any row
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
        self._sync_ahead(tf, self._sizes[table])
        self._maybe_sync()

    def _sync_ahead(self, tf: _TableFile, size: int) -> None:
        """Start an fdatasync of a big segment while it is still being written, off both the parsing
        and the encoding thread. The fsync at seal still makes the batch durable; it just finds
        little left to do. Without this a 128 MiB segment's seal sat idle ~0.15 s in fsync (a
        virtual disk flushes on the host), ~10% of the wall time of a backfill on one core."""
        if self.cfg.writer.fsync == "off" or size - tf.synced < SYNC_AHEAD_BYTES:
            return
        if self._syncing is not None and not self._syncing.done():
            return  # the disk is behind: one sync at a time
        self._syncing, tf.synced = _SYNCER.submit(_fsync_path, tf.path, True), size

    def dead_letter(self, records: list[DeadLetter]) -> None:
        """Queue rejected lines as JSON lines; on the same writer thread as the CSV, so all file I/O
        of a batch happens in one thread, in order."""
        if not records:
            return
        limit = self.cfg.writer.max_line_bytes
        # The usual record (whole, UTF-8, not sealed) is formatted around the JSON of its two
        # strings: what `json.dumps` of its dict gives, at 1/8 of the cost (a scan sending
        # thousands of garbage lines a second is mostly dead letters).
        head = '{"source": ' + json.dumps(self.source.path, ensure_ascii=False) + ', "offset": '
        batch = json.dumps(self.id, ensure_ascii=False)
        out = []
        for r in records:
            raw = r.raw
            if self.sealer is None and r.length <= len(raw) <= limit:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    reason = encode_basestring(r.reason)  # what json.dumps calls for a str
                    out.append(
                        f'{head}{r.offset}, "line_no": {r.line_no}, "reason": {reason}, "batch": {batch}, '
                        f'"line": {encode_basestring(line)}}}'
                    )
                    continue
            out.append(self._dead_json(r, limit))
        self._wait()
        self.dead_lettered += len(records)
        for r in records:
            reason = reason_check(r.reason)
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self._inflight = _EXECUTOR.submit(self._dead_sync, ("\n".join(out) + "\n").encode("utf-8"))

    def _dead_json(self, r: DeadLetter, limit: int) -> str:
        """A dead letter's JSON line, any kind: truncated, sealed, or not UTF-8 (base64)."""
        rec: dict[str, Any] = {
            "source": self.source.path,
            "offset": r.offset,
            "line_no": r.line_no,
            "reason": r.reason,
            "batch": self.id,
        }
        raw = r.raw
        if r.length > len(raw) or len(raw) > limit:  # bounded: the first max_line_bytes bytes
            rec["length"], rec["truncated"] = max(r.length, len(raw)), True
            raw = raw[:limit]
        if self.sealer is not None:  # the raw line may hold personal data, and so may the reason's detail
            rec["line_enc"] = self.sealer.seal(raw, "_dead_letter")
            rec["reason"] = reason_check(r.reason)
            if rec["reason"] != r.reason:
                rec["reason_enc"] = self.sealer.seal(r.reason.encode(), "_dead_letter_reason")
            return json.dumps(rec, ensure_ascii=False)
        try:
            rec["line"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            rec["line_b64"] = base64.b64encode(raw).decode("ascii")
        return json.dumps(rec, ensure_ascii=False)

    def _dead_sync(self, payload: bytes) -> None:
        if self._dead is None:
            path = private_dir(self.cfg.dead_letter_dir) / f"{self.id}.jsonl.open"
            self._dead = open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")  # noqa: SIM115
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
        if self._closed:
            return
        self._closed = True
        for t in self._tables.values():
            t.writer.close()
        for h in self._handles():
            h.flush()
            h.close()
        if self._syncing is not None:
            syncing, self._syncing = self._syncing, None
            if sync:
                syncing.result()  # its error (EIO) is reported to that fd only: raise it here
            else:
                with contextlib.suppress(OSError):
                    syncing.result()
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
            "dead_letter_reasons": self.reasons,
            **({"pii_key_id": self.key_id} if self.key_id else {}),
            **self.extra,
        }

    def prepare(self) -> dict[str, Any] | None:
        """Phase one: close and fsync the data files and their folders. May fail (a full disk): the
        batch is then aborted and redone. Returns the manifest to commit, or None (no lines)."""
        durable = self.cfg.writer.fsync != "off"
        self._close(sync=durable)
        if self.lines_read == 0:
            self.abort()
            return None
        if durable:
            for d in {p.parent for p in self._paths()}:
                fsync_dir(d)  # the new `.open` names must exist after a power loss, as the manifest will
        return self.manifest()

    def commit(self, manifest: dict[str, Any]) -> None:
        """Phase two: the manifest's rename is the commit point. Everything before it may fail and be
        aborted; nothing after it aborts (recovery finishes what is left)."""
        durable = self.cfg.writer.fsync != "off"
        atomic_write_json(self.cfg.spool_dir / BATCHES / f"{self.id}.json", manifest, durable=durable)

    def finish(self, manifest: dict[str, Any]) -> None:
        """After the commit: closed names, then the intent goes (the caller saves the checkpoint first)."""
        finish_renames(self.cfg.data_dir, manifest, self.cfg.writer.fsync != "off")
        (self.cfg.spool_dir / BATCHES / f"{self.id}.open.json").unlink(missing_ok=True)

    def abort(self) -> None:
        """Discard everything the batch wrote (the lines will be read again)."""
        with contextlib.suppress(OSError, ValueError):  # a full disk may refuse the final flush
            self._close(sync=False)
        self._remove_files()
        (self.cfg.spool_dir / BATCHES / f"{self.id}.open.json").unlink(missing_ok=True)

    def _remove_files(self) -> None:
        for t in self._tables.values():
            t.path.unlink(missing_ok=True)
        (self.cfg.dead_letter_dir / f"{self.id}.jsonl.open").unlink(missing_ok=True)


def _fsync_path(path: Path, data_only: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        (os.fdatasync if data_only else os.fsync)(fd)
    finally:
        os.close(fd)


def finish_renames(data_dir: Path, manifest: dict[str, Any], durable: bool = True) -> list[str]:
    """Rename a committed batch's `.open` files to their closed names (idempotent, used by recovery).

    Returns the files found under neither name: a committed batch must never lose one silently
    (`loglake status` reports them too)."""
    dirs = set()
    missing = []
    for rel in manifest["files"].values():
        final = data_dir / rel
        opened = final.with_name(final.name + ".open")
        try:
            os.replace(opened, final)
            dirs.add(final.parent)
            continue
        except FileNotFoundError:
            pass  # already renamed (maybe by a concurrent recovery), or retired
        if not final.exists() and not segment_retired(data_dir, rel):
            missing.append(rel)
    if durable:
        for d in dirs:
            fsync_dir(d)
    return missing


def segment_retired(data_dir: Path, rel: str) -> bool:
    """A closed segment that rollover already moved on (to `_done/` or `_failed/`)."""
    parts = Path(rel).parts
    if len(parts) != 3 or parts[0] != "spool":
        return False
    return any((data_dir / "spool" / state / parts[1] / parts[2]).exists() for state in ("_done", "_failed"))
