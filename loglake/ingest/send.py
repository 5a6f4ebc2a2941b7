"""`loglake send FILE... --url URL`: follow files like `write --follow`, POST batches to `serve`.

The Sender is a Writer whose batches go to a URL instead of the spool: the same FileTail and
Follower read the files (every rotation style, checkpoints by content), and a batch is "sealed"
when the server answers 202. Its Idempotency-Key is derived from the content identity and byte
range, so a batch resent after a crash or a lost answer carries the same key and the server adds
nothing: a file on one host lands exactly once in another host's lake. The checkpoint moves only
after the 202.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loglake.config import Config
from loglake.errors import SourceError
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

    def __init__(self, cfg: Config, url: str, token: str, ca_file: str | None = None, max_batch_bytes: int = 4 << 20):
        super().__init__(cfg)
        self.url, self.token = url, token
        self.max_batch_bytes = max_batch_bytes
        self.context = ssl.create_default_context(cafile=ca_file) if url.startswith("https:") else None
        self.sent = 0

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

    def seal(self, batch: Any) -> dict[str, Any] | None:  # type: ignore[override]
        """POST until the server answers 202 (retrying with back-off), then move the checkpoint."""
        if not batch.lines_read:
            return None
        body = b"".join(batch.parts)
        attempt = 0
        while True:
            try:
                answer = self._post(body, batch.key())
                break
            except _Retry as e:
                if self.stopping:
                    raise SourceError(f"stopped before {self.url} accepted a batch ({e}); it is sent again") from None
                self.backoff(attempt, str(e))
                attempt += 1
        self.checkpoints.save(batch.source, batch.end_offset, batch.end_line)
        self.sent += batch.lines_read
        self.totals.lines_read += batch.lines_read
        self.totals.batches += 1
        return answer

    def _post(self, body: bytes, key: str) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "text/plain",
                "Idempotency-Key": key,
                "X-Loglake-Source": self.cfg.host_id,
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=60, context=self.context) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            if e.code in (429, 500, 502, 503, 504):
                raise _Retry(f"server answered {e.code}") from e
            detail = e.read()[:300].decode(errors="replace")
            raise SourceError(f"{self.url} refused the batch: {e.code} {detail}") from e
        except (urllib.error.URLError, OSError) as e:
            raise _Retry(f"cannot reach {self.url}: {getattr(e, 'reason', e)}") from e


class _Retry(Exception):
    pass


def token_from(token_file: str | None, env: str = "LOGLAKE_SEND_TOKEN") -> str:
    from loglake.errors import UsageError

    if token_file:
        try:
            return Path(token_file).read_text(encoding="utf-8").strip().splitlines()[0].strip()
        except (OSError, IndexError) as e:
            raise UsageError(f"--token-file {token_file}: no token in it") from e
    token = os.environ.get(env, "").strip()
    if not token:
        raise UsageError(f"send needs a token: --token-file FILE or {env}")
    return token
