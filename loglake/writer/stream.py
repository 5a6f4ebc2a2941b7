"""stdin (any pipe): read as it comes, seal by size and age, never lose what was received.

A pipe cannot be read twice, so the chunks of the open batch stay in memory until it is sealed:
when the disk refuses a write, the aborted batch is redone from them after a backoff.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable
from typing import TYPE_CHECKING

from loglake.writer.lines import Chunk
from loglake.writer.segments import Batch, SourceInfo

if TYPE_CHECKING:
    from loglake.writer.pipeline import Writer


class StreamReader:
    def __init__(self, writer: Writer, src: SourceInfo) -> None:
        self.w = writer
        self.src = src
        self.batch: Batch | None = None
        self.chunks: list[Chunk] = []  # the open batch's input, for a redo

    def _due(self) -> bool:
        return self.batch is not None and self.w.due(self.batch)

    def run(self, fd: int) -> None:
        w = self.w
        block = w.cfg.writer.read_block_bytes
        offset, line, pending = 0, 0, b""
        eof = False
        while not eof and not w.stopping:
            ready, _, _ = select.select([fd], [], [], w.cfg.writer.poll_interval)
            if ready:
                data = os.read(fd, block)
                if data:
                    w.on_bytes(len(data))
                    pending += data
                else:
                    eof = True
            cut = len(pending) if eof else pending.rfind(b"\n") + 1
            if cut:
                chunk = Chunk(pending[:cut], offset, line + 1)
                pending = pending[cut:]
                self._add(chunk)
                offset, line = chunk.end_offset, line + chunk.line_count
            elif self._due():
                self._commit([], seal=lambda: True)
        if pending:  # stopped by a signal: what was received is kept
            self._add(Chunk(pending, offset, line + 1))
        self._commit([], seal=lambda: self.batch is not None)

    def _add(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self._commit([chunk], seal=self._due)

    def _commit(self, todo: list[Chunk], seal: Callable[[], bool]) -> None:
        """Process `todo`, then seal if `seal()` says so; under disk pressure, back off and redo
        the whole open batch from the chunks kept in memory."""
        from loglake.writer.pipeline import PressureError, _Pressure

        w = self.w
        attempt = 0
        while True:
            try:
                if todo and self.batch is None:
                    self.batch = w.open_batch(self.src, todo[0].start_offset, todo[0].start_line - 1)
                for c in todo:
                    assert self.batch is not None
                    w.process(self.batch, c)
                todo = []
                if self.batch is not None and seal():
                    batch, self.batch = self.batch, None
                    w.seal(batch)
                    self.chunks = []
                return
            except _Pressure as e:
                self.batch = None
                todo = list(self.chunks)
                if w.stopping and attempt >= 3:
                    lost = sum(c.line_count for c in todo)
                    raise PressureError(f"{self.src.path}: disk full; {lost} received lines not written") from None
                w.backoff(attempt, str(e))
                attempt += 1
