"""What the manifests cover against what is on disk: unread bytes per source file.

Counts alone cannot show a loss: `lines read = rows + filtered + dead-lettered` holds for what was
read, and says nothing of bytes that never were. This compares every path loglake reads, and its
rotated siblings (by content identity), with their checkpoints, so a gap of any cause shows up.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from loglake.config import Config
from loglake.writer.identity import CheckpointStore, PathRegistry, content_of, gzip_isize
from loglake.writer.siblings import head_of, rotated_siblings


def content_size(path: str) -> int:
    """Length of the content: the file's size, or a gzip's ISIZE trailer (its length mod 2^32)."""
    with content_of(path) as (raw, _, kind):
        return os.fstat(raw.fileno()).st_size if kind == "file" else (gzip_isize(raw) or 0)


def _file_coverage(path: str, live: bool, first_seen: float, store: CheckpointStore) -> dict[str, Any] | None:
    got = head_of(path)
    if got is None:
        return None
    head, mtime, _ = got
    cp = store.lookup(head) if head else None
    if cp is not None and cp.ignored:
        return None  # history from before loglake first read the path
    if cp is None and not live and mtime < first_seen:
        return None
    size = content_size(path)
    read_to = cp.offset if cp else 0
    return {"file": path, "size": size, "read_to": read_to, "unread_bytes": max(0, size - read_to)}


def coverage(cfg: Config) -> list[dict[str, Any]]:
    """Per path loglake has read: each of its files still on disk, with bytes not yet sealed."""
    if not cfg.state_dir.is_dir():
        return []
    store = CheckpointStore(cfg)
    registry = PathRegistry(cfg)
    out = []
    for path in registry.paths():
        first_seen = registry.first_seen(path) or 0.0
        files = []
        for f in [path, *rotated_siblings(path)]:
            with contextlib.suppress(OSError):
                got = _file_coverage(f, f == path, first_seen, store)
                if got is not None:
                    files.append(got)
        out.append({"path": path, "files": files, "unread_bytes": sum(f["unread_bytes"] for f in files)})
    return out
