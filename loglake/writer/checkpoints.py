"""File identity and checkpoints: where to resume reading a file after a restart.

A file is identified by (device, inode) plus a hash of its first bytes, so a reused inode or a
truncated-and-rewritten file is not mistaken for the one we were reading (Vector and Fluent Bit do
the same). The checkpoint is derived from sealed manifests; `state/checkpoints/` caches it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import IO

from loglake.config import Config
from loglake.errors import SourceError
from loglake.fsutil import atomic_write_json, read_json
from loglake.writer.segments import BATCHES, SourceInfo

FINGERPRINT_BYTES = 1024


def fingerprint(handle: IO[bytes], length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    """Hash of the first `length` bytes (fewer if the file is shorter); `pread` leaves the reader's
    position and buffer alone, so this is cheap enough to call after every read while following."""
    head = os.pread(handle.fileno(), length, 0)
    return hashlib.sha256(head).hexdigest()[:32], len(head)


def identify(path: str, handle: IO[bytes], kind: str) -> SourceInfo:
    st = os.fstat(handle.fileno())
    fp, fp_len = fingerprint(handle)
    return SourceInfo(kind, os.path.abspath(path), True, st.st_dev, st.st_ino, fp, fp_len)


def same_file(a: SourceInfo, b: dict, handle: IO[bytes]) -> bool:
    """Whether checkpoint/manifest source `b` is the file open as `handle` (identity `a`)."""
    if (a.dev, a.inode) != (b.get("dev"), b.get("inode")):
        return False
    fp_len = int(b.get("fp_len", 0))
    return fp_len > 0 and fingerprint(handle, fp_len)[0] == b.get("fingerprint")


class CheckpointStore:
    """Reads and writes checkpoints under `state/checkpoints/`, one JSON file per (dev, inode)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.dir = cfg.state_dir / "checkpoints"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, src: SourceInfo) -> Path:
        return self.dir / f"{src.dev}-{src.inode}.json"

    def load(self, src: SourceInfo, handle: IO[bytes]) -> tuple[int, int]:
        """(byte offset, lines before it) to resume at: the newest sealed end for this file."""
        best = (0, 0)
        candidates = []
        path = self._path(src)
        # The cached state is written right after each manifest commits, so only manifests at least
        # as new as it can be ahead of it (a crash between the two): reading those keeps a restart
        # cheap however many manifests a long-lived spool holds.
        since = 0.0
        if path.exists():
            candidates.append(read_json(path))
            since = path.stat().st_mtime - 2.0  # margin for coarse filesystem timestamps
        batches = self.cfg.spool_dir / BATCHES
        if batches.is_dir():
            for entry in os.scandir(batches):
                name = entry.name
                if not name.endswith(".json") or name.endswith(".open.json") or name.startswith("."):
                    continue
                if since and entry.stat().st_mtime < since:
                    continue
                data = read_json(Path(entry.path))
                candidates.append({**data["source"], "offset": data["end_offset"], "line": data["last_line"]})
        for c in candidates:
            if same_file(src, c, handle) and c["offset"] > best[0]:
                best = (int(c["offset"]), int(c.get("line", 0)))
        return best

    def save(self, src: SourceInfo, offset: int, line: int) -> None:
        data = {**src.as_dict(), "offset": offset, "line": line}
        atomic_write_json(self._path(src), data, durable=self.cfg.writer.fsync != "off")

    def rotated_away(self, path: str) -> list[tuple[str, int]]:
        """Files that were read as `path`, have since been renamed beside it (logrotate), and still
        hold lines past their checkpoint: (current name, checkpoint offset). A writer killed right
        after a rotation finishes these before following the new file."""
        target = os.path.abspath(path)
        folder = os.path.dirname(target)
        try:
            current = os.stat(target)
            current_id = (current.st_dev, current.st_ino)
        except FileNotFoundError:
            current_id = None
        wanted = {}
        for state in self.dir.glob("*.json"):
            data = read_json(state)
            if data.get("path") == target and (data["dev"], data["inode"]) != current_id:
                wanted[(data["dev"], data["inode"])] = data
        found = []
        if wanted:
            for entry in os.scandir(folder):
                st = entry.stat(follow_symlinks=False)
                data = wanted.get((st.st_dev, st.st_ino))
                if data is None or not entry.is_file(follow_symlinks=False) or st.st_size <= data["offset"]:
                    continue
                with open(entry.path, "rb") as f:
                    if fingerprint(f, int(data.get("fp_len", 0)))[0] == data.get("fingerprint"):
                        found.append((entry.path, int(data["offset"])))
        return sorted(found)

    def reset(self, src: SourceInfo) -> SourceInfo:
        """After copytruncate the same inode holds new content: forget the old fingerprint."""
        self._path(src).unlink(missing_ok=True)
        return replace(src, fingerprint="", fp_len=0)


class SourceLock:
    """An flock per (dev, inode): two writers reading one file would duplicate every line."""

    def __init__(self, cfg: Config, src: SourceInfo) -> None:
        locks = cfg.state_dir / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        self.path = locks / f"{src.dev}-{src.inode}.lock"
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise SourceError(f"{src.path}: another loglake writer is reading this file") from None

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1
