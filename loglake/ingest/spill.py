"""The handler's spill files: where a `LoglakeHandler` keeps every batch until the server took it.

One file per live handler, `handler-<id>.ndjson`, held by an flock on `handler-<id>.lock` for the
handler's whole life (never by pid: containers all run as pid 1, and the kernel drops an flock the
moment its holder dies). A batch is written as a header `{"loglake_batch": KEY, "lines": N}` and
its N lines before its first POST, and `{"loglake_done": KEY}` is appended once it was taken: the
key is chosen once and survives a lost answer, a retry and a crash, so a resend is a replay on the
server, never a second copy. Lines the queue had no room for are appended bare and get a batch
(and key) on the next round. A new handler adopts every file in its folder whose lock is free.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from loglake.fsutil import FILE_MODE, atomic_write_bytes

_BATCH, _DONE = b'{"loglake_batch":', b'{"loglake_done":'


def new_key() -> str:
    return f"handler-{uuid.uuid4().hex}"


def frame(key: str, lines: bytes) -> bytes:
    head = {"loglake_batch": key, "lines": lines.count(b"\n")}
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + lines


def done_marker(key: str) -> bytes:
    return json.dumps({"loglake_done": key}, separators=(",", ":")).encode() + b"\n"


def parse(data: bytes, batch_size: int) -> tuple[list[tuple[str, bytes]], bool]:
    """(batches not yet done, whether bare lines were framed into new ones) of a spill file."""
    batches: dict[str, bytes] = {}
    bare: list[bytes] = []
    lines = data.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith(_DONE):
            batches.pop(str(json.loads(line)["loglake_done"]), None)
        elif line.startswith(_BATCH):
            head = json.loads(line)
            n = int(head["lines"])
            batches[str(head["loglake_batch"])] = b"".join(lines[i : i + n])
            i += n
        elif line.endswith(b"\n"):  # a torn last line (a crash mid-append) is no record
            bare.append(line)
    for k in range(0, len(bare), batch_size):
        batches[new_key()] = b"".join(bare[k : k + batch_size])
    return list(batches.items()), bool(bare)


@dataclass
class SpillFile:
    """One spill file and the lock that makes it ours."""

    path: Path
    lock_fd: int

    @classmethod
    def take(cls, folder: Path, name: str) -> SpillFile | None:
        """Lock `<folder>/<name>.lock` (created if missing); None when a live handler holds it, or
        it is not ours (in a shared folder another user's files are never read)."""
        lock = folder / f"{name}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_uid != os.getuid():
                raise BlockingIOError
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            data = folder / f"{name}.ndjson"
            if data.is_symlink() or (data.exists() and data.stat().st_uid != os.getuid()):
                raise BlockingIOError
        except OSError:
            os.close(fd)
            return None
        return cls(data, fd)

    def append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def pending(self, batch_size: int) -> list[tuple[str, bytes]]:
        """The batches still to send; bare lines are framed first (durably, in one rename), so
        they keep one key from now on."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        batches, framed = parse(data, batch_size)
        if not batches:
            self.path.unlink(missing_ok=True)
        elif framed:
            atomic_write_bytes(self.path, b"".join(frame(k, b) for k, b in batches))
        return batches

    def release(self, remove: bool) -> None:
        """Let go of the lock; with `remove`, the files too (the data file first: while we hold
        the lock nobody else reads it)."""
        if remove:
            self.path.unlink(missing_ok=True)
            self.path.with_suffix(".lock").unlink(missing_ok=True)
        os.close(self.lock_fd)


def adopt(folder: Path, own: str) -> list[SpillFile]:
    """Every spill file in `folder` that no live handler holds (a dead or finished one's)."""
    if not folder.is_dir():
        return []
    found = []
    for p in sorted(folder.glob("handler-*.ndjson")):
        if p.stem != own:
            f = SpillFile.take(folder, p.stem)
            if f is not None:
                found.append(f)
    return found
