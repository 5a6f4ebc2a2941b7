"""The writer: source bytes -> chunks of lines -> parser -> tables -> batches, sealed and checkpointed."""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import IO, Any

import pyarrow.compute as pc

from loglake.config import Config
from loglake.errors import SourceError
from loglake.writer.checkpoints import FINGERPRINT_BYTES, CheckpointStore, SourceLock, fingerprint, identify
from loglake.writer.fields import TableRouter, needed_columns
from loglake.writer.lines import Chunk, split_lines
from loglake.writer.parsers import load_parser
from loglake.writer.recovery import recover_spool
from loglake.writer.segments import Batch, DeadLetter, SourceInfo

#: Errors that mean "the disk is full or failing": pause and retry instead of losing lines.
_PRESSURE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO}
_GZIP_MAGIC = b"\x1f\x8b"


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


class Writer:
    """Runs sources through the pipeline; one instance per `loglake write` process."""

    def __init__(self, cfg: Config, on_bytes: Callable[[int], None] | None = None) -> None:
        self.cfg = cfg
        self.parser = load_parser(cfg.writer, needed_columns(cfg))
        self.routers = [TableRouter(t) for t in cfg.tables]
        self.totals = Totals()
        self.checkpoints = CheckpointStore(cfg)
        self.batch: Batch | None = None
        self.stopping = False
        self.on_bytes = on_bytes or (lambda n: None)
        self.recovery = recover_spool(cfg)
        self._raw: IO[bytes] | None = None  # the file being read, for fingerprints

    # ---- lifecycle -------------------------------------------------------------------------
    @contextmanager
    def signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT stop reading at the next block boundary, then the batch is sealed."""

        def handler(signum: int, frame: object) -> None:
            self.stopping = True

        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    # ---- chunk processing ------------------------------------------------------------------
    def _open(self, src: SourceInfo, offset: int, line: int) -> Batch:
        try:
            self.batch = Batch(self.cfg, self._refresh(src), offset, line + 1)
        except OSError as e:  # the intent file could not be written
            if e.errno in _PRESSURE_ERRNOS:
                raise _Pressure(str(e)) from e
            raise
        return self.batch

    def _refresh(self, src: SourceInfo) -> SourceInfo:
        """Complete a short fingerprint once the file has grown (a new or just-truncated file), so a
        restart can recognise the file by its first bytes; the prefix of a log never changes."""
        raw = self._raw
        if src.kind != "file" or raw is None or src.fp_len >= FINGERPRINT_BYTES:
            return src
        fp, n = fingerprint(raw)
        return src if n == src.fp_len else replace(src, fingerprint=fp, fp_len=n)

    def process(self, chunk: Chunk) -> None:
        """Parse one chunk into the open batch; raises _Pressure if the disk refuses the write."""
        batch = self.batch
        assert batch is not None
        try:
            self._process(batch, chunk)
        except OSError as e:
            if e.errno in _PRESSURE_ERRNOS:
                batch.abort()
                self.batch = None
                raise _Pressure(str(e)) from e
            raise

    def _process(self, batch: Batch, chunk: Chunk) -> None:
        split = split_lines(chunk, self.cfg.writer.max_line_bytes)
        count = len(split.lines) + len(split.rejects)
        chunk.line_count = count  # known now; saves counting newlines in the block again
        result = self.parser.parse(split.lines)
        parsed = result.table
        rejects = list(split.rejects)
        if split.index is not None:
            rejects += [(split.index[i].as_py(), reason) for i, reason in result.rejects]
            if parsed.num_rows:
                parsed = parsed.set_column(
                    parsed.schema.get_field_index("_line"), "_line", pc.take(split.index, parsed["_line"])
                )
        else:
            rejects += result.rejects
        for router in self.routers:
            rows, excluded = router.route(parsed)
            if rows.num_rows:
                batch.write(router.table.name, rows)
            if excluded:
                batch.filtered[router.table.name] = batch.filtered.get(router.table.name, 0) + excluded
        if rejects:
            rejects.sort()
            raw = chunk.raw_lines()
            batch.dead_letter([DeadLetter(raw[i][0], chunk.start_line + i, reason, raw[i][1]) for i, reason in rejects])
        if parsed.num_rows + len(result.rejects) != len(split.lines):  # a bug must never lose lines silently
            raise AssertionError(
                f"parser accounted for {parsed.num_rows + len(result.rejects)} of {len(split.lines)} lines"
            )
        batch.lines_read += count
        batch.end_offset = chunk.end_offset
        batch.end_line = chunk.start_line + count - 1

    def seal(self) -> dict[str, Any] | None:
        batch, self.batch = self.batch, None
        if batch is None:
            return None
        batch.source = self._refresh(batch.source)
        try:
            manifest = batch.seal()
        except OSError as e:
            if e.errno in _PRESSURE_ERRNOS:
                batch.abort()
                raise _Pressure(str(e)) from e
            raise
        if manifest is None:
            return None
        self.totals.add(manifest)
        if batch.source.replayable:
            try:
                self.checkpoints.save(batch.source, batch.end_offset, batch.end_line)
            except OSError as e:  # only a cache: the checkpoint is derived from manifests
                if e.errno not in _PRESSURE_ERRNOS:
                    raise
        return manifest

    def _due(self) -> bool:
        b = self.batch
        w = self.cfg.writer
        return b is not None and b.lines_read > 0 and (b.size() >= w.segment_max_bytes or b.age >= w.segment_max_age)

    def _backoff(self, attempt: int, err: str) -> None:
        delay = min(30.0, 0.5 * 2**attempt)
        print(f"loglake write: disk refused a write ({err}); retrying in {delay:.1f}s", flush=True)
        end = time.monotonic() + delay
        while time.monotonic() < end and not self.stopping:
            time.sleep(0.1)

    # ---- files -----------------------------------------------------------------------------
    def write_file(self, path: str, follow: bool = False) -> None:
        """Read `path` from its checkpoint to EOF (or forever with `follow`), surviving pressure."""
        if follow:
            for rotated, _offset in self.checkpoints.rotated_away(path):
                self.write_file(rotated, follow=False)  # its unread tail comes first, as in a live run
        attempt = 0
        while True:
            try:
                self._write_file(path, follow)
                return
            except _Pressure as e:
                if self.stopping:
                    raise SourceError(f"{path}: stopped while the disk was full ({e})") from None
                self._backoff(attempt, str(e))
                attempt += 1

    def _open_source(self, path: str) -> tuple[IO[bytes], IO[bytes], SourceInfo]:
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as e:
            raise SourceError(f"{path}: cannot open: {e.strerror}") from e
        if os.path.isdir(path):
            raw.close()
            raise SourceError(f"{path}: is a directory")
        magic = raw.read(2)
        raw.seek(0)
        if magic == _GZIP_MAGIC:
            src = identify(path, raw, "gzip")
            return raw, gzip.GzipFile(fileobj=raw, mode="rb"), src
        return raw, raw, identify(path, raw, "file")

    def _write_file(self, path: str, follow: bool) -> None:
        raw, handle, src = self._open_source(path)
        self._raw = raw
        self._lock = SourceLock(self.cfg, src)
        try:
            offset, line = self.checkpoints.load(src, raw)
            size = os.fstat(raw.fileno()).st_size
            if src.kind == "file" and offset > size:  # truncated since: start again (copytruncate)
                src = self.checkpoints.reset(src)
                offset, line = 0, 0
            if offset and not follow and src.kind == "file" and offset == size:
                self.totals.skipped_files.append(path)
                return
            try:
                handle.seek(offset)
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise SourceError(f"{path}: cannot resume at byte {offset}: {e}") from e
            self._read_loop(path, raw, handle, src, offset, line, follow)
        finally:
            self.seal_or_abort()
            self._raw = None
            self._lock.release()
            self._close_pair(raw, handle)

    def seal_or_abort(self) -> None:
        if self.batch is not None:
            with contextlib.suppress(_Pressure):  # left unsealed: the lines are read again next time
                self.seal()

    def _read_loop(
        self, path: str, raw: IO[bytes], handle: IO[bytes], src: SourceInfo, offset: int, line: int, follow: bool
    ) -> None:
        first = raw
        try:
            self._loop(path, raw, handle, src, offset, line, follow)
        finally:
            if self._raw is not None and self._raw is not first:  # files reopened after a rotation
                self.seal_or_abort()  # while the file is open: sealing reads its fingerprint
                self._close_pair(self._raw, self._handle)
                self._raw = None

    def _loop(
        self, path: str, raw: IO[bytes], handle: IO[bytes], src: SourceInfo, offset: int, line: int, follow: bool
    ) -> None:
        block = self.cfg.writer.read_block_bytes
        pending = b""
        self._open(src, offset, line)
        while not self.stopping:
            try:
                data = handle.read(block)
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise SourceError(f"{path}: read failed at byte {offset + len(pending)}: {e}") from e
            if data and follow and self._truncated_under_us(raw):
                # copytruncate raced our read: what we just read may be the new content at the old
                # offset (torn lines). Drop it and start the file again from its first byte.
                src = self._from_first_byte(handle, src)
                offset, line, pending = 0, 0, b""
                continue
            if data:
                self.on_bytes(len(data))
                pending += data
                cut = pending.rfind(b"\n") + 1
                if cut:
                    chunk = Chunk(pending[:cut], offset, line + 1)
                    pending = pending[cut:]
                    offset, line = self._feed(chunk, src, offset, line)
                continue
            # End of the data there is now.
            if not follow:
                break
            if self._due():
                self.seal()
                self._open(src, offset, line)
            src = self.batch.source if self.batch is not None else src
            rotated = self._rotation(path, raw, src, offset + len(pending))
            if rotated == "renamed":
                # Finish the old inode: whatever it still holds, and a last line without newline.
                while data := handle.read(block):
                    pending += data
                if pending:
                    offset, line = self._feed(Chunk(pending, offset, line + 1), src, offset, line)
                self.seal()
                self._close_pair(raw, handle)
                raw, handle, src = self._wait_reopen(path)
                self._raw, self._handle = raw, handle
                self._lock.release()
                self._lock = SourceLock(self.cfg, src)
                offset, line, pending = 0, 0, b""
                self._open(src, 0, 0)
            elif rotated == "truncated":
                src = self._from_first_byte(handle, src)
                offset, line, pending = 0, 0, b""
            else:
                time.sleep(self.cfg.writer.poll_interval)
        if pending and not follow and not self.stopping:
            # The file's last line has no newline: at the end of a finished file it is a line.
            # (When following or stopping it may still be growing; the checkpoint excludes it.)
            self._feed(Chunk(pending, offset, line + 1), src, offset, line)

    def _from_first_byte(self, handle: IO[bytes], src: SourceInfo) -> SourceInfo:
        """After copytruncate: seal what was read, forget the old identity, read from byte 0."""
        self.seal()
        handle.seek(0)
        src = self.checkpoints.reset(src)
        self._open(src, 0, 0)
        return src

    @staticmethod
    def _close_pair(raw: IO[bytes], handle: IO[bytes]) -> None:
        if handle is not raw:
            handle.close()
        raw.close()

    def _feed(self, chunk: Chunk, src: SourceInfo, offset: int, line: int) -> tuple[int, int]:
        self.process(chunk)
        if self._due():
            self.seal()
            self._open(src, chunk.end_offset, line + chunk.line_count)
        return chunk.end_offset, line + chunk.line_count

    def _truncated_under_us(self, raw: IO[bytes]) -> bool:
        return self.batch is not None and _prefix_changed(raw, self.batch.source)

    def _rotation(self, path: str, raw: IO[bytes], src: SourceInfo, position: int) -> str:
        """'renamed' (path is a new file), 'truncated' (copytruncate) or '' (nothing happened).

        A truncated file that has already grown past our position is caught by its first bytes
        no longer matching the fingerprint."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return ""  # mid-rotation: the new file is not there yet; keep reading the old one
        cur = os.fstat(raw.fileno())
        if (st.st_dev, st.st_ino) != (cur.st_dev, cur.st_ino):
            return "renamed"
        if cur.st_size < position:
            return "truncated"
        if _prefix_changed(raw, src):
            return "truncated"
        return ""

    def _wait_reopen(self, path: str) -> tuple[IO[bytes], IO[bytes], SourceInfo]:
        while not self.stopping:
            if os.path.exists(path):
                raw, handle, src = self._open_source(path)
                return raw, handle, src
            time.sleep(self.cfg.writer.poll_interval)
        raise SourceError(f"{path}: stopped while waiting for the rotated file to reappear")

    # ---- streams (stdin) ---------------------------------------------------------------------
    def write_stream(self, fd: int, name: str = "<stdin>") -> None:
        """Read a pipe to EOF (see stream.py: not replayable, so a refused batch is redone from memory)."""
        from loglake.writer.stream import StreamReader

        StreamReader(self, SourceInfo("stdin", name, False)).run(fd)


def _prefix_changed(raw: IO[bytes], src: SourceInfo) -> bool:
    """The file's first bytes no longer match its fingerprint: truncated and rewritten in place."""
    return bool(src.fp_len) and fingerprint(raw, src.fp_len)[0] != src.fingerprint
