"""`loglake.LoglakeHandler`: a `logging.Handler` for applications that log from their own code.

    import logging, loglake
    handler = loglake.LoglakeHandler(url="https://logs:8514/v1/logs", token=os.environ["LOGLAKE_TOKEN"])
    logging.getLogger("access").addHandler(handler)
    logging.getLogger("access").info("login", extra={"username": "alice", "path": "/login", "status": 200})

`emit()` never blocks the request path: it formats the record into one NDJSON line and puts it on a
bounded queue; a background thread sends batches (to a `serve` URL with an idempotency key per
batch and retries, or into a local spool with `data_dir=`). When the queue is full the line is
appended to a local spill file instead of being dropped, and sent from there later. `close()` (and
interpreter exit) flushes both. A record's fields come from `extra=` (the loglake column names);
`ts` is the record's time.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loglake.schema import FIELD_TYPES

_COLUMNS = [c for c in FIELD_TYPES if c != "ts"]


class LoglakeHandler(logging.Handler):
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        queue_size: int = 10_000,
        batch_size: int = 1000,
        flush_interval: float = 0.5,
        spill_path: str | os.PathLike[str] | None = None,
        ca_file: str | None = None,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        if (url is None) == (data_dir is None):
            raise ValueError("LoglakeHandler needs exactly one of url= or data_dir=")
        self.url, self.token, self.ca_file = url, token, ca_file
        self.data_dir = Path(data_dir) if data_dir is not None else None
        from loglake.fsutil import private_dir

        spill_dir = private_dir((self.data_dir / "spill") if self.data_dir else Path.cwd() / ".loglake-spill")
        self.spill_path = Path(spill_path) if spill_path else spill_dir / f"handler-{os.getpid()}.ndjson"
        private_dir(self.spill_path.parent)
        self.batch_size, self.flush_interval = batch_size, flush_interval
        self.queue: queue.Queue[bytes] = queue.Queue(maxsize=queue_size)
        self.counts = {"emitted": 0, "sent": 0, "spilled": 0, "send_errors": 0}
        self._spill_lock = threading.Lock()
        self._stop = threading.Event()
        self._writer: Any = None
        self._thread = threading.Thread(target=self._run, name="loglake-handler", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # ---- the application's side: never blocks --------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            row: dict[str, Any] = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat()}
            for c in _COLUMNS:
                if c in record.__dict__:
                    row[c] = record.__dict__[c]
            line = json.dumps(row, default=str, ensure_ascii=False).encode() + b"\n"
        except Exception:
            self.handleError(record)
            return
        self.counts["emitted"] += 1
        try:
            self.queue.put_nowait(line)
        except queue.Full:
            self._spill([line])

    def _spill(self, lines: list[bytes]) -> None:
        with self._spill_lock:
            fd = os.open(self.spill_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, b"".join(lines))
            finally:
                os.close(fd)
            self.counts["spilled"] += len(lines)

    # ---- the background thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._drain(wait=self.flush_interval)
        while not self.queue.empty():  # closing: everything queued, a batch at a time
            self._drain(wait=0)
        self._drain(wait=0)  # and what was spilled

    def _drain(self, wait: float) -> None:
        lines: list[bytes] = []
        deadline = time.monotonic() + wait
        while len(lines) < self.batch_size:
            try:
                timeout = max(0.0, deadline - time.monotonic())
                lines.append(self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait())
            except queue.Empty:
                break
        spilled = self._take_spill()
        if lines or spilled:
            self._deliver(spilled + b"".join(lines))

    def _take_spill(self) -> bytes:
        with self._spill_lock:
            try:
                data = self.spill_path.read_bytes()
            except FileNotFoundError:
                return b""
            self.spill_path.unlink()
            return data

    def _deliver(self, body: bytes) -> None:
        """Send one batch; on failure keep it in the spill file (retried on the next round)."""
        try:
            if self.url is not None:
                self._post(body, f"handler-{uuid.uuid4().hex}")
            else:
                self._spool(body)
            with self._spill_lock:
                self.counts["sent"] += body.count(b"\n")
        except Exception:
            self.counts["send_errors"] += 1
            with self._spill_lock:
                fd = os.open(self.spill_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, body)
                finally:
                    os.close(fd)
            if not self._stop.is_set():
                time.sleep(min(5.0, self.flush_interval * 4))

    def _post(self, body: bytes, key: str) -> None:
        import ssl

        ctx = ssl.create_default_context(cafile=self.ca_file) if self.url and self.url.startswith("https:") else None
        req = urllib.request.Request(
            str(self.url),
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-ndjson",
                "Idempotency-Key": key,
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
        )
        for attempt in range(5):  # the same key each time: a retry after a lost answer adds nothing
            try:
                with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
                    resp.read()
                    return
            except urllib.error.HTTPError as e:
                if e.code not in (429, 500, 502, 503, 504) or attempt == 4:
                    raise
            except (urllib.error.URLError, OSError):
                if attempt == 4:
                    raise
            time.sleep(0.2 * 2**attempt)

    def _spool(self, body: bytes) -> None:
        """A local spool: one sealed batch per delivery, through the writer's own path."""
        from loglake.config import load_config
        from loglake.ingest.receiver import Receiver, Submission

        if self._writer is None:
            empty = self.data_dir / ".handler.toml"  # type: ignore[operator]
            empty.parent.mkdir(parents=True, exist_ok=True)
            empty.touch()
            cfg = load_config(empty, environ={**os.environ, "LOGLAKE_DATA_DIR": str(self.data_dir)})
            self._writer = Receiver(cfg, commit_interval=0)
        sub = self._writer.submit(Submission(body, "ndjson", source="handler"))
        sub.done.wait()
        if sub.error is not None:
            raise sub.error

    def flush(self) -> None:
        """Send what is queued now (blocks until it is delivered or spilled)."""
        while not self.queue.empty():
            self._drain(wait=0)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=60)
        if self._writer is not None:
            self._writer.close()
        atexit.unregister(self.close)
        super().close()
