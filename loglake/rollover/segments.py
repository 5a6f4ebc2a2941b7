"""The life of a closed segment: claimed, converted, retired to `_done/` or parked in `_failed/`.

State is the folder a segment sits in (the dlt pattern). A claim is an `flock` on a lock file
beside the segment: the kernel drops it when its holder dies, so a crashed rollover never leaves a
stale claim, and two rollovers never convert the same segment at once.
"""

from __future__ import annotations

import fcntl
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

from loglake.config import Config
from loglake.fsutil import atomic_write_bytes, fsync_dir, private_dir
from loglake.schema import validate_identifier

DONE = "_done"
FAILED = "_failed"


@dataclass(frozen=True)
class Segment:
    table: str
    path: Path

    @property
    def id(self) -> str:
        return self.path.name[: -len(".csv")]


def stray_folders(cfg: Config) -> list[str]:
    """Folders under `spool/` whose names cannot be table names (put there by hand): ignored by
    rollover before any work, and listed by `loglake status`."""
    if not cfg.spool_dir.is_dir():
        return []
    return sorted(
        d.name for d in cfg.spool_dir.iterdir() if d.is_dir() and not d.name.startswith("_") and not _is_table(d.name)
    )


def _is_table(name: str) -> bool:
    try:
        validate_identifier(name, "table name")
    except ValueError:
        return False
    return True


def closed_segments(cfg: Config) -> list[Segment]:
    """Every sealed segment waiting in `spool/<table>/`, oldest first (ids sort by start time)."""
    out: list[Segment] = []
    if not cfg.spool_dir.is_dir():
        return out
    for table_dir in sorted(cfg.spool_dir.iterdir()):
        if not table_dir.is_dir() or table_dir.name.startswith("_") or not _is_table(table_dir.name):
            continue
        out.extend(Segment(table_dir.name, p) for p in sorted(table_dir.glob("*.csv")))
    out.sort(key=lambda s: (s.id, s.table))
    return out


class Claim:
    """Exclusive right to convert one segment; `acquire` returns False if another process has it."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.lock_path = segment.path.with_name(f".{segment.id}.lock")
        self.fd = -1

    def acquire(self) -> bool:
        """Lock the lock file, then check it is still the one at its path: a holder unlinks it on
        release (while still holding the lock), so a lock taken on an unlinked file claims nothing."""
        while True:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # released and unlinked between our open and our lock: open the new one
        self.fd = fd
        if not self.segment.path.exists():  # finished by another process between listing and locking
            self.release()
            return False
        return True

    def release(self) -> None:
        if self.fd >= 0:
            self.lock_path.unlink(missing_ok=True)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def retire(cfg: Config, segment: Segment) -> None:
    """After its files exist and its partitions are registered: keep it in `_done/` or delete it."""
    if cfg.rollover.retention == "delete":
        segment.path.unlink(missing_ok=True)
    else:
        dest = private_dir(cfg.spool_dir / DONE / segment.table)
        os.replace(segment.path, dest / segment.path.name)
        fsync_dir(dest)
    fsync_dir(segment.path.parent)


def park_failed(cfg: Config, segment: Segment, error: BaseException) -> Path:
    """Move a segment that cannot be converted to `_failed/` with the reason beside it."""
    dest = private_dir(cfg.spool_dir / FAILED / segment.table)
    target = dest / segment.path.name
    reason = (  # 0600 like the segment: the error may quote the raw value it choked on
        f"segment: {segment.path}\ntable: {segment.table}\nerror: {type(error).__name__}: {error}\n\n"
        + "".join(traceback.format_exception(error))
    )
    atomic_write_bytes(dest / f"{segment.id}.error", reason.encode("utf-8"), durable=False)
    os.replace(segment.path, target)
    fsync_dir(dest)
    return target


def failed_segments(cfg: Config) -> list[Path]:
    return sorted((cfg.spool_dir / FAILED).glob("*/*.csv"))
