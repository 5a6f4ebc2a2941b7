"""One open log file being read: its handle, identity, lock, position, pending bytes and open batch.

The position that matters for exactly-once is `sealed`: the end of the last committed batch. What
was read past it is in memory or in the open batch; after a refused write (a full disk) the batch
is aborted and the file is read again from `sealed`. A line longer than `max_line_bytes` is never
held whole: its first bytes are kept for the dead letter and the rest is skipped up to its newline,
so memory stays flat whatever the input.
"""

from __future__ import annotations

import gzip
import os
import time
import zlib
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING

from loglake.errors import SourceError
from loglake.writer.claims import ContentClaim, same_content
from loglake.writer.identity import (
    FINGERPRINT_BYTES,
    close_content,
    content_head,
    digest,
    identify,
    open_content,
    prefix_changed,
)
from loglake.writer.lines import Chunk
from loglake.writer.segments import Batch, DeadLetter, SourceInfo

if TYPE_CHECKING:
    from loglake.writer.pipeline import Writer

_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass
class _LongLine:
    start: int  # source offset of the line
    prefix: bytes  # its first max_line_bytes bytes
    length: int  # bytes seen so far, without the newline


def _joined(pending: bytes, data: bytes, cut: int) -> bytes:
    """`pending + data[:cut]` with one copy at most (none for a read that ends at a newline)."""
    if pending:
        return pending + memoryview(data)[:cut]
    return data if cut == len(data) else data[:cut]


