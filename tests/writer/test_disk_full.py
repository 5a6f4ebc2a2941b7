"""A full disk pauses the writer; it loses nothing and finishes once space comes back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tests.helpers import open_files
from tests.writer.test_lossless import make_lines, markers


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs: a real filesystem that really fills up (needs root, as CI and dev machines run)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip()}); needs root")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_pauses_then_resumes_without_loss(tmp_path: Path, small_disk: Path) -> None:
    data_dir = small_disk / "data"
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (2 * 1024 * 1024))  # leaves ~1 MiB; the output needs ~1.5 MiB
    n = 12_000
    log = tmp_path / "access.log"
    log.write_bytes(b"\n".join(make_lines(0, n, junk_every=501)) + b"\n")
    env = cli_env(data_dir, LOGLAKE_WRITER_SEGMENT_MAX_BYTES="150000", LOGLAKE_WRITER_READ_BLOCK_BYTES="32768")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loglake", "write", str(log)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(4)
        assert proc.poll() is None, "the writer must wait for space, not exit"
        filler.unlink()  # space comes back
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "disk refused a write" in out  # it did hit the full disk
    assert open_files(data_dir) == []
    assert sorted(markers(data_dir)) == list(range(n))
    assert not [p for p in data_dir.rglob("*.tmp")]
    assert os.statvfs(small_disk).f_bavail > 0


def test_full_disk_at_the_commit_point_aborts_cleanly(tmp_path: Path, small_disk: Path) -> None:
    """ENOSPC while the manifest is written: the batch is aborted (nothing committed, no file
    left), the writer does not die, and the same lines commit once space is back."""
    import pyarrow as pa

    from loglake.config import load_config
    from loglake.writer.pipeline import Writer, _Pressure
    from loglake.writer.segments import SourceInfo

    data_dir = small_disk / "data"
    (tmp_path / "none.toml").write_text("")
    cfg = load_config(tmp_path / "none.toml", environ={"LOGLAKE_DATA_DIR": str(data_dir), "LOGLAKE_HOST_ID": "t"})
    w = Writer(cfg)
    src = SourceInfo("file", str(tmp_path / "x.log"), True, 1, 2, "f" * 32, 100)
    batch = w.open_batch(src, 0, 0)
    batch.write("access_log", pa.table({"path": ["/a", "/b"]}))
    batch.lines_read, batch.end_offset, batch.end_line = 2, 50, 2
    batch._wait()
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill every last block
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    with pytest.raises(_Pressure):
        w.seal(batch)
    assert open_files(data_dir) == [] and not list((data_dir / "spool" / "_batches").glob("*.json"))
    filler.unlink()
    again = w.open_batch(src, 0, 0)
    again.write("access_log", pa.table({"path": ["/a", "/b"]}))
    again.lines_read, again.end_offset, again.end_line = 2, 50, 2
    manifest = w.seal(again)
    assert manifest is not None and manifest["rows"] == {"access_log": 2}
    assert open_files(data_dir) == []
    w.close()
