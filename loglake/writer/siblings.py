"""Rotated siblings of a log path: where the bytes past a checkpoint went.

logrotate and its peers leave the old content beside the path under a name that starts with the
path's own name (`access.log.1`, `access.log.2.gz`, `access.log-20261201`, `access.log.1.gz`).
Content identity (identity.py) says which of them continues which checkpoint; whatever the number
of rotations while the writer was down, every sibling with bytes past its checkpoint is found.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import time
import zlib
from dataclasses import dataclass

from loglake.errors import SourceError
from loglake.writer.claims import same_content
from loglake.writer.identity import CheckpointStore, PathRegistry, content_head, content_of, digest, gzip_isize
from loglake.writer.segments import SourceInfo

#: What may follow the base name of a rotated file: a separator, then something with a digit
#: (`.1`, `-20261201`, `.2026-12-01-1733000000`), optionally compressed.
_ROTATED_SUFFIX = re.compile(r"^[._-][0-9A-Za-z._-]*\d[0-9A-Za-z._-]*$")


@dataclass(frozen=True)
class Candidate:
    """A rotated file to read from `offset` (`line` lines precede it)."""

    path: str
    offset: int
    line: int
    mtime: float


def rotated_siblings(path: str) -> list[str]:
    """Regular files beside `path` whose names are `path`'s name plus a rotation suffix."""
    target = os.path.abspath(path)
    folder, base = os.path.split(target)
    out = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for e in entries:
        if e.name == base or not e.name.startswith(base):
            continue
        if _ROTATED_SUFFIX.match(e.name[len(base) :]) and e.is_file(follow_symlinks=False):
            out.append(e.path)
    return out


def live_names(path: str) -> list[str]:
    """The paths `path` may have been rotated from, by the same rule read the other way:
    `access.log` for `access.log.1`, `access.log-20261201` and `access.log-20261201.gz`, and
    `access_log` for Apache's `access_log.1` (longest first; a name with no such suffix has none)."""
    folder, name = os.path.split(os.path.abspath(path))
    cuts = [cut for cut in range(len(name) - 1, 0, -1) if _ROTATED_SUFFIX.match(name[cut:])]
    return [os.path.join(folder, name[:cut]) for cut in cuts]


def family(path: str) -> list[str]:
    """Every file that may hold `path`'s content now: itself, the paths it was rotated from and the
    rotated siblings of all of them (`access.log-20261201` after `compress` is `...-20261201.gz`)."""
    names = [os.path.abspath(path), *live_names(path)]
    found = dict.fromkeys(names)
    for name in names:
        found.update(dict.fromkeys(rotated_siblings(name)))
    return list(found)


def has_bytes_past(path: str, offset: int) -> bool:
    """Whether the content of `path` is longer than `offset` (decompressing a gzip as far as needed)."""
    with content_of(path) as (raw, handle, kind):
        try:
            if kind == "file":
                return os.fstat(raw.fileno()).st_size > offset
            # A rotated .gz is finished: its trailer holds the content length mod 2^32. Equal means
            # read to its end (decompressing to the checkpoint on every restart costs more each day).
            if gzip_isize(raw) == offset % 2**32:
                return False
            handle.seek(offset)
            return bool(handle.read(1))
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
            return False  # a gzip still being written: looked at again next time


def head_of(path: str) -> tuple[bytes, float, tuple[int, int]] | None:
    """(first content bytes, mtime, (dev, inode)), or None if it cannot be opened."""
    try:
        with content_of(path) as (raw, _, kind):
            st = os.fstat(raw.fileno())
            return content_head(raw, kind), st.st_mtime, (st.st_dev, st.st_ino)
    except SourceError:
        return None


def _live_identity(path: str) -> tuple[bytes, tuple[int, int]] | None:
    got = head_of(path) if os.path.exists(path) else None
    return (got[0], got[2]) if got else None


def unread_siblings(path: str, store: CheckpointStore, registry: PathRegistry) -> list[Candidate]:
    """Rotated files of `path` holding bytes not yet sealed, oldest first.

    A sibling continues a checkpoint if its content starts with the checkpointed bytes; a sibling
    with no checkpoint is read whole if it changed after loglake first read `path` (it was created
    and rotated away while the writer was down). A sibling that is the live file's content too (a
    `copytruncate` copy before the truncate) is left to the live file."""
    first_seen = registry.first_seen(path) or float("inf")
    live = _live_identity(path)
    found = []
    for sib in rotated_siblings(path):
        got = head_of(sib)
        if got is None or not got[0]:
            continue
        head, mtime, ident = got
        if live and (ident == live[1] or same_content(head, live[0])):
            continue
        cp = store.lookup(head)
        if cp is not None and cp.ignored:
            continue
        offset, line = (cp.offset, cp.line) if cp else (0, 0)
        if cp is None and mtime < first_seen:
            continue
        if has_bytes_past(sib, offset):
            found.append(Candidate(sib, offset, line, mtime))
    return sorted(found, key=lambda c: (c.mtime, c.path))


def find_copy(path: str, src: SourceInfo) -> str | None:
    """The rotated sibling holding the content `src` identifies (after a `copytruncate`), preferring
    an uncompressed copy (logrotate may be compressing it right now)."""
    matches = []
    for sib in rotated_siblings(path):
        got = head_of(sib)
        if got is None or len(got[0]) < src.fp_len or got[2] == (src.dev, src.inode):
            continue
        if digest(got[0][: src.fp_len]) == src.fingerprint:
            matches.append((sib.endswith(".gz"), -got[1], sib))
    return min(matches)[2] if matches else None


def mark_history(path: str, store: CheckpointStore) -> None:
    """The first time loglake reads `path`: its existing rotated siblings are history the user did
    not ask for (read them explicitly with `loglake write FILE` to backfill)."""
    live = _live_identity(path)
    for sib in rotated_siblings(path):
        got = head_of(sib)
        if got is None or not got[0] or (live and same_content(got[0], live[0])):
            continue
        if store.lookup(got[0]) is None:
            with contextlib.suppress(OSError):
                store.save(SourceInfo("file", sib, True, 0, 0, digest(got[0]), len(got[0])), 0, 0, ignored=True)


def continued_elsewhere(path: str, head: bytes, length: int, live_within: float) -> bool:
    """Whether the file `path` was rotated from (`access.log` for `access.log.1.gz`) holds the same
    content, at least as far, and was written in the last `live_within` seconds: then `path` is a
    copy of a live file, and its last line without a newline is not finished, however idle or
    compressed the copy is. (After a real rotation the file at the old name holds other content.)"""
    for twin in live_names(path):
        got = head_of(twin) if os.path.isfile(twin) else None
        if got is None or time.time() - got[1] >= live_within or not same_content(got[0], head):
            continue
        if has_bytes_past(twin, length - 1):
            return True
    return False
