"""The writer: source bytes -> chunks of lines -> parser -> tables -> batches, sealed and checkpointed."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from loglake import metrics
from loglake.config import Config
from loglake.errors import SourceError
from loglake.fsutil import fsync_dir
from loglake.lifecycle import on_stop_signals
from loglake.writer.fields import TableRouter, needed_columns, stored_columns
from loglake.writer.geo import GeoLookup
from loglake.writer.identity import CheckpointStore, PathRegistry, WriterLease, content_head
from loglake.writer.kernels import pc
from loglake.writer.lines import Chunk, parse_chunk
from loglake.writer.parsers import Parser, load_parser
from loglake.writer.recovery import recover_spool
from loglake.writer.segments import BATCHES, Batch, DeadLetter, SourceInfo, reason_check
from loglake.writer.siblings import continued_elsewhere, mark_history, unread_siblings
from loglake.writer.tail import FileTail
from loglake.writer.transforms import Sealer, TableTransforms, key_id, load_key, needs_key

#: Errors that mean "the disk is full or failing": pause and retry instead of losing lines.
_PRESSURE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO}


@dataclass
class Totals:
    """Counts over sealed batches only, so they reconcile with what is on disk."""

    lines_read: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    batches: int = 0
    skipped_files: list[str] = field(default_factory=list)

    def add(self, manifest: dict[str, Any]) -> None:
        self.lines_read += manifest["lines_read"]
        self.dead_lettered += manifest["dead_lettered"]
        self.batches += 1
        for t, n in manifest["rows"].items():
            self.rows[t] = self.rows.get(t, 0) + n
        for t, n in manifest["filtered"].items():
            self.filtered[t] = self.filtered.get(t, 0) + n

    def reconciles(self, tables: list[str]) -> bool:
        """lines read = rows + filtered + dead-lettered, for every table."""
        return all(
            self.lines_read == self.rows.get(t, 0) + self.filtered.get(t, 0) + self.dead_lettered for t in tables
        )


class _Pressure(Exception):
    """The disk refused a write; the open batch was aborted and must be redone."""


class PressureError(SourceError):
    """Stopped while the disk refused writes: nothing unsealed is lost (files are read again from
    their checkpoint), but the run did not finish, so it must not exit 0."""

    transient = True


def _is_pressure(e: OSError) -> bool:
    return e.errno in _PRESSURE_ERRNOS


def _counting(on_bytes: Callable[[int], None]) -> Callable[[int], None]:
    def count(n: int) -> None:
        metrics.bytes_read(n)
        on_bytes(n)

    return count


class Writer:
    """Runs sources through the pipeline; one instance per `loglake write` process."""

    def __init__(self, cfg: Config, on_bytes: Callable[[int], None] | None = None) -> None:
        self.cfg = cfg
        self.parser = load_parser(cfg.writer, needed_columns(cfg))
        self.key = load_key(cfg.pii) if needs_key(cfg) else b""
        self.routers = [
            TableRouter(t, TableTransforms(t.transforms, self.key) if t.transforms else None) for t in cfg.tables
        ]
        self.geo = GeoLookup(cfg.geoip, stored_columns(cfg))
        self.sealer = Sealer(self.key) if cfg.pii.encrypt_dead_letters else None
        self.totals = Totals()
        self.stopping = False
        self.on_bytes = _counting(on_bytes or (lambda n: None))
        self.lease = WriterLease(cfg)
        self.checkpoints = CheckpointStore(cfg)
        self.paths = PathRegistry(cfg)
        self.recovery = recover_spool(cfg, self.checkpoints, self.lease)

    def close(self) -> None:
        self.lease.release()

    # ---- lifecycle -------------------------------------------------------------------------
    def signals(self) -> AbstractContextManager[None]:
        """SIGTERM/SIGINT stop reading at the next block boundary, then open batches are sealed."""
        return on_stop_signals(lambda signum: setattr(self, "stopping", True))

    # ---- batches ---------------------------------------------------------------------------
    def open_batch(self, src: SourceInfo, offset: int, line: int) -> Batch:
        """A new batch starting after `line` lines, at byte `offset`; raises _Pressure."""
        try:
            return Batch(
                self.cfg,
                src,
                offset,
                line + 1,
                writer_id=self.lease.id,
                key_id=key_id(self.key) if self.key else "",
                sealer=self.sealer,
            )
        except OSError as e:  # the intent file could not be written
            if _is_pressure(e):
                raise _Pressure(str(e)) from e
            raise

    def process(
        self, batch: Batch, chunk: Chunk, parser: Parser | None = None, routers: list[TableRouter] | None = None
    ) -> list[tuple[int, str]]:
        """Parse one chunk into `batch` (with `parser`, default the configured one); returns the
        rejected lines as (index in chunk, reason), the reason only its check when dead letters are
        encrypted (its detail is sealed with the line). Under disk pressure the batch is aborted and
        _Pressure raised."""
        try:
            return self._process(batch, chunk, parser or self.parser, self.routers if routers is None else routers)
        except OSError as e:
            if _is_pressure(e):
                batch.abort()
                raise _Pressure(str(e)) from e
            raise

    def dead_letter(self, batch: Batch, records: list[DeadLetter]) -> None:
        try:
            batch.dead_letter(records)
        except OSError as e:
            if _is_pressure(e):
                batch.abort()
                raise _Pressure(str(e)) from e
            raise

    def _process(self, batch: Batch, chunk: Chunk, parser: Parser, routers: list[TableRouter]) -> list[tuple[int, str]]:
        split, result = parse_chunk(parser, chunk, self.cfg.writer.max_line_bytes)
        count = split.parsed + len(split.rejects)
        chunk.line_count = count  # known now; saves counting newlines in the block again
        parsed = self.geo.apply(result.table)  # from the full client IP, before any transform
        rejects = list(split.rejects)
        if split.index is not None:
            rejects += [(split.index[i].as_py(), reason) for i, reason in result.rejects]
            if parsed.num_rows:
                parsed = parsed.set_column(
                    parsed.schema.get_field_index("_line"), "_line", pc.take(split.index, parsed["_line"])
                )
        else:
            rejects += result.rejects
        for router in routers:
            rows, excluded = router.route(parsed)
            if rows.num_rows:
                batch.write(router.table.name, rows)
            if excluded:
                batch.filtered[router.table.name] = batch.filtered.get(router.table.name, 0) + excluded
        if rejects:
            rejects.sort()
            raw = chunk.raw_lines([i for i, _ in rejects])
            records = zip(rejects, raw, strict=True)
            batch.dead_letter([DeadLetter(at, chunk.start_line + i, why, line) for (i, why), (at, line) in records])
        if parsed.num_rows + len(result.rejects) != split.parsed:  # a bug must never lose lines silently
            raise AssertionError(
                f"parser accounted for {parsed.num_rows + len(result.rejects)} of {split.parsed} lines"
            )
        batch.lines_read += count
        batch.end_offset = chunk.end_offset
        batch.end_line = chunk.start_line + count - 1
        if self.sealer is not None:  # the callers' summaries (manifests, HTTP answers) are in clear
            return [(i, reason_check(why)) for i, why in rejects]
        return rejects

    def seal(self, batch: Batch) -> dict[str, Any] | None:
        """Two phases: prepare (may fail: aborted, _Pressure) then commit; after the commit point
        nothing aborts, and what is left (checkpoint, renames) is retried until done."""
        try:
            manifest = batch.prepare()
            if manifest is None:
                return None
            batch.commit(manifest)
        except (OSError, ValueError) as e:
            batch.abort()
            if isinstance(e, OSError) and _is_pressure(e):
                raise _Pressure(str(e)) from e
            raise
        self.totals.add(manifest)
        metrics.observe_manifest(manifest)
        self._after_commit(batch, manifest)
        return manifest

    def _after_commit(self, batch: Batch, manifest: dict[str, Any]) -> None:
        attempt = 0
        while True:
            try:
                if self.cfg.writer.fsync != "off":
                    fsync_dir(self.cfg.spool_dir / BATCHES)
                if batch.source.replayable:  # before the intent goes: see identity.py
                    self.checkpoints.save(batch.source, batch.end_offset, batch.end_line)
                batch.finish(manifest)
                return
            except OSError as e:
                if not _is_pressure(e) or self.stopping:
                    return  # committed: the next start's recovery finishes the renames
                self.backoff(attempt, str(e))
                attempt += 1

    def due(self, batch: Batch) -> bool:
        w = self.cfg.writer
        return batch.lines_read > 0 and (batch.size() >= w.segment_max_bytes or batch.age >= w.segment_max_age)

    #: How `backoff` names what was refused (the Sender's is a server, not the disk).
    refused = "loglake write: disk refused a write"

    def backoff(self, attempt: int, err: str) -> None:
        metrics.backoff()
        delay = min(30.0, 0.5 * 2**attempt)
        print(f"{self.refused} ({err}); retrying in {delay:.1f}s", flush=True)
        end = time.monotonic() + delay
        while time.monotonic() < end and not self.stopping:
            time.sleep(0.1)

    # ---- files -----------------------------------------------------------------------------
    def write_file(self, path: str, follow: bool = False) -> None:
        """Read `path` from its checkpoint to EOF (or forever with `follow`). Rotated siblings that
        hold bytes past a checkpoint (rotations since the last run) are read first."""
        if follow:
            from loglake.writer.follow import Follower

            Follower(self, path).run()
            return
        if self.paths.register(path):
            mark_history(path, self.checkpoints)
        for c in unread_siblings(path, self.checkpoints, self.paths):
            self._read_once(c.path, explicit=False)
        self._read_once(path, explicit=True)

    def _read_once(self, path: str, explicit: bool) -> None:
        """One file to its end. A last line without newline is a line only if the file is finished
        (compressed, or idle for rotate_wait): a live file's half-written line is read whole later."""
        attempt = 0
        while True:
            tail = FileTail.open(self, path)
            try:
                start, idle = tail.offset, tail.idle_for()  # idle since its last write, before we read it
                got = tail.pump(final=False)
                if (tail.pending or tail.long) and self._finished(path, tail, idle):
                    tail.pump(final=True)  # the last line has no newline, and never will
                tail.seal()
                if explicit and start and not got:
                    self.totals.skipped_files.append(path)
                return
            except _Pressure as e:
                if self.stopping:
                    raise PressureError(f"{path}: stopped while the disk was full ({e})") from None
                self.backoff(attempt, str(e))
                attempt += 1
            finally:
                tail.close()
            if self.stopping:
                return

    def _finished(self, path: str, tail: FileTail, idle: float) -> bool:
        """Compressed, or idle for rotate_wait, and not a copy of a live file with the same content."""
        wait = self.cfg.writer.rotate_wait
        if tail.src.kind != "gzip" and idle < wait:
            return False
        return not continued_elsewhere(path, content_head(tail.raw, tail.src.kind), tail.read_pos, wait)

    # ---- streams (stdin) ---------------------------------------------------------------------
    def write_stream(self, fd: int, name: str = "<stdin>") -> None:
        """Read a pipe to EOF (see stream.py: not replayable, so a refused batch is redone from memory)."""
        from loglake.writer.stream import StreamReader

        StreamReader(self, SourceInfo("stdin", name, False)).run(fd)
