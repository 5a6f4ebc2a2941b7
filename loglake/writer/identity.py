"""File identity by content, checkpoints, and the locks that keep two writers apart.

A log file is identified by a hash of its first bytes (of the *decompressed* bytes for `.gz`), not
by its inode: a renamed file, a `copytruncate` copy and a compressed rotation are all the same
content, so one checkpoint serves them all and reading `access.log.1.gz` after `access.log` adds
nothing. (Vector's checksum fingerprinting works the same way.) A file shorter than
`FINGERPRINT_BYTES` is identified by all of it; a record made then still matches it once it has
grown, because a log's prefix never changes. A reader lengthens its identity only from the bytes it
has itself read (tail.py), never by looking at the file again: after a `copytruncate` the file
holds other content, and an identity taken from it then would file the old content's checkpoint
under the new content's name (and its copy would be read again from byte 0). Claims (claims.py)
keep two readers off one content.

Checkpoints are cached in `state/checkpoints/<fingerprint>.json`. The writer saves the cache after
a batch's manifest commits and *before* it removes the batch's intent, and recovery does the same
for a batch a crash left committed, so the cache is complete whenever no intent is left: no
manifest has to be read to resume, however long the spool's history.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loglake.config import Config
from loglake.errors import SourceError
from loglake.fsutil import atomic_write_bytes, atomic_write_json, private_dir, read_json
from loglake.writer.segments import BATCHES, SourceInfo

FINGERPRINT_BYTES = 1024
GZIP_MAGIC = b"\x1f\x8b"
_MARKER = ".content-identity-v2"


def open_content(path: str) -> tuple[IO[bytes], IO[bytes], str]:
    """(raw file, reader of its content, kind): gzip is recognised by its magic bytes, not its name."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as e:
        raise SourceError(f"{path}: cannot open: {e.strerror}") from e
    if os.path.isdir(path):
        raw.close()
        raise SourceError(f"{path}: is a directory")
    if os.pread(raw.fileno(), 2, 0) == GZIP_MAGIC:
        return raw, gzip.GzipFile(fileobj=raw, mode="rb"), "gzip"
    return raw, raw, "file"


def close_content(raw: IO[bytes], handle: IO[bytes]) -> None:
    """Close what `open_content` opened (the gzip reader, then the file)."""
    if handle is not raw:
        handle.close()
    raw.close()


@contextlib.contextmanager
def content_of(path: str) -> Iterator[tuple[IO[bytes], IO[bytes], str]]:
    """`open_content` for a short look: closed on leaving."""
    raw, handle, kind = open_content(path)
    try:
        yield raw, handle, kind
    finally:
        close_content(raw, handle)


def gzip_isize(raw: IO[bytes]) -> int | None:
    """A gzip's trailer: its content length mod 2^32 (None if too short to be a gzip)."""
    size = os.fstat(raw.fileno()).st_size
    return int(struct.unpack("<I", os.pread(raw.fileno(), 4, size - 4))[0]) if size >= 18 else None


def content_head(raw: IO[bytes], kind: str, length: int = FINGERPRINT_BYTES) -> bytes:
    """The first `length` bytes of the content, without moving the reader: `pread` for plain files,
    a second, independent open of the same file (by descriptor) for gzip."""
    if kind != "gzip":
        return os.pread(raw.fileno(), length, 0)
    try:
        with open(f"/proc/self/fd/{raw.fileno()}", "rb") as again, gzip.GzipFile(fileobj=again) as gz:
            return gz.read(length)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
        return b""  # a gzip still being written: no identity yet


