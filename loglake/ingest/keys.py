"""Idempotency keys of `loglake serve`: scoped to the token that sent them, bound to the body.

A key names one request of one principal (the token that authenticated it, known here only by a
hash): another token's identical key is another request, never a replay of the first one's
result. The key is stored with a fingerprint of the request (format, table, decoded body): the
same key with another body is refused (422, as Stripe and the IETF idempotency-key draft do)
instead of replaying a result that does not describe those lines. Entries expire after KEY_TTL,
in memory as on disk (a restart reloads the manifests of the last KEY_TTL only), so the index
holds one window of keys, each with a bounded summary, whatever the traffic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loglake.config import Config
from loglake.fsutil import read_json
from loglake.writer.segments import BATCHES

#: How long committed idempotency keys are remembered (across restarts too).
KEY_TTL = 24 * 3600.0


def principal(token: str) -> str:
    """Who sent a request, as stored in manifests: a hash of its token, never the token."""
    return hashlib.sha256(b"loglake-principal\0" + token.encode()).hexdigest()[:24]


def fingerprint(fmt: str, table: str | None, body: bytes) -> str:
    """What a request asked for: the same lines to the same table in the same format."""
    h = hashlib.sha256(f"{fmt}\0{table or ''}\0".encode())
    h.update(body)
    return h.hexdigest()[:32]


class KeyConflict(Exception):
    """The key was used by this principal for another request (422)."""


@dataclass(frozen=True)
class Entry:
    at: float  # when the request was committed (time.time())
    fingerprint: str  # "" for a key recorded before fingerprints: replayed for any body
    result: str  # the committed result as JSON: a compact string, not a dict per key

    def answer(self) -> dict[str, Any]:
        return json.loads(self.result)


class KeyIndex:
    """(principal, key) -> Entry, oldest first, expired as new keys come in."""

    def __init__(self, ttl: float = KEY_TTL) -> None:
        self.ttl = ttl
        self.entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, who: str, key: str) -> Entry | None:
        self.expire()
        # "": a key from a manifest written before keys had a principal (replayed as it was then)
        return self.entries.get((who, key)) or self.entries.get(("", key))

    def add(self, who: str, key: str, fp: str, result: dict[str, Any], at: float | None = None) -> None:
        entry = Entry(time.time() if at is None else at, fp, json.dumps(result, separators=(",", ":")))
        self.entries[(who, key)] = entry
        self.entries.move_to_end((who, key))
        self.expire()

    def expire(self, now: float | None = None) -> None:
        since = (time.time() if now is None else now) - self.ttl
        while self.entries:
            first = next(iter(self.entries.values()))
            if first.at >= since:
                return
            self.entries.popitem(last=False)

    @classmethod
    def load(cls, cfg: Config, ttl: float = KEY_TTL) -> KeyIndex:
        """The keys of batches committed in the last `ttl`, from their manifests."""
        index = cls(ttl)
        folder = cfg.spool_dir / BATCHES
        if not folder.is_dir():
            return index
        since = time.time() - ttl
        found: list[tuple[float, dict[str, Any]]] = []
        for entry in os.scandir(folder):
            if not entry.name.endswith(".json") or entry.name.endswith(".open.json") or entry.name[0] in "._":
                continue
            with contextlib.suppress(OSError, ValueError, KeyError):
                mtime = entry.stat().st_mtime
                if mtime >= since:
                    found.append((mtime, read_json(Path(entry.path))))
        for mtime, m in sorted(found, key=lambda f: f[0]):
            for r in m.get("requests", []):
                if r.get("key"):
                    result = {"batch": m.get("id"), **{k: v for k, v in r.items() if k not in _NOT_RESULT}}
                    index.add(r.get("principal", ""), r["key"], r.get("fingerprint", ""), result, at=mtime)
        return index


#: Fields of a manifest's request record that are not part of the answer.
_NOT_RESULT = ("key", "source", "principal", "fingerprint")
