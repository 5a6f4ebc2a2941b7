"""The lake's object store through fsspec: a local folder by default, S3 (s3fs) when configured.

We use fsspec filesystems directly rather than wrapping them (STYLE.md); this module only builds
one from config and adds the one operation loglake needs beyond fsspec: an all-or-nothing write.
"""

from __future__ import annotations

import os
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
