"""What the manifests cover against what is on disk: unread bytes, and bytes read twice.

Counts alone cannot show a loss or a double: `lines read = rows + filtered + dead-lettered` holds
for what was read, and says nothing of bytes that never were, nor of bytes read twice. This
compares every path loglake reads, and its rotated siblings (by content identity), with their
checkpoints, so a gap of any cause shows up; and it lays the byte ranges of every sealed batch
side by side per content, so a range sealed twice (two readers from one checkpoint, a copy read
again from byte 0) shows up as well.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from loglake.config import Config
from loglake.writer.identity import CheckpointStore, PathRegistry, content_of, digest, gzip_isize
from loglake.writer.siblings import head_of, rotated_siblings

#: fingerprint -> (its length, or 0 if unknown; the (start, end) byte ranges sealed under it)
Reads = dict[str, tuple[int, list[tuple[int, int]]]]


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


def _files(registry: PathRegistry) -> Iterator[tuple[str, list[str]]]:
    """Each path loglake has read, with it and its rotated siblings."""
    for path in registry.paths():
        yield path, [path, *rotated_siblings(path)]


def coverage(cfg: Config) -> list[dict[str, Any]]:
    """Per path loglake has read: each of its files still on disk, with bytes not yet sealed."""
    if not cfg.state_dir.is_dir():
        return []
    store = CheckpointStore(cfg)
    registry = PathRegistry(cfg)
    out = []
    for path, files in _files(registry):
        first_seen = registry.first_seen(path) or 0.0
        found = []
        for f in files:
            with contextlib.suppress(OSError):
                got = _file_coverage(f, f == path, first_seen, store)
                if got is not None:
                    found.append(got)
        out.append({"path": path, "files": found, "unread_bytes": sum(f["unread_bytes"] for f in found)})
    return out


def add_read(reads: Reads, manifest: dict[str, Any]) -> None:
    """Note the byte range a sealed batch of a file covers (other sources have no byte ranges)."""
    src = manifest.get("source") or {}
    fp, start, end = src.get("fingerprint"), manifest.get("start_offset"), manifest.get("end_offset")
    if src.get("kind") in ("file", "gzip") and fp and src.get("fp_len") and start is not None and end is not None:
        reads.setdefault(fp, (int(src["fp_len"]), []))[1].append((int(start), int(end)))


def add_folded(reads: Reads, sources: dict[str, Any]) -> None:
    """The ranges of batches folded into the ledger (merged per fingerprint, lengths not kept)."""
    for fp, entry in sources.items():
        if entry.get("kind") in ("file", "gzip"):
            ranges = reads.setdefault(fp, (0, []))[1]
            ranges += [(int(lo), int(hi)) for lo, hi in entry.get("ranges", [])]


def _twice(spans: list[tuple[int, int]]) -> list[list[int]]:
    """The parts of `spans` covered more than once, merged."""
    out: list[list[int]] = []
    end: int | None = None
    for lo, hi in sorted(spans):
        if end is not None and lo < min(hi, end):
            if out and lo <= out[-1][1]:
                out[-1][1] = max(out[-1][1], min(hi, end))
            else:
                out.append([lo, min(hi, end)])
        end = hi if end is None else max(end, hi)
    return out


def _contents(cfg: Config, reads: Reads) -> dict[frozenset[str], str]:
    """The fingerprints that name one content (a short one taken while the file was short, the
    full one later), grouped by the file on disk that holds it; a fingerprint no file holds is a
    content of its own."""
    lengths = {c.fingerprint: c.fp_len for c in CheckpointStore(cfg).records()}
    lengths.update({fp: n for fp, (n, _) in reads.items() if n})
    groups: dict[frozenset[str], str] = {}
    for _, files in _files(PathRegistry(cfg)):
        for f in files:
            got = head_of(f)
            head = got[0] if got else b""
            keys = frozenset(
                fp for fp in reads if 0 < lengths.get(fp, 0) <= len(head) and digest(head[: lengths[fp]]) == fp
            )
            if keys:
                groups.setdefault(keys, f)
    for keys in [k for k in groups if any(k < other for other in groups)]:
        del groups[keys]  # a shorter copy of a content another file holds whole
    grouped = set().union(*groups) if groups else set()
    for fp in reads.keys() - grouped:
        groups[frozenset({fp})] = f"(content {fp}, on no disk)"
    return groups


def doubled(cfg: Config, reads: Reads) -> list[dict[str, Any]]:
    """Per content: the byte ranges sealed more than once (each such line is in the lake twice)."""
    if not reads or not cfg.state_dir.is_dir():
        return []
    out = []
    for keys, where in _contents(cfg, reads).items():
        twice = _twice([r for fp in keys for r in reads[fp][1]])
        if twice:
            out.append({"file": where, "doubled_bytes": sum(b - a for a, b in twice), "doubled_ranges": twice})
    return out