def digest(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()[:32]


def identify(path: str, raw: IO[bytes], kind: str, head: bytes | None = None) -> SourceInfo:
    st = os.fstat(raw.fileno())
    head = content_head(raw, kind) if head is None else head
    return SourceInfo(kind, os.path.abspath(path), True, st.st_dev, st.st_ino, digest(head), len(head))


def prefix_changed(raw: IO[bytes], src: SourceInfo) -> bool:
    """A plain file's first bytes no longer match its identity: truncated (and maybe rewritten)."""
    return bool(src.fp_len) and digest(os.pread(raw.fileno(), src.fp_len, 0)) != src.fingerprint


@dataclass(frozen=True)
class Checkpoint:
    """Where the sealed part of one content ends; `ignored` marks history that predates loglake."""

    fingerprint: str
    fp_len: int
    offset: int
    line: int
    path: str
    ignored: bool = False


class CheckpointStore:
    """Checkpoints keyed by content fingerprint; read fresh on every lookup (other writers share it)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.dir = private_dir(cfg.state_dir / "checkpoints")
        self._cache: tuple[int, list[Checkpoint]] | None = None
        if not (self.dir / _MARKER).exists():
            self._rebuild_from_manifests()

    def _records(self) -> list[Checkpoint]:
        """All records, read again only when the folder changed (every save is a rename into it, so
        its mtime moves): a restart beside hundreds of rotated files reads them once, not per file."""
        stamp = os.stat(self.dir).st_mtime_ns
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        records = self._read_records()
        self._cache = (stamp, records)
        return records

    def records(self) -> list[Checkpoint]:
        return list(self._records())

    def _read_records(self) -> list[Checkpoint]:
        out = []
        for entry in os.scandir(self.dir):
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                d = read_json(Path(entry.path))
                out.append(
                    Checkpoint(
                        str(d["fingerprint"]),
                        int(d["fp_len"]),
                        int(d["offset"]),
                        int(d.get("line", 0)),
                        str(d.get("path", "")),
                        bool(d.get("ignored", False)),
                    )
                )
        return out

    def lookup(self, head: bytes) -> Checkpoint | None:
        """The furthest checkpoint of the content that starts with `head` (None: never seen)."""
        best: Checkpoint | None = None
        digests: dict[int, str] = {}
        for c in self._records():
            if c.fp_len <= 0 or c.fp_len > len(head):
                continue
            d = digests.setdefault(c.fp_len, digest(head[: c.fp_len]))
            if d == c.fingerprint and (best is None or c.offset > best.offset or c.ignored):
                best = c
                if c.ignored:
                    break
        return best

    def save(self, src: SourceInfo, offset: int, line: int, ignored: bool = False) -> None:
        """Record that `src` is sealed up to `offset` (never moves a checkpoint backwards)."""
        if not src.fp_len:
            return
        path = self.dir / f"{src.fingerprint}.json"
        with contextlib.suppress(OSError, ValueError):
            if int(read_json(path)["offset"]) >= offset and not ignored:
                return
        data = {
            "fingerprint": src.fingerprint,
            "fp_len": src.fp_len,
            "offset": offset,
            "line": line,
            "path": src.path,
            "kind": src.kind,
            "ignored": ignored,
            "updated": time.time(),
        }
        atomic_write_json(path, data, durable=self.cfg.writer.fsync != "off")
        self._cache = None

    def save_source(self, source: dict[str, Any], offset: int, line: int) -> None:
        """`save` for a source as recorded in a manifest or intent."""
        if source.get("replayable", True) and source.get("fp_len"):
            src = SourceInfo(
                source.get("kind", "file"),
                source.get("path", ""),
                True,
                int(source.get("dev", 0)),
                int(source.get("inode", 0)),
                source["fingerprint"],
                int(source["fp_len"]),
            )
            self.save(src, offset, line)

    def _rebuild_from_manifests(self) -> None:
        """Derive every checkpoint from the manifests once (a spool made before content identity)."""
        batches = self.cfg.spool_dir / BATCHES
        if batches.is_dir():
            for entry in os.scandir(batches):
                if not entry.name.endswith(".json") or entry.name.endswith(".open.json") or entry.name[0] == ".":
                    continue
                with contextlib.suppress(OSError, ValueError, KeyError):
                    m = read_json(Path(entry.path))
                    self.save_source(m["source"], int(m["end_offset"]), int(m["last_line"]))
        atomic_write_bytes(self.dir / _MARKER, b"checkpoints are keyed by content fingerprint\n")


class PathRegistry:
    """Paths loglake has read, and when it first did: rotated siblings older than that are history
    the user did not ask for; newer ones are lines written while the writer was down."""

    def __init__(self, cfg: Config) -> None:
        self.dir = private_dir(cfg.state_dir / "paths")

    def _file(self, path: str) -> Path:
        return self.dir / f"{hashlib.sha256(path.encode()).hexdigest()[:24]}.json"

    def first_seen(self, path: str) -> float | None:
        try:
            return float(read_json(self._file(os.path.abspath(path)))["first_seen"])
        except (OSError, ValueError, KeyError):
            return None

    def register(self, path: str) -> bool:
        """Remember `path`; True the first time (the caller then marks its history as ignored)."""
        target = os.path.abspath(path)
        if self.first_seen(target) is not None:
            return False
        atomic_write_json(self._file(target), {"path": target, "first_seen": time.time()})
        return True

    def paths(self) -> list[str]:
        out = []
        for p in sorted(self.dir.glob("*.json")):
            with contextlib.suppress(OSError, ValueError, KeyError):
                out.append(str(read_json(p)["path"]))
        return out


class WriterLease:
    """Held (flock) for a writer's whole life; its id goes into every intent. Recovery decides that
    a batch's writer is dead by taking its lease, never by pid: containers sharing a data dir all
    run as pid 1, and the kernel drops an flock the moment its holder dies."""

    def __init__(self, cfg: Config) -> None:
        self.dir = private_dir(cfg.state_dir / "writers")
        self.id = f"{cfg.host_id}-{os.urandom(6).hex()}"
        self.fd = os.open(self.dir / f"{self.id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self.fd, json.dumps({"pid": os.getpid(), "started": time.time()}).encode())

    def holder_alive(self, writer_id: str) -> bool:
        """True while the writer that took lease `writer_id` lives. A dead writer's lease file is
        removed while we hold its lock, so nobody can be waiting on it."""
        if writer_id == self.id:
            return True
        if "/" in writer_id or not writer_id:
            return False
        path = self.dir / f"{writer_id}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops our lock too
        path.unlink(missing_ok=True)
        return False

    def release(self) -> None:
        if self.fd >= 0:
            (self.dir / f"{self.id}.lock").unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = -1
