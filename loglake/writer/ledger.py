"""Bounded state: old batch manifests folded into one ledger; checkpoints of content gone pruned.

Every sealed batch leaves a manifest (`spool/_batches/<id>.json`): what was read, from where, and
what it became. They are the evidence that counts reconcile, but a realtime profile writes ~17,000
a day, and `status` read all of them. Once a batch's segments are all rolled over and it is older
than the HTTP idempotency window (24 h), its counts move into `spool/_batches/_ledger.json` (totals
per table, and per source the byte ranges and line counts), and the manifest is deleted. The ledger
is written first with the ids it absorbed; a crash before the deletions is finished by the next
fold, which deletes those ids without counting them again.

A fold holds `spool/_batches/.fold.lock` (an flock) from reading the ledger to writing it: a
`rollover --watch` and a cron `rollover` folding at once would otherwise each write a ledger
without the other's counts. A batch whose intent (`<id>.open.json`) still exists is never folded,
however old: its writer died between the commit and the cleanup, and the manifest is what tells
recovery that the batch committed (without it, the batch would be read again).

Checkpoints (`state/checkpoints/<fingerprint>.json`) are per content; one whose content no file
of its path's rotation family holds any more and that has not moved for `state_retention` days is
deleted, compressed or not; so is a remembered path (`state/paths/`) gone with all its rotations.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loglake.config import Config
from loglake.fsutil import atomic_write_json, read_json, touch_private
from loglake.writer.segments import BATCHES

LEDGER = "_ledger.json"
FOLD_LOCK = ".fold.lock"
KEEP_SECONDS = 26 * 3600  # beyond the 24 h idempotency window of `serve`
_EVERY = 60.0  # a fold at most once a minute per process


def _empty() -> dict[str, Any]:
    return {
        "batches": 0,
        "lines_read": 0,
        "dead_lettered": 0,
        "rows": {},
        "filtered": {},
        "dead_letter_reasons": {},
        "sources": {},
        "absorbed": [],
    }


def read_ledger(cfg: Config) -> dict[str, Any]:
    try:
        return {**_empty(), **read_json(cfg.spool_dir / BATCHES / LEDGER)}
    except (OSError, ValueError):
        return _empty()


def _sealed_at(batch_id: str) -> float | None:
    """Batch ids start with their UTC creation time (`20261201T100032181419Z-...`)."""
    try:
        return datetime.strptime(batch_id[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _add(ledger: dict[str, Any], m: dict[str, Any]) -> None:
    ledger["batches"] += 1
    ledger["lines_read"] += int(m.get("lines_read", 0))
    ledger["dead_lettered"] += int(m.get("dead_lettered", 0))
    for key in ("rows", "filtered", "dead_letter_reasons"):
        for k, n in (m.get(key) or {}).items():
            ledger[key][k] = ledger[key].get(k, 0) + int(n)
    src = m.get("source") or {}
    sid = src.get("fingerprint") or f"{src.get('kind', '?')}:{src.get('path', '')}"
    entry = ledger["sources"].setdefault(sid, {"path": src.get("path", ""), "kind": src.get("kind", ""), "lines": 0})
    entry["lines"] += int(m.get("lines_read", 0))
    if "start_offset" in m and "end_offset" in m:
        entry["ranges"] = _merge_range(entry.get("ranges", []), int(m["start_offset"]), int(m["end_offset"]))


def _merge_range(ranges: list[list[int]], start: int, end: int) -> list[list[int]]:
    out: list[list[int]] = []
    for lo, hi in sorted([*ranges, [start, end]]):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def _pending(cfg: Config, m: dict[str, Any]) -> bool:
    """Whether any segment of the batch still waits for (or failed) rollover."""
    for table in m.get("files") or {}:
        name = f"{m['id']}.csv"
        if (cfg.spool_dir / table / name).exists() or (cfg.spool_dir / "_failed" / table / name).exists():
            return True
    return False


def fold(cfg: Config, now: float | None = None, force: bool = False) -> int:
    """Fold old, fully rolled-over manifests into the ledger; returns how many were folded (0 when
    another process is folding right now: the next fold takes what it left)."""
    folder = cfg.spool_dir / BATCHES
    stamp = cfg.state_dir / ".ledger-folded"
    now = time.time() if now is None else now
    if not folder.is_dir():
        return 0
    with contextlib.suppress(OSError):
        if not force and now - stamp.stat().st_mtime < _EVERY:
            return 0
    fd = os.open(folder / FOLD_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        folded = _fold_locked(cfg, folder, now)
    finally:
        os.close(fd)  # drops the lock
    touch_private(stamp)
    return folded


def _fold_locked(cfg: Config, folder: Path, now: float) -> int:
    ledger = read_ledger(cfg)
    _delete(folder, ledger["absorbed"])  # a previous fold stopped before its deletions
    absorbed = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json") or name.endswith(".open.json") or name[0] in "._":
            continue
        when = _sealed_at(name)
        if when is None or when > now - KEEP_SECONDS:
            break  # names sort by time: the rest are younger
        if (folder / f"{name[: -len('.json')]}.open.json").exists():
            continue  # committed, not yet cleaned up: recovery needs the manifest
        with contextlib.suppress(OSError, ValueError, KeyError):
            m = read_json(folder / name)
            if not _pending(cfg, m):
                _add(ledger, m)
                absorbed.append(name)
    if absorbed:
        ledger["absorbed"] = absorbed
        atomic_write_json(folder / LEDGER, ledger, durable=cfg.writer.fsync != "off")
        _delete(folder, absorbed)
        ledger["absorbed"] = []
        atomic_write_json(folder / LEDGER, ledger, durable=cfg.writer.fsync != "off")
    return len(absorbed)


def _delete(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).unlink(missing_ok=True)


def prune_checkpoints(cfg: Config, retention: float, now: float | None = None) -> int:
    """Delete checkpoints untouched for `retention` seconds whose content no file holds now, then
    the remembered paths gone with their content; returns how many checkpoints went.

    Which files may hold a checkpoint's content is the rotated-name rule of siblings.py (its path,
    the path it was rotated from, and their rotated siblings, compressed or not), and whether one
    does is decided by content: a checkpoint of `access.log-20261201` is kept while logrotate
    keeps `access.log-20261201.gz`, so a cron `loglake write access.log-*` never reads it again."""
    folder = cfg.state_dir / "checkpoints"
    now = time.time() if now is None else now
    if not folder.is_dir():
        return 0
    heads: dict[str, bytes | None] = {}
    pruned = 0
    for entry in list(os.scandir(folder)):
        if not entry.name.endswith(".json") or entry.name[0] == ".":
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            st = entry.stat()
            if now - st.st_mtime < retention:
                continue
            record = read_json(Path(entry.path))
            path, fp_len, fingerprint = str(record.get("path", "")), int(record["fp_len"]), str(record["fingerprint"])
            if record.get("kind", "file") not in ("file", "gzip") or not path or fp_len <= 0:
                continue
            if _held_on_disk(path, fp_len, fingerprint, heads):
                continue
            if os.stat(entry.path).st_mtime_ns == st.st_mtime_ns:  # not saved again meanwhile
                os.unlink(entry.path)
                pruned += 1
    _prune_paths(cfg, retention, now)
    return pruned


def _held_on_disk(path: str, fp_len: int, fingerprint: str, heads: dict[str, bytes | None]) -> bool:
    """Whether a file of `path`'s family starts with the content `fingerprint` names."""
    from loglake.writer.identity import digest
    from loglake.writer.siblings import family, head_of

    for candidate in family(path):
        if candidate not in heads:
            got = head_of(candidate) if os.path.isfile(candidate) else None
            heads[candidate] = got[0] if got else None
        head = heads[candidate]
        if head is not None and len(head) >= fp_len and digest(head[:fp_len]) == fingerprint:
            return True
    return False


def _prune_paths(cfg: Config, retention: float, now: float) -> None:
    """Forget a path read more than `retention` ago when neither it nor any rotated sibling exists
    (`access.log-20261201` once compressed, its `.gz` once logrotate dropped it): a cron reading
    each day's rotated file names a new path every day. A live path is never forgotten while its
    rotations are on disk, so a moment between logrotate's rename and create changes nothing."""
    from loglake.writer.siblings import rotated_siblings

    folder = cfg.state_dir / "paths"
    for entry in list(os.scandir(folder)) if folder.is_dir() else []:
        if not entry.name.endswith(".json") or entry.name[0] == ".":
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if now - entry.stat().st_mtime < retention:
                continue
            path = str(read_json(Path(entry.path))["path"])
            if not os.path.lexists(path) and not rotated_siblings(path):
                os.unlink(entry.path)


__all__ = ["LEDGER", "fold", "prune_checkpoints", "read_ledger"]
