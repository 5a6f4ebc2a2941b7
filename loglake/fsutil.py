"""Small durable-filesystem helpers: atomic writes, fsync of directories, process identity."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename or create in `path` durable (POSIX needs the directory fsynced too)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by its owner only: spool, dead letters and state hold
    raw log lines, which may carry personal data."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):  # parents we create are ours too (`spool/` under `data_dir/`)
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
        os.chmod(d, 0o700)  # mkdir's mode is cut by the umask
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def make_dirs_durably(path: Path) -> list[Path]:
    """mkdir -p; returns the parents whose entries changed (to fsync after the file inside is written)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    return [m.parent for m in missing]


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True, mode: int = 0o600) -> None:
    """Write via temp file + fsync + rename, so readers see the old or the new file, never half.

    The temporary name `.<name>.<pid>.tmp` is skipped by every reader: hidden for Trino and Hive,
    and not `*.parquet` or `*.json` for DuckDB's globs and our own listings.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. ENOSPC: leave no half-written temp file behind
        raise
    if durable:
        fsync_dir(path.parent)


def sweep_dead_temps(folder: Path) -> None:
    """Remove the temp files (`.<name>.<pid>.tmp`) that processes killed mid-write left in `folder`.

    A kill -9 between create and rename cannot clean up after itself; the next write into the same
    folder does. A temp file of a live process (any pid that still exists) is left alone.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        pid = name[:-4].rpartition(".")[2]
        if not pid.isdigit() or int(pid) == os.getpid() or not process_token(int(pid)).endswith(":?"):
            continue  # not ours to judge, ours, or a process that still runs
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)


def atomic_write_json(path: Path, data: Any, durable: bool = True) -> None:
    atomic_write_bytes(path, json.dumps(data, sort_keys=True).encode("utf-8"), durable)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def process_token(pid: int | None = None) -> str:
    """`pid:starttime`: survives pid reuse, unlike a bare pid, when checking whether a holder lives."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return f"{pid}:{fields[19]}"
    except (OSError, IndexError):
        return f"{pid}:?"


def token_alive(token: str) -> bool:
    """True if the process that wrote `token` is still running (same pid and start time)."""
    try:
        pid = int(token.split(":", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return token == process_token()
    return process_token(pid) == token and not process_token(pid).endswith(":?")
