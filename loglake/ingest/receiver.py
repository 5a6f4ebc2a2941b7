"""The core of `loglake serve`: requests become sealed batches, many requests to one fsync.

A request is acknowledged (202) only after the batch holding its lines is sealed: data files,
their folders and the manifest fsync'd. Requests that arrive while a commit runs wait for the next
one, so under load one fsync serves many requests (group commit) instead of capping throughput at
one fsync per request. An `Idempotency-Key` is recorded in the manifest with the request's result,
its principal and its fingerprint (keys.py): a retry of a committed key gets the same answer and
writes nothing; a retry while the first is in flight waits for it. A batch a crash left unsealed
was never acknowledged, so recovery discards it and the client's retry is the one copy
(writer/recovery.py). A request whose processing fails (a bug) must not fail the others of its
group: the group is redone without it, and its lines are dead-lettered as `internal_error`.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loglake.config import Config
from loglake.ingest.keys import KEY_TTL, KeyConflict, KeyIndex
from loglake.ingest.requests import Summary, pieces
from loglake.writer.fields import needed_columns
from loglake.writer.lines import Chunk
from loglake.writer.parsers import Parser, load_parser
from loglake.writer.pipeline import Writer, _Pressure
from loglake.writer.segments import Batch, DeadLetter, SourceInfo


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
    principal: str = ""  # keys.principal() of the token that sent it
    fingerprint: str = ""  # keys.fingerprint() of what it asked for (with a key only)
    result: dict[str, Any] | None = None
    error: Exception | None = None
    replayed: bool = False
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self) -> None:
        self.done.set()
        for cb in self.callbacks:
            cb()


class _Failed(Exception):
    """Processing `sub` raised `cause`: the group is redone without it."""

    def __init__(self, sub: Submission, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.sub, self.cause = sub, cause


class Receiver:
    def __init__(
        self,
        cfg: Config,
        commit_interval: float = 0.01,
        max_pending_bytes: int = 256 << 20,
        key_ttl: float = KEY_TTL,
    ) -> None:
        self.cfg = cfg
        self.w = Writer(cfg)
        json_cfg = dataclasses.replace(cfg.writer, format="json", json_fields={})
        self.parsers: dict[str, Parser] = {"raw": self.w.parser, "ndjson": load_parser(json_cfg, needed_columns(cfg))}
        self.commit_interval = commit_interval
        self.max_pending = max_pending_bytes
        self.index = KeyIndex.load(cfg, key_ttl)
        self.inflight: dict[tuple[str, str], Submission] = {}
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
                done = self._known(sub)
                if done is not None:
                    return done
            if self.stopping:
                raise Busy("shutting down")
            if self.pending_bytes + len(sub.body) > self.max_pending:
                raise Busy(f"{self.pending_bytes:,} bytes are waiting to be committed")
            self.queue.append(sub)
            self.pending_bytes += len(sub.body)
            if sub.key is not None:
                self.inflight[(sub.principal, sub.key)] = sub
            self.cond.notify()
        return sub

    def _known(self, sub: Submission) -> Submission | None:
        """A key this principal used already: the replay, the request in flight, or a conflict."""
        assert sub.key is not None
        entry = self.index.get(sub.principal, sub.key)
        first = self.inflight.get((sub.principal, sub.key))
        if entry is None and first is None:
            return None
        theirs = entry.fingerprint if entry is not None else first.fingerprint  # type: ignore[union-attr]
        if theirs and theirs != sub.fingerprint:
            sub.error = KeyConflict(f"Idempotency-Key {sub.key!r} was used for another request")
        elif entry is not None:
            sub.result, sub.replayed = entry.answer(), True
        else:
            return first
        sub.finish()
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
                        self.inflight.pop((sub.principal, sub.key), None)
                        if sub.result is not None and sub.error is None:
                            self.index.add(sub.principal, sub.key, sub.fingerprint, sub.result)
            for sub in group:
                sub.finish()

    def _commit_one(self, table: str | None, subs: list[Submission]) -> None:
        failed: dict[int, str] = {}  # id(sub) -> why its processing failed
        while True:
            try:
                manifest, results = self._batch(table, subs, failed)
                break
            except _Failed as f:  # redo the group without it: the others must not fail with it
                failed[id(f.sub)] = f"internal_error: {type(f.cause).__name__}"
                print(f"loglake serve: a request's lines could not be processed ({f}); dead-lettered", file=sys.stderr)
            except _Pressure as e:
                for sub in subs:
                    sub.error = DiskRefused(str(e))
                return
            except Exception as e:  # a bug in the batch itself: all fail (500) and are retried
                for sub in subs:
                    sub.error = e
                return
        self.commits += 1
        batch_id = manifest["id"] if manifest else None
        for sub, r in zip(subs, results, strict=True):
            sub.result = {"batch": batch_id, **r}

    def _batch(
        self, table: str | None, subs: list[Submission], failed: dict[int, str]
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """One batch of `subs` sealed; raises _Failed for a request whose processing raised."""
        w = self.w
        batch = w.open_batch(SourceInfo("http", subs[0].source, False), 0, 0)
        try:
            offset, line, results = 0, 0, []
            for sub in subs:
                why = failed.get(id(sub))
                try:
                    if why:
                        summary = self._dead_letter_all(batch, sub, offset, line, why)
                    else:
                        summary = self._process(batch, sub, table, offset, line)
                except (_Pressure, _Failed):
                    raise
                except Exception as e:
                    if why:
                        raise
                    raise _Failed(sub, e) from e
                results.append(summary.result())
                offset, line = offset + len(sub.body), line + summary.lines
            batch.extra["requests"] = [
                {"key": s.key, "principal": s.principal, "fingerprint": s.fingerprint, "source": s.source, **r}
                for s, r in zip(subs, results, strict=True)
            ]
            return w.seal(batch), results
        except BaseException:
            batch.abort()  # nothing of it was acknowledged (abort twice is harmless)
            raise

    def _process(self, batch: Batch, sub: Submission, table: str | None, offset: int, line: int) -> Summary:
        w = self.w
        routers = [r for r in w.routers if table is None or r.table.name == table]
        out = Summary()
        before = dict(batch.rows), dict(batch.filtered)
        for at, piece in pieces(sub.body):
            chunk = Chunk(piece, offset + at, line + out.lines + 1)
            rejects = w.process(batch, chunk, self.parsers[sub.fmt], routers) if piece else []
            n = chunk.line_count
            for other in w.routers:  # `?table=`: the other tables skip these lines, as a filter would
                if other not in routers and n - len(rejects):
                    name = other.table.name
                    batch.filtered[name] = batch.filtered.get(name, 0) + n - len(rejects)
            out.add_rejects(out.lines + 1, rejects)
            out.lines += n
        out.add_counts(out.rows, batch.rows, before[0])
        out.add_counts(out.filtered, batch.filtered, before[1])
        return out

    def _dead_letter_all(self, batch: Batch, sub: Submission, offset: int, line: int, why: str) -> Summary:
        """Every line of a request whose processing failed, as a dead letter: kept, replayable."""
        out = Summary()
        limit = self.cfg.writer.max_line_bytes
        for at, piece in pieces(sub.body):
            raws = piece.split(b"\n")
            if piece.endswith(b"\n"):
                raws.pop()
            records, pos = [], offset + at
            for i, raw in enumerate(raws):
                records.append(DeadLetter(pos, line + out.lines + i + 1, why, raw[:limit], len(raw)))
                pos += len(raw) + 1
            self.w.dead_letter(batch, records)
            batch.lines_read += len(raws)
            batch.end_offset, batch.end_line = offset + at + len(piece), line + out.lines + len(raws)
            out.add_rejects(out.lines + 1, [(i, why) for i in range(len(raws))])
            out.lines += len(raws)
        return out
