"""The core of `loglake serve`: requests become sealed batches, many requests to one fsync.

A request is acknowledged (202) only after the batch holding its lines is sealed: data files,
their folders and the manifest fsync'd. Requests that arrive while a commit runs wait for the next
one, so under load one fsync serves many requests (group commit) instead of capping throughput at
one fsync per request. An `Idempotency-Key` is recorded in the manifest with the request's result:
a retry of a committed key gets the same answer and writes nothing; a retry while the first is in
flight waits for it. A batch a crash left unsealed was never acknowledged, so recovery discards
it and the client's retry is the one copy (writer/recovery.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loglake.config import Config
from loglake.fsutil import read_json
from loglake.writer.fields import needed_columns
from loglake.writer.lines import Chunk
from loglake.writer.parsers import Parser, load_parser
from loglake.writer.pipeline import Writer, _Pressure
from loglake.writer.segments import BATCHES, SourceInfo

#: How long committed idempotency keys are remembered across restarts.
KEY_TTL = 24 * 3600.0


class Busy(Exception):
    """Too much is waiting to be committed: the client should retry later (429)."""


class DiskRefused(Exception):
    """The disk refused the commit: nothing was written, the client should retry (503)."""


@dataclass
class Submission:
    body: bytes
    fmt: str  # "raw" (the configured log format) | "ndjson"
    key: str | None = None
    table: str | None = None
    source: str = "http"
    result: dict[str, Any] | None = None
    error: Exception | None = None
    replayed: bool = False
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self) -> None:
        self.done.set()
        for cb in self.callbacks:
            cb()


class Receiver:
    def __init__(self, cfg: Config, commit_interval: float = 0.01, max_pending_bytes: int = 256 << 20) -> None:
        self.cfg = cfg
        self.w = Writer(cfg)
        json_cfg = dataclasses.replace(cfg.writer, format="json", json_fields={})
        self.parsers: dict[str, Parser] = {"raw": self.w.parser, "ndjson": load_parser(json_cfg, needed_columns(cfg))}
        self.commit_interval = commit_interval
        self.max_pending = max_pending_bytes
        self.index = _load_keys(cfg)
        self.inflight: dict[str, Submission] = {}
        self.queue: list[Submission] = []
        self.pending_bytes = 0
        self.cond = threading.Condition()
        self.stopping = False
        self.commits = 0
        self.thread = threading.Thread(target=self._run, name="loglake-commit", daemon=True)
        self.thread.start()

    # ---- the caller's side ------------------------------------------------------------------
    def submit(self, sub: Submission) -> Submission:
        """Queue `sub` (never blocks); returns the submission to wait on, which is an earlier one
        for a key already in flight. Raises Busy when too much is waiting."""
        with self.cond:
            if sub.key is not None:
                if sub.key in self.index:
                    sub.result, sub.replayed = self.index[sub.key], True
                    sub.finish()
                    return sub
                if sub.key in self.inflight:
                    return self.inflight[sub.key]
            if self.stopping:
                raise Busy("shutting down")
            if self.pending_bytes + len(sub.body) > self.max_pending:
                raise Busy(f"{self.pending_bytes:,} bytes are waiting to be committed")
            self.queue.append(sub)
            self.pending_bytes += len(sub.body)
            if sub.key is not None:
                self.inflight[sub.key] = sub
            self.cond.notify()
        return sub

    def close(self) -> None:
        """Commit what is queued, then stop (SIGTERM: stop accepting, seal, exit 0)."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join()
        self.w.close()

    # ---- the committer ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if not self.queue and self.stopping:
                    return
            time.sleep(self.commit_interval)  # let concurrent requests join this commit
            with self.cond:
                group, self.queue, self.pending_bytes = self.queue, [], 0
            self._commit(group)

    def _commit(self, group: list[Submission]) -> None:
        by_table: dict[str | None, list[Submission]] = {}
        for sub in group:
            by_table.setdefault(sub.table, []).append(sub)
        try:
            for table, subs in by_table.items():
                self._commit_one(table, subs)
        finally:
            with self.cond:
                for sub in group:
                    if sub.key is not None:
                        self.inflight.pop(sub.key, None)
                        if sub.result is not None:
                            self.index[sub.key] = sub.result
            for sub in group:
                sub.finish()

    def _commit_one(self, table: str | None, subs: list[Submission]) -> None:
        w = self.w
        routers = [r for r in w.routers if table is None or r.table.name == table]
        batch = None
        try:
            batch = w.open_batch(SourceInfo("http", subs[0].source, False), 0, 0)
            offset, line, results = 0, 0, []
            for sub in subs:
                before = dict(batch.rows), dict(batch.filtered)
                chunk = Chunk(sub.body, offset, line + 1)
                rejects = w.process(batch, chunk, self.parsers[sub.fmt], routers) if sub.body else []
                n = chunk.line_count
                for other in w.routers:  # `?table=`: the other tables skip these lines, as a filter would
                    if other not in routers and n - len(rejects):
                        name = other.table.name
                        batch.filtered[name] = batch.filtered.get(name, 0) + n - len(rejects)
                results.append(_result(sub, batch.rows, batch.filtered, before, n, rejects))
                offset, line = offset + len(sub.body), line + n
            batch.extra["requests"] = [
                {"key": s.key, "source": s.source, **r} for s, r in zip(subs, results, strict=True)
            ]
            manifest = w.seal(batch)
        except _Pressure as e:
            for sub in subs:
                sub.error = DiskRefused(str(e))
            return
        except Exception as e:  # a bug: the requests fail (500) and are retried, nothing is acknowledged
            if batch is not None:
                batch.abort()
            for sub in subs:
                sub.error = e
            return
        self.commits += 1
        batch_id = manifest["id"] if manifest else None
        for sub, r in zip(subs, results, strict=True):
            sub.result = {"batch": batch_id, **r}


def _result(
    sub: Submission,
    rows: dict[str, int],
    filtered: dict[str, int],
    before: tuple[dict[str, int], dict[str, int]],
    lines: int,
    rejects: list[tuple[int, str]],
) -> dict[str, Any]:
    return {
        "lines": lines,
        "rows": {t: n - before[0].get(t, 0) for t, n in rows.items() if n - before[0].get(t, 0)},
        "filtered": {t: n - before[1].get(t, 0) for t, n in filtered.items() if n - before[1].get(t, 0)},
        "dead_lettered": [{"line": i + 1, "reason": reason} for i, reason in rejects],
    }


def _load_keys(cfg: Config) -> dict[str, dict[str, Any]]:
    """Idempotency keys of batches committed in the last KEY_TTL, from their manifests."""
    index: dict[str, dict[str, Any]] = {}
    folder = cfg.spool_dir / BATCHES
    if not folder.is_dir():
        return index
    since = time.time() - KEY_TTL
    for entry in os.scandir(folder):
        if not entry.name.endswith(".json") or entry.name.endswith(".open.json") or entry.name[0] in "._":
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            if entry.stat().st_mtime < since:
                continue
            m = read_json(Path(entry.path))
            for r in m.get("requests", []):
                if r.get("key"):
                    index[r["key"]] = {"batch": m["id"], **{k: v for k, v in r.items() if k not in ("key", "source")}}
    return index