class FileTail:
    """Reads one file from its checkpoint; `pump` feeds whole lines into batches, `seal` commits."""

    def __init__(
        self, w: Writer, path: str, raw: IO[bytes], handle: IO[bytes], src: SourceInfo, head: bytes, lock: ContentClaim
    ) -> None:
        self.w, self.path, self.raw, self.handle, self.src, self.lock = w, path, raw, handle, src, lock
        self.head = head  # the content's first bytes as this reader knows them: what `src` identifies
        self.sealed = (0, 0)  # (offset, lines before it) of the last commit: where a redo starts
        self.offset, self.line = 0, 0  # end of what was fed to the batch
        self.pending = b""
        self.long: _LongLine | None = None
        self.batch: Batch | None = None
        self.truncated = False  # set by `pump` when the file's first bytes changed under us
        self.watch_truncation = False
        self.caught_up = False
        self.finish_now = False  # read to the end and retire (a compressed or copied rotation)
        st = os.fstat(raw.fileno())
        self.ident = (st.st_dev, st.st_ino)
        self.last_data = time.monotonic() - max(0.0, time.time() - st.st_mtime)

    @classmethod
    def open(cls, w: Writer, path: str) -> FileTail:
        """Open `path` at its checkpoint (found by content, so a rotated or compressed copy resumes)."""
        raw, handle, kind = open_content(path)
        try:
            head = content_head(raw, kind)
            src = identify(path, raw, kind, head)
            lock = ContentClaim(w.cfg, src, head)  # before the checkpoint is read: see claims.py
        except BaseException:
            close_content(raw, handle)
            raise
        tail = cls(w, path, raw, handle, src, head, lock)
        try:
            cp = w.checkpoints.lookup(head) if src.fp_len else None
            if cp is None and src.fp_len:
                w.checkpoints.save(src, 0, 0)  # seen: found again after a rotation even if never sealed
            tail._seek(cp.offset if cp else 0, cp.line if cp else 0)
        except BaseException:
            tail.close()
            raise
        return tail

    def _seek(self, offset: int, line: int) -> None:
        try:
            self.handle.seek(offset)
        except _READ_ERRORS as e:
            raise SourceError(f"{self.path}: cannot resume at byte {offset}: {e}") from e
        self.sealed = (offset, line)
        self.offset, self.line, self.pending, self.long = offset, line, b"", None

    @property
    def read_pos(self) -> int:
        return self.offset + len(self.pending) + (self.long.length if self.long else 0)

    # ---- reading ---------------------------------------------------------------------------
    def pump(self, final: bool) -> int:
        """Read what the file holds now and feed its whole lines; with `final`, a last line without
        newline is a line too (the file is finished). Returns the bytes read. Under disk pressure
        the open batch is aborted, the position goes back to `sealed`, and _Pressure propagates."""
        from loglake.writer.pipeline import _Pressure

        try:
            return self._pump(final)
        except _Pressure:
            self.batch = None
            self._seek(*self.sealed)
            raise

    def _pump(self, final: bool) -> int:
        total = 0
        block = self.w.cfg.writer.read_block_bytes
        while not self.w.stopping:
            pos = self.read_pos
            try:
                data = self.handle.read(block)
            except _READ_ERRORS as e:
                raise SourceError(f"{self.path}: read failed at byte {pos}: {e}") from e
            if not data:
                break
            if self.watch_truncation and prefix_changed(self.raw, self.src):
                self.truncated = True  # what was just read may be new content at the old offset
                return total
            if self._learn(pos, data):
                continue
            total += len(data)
            self.w.on_bytes(len(data))
            self.last_data = time.monotonic()
            self._take(data)
            if len(data) < block:
                # A short read is the end of the file for now. Reading again at once would find the
                # line or two written meanwhile and parse them as a block of their own (Arrow's fixed
                # cost per block, for every line a busy server writes): the caller's poll lets them
                # accumulate instead.
                break
        if self.w.stopping:
            return total
        if final:
            self._flush_last()
        if not self.caught_up:  # the backlog is read: commit it, so a writer restarted in a loop advances
            self.caught_up = True
            self.seal()
        return total

    def _take(self, data: bytes) -> None:
        limit = self.w.cfg.writer.max_line_bytes
        if self.long is not None:
            nl = data.find(b"\n")
            if nl < 0:
                self.long.length += len(data)
                return
            self.long.length += nl
            self._emit_long(newline=True)
            data = data[nl + 1 :]
        # One copy at most: the partial line left from the last read plus this read up to its
        # last newline (joining first and slicing after copied a block twice).
        cut = data.rfind(b"\n") + 1
        if cut:
            self._feed(Chunk(_joined(self.pending, data, cut), self.offset, self.line + 1))
            self.pending = b""
            buf = data[cut:]
        else:
            buf = self.pending + data
        if len(buf) > limit:
            self.long, buf = _LongLine(self.offset, buf[:limit], len(buf)), b""
        self.pending = buf

    def _flush_last(self) -> None:
        if self.long is not None:
            self._emit_long(newline=False)
        elif self.pending:
            pending, self.pending = self.pending, b""
            self._feed(Chunk(pending, self.offset, self.line + 1))

    def _batch(self) -> Batch:
        if self.batch is None:
            self.batch = self.w.open_batch(self.src, self.offset, self.line)
        return self.batch

    def _feed(self, chunk: Chunk) -> None:
        batch = self._batch()
        self.w.process(batch, chunk)
        self.offset, self.line = chunk.end_offset, self.line + chunk.line_count
        if self.w.due(batch):
            self.seal()

    def _emit_long(self, newline: bool) -> None:
        """Dead-letter an over-long line as `too_long` with its first bytes, length and a flag."""
        long, self.long = self.long, None
        assert long is not None
        batch = self._batch()
        limit = self.w.cfg.writer.max_line_bytes
        reason = f"too_long: {long.length} bytes > {limit}"
        self.w.dead_letter(batch, [DeadLetter(long.start, self.line + 1, reason, long.prefix, long.length)])
        self.offset, self.line = long.start + long.length + (1 if newline else 0), self.line + 1
        batch.lines_read += 1
        batch.end_offset, batch.end_line = self.offset, self.line
        if self.w.due(batch):
            self.seal()

    def _learn(self, pos: int, data: bytes) -> bool:
        """Lengthen the identity with the content's first bytes as they were just read (never from
        the file again: it may hold other content by now, see identity.py) and claim it. True if
        `data` must not be taken: the file was empty at first sight and another writer has read
        this content meanwhile, so reading resumes at that writer's checkpoint."""
        known = len(self.head)
        if known >= FINGERPRINT_BYTES or not pos <= known < pos + len(data):
            return False
        self.head += data[known - pos : FINGERPRINT_BYTES - pos]
        self.src = replace(self.src, fingerprint=digest(self.head), fp_len=len(self.head))
        self.lock.update(self.src, self.head)
        if known:
            return False
        now = content_head(self.raw, self.src.kind)
        cp = self.w.checkpoints.lookup(now) if same_content(now, self.head) else None
        if cp is not None and cp.offset > self.sealed[0]:
            self._seek(cp.offset, cp.line)
            return True
        self.w.checkpoints.save(self.src, 0, 0)  # seen, as `open` records a file with content
        return False

    # ---- rotation ---------------------------------------------------------------------------
    def was_truncated(self) -> bool:
        """Shorter than what we read, or its first bytes changed (truncated and already regrown)."""
        if self.truncated:
            return True
        return os.fstat(self.raw.fileno()).st_size < self.read_pos or prefix_changed(self.raw, self.src)

    def restart_from_zero(self) -> None:
        """After copytruncate the same inode holds new content: a new identity, read from byte 0."""
        self.batch = None
        self.handle.seek(0)
        self.head = content_head(self.raw, self.src.kind)
        self.src = identify(self.path, self.raw, self.src.kind, self.head)
        self.lock.update(self.src, self.head)
        self._seek(0, 0)
        self.truncated = False
        if self.src.fp_len:
            self.w.checkpoints.save(self.src, 0, 0)

    def idle_for(self) -> float:
        return time.monotonic() - self.last_data

    # ---- commit -----------------------------------------------------------------------------
    def seal(self) -> None:
        """Commit the open batch (whole lines only; a pending partial line stays for later)."""
        from loglake.writer.pipeline import _Pressure

        batch, self.batch = self.batch, None
        if batch is None:
            return
        batch.source = self.src  # its identity may have grown since the batch opened
        try:
            self.w.seal(batch)
        except _Pressure:
            self._seek(*self.sealed)
            raise
        self.sealed = (batch.end_offset, batch.end_line)

    def close(self) -> None:
        if self.batch is not None:
            self.batch.abort()  # unsealed: read again from the checkpoint next time
            self.batch = None
        close_content(self.raw, self.handle)
        self.lock.release()
