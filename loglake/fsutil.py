"""Small durable-filesystem helpers: atomic writes, fsync of directories, process identity."""

from __future__ import annotations

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


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write via temp file + fsync + rename, so readers see the old or the new file, never half.

    The temporary name `.<name>.<pid>.tmp` is skipped by every reader: hidden for Trino and Hive,
    and not `*.parquet` or `*.json` for DuckDB's globs and our own listings.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
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
