"""`loglake send FILE... --url URL`: follow files like `write --follow`, POST batches to `serve`.

The Sender is a Writer whose batches go to a URL instead of the spool: the same FileTail and
Follower read the files (every rotation style, checkpoints by content), and a batch is "sealed"
when the server answers 202. Before its first POST a batch is recorded durably (its lines, its
Idempotency-Key, where it ends) in `state/send/pending/`; a sender restarted after a crash resends
those records first, byte for byte with the same key, so the server replays instead of adding: a
file on one host lands exactly once in another host's lake. The checkpoint moves only after the
answer. A batch refused for good (a 4xx other than 408/429) is kept in `state/send/rejected/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loglake.config import Config
from loglake.errors import SourceError, UsageError
from loglake.fsutil import atomic_write_bytes, atomic_write_json, private_dir, read_json
from loglake.ingest.net import check_client_url
from loglake.ingest.outbox import Final, Retry, keep_rejected, post
from loglake.writer.lines import Chunk
from loglake.writer.pipeline import Writer
from loglake.writer.segments import DeadLetter, SourceInfo


@dataclass
class RemoteBatch:
    """What FileTail needs of a batch: counts, byte range, age; the lines kept to send."""

    source: SourceInfo
    start_offset: int
    start_line: int
    end_offset: int = 0
    end_line: int = 0
    lines_read: int = 0
    parts: list[bytes] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.end_offset, self.end_line = self.start_offset, self.start_line - 1

    @property
    def age(self) -> float:
        return time.monotonic() - self.created

    def size(self) -> int:
        return sum(len(p) for p in self.parts)

    def abort(self) -> None:
        self.parts.clear()

    def key(self) -> str:
        ident = f"{self.source.fingerprint}:{self.source.fp_len}:{self.start_offset}:{self.end_offset}"
        return "send-" + hashlib.sha256(ident.encode()).hexdigest()[:40]


class Sender(Writer):
    refused = "loglake send: the server did not take a batch"

    def __init__(
        self,
        cfg: Config,
        url: str,
        token: str,
        ca_file: str | None = None,
        max_batch_bytes: int = 4 << 20,
        allow_plain_http: bool = False,
    ):
        try:
            check_client_url(url, allow_plain_http, "--allow-plain-http")
        except ValueError as e:
            raise UsageError(f"--url {e}") from None
        super().__init__(cfg)
        self.url, self.token = url, token
        self.max_batch_bytes = max_batch_bytes
        self.context = ssl.create_default_context(cafile=ca_file) if url.startswith("https:") else None
        self.sent = self.rejected = 0
        self.pending = private_dir(cfg.state_dir / "send" / "pending")
        self.rejected_dir = cfg.state_dir / "send" / "rejected"
        self._resumed = False

    def open_batch(self, src: SourceInfo, offset: int, line: int) -> RemoteBatch:  # type: ignore[override]
        return RemoteBatch(src, offset, line + 1)

    def process(self, batch: Any, chunk: Chunk, parser: Any = None, routers: Any = None) -> list[tuple[int, str]]:
        batch.parts.append(chunk.data if chunk.data.endswith(b"\n") else chunk.data + b"\n")
        batch.lines_read += chunk.line_count
        batch.end_offset, batch.end_line = chunk.end_offset, chunk.start_line + chunk.line_count - 1
        return []

    def dead_letter(self, batch: Any, records: list[DeadLetter]) -> None:
        """An over-long line: its first bytes go to the server, which dead-letters it there."""
        for r in records:
            batch.parts.append(r.raw + b"\n")

    def due(self, batch: Any) -> bool:
        return batch.lines_read > 0 and (batch.size() >= self.max_batch_bytes or batch.age >= 1.0)

    def write_file(self, path: str, follow: bool = False) -> None:
        """First the batches a dead sender left unacknowledged, exactly as they were sent."""
        if not self._resumed:
            self._resend_pending()
            self._resumed = True
        super().write_file(path, follow)

    def seal(self, batch: Any) -> dict[str, Any] | None:  # type: ignore[override]
        """Record the batch (lines, key, where it ends) durably, then deliver it.

        The record is what makes a crash harmless: a sender restarted after a lost answer resends
        this very body with this very key before reading on, so the server replays instead of
        taking the lines again, however much the file grew meanwhile (re-reading from the
        checkpoint would make a larger batch, with another key)."""
        if not batch.lines_read:
            return None
        meta = {
            "key": batch.key(),
            "writer": self.lease.id,
            "source": batch.source.as_dict(),
            "end_offset": batch.end_offset,
            "end_line": batch.end_line,
            "lines": batch.lines_read,
        }
        durable = self.cfg.writer.fsync != "off"
        atomic_write_bytes(self.pending / f"{meta['key']}.ndjson", b"".join(batch.parts), durable)
        atomic_write_json(self.pending / f"{meta['key']}.json", meta, durable)
        return self._deliver(meta)

    def _resend_pending(self) -> None:
        """Deliver every pending record whose sender is gone (its lease free), oldest first."""
        records = []
        for f in self.pending.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                meta = read_json(f)
                if not self.lease.holder_alive(str(meta.get("writer", ""))):
                    records.append((f.stat().st_mtime, meta))
        for _, meta in sorted(records, key=lambda r: r[0]):
            self._deliver(meta)

    def _deliver(self, meta: dict[str, Any]) -> dict[str, Any] | None:
        """POST until the server answers 2xx (retrying with back-off) or refuses the batch for
        good (kept in rejected/, counted, not retried); then move the checkpoint."""
        key = str(meta["key"])
        body = (self.pending / f"{key}.ndjson").read_bytes()
        attempt, answer = 0, None
        while True:
            try:
                answer = self._post(body, key)
                self.sent += int(meta["lines"])
                break
            except Final as e:
                if e.status in (401, 403):  # every batch would be refused: stop, keep it pending
                    raise SourceError(f"{self.url} refused the token: {e}") from None
                kept = keep_rejected(self.rejected_dir, key, body, {"status": e.status, "reason": str(e)})
                print(f"loglake send: {self.url} refused {meta['lines']} line(s) for good ({e}); kept in {kept}")
                self.rejected += int(meta["lines"])
                break
            except Retry as e:
                if self.stopping:
                    raise SourceError(f"stopped before {self.url} accepted a batch ({e}); it is sent again") from None
                self.backoff(attempt, str(e))
                attempt += 1
        self.checkpoints.save_source(meta["source"], int(meta["end_offset"]), int(meta["end_line"]))
        for suffix in (".json", ".ndjson"):
            (self.pending / f"{key}{suffix}").unlink(missing_ok=True)
        self.totals.lines_read += int(meta["lines"])
        self.totals.batches += 1
        return answer

    def _post(self, body: bytes, key: str) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "text/plain",
            "Idempotency-Key": key,
            "X-Loglake-Source": self.cfg.host_id,
        }
        return post(self.url, body, headers, self.context, timeout=60)


def token_from(token_file: str | None, env: str = "LOGLAKE_SEND_TOKEN") -> str:
    if token_file:
        try:
            return Path(token_file).read_text(encoding="utf-8").strip().splitlines()[0].strip()
        except (OSError, IndexError) as e:
            raise UsageError(f"--token-file {token_file}: no token in it") from e
    token = os.environ.get(env, "").strip()
    if not token:
        raise UsageError(f"send needs a token: --token-file FILE or {env}")
    return token
