"""A lease on one partition, shared by every host that compacts the same lake.

The partition lock (`compact.partition_lock`) is an flock: it keeps rollover and compaction on one
host apart, but hosts sharing a lake on S3 do not share flocks. Two hosts merging one hour at once
both write generation N and both re-register the partition in Trino (`ALREADY_EXISTS`, `Could not
write partition schema`). So compaction first takes `dt=D/hour=H/_compacting.json`, created only
if absent (`If-None-Match: *`) and taken over, once expired, only at the version read
(`If-Match`): exactly one host holds it, the others skip the partition and say who has it. A host
that crashed holding it blocks that partition for `compact_lease` seconds at most (itself not at
all: its next run takes its own lease back). The holder
renews it before its commit point and gives up (committing nothing) if it was taken over.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from loglake.storage import Lake

LEASE = "_compacting.json"


@dataclass
class Lease:
    """A lease this process holds (its version `tag` is what proves it)."""

    lake: Lake
    path: str
    host: str
    token: str
    tag: str
    ttl: float

    def renew(self) -> bool:
        """Extend the lease; False when another host took it over after it expired."""
        tag = self.lake.put_if(self.path, _body(self.host, self.token, self.ttl), self.tag)
        if tag is None:
            return False
        self.tag = tag
        return True

    def release(self) -> None:
        """Give the lease back (nothing happens when it was already taken over)."""
        self.lake.delete_if(self.path, self.tag)


@dataclass(frozen=True)
class Held:
    """A lease another process holds: who, and until when."""

    host: str
    until: float

    def __str__(self) -> str:
        stamp = time.strftime("%H:%M:%SZ", time.gmtime(self.until))
        return f"host {self.host or '?'} is compacting it (lease until {stamp})"


def acquire(lake: Lake, folder: str, host: str, ttl: float) -> Lease | Held:
    """Take the lease of the partition in `folder`, or say who holds it. Call it holding the
    partition's flock, so a lease of our own `host` is never a live process's."""
    path = f"{folder}/{LEASE}"
    token = os.urandom(8).hex()
    for _ in range(3):  # a lease released between our create and our read: try again
        tag = lake.put_if(path, _body(host, token, ttl), None)
        if tag is not None:
            return Lease(lake, path, host, token, tag, ttl)
        current = lake.read_tagged(path)
        if current is None:
            continue
        data, seen = current
        holder = _holder(data)
        if holder.until > time.time() and holder.host != host:
            return holder
        # Expired, or left by a process of this host that died: a live one would hold the
        # partition's flock, which our caller holds now. Take it over at the version read, once.
        tag = lake.put_if(path, _body(host, token, ttl), seen)
        if tag is not None:
            return Lease(lake, path, host, token, tag, ttl)
        return _holder((lake.read_tagged(path) or (b"", ""))[0])
    return Held("", time.time())


def _body(host: str, token: str, ttl: float) -> bytes:
    return json.dumps({"host": host, "token": token, "until": time.time() + ttl}).encode()


def _holder(data: bytes) -> Held:
    """Who holds the lease; an unreadable lease counts as expired (a write torn by a crash)."""
    try:
        doc = json.loads(data)
        return Held(str(doc["host"]), float(doc["until"]))
    except (ValueError, KeyError, TypeError):
        return Held("", 0.0)


__all__ = ["LEASE", "Held", "Lease", "acquire"]
