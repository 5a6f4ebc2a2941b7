"""The lake's object store through fsspec: a local folder by default, S3 (s3fs) when configured.

We use fsspec filesystems directly rather than wrapping them (STYLE.md); this module only builds
one from config and adds the one operation loglake needs beyond fsspec: an all-or-nothing write.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from loglake.config import Config
from loglake.fsutil import (
    DIR_MODE,
    FILE_MODE,
    atomic_write_bytes,
    fsync_dir,
    make_dirs_durably,
    shared_modes,
    sweep_dead_temps,
)


@dataclass
class Lake:
    """An fsspec filesystem plus the lake root (without protocol) and its URL (with it), and the
    modes of the files and folders it creates on a local disk (S3 has none)."""

    fs: fsspec.AbstractFileSystem
    root: str
    url: str
    file_mode: int = FILE_MODE
    dir_mode: int = DIR_MODE

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def uri(self, *parts: str) -> str:
        """Full URL of a path under the lake, as SQL engines see it."""
        p = self.path(*parts)
        return p if self.is_local else f"s3://{p}"

    def remove_tree(self, path: str) -> None:
        """Delete a folder and everything under it. Object stores with real directories (SeaweedFS's
        filer) keep an empty directory entry after its objects go, which a glob of `dt=*/hour=*`
        would still list as a partition: it is deleted too."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)
        if not self.is_local:
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.rm(path.rstrip("/") + "/")
            self.fs.invalidate_cache(path)

    def write_atomic(self, path: str, data: bytes) -> None:
        """Readers see the whole file or nothing.

        Local: a temporary name that no reader matches (`.<name>.<pid>.tmp`), fsync, rename;
        temp files that killed processes left in the folder are removed first. S3: one PUT (or a
        completed multipart upload) is atomic by itself.
        """
        if self.is_local:
            target = Path(path)
            made = make_dirs_durably(target.parent, self.dir_mode)
            if not made:
                sweep_dead_temps(target.parent)
            atomic_write_bytes(target, data, mode=self.file_mode)
            for d in made:  # new dt=/hour= folders survive a power loss before the catalog sees them
                fsync_dir(d)
        else:
            self.fs.pipe_file(path, data)

    # ---- compare-and-swap: what lets hosts sharing a lake agree on one small object --------------
    # S3 (and SeaweedFS) give them as conditional requests: `If-None-Match: *` creates only if
    # absent, `If-Match: <etag>` replaces or deletes only the version read. A local lake does the
    # same under an flock on the object's folder, with a content hash for the tag.

    def read_tagged(self, path: str) -> tuple[bytes, str] | None:
        """The object and its version tag, read together; None when it does not exist."""
        if self.is_local:
            try:
                data = Path(path).read_bytes()
            except FileNotFoundError:
                return None
            return data, _digest(data)
        from fsspec.asyn import sync

        bucket, key, _ = self.fs.split_path(path)
        try:
            return sync(self.fs.loop, _s3_get, self.fs, bucket, key)
        except FileNotFoundError:
            return None

    def put_if(self, path: str, data: bytes, tag: str | None) -> str | None:
        """Write `path` only if it is absent (`tag` None) or still at version `tag`; the new tag,
        or None when another writer got there first."""
        if self.is_local:
            with self._folder_lock(path):
                now = self.read_tagged(path)
                if (now is None) != (tag is None) or (now is not None and now[1] != tag):
                    return None
                atomic_write_bytes(Path(path), data, mode=self.file_mode)
                return _digest(data)
        bucket, key, _ = self.fs.split_path(path)
        match = {"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag}
        try:
            out = self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **match)
        except OSError as e:
            if _precondition_failed(e):
                return None
            raise
        finally:
            self.fs.invalidate_cache(path)
        return out["ETag"]

    def delete_if(self, path: str, tag: str) -> bool:
        """Delete `path` only if it is still at version `tag`."""
        if self.is_local:
            with self._folder_lock(path):
                now = self.read_tagged(path)
                if now is None or now[1] != tag:
                    return False
                os.unlink(path)
                return True
        bucket, key, _ = self.fs.split_path(path)
        try:
            self.fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=tag)
        except (FileNotFoundError, OSError) as e:
            if isinstance(e, FileNotFoundError) or _precondition_failed(e):
                return False
            raise
        finally:
            self.fs.invalidate_cache(path)
        return True

    @contextlib.contextmanager
    def _folder_lock(self, path: str) -> Iterator[None]:
        folder = Path(path).parent
        make_dirs_durably(folder, self.dir_mode)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _s3_get(fs: Any, bucket: str, key: str) -> tuple[bytes, str]:
    resp = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    try:
        data = await resp["Body"].read()
    finally:
        resp["Body"].close()
    return data, resp["ETag"]


def _precondition_failed(e: BaseException) -> bool:
    """s3fs raises a 412 (or a 409 from a concurrent conditional write) as a plain OSError."""
    cause = e.__cause__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code", "") if cause is not None else ""
    status = getattr(cause, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) if cause else 0
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def s3_options(cfg: Config) -> dict[str, Any]:
    """s3fs keyword arguments; credentials come from the AWS variables, a profile or the instance."""
    st = cfg.storage
    opts: dict[str, Any] = {}
    client: dict[str, Any] = {}
    if st.endpoint_url:
        client["endpoint_url"] = st.endpoint_url
    if st.region:
        client["region_name"] = st.region
    if client:
        opts["client_kwargs"] = client
    if st.path_style:
        opts["config_kwargs"] = {"s3": {"addressing_style": "path"}}
    if st.profile:
        opts["profile"] = st.profile
    if st.sse:  # server-side encryption at rest, on every PUT
        extra = {"ServerSideEncryption": st.sse}
        if st.sse_kms_key_id:
            extra["SSEKMSKeyId"] = st.sse_kms_key_id
        opts["s3_additional_kwargs"] = extra
    return opts


def open_lake(cfg: Config) -> Lake:
    url = cfg.lake_url
    if url.startswith("s3://"):
        import s3fs

        fs = s3fs.S3FileSystem(**s3_options(cfg))
        return Lake(fs, url[len("s3://") :].rstrip("/"), url.rstrip("/"))
    path = url[len("file://") :] if url.startswith("file://") else url
    root = os.path.abspath(path)
    return Lake(LocalFileSystem(), root, root, *shared_modes(cfg.storage.group_readable))
