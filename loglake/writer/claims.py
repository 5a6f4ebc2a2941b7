"""Content claims: one reader per content, so two writers never start from one checkpoint.

A checkpoint belongs to a content (identity.py), not to a file: `access.log`, its `copytruncate`
copy and a backfilled `cp` of it all resume from the same record. A lock per (device, inode) let
two writers read two such files at once, both from that record, and every line was sealed twice.
So a reader *claims the content*: it registers the content's first bytes, and a claim conflicts
with any live claim whose first bytes are a prefix of its own or the other way round (a growing
short file is the same content at every length, so the conflict never depends on how much of it
each reader had seen), or on the same inode (an empty file has no content to compare yet).

Each claim is a file `state/locks/content/<token>.lock` flocked by its reader for as long as it
reads, holding the reader's (dev, inode) and first bytes (raw log bytes: the folder is private).
Claims are checked and written under one short-held flock on `.registry`, so two readers cannot
both see "free". The kernel drops a dead reader's flock; the next claim removes its file (and any
lock file of the older `<dev>-<inode>.lock` scheme nobody holds), so the folder holds one file per
open reader, whatever happened before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from loglake.config import Config
from loglake.errors import SourceError
from loglake.fsutil import private_dir
from loglake.writer.segments import SourceInfo

_LEGACY = re.compile(r"^\d+-\d+\.lock$")  # `state/locks/<dev>-<inode>.lock`, one per file ever read


class SourceBusy(SourceError):
    """Another reader holds this content: retrying later (or after it finished) is safe."""

    transient = True


def same_content(a: bytes, b: bytes) -> bool:
    """Whether two first-byte samples can be one content: the shorter is a prefix of the longer."""
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]


def _held(path: str) -> int | None:
    """An open descriptor of `path` if a live reader holds its flock; None (and the file removed)
    if its holder is gone."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return fd
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # its reader died: nobody can be waiting on it (we hold the registry)
    os.close(fd)
    return None


class ContentClaim:
    """Held by one open source for as long as it is read; `update` when its content grows or changes."""

    def __init__(self, cfg: Config, src: SourceInfo, head: bytes) -> None:
        self.locks = private_dir(cfg.state_dir / "locks")
        self.dir = private_dir(self.locks / "content")
        self.path = self.dir / f"{os.getpid()}-{os.urandom(6).hex()}.lock"
        self.fd = -1
        with self._registry():
            self._check(src, head)
            self.fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._write(src, head)

    @contextlib.contextmanager
    def _registry(self) -> Iterator[None]:
        fd = os.open(self.dir / ".registry", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for one scan of a few small files
            yield
        finally:
            os.close(fd)

    def update(self, src: SourceInfo, head: bytes) -> None:
        """The source now holds `head` (its first bytes grew, or a truncate made it a new content);
        raises SourceBusy if another reader claimed that content meanwhile."""
        with self._registry():
            self._check(src, head)
            self._write(src, head)

    def _check(self, src: SourceInfo, head: bytes) -> None:
        for entry in list(os.scandir(self.locks)):  # the scheme before content claims left one per inode
            if _LEGACY.match(entry.name) and (fd := _held(entry.path)) is not None:
                os.close(fd)
        for entry in list(os.scandir(self.dir)):
            if not entry.name.endswith(".lock") or entry.path == str(self.path):
                continue
            fd = _held(entry.path)
            if fd is None:
                continue
            try:
                other = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
            except ValueError:
                other = {}
            finally:
                os.close(fd)
            if self._conflicts(src, head, other):
                raise SourceBusy(
                    f"{src.path}: another loglake writer is reading this content "
                    f"(as {other.get('path', '?')}); try again when it is done"
                )

    @staticmethod
    def _conflicts(src: SourceInfo, head: bytes, other: dict) -> bool:
        if "dev" not in other:
            return False  # not a content claim (or written by a reader that died mid-write)
        if (int(other["dev"]), int(other["inode"])) == (src.dev, src.inode):
            return True
        return same_content(head, bytes.fromhex(str(other.get("head", ""))))

    def _write(self, src: SourceInfo, head: bytes) -> None:
        data = json.dumps({"path": src.path, "dev": src.dev, "inode": src.inode, "head": head.hex()}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        """Remove the claim file while still holding it, then drop the flock."""
        if self.fd >= 0:
            with self._registry():  # a scan in progress sees it held or gone, never half-released
                Path(self.path).unlink(missing_ok=True)
                os.close(self.fd)
            self.fd = -1
