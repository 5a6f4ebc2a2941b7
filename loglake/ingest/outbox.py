"""What `send` and `LoglakeHandler` share about delivering a batch: one POST, which answers may
succeed on a retry, and where a batch the server refused for good is kept.

Only a 5xx, 408, 429 or a connection error can succeed later; any other 4xx says this batch will
never be taken (too large, a key reused with another body, ...). Retrying it forever would block
every batch behind it, so it is kept in a `rejected/` folder with the reason (0600: raw lines),
counted, and the client moves on.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from loglake.fsutil import FILE_MODE, atomic_write_bytes, private_dir

RETRYABLE = frozenset({408, 429})


class Retry(Exception):
    """The batch may be taken later: send it again, with the same key."""


class Final(Exception):
    """The server refused this batch for good (`status`, its answer in the message)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status


def post(url: str, body: bytes, headers: dict[str, str], context: ssl.SSLContext | None, timeout: float) -> Any:
    """POST once; the decoded JSON answer of a 2xx, else Retry or Final."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        if e.code >= 500 or e.code in RETRYABLE:
            raise Retry(f"server answered {e.code}") from e
        detail = e.read()[:300].decode(errors="replace").strip()
        raise Final(e.code, detail) from e
    except (urllib.error.URLError, OSError) as e:
        raise Retry(f"cannot reach {url}: {getattr(e, 'reason', e)}") from e
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def keep_rejected(folder: Path, key: str, body: bytes, why: dict[str, Any]) -> Path:
    """Keep a refused batch as `<key>.ndjson` (its lines) and `<key>.json` (why), durably."""
    private_dir(folder)
    atomic_write_bytes(folder / f"{key}.ndjson", body, mode=FILE_MODE)
    meta = {**why, "key": key, "lines": body.count(b"\n"), "at": time.time()}
    atomic_write_bytes(folder / f"{key}.json", json.dumps(meta, sort_keys=True).encode(), mode=FILE_MODE)
    return folder / f"{key}.ndjson"
