"""`loglake write --follow PATH`: tail the file at PATH across every rotation style.

- rename (logrotate `create` + USR1, Apache graceful): the server keeps appending to the renamed
  file until it reopens its log, so the old file stays open and is read beside the new one until it
  has been idle for `rotate_wait` *and* the new file has data; only then is a last line without a
  newline taken as complete.
- copytruncate: the bytes past our checkpoint live only in the copy. It is found among the path's
  rotated siblings by content (identity.py), read from the checkpoint to its end, and the truncated
  file is read from byte 0.
- restarts: every rotated sibling holding bytes past a checkpoint is found at start (siblings.py)
  and read beside the live file, oldest first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from loglake.errors import SourceError
from loglake.writer.siblings import find_copy, mark_history, unread_siblings
from loglake.writer.tail import FileTail

if TYPE_CHECKING:
    from loglake.writer.pipeline import Writer


class Follower:
    def __init__(self, w: Writer, path: str) -> None:
        self.w = w
        self.path = os.path.abspath(path)
        self.current: FileTail | None = None
        self.draining: list[FileTail] = []
        self.attempt = 0

    def run(self) -> None:
        w = self.w
        if w.paths.register(self.path):
            mark_history(self.path, w.checkpoints)
        try:
            for c in unread_siblings(self.path, w.checkpoints, w.paths):
                self._add_draining(c.path)
            while not w.stopping:
                self._open_current()
                got = self._pump_all()
                self._check_current()
                self._retire_draining()
                self._seal_due()
                if got < w.cfg.writer.read_block_bytes and not w.stopping:
                    time.sleep(w.cfg.writer.poll_interval)  # let lines accumulate: one parse per poll
        finally:
            self._close_all()

    # ---- the files --------------------------------------------------------------------------
    def _add_draining(self, path: str, finished: bool = False) -> None:
        """Read a rotated file beside the live one; `finished` (a copy, or compressed): nobody
        appends to it, so it is read to its end and retired at once."""
        try:
            tail = FileTail.open(self.w, path)
        except SourceError as e:
            print(f"loglake write: {e}", flush=True)
            return
        tail.finish_now = finished or tail.src.kind == "gzip"
        self.draining.append(tail)

    def _open_current(self) -> None:
        if self.current is None and os.path.exists(self.path):
            try:
                self.current = FileTail.open(self.w, self.path)
            except FileNotFoundError:
                return  # rotated away between the check and the open
            self.current.watch_truncation = self.current.src.kind == "file"

    def _tails(self) -> list[FileTail]:
        return [*self.draining, *([self.current] if self.current else [])]

    def _pump_all(self) -> int:
        got = [0]
        for tail in self._tails():
            self._guard(lambda t=tail: got.__setitem__(0, got[0] + t.pump(final=False)))
        return got[0]

    def _guard(self, step: Callable[[], object]) -> bool:
        """Run one step; a refused write backs off (the tail already went back to its checkpoint)."""
        from loglake.writer.pipeline import _Pressure

        try:
            step()
        except _Pressure as e:
            self.w.backoff(self.attempt, str(e))
            self.attempt += 1
            return False
        self.attempt = 0
        return True

    def _check_current(self) -> None:
        cur = self.current
        if cur is None or self.w.stopping:
            return
        if cur.src.kind == "file" and cur.was_truncated():
            self._after_truncate(cur)
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # mid-rotation: the new file is not there yet; keep reading the old one
        if (st.st_dev, st.st_ino) != cur.ident:
            cur.watch_truncation = False
            self.draining.append(cur)  # renamed: the server may still be appending to it
            self.current = None

    def _after_truncate(self, cur: FileTail) -> None:
        """copytruncate: commit what was read, read the rest of the old content from the copy, then
        the truncated file from its first byte."""
        old = cur.src
        if not self._guard(cur.seal):
            return  # the disk refused the commit: try again next round
        copy = find_copy(self.path, old)
        if copy is None and os.path.getsize(self.path) < cur.sealed[0]:
            print(
                f"loglake write: {self.path} was truncated and no rotated copy of it was found: "
                "lines past the last checkpoint may be lost",
                flush=True,
            )
        cur.restart_from_zero()  # first: it gives up its claim on the old content to the copy's reader
        if copy is not None:
            self._add_draining(copy, finished=True)

    def _retire_draining(self) -> None:
        """A rotated file is finished once idle for rotate_wait while the new file has data."""
        wait = self.w.cfg.writer.rotate_wait
        new_has_data = self.current is not None and os.fstat(self.current.raw.fileno()).st_size > 0
        for tail in list(self.draining):
            if self.w.stopping:
                return
            finished = tail.finish_now or (tail.idle_for() >= wait and new_has_data)
            if finished and self._guard(lambda t=tail: (t.pump(final=True), t.seal())):
                tail.close()
                self.draining.remove(tail)

    def _seal_due(self) -> None:
        for tail in self._tails():
            if tail.batch is not None and self.w.due(tail.batch):
                self._guard(tail.seal)

    def _close_all(self) -> None:
        """Seal every tail's whole lines (a partial last line stays unread for the next run)."""
        from loglake.writer.pipeline import _Pressure

        failed = 0
        for tail in self._tails():
            try:
                tail.seal()
            except _Pressure:
                failed += 1
            finally:
                tail.close()
        self.draining, self.current = [], None
        if failed:
            from loglake.writer.pipeline import PressureError

            raise PressureError(f"{self.path}: the disk refused the last seal; the lines will be read again")
