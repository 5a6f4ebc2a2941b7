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


#: Modes of what loglake creates under the data dir. Without transforms the lake and the catalog hold
#: raw user names and client IPs too, so nothing is for everyone; `storage.group_readable` opens the
#: lake and the catalog (never spool, dead letters or state) to the owner's group, for teams.
FILE_MODE, DIR_MODE = 0o600, 0o700
GROUP_FILE_MODE, GROUP_DIR_MODE = 0o640, 0o750


def shared_modes(group_readable: bool) -> tuple[int, int]:
    """(file mode, folder mode) for the lake and the catalog."""
    return (GROUP_FILE_MODE, GROUP_DIR_MODE) if group_readable else (FILE_MODE, DIR_MODE)


def restrict_umask(group_readable: bool) -> None:
    """Called once by the CLI: what DuckDB, SQLite and fsspec create for loglake (a DuckDB WAL, a
    copied Parquet file) gets no bits for others either, whatever the user's umask."""
    os.umask(0o027 if group_readable else 0o077)


def _create_missing(path: Path, mode: int) -> list[Path]:
    """mkdir -p giving each folder it creates `mode` (never touching one that existed); returns them."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=mode)
        os.chmod(d, mode)  # mkdir's mode is cut by the umask
    return missing


def new_private_dirs(path: Path) -> Path:
    """mkdir -p, folders it creates 0700; an existing folder's mode is left alone (a shared 1777
    folder keeps its sticky bit: the 0600 files in it protect themselves)."""
    _create_missing(path, DIR_MODE)
    return path


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by its owner only: spool, dead letters and state hold
    raw log lines, which may carry personal data."""
    _create_missing(path, DIR_MODE)  # parents we create are ours too (`spool/` under `data_dir/`)
    if path.stat().st_mode & 0o077:
        os.chmod(path, DIR_MODE)
    return path


def touch_private(path: Path) -> None:
    """Create (0600, in a private folder) or touch a marker file, such as a "last done at" stamp."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    os.utime(path)


def create_file(path: Path, mode: int) -> bool:
    """Create `path` empty with exactly `mode` (True), or leave an existing one alone (False)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True


def make_dirs_durably(path: Path, mode: int = DIR_MODE) -> list[Path]:
    """mkdir -p (new folders get `mode`); returns the parents whose entries changed (to fsync after
    the file inside is written)."""
    return [m.parent for m in _create_missing(path, mode)]


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True, mode: int = FILE_MODE) -> None:
    """Write via temp file + fsync + rename, so readers see the old or the new file, never half.

    The temporary name `.<name>.<pid>.tmp` is skipped by every reader: hidden for Trino and Hive,
    and not `*.parquet` or `*.json` for DuckDB's globs and our own listings.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        if mode & ~FILE_MODE:
            os.fchmod(fd, mode)  # a group mode, which the umask may have cut
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
