"""`loglake.LoglakeHandler`: a `logging.Handler` for applications that log from their own code.

    import logging, loglake
    handler = loglake.LoglakeHandler(url="https://logs:8514/v1/logs", token=os.environ["LOGLAKE_TOKEN"])
    logging.getLogger("access").addHandler(handler)
    logging.getLogger("access").info("login", extra={"username": "alice", "path": "/login", "status": 200})

`emit()` never blocks the request path: it formats the record into one NDJSON line and puts it on a
bounded queue; a background thread makes batches, writes each with its idempotency key to the
handler's spill file (spill.py) and sends it from there (to a `serve` URL, retried with that same
key, or into a local spool with `data_dir=`). When the queue is full the line is appended to the
spill file instead of being dropped. A batch the server refuses for good (a 4xx other than
408/429) is kept in `rejected/` beside the spill files, not retried. `close()` (and interpreter
exit) sends what it can; what is left waits in the spill file for the next handler. A record's
fields come from `extra=` (the loglake column names); `ts` is the record's time.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loglake.fsutil import new_private_dirs
from loglake.ingest.net import check_client_url
from loglake.ingest.outbox import Final, keep_rejected, post
from loglake.ingest.spill import SpillFile, adopt, done_marker, frame, new_key
from loglake.schema import FIELD_TYPES

_COLUMNS = [c for c in FIELD_TYPES if c != "ts"]


def _dumps(row: dict[str, Any]) -> bytes:
    """Strict JSON: a non-finite float (`inf`, `nan`) goes as text, so the server dead-letters
    that one line instead of every request carrying it being unreadable."""
    try:
        return json.dumps(row, default=str, ensure_ascii=False, allow_nan=False).encode()
    except ValueError:
        fixed = {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        return json.dumps(fixed, default=str, ensure_ascii=False).encode()


class LoglakeHandler(logging.Handler):
    """`spill_path` is the folder of the spill files (default `<data_dir>/spill`, or
    `.loglake-spill/` in the working directory, created only when something is spilled)."""

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
        allow_plain_http: bool = False,
    ) -> None:
        super().__init__(level)
        if (url is None) == (data_dir is None):
            raise ValueError("LoglakeHandler needs exactly one of url= or data_dir=")
        if url is not None:
            check_client_url(url, allow_plain_http, "allow_plain_http=True")
        self.url, self.token, self.ca_file = url, token, ca_file
        self.data_dir = Path(data_dir) if data_dir is not None else None
        folder = Path(spill_path) if spill_path else None
        if folder is not None and (folder.suffix == ".ndjson" or folder.is_file()):
            folder = folder.parent  # a file name, as older versions took: its folder
        default = (self.data_dir / "spill") if self.data_dir else Path.cwd() / ".loglake-spill"
        self.spill_dir = (folder or default).absolute()
        self.id = f"handler-{uuid.uuid4().hex}"
        self.batch_size, self.flush_interval = batch_size, flush_interval
        self.queue: queue.Queue[bytes] = queue.Queue(maxsize=queue_size)
        self.counts = {"emitted": 0, "sent": 0, "spilled": 0, "rejected": 0, "adopted": 0, "send_errors": 0}
        self._spill_lock = threading.Lock()
        self._own: SpillFile | None = None
        self._files: list[SpillFile] = []
        self._failed: set[str] = set()  # batches counted as spilled (a delivery of theirs failed)
        self._adopted: set[str] = set()  # batches of other handlers' files, counted as adopted
        self._adopted_at = 0.0
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
            line = _dumps(row) + b"\n"
        except Exception:
            self.handleError(record)
            return
        self.counts["emitted"] += 1
        try:
            self.queue.put_nowait(line)
        except queue.Full:
            with self._spill_lock:
                self._own_file().append(line)  # framed into a batch (with a key) by the next round
                self.counts["spilled"] += 1

    def _own_file(self) -> SpillFile:
        """Our spill file, its folder and lock made on first use (nothing on disk before)."""
        if self._own is None:
            own = SpillFile.take(new_private_dirs(self.spill_dir), self.id)
            if own is None:
                raise OSError(f"{self.spill_dir}: cannot lock {self.id}.lock")
            self._own = own
            self._files.insert(0, own)
        return self._own

    # ---- the background thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._round(wait=self.flush_interval)
        while not self.queue.empty():  # closing: everything queued, a batch at a time
            self._take_queue(wait=0)
        self._send_spilled(closing=True)
        with self._spill_lock:
            for f in self._files:
                f.release(remove=not f.path.exists())
            self._files.clear()

    def _round(self, wait: float) -> None:
        if time.monotonic() - self._adopted_at > 30:
            self._adopt()
        self._take_queue(wait)
        if not self._send_spilled(closing=False) and not self._stop.is_set():
            time.sleep(min(5.0, self.flush_interval * 4))

    def _adopt(self) -> None:
        self._adopted_at = time.monotonic()
        found = adopt(self.spill_dir, self.id)
        with self._spill_lock:
            self._files.extend(found)

    def _take_queue(self, wait: float) -> None:
        """Up to batch_size queued lines become a batch with its key, written down before any POST."""
        lines: list[bytes] = []
        deadline = time.monotonic() + wait
        while len(lines) < self.batch_size:
            try:
                timeout = max(0.0, deadline - time.monotonic())
                lines.append(self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait())
            except queue.Empty:
                break
        if lines:
            with self._spill_lock:
                self._own_file().append(frame(new_key(), b"".join(lines)))

    def _send_spilled(self, closing: bool) -> bool:
        """Deliver every batch in every spill file we hold; False when one must wait (retry later)."""
        for f in list(self._files):
            with self._spill_lock:
                batches = f.pending(self.batch_size)
            for key, body in batches:
                if f is not self._own and key not in self._adopted:
                    self._adopted.add(key)  # counted once, however often its delivery is retried
                    self.counts["adopted"] += body.count(b"\n")
                if not self._deliver(f, key, body):
                    return False
            if f is not self._own:
                with self._spill_lock:
                    if not f.pending(self.batch_size):
                        f.release(remove=True)
                        self._files.remove(f)
        return True

    def _deliver(self, f: SpillFile, key: str, body: bytes) -> bool:
        """One batch, with its own key; a batch refused for good is kept in rejected/ and done."""
        n = body.count(b"\n")
        try:
            if self.url is not None:
                self._post(body, key)
            else:
                self._spool(body)
            self.counts["sent"] += n
        except Final as e:
            keep_rejected(self.spill_dir / "rejected", key, body, {"status": e.status, "reason": str(e)})
            self.counts["rejected"] += n
        except Exception:
            self.counts["send_errors"] += 1
            if key not in self._failed:
                self._failed.add(key)
                self.counts["spilled"] += n
            return False
        self._failed.discard(key)
        self._adopted.discard(key)
        with self._spill_lock:
            f.append(done_marker(key))
        return True

    def _post(self, body: bytes, key: str) -> None:
        import ssl

        ctx = ssl.create_default_context(cafile=self.ca_file) if self.url and self.url.startswith("https:") else None
        headers = {
            "Content-Type": "application/x-ndjson",
            "Idempotency-Key": key,
            **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
        }
        post(str(self.url), body, headers, ctx, timeout=30)

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
        """Write what is queued now to the spill file (from there the background thread sends it)."""
        while not self.queue.empty():
            self._take_queue(wait=0)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=60)
        if self._writer is not None:
            self._writer.close()
        atexit.unregister(self.close)
        super().close()
