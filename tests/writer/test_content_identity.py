"""One content, one reader, one checkpoint: a file first seen empty keeps its identity across a
`copytruncate`, two readers of one content (a file and its copy) never both read it, lock files do
not pile up, and `status` shows a byte range sealed twice."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from loglake.config import Config
from loglake.writer.claims import SourceBusy
from loglake.writer.pipeline import Writer
from loglake.writer.tail import FileTail
from tests.conftest import run_cli
from tests.writer.test_lossless import _append, _finish, _sealed_count, _wait_for, _writer, make_lines, markers

#: No seal by age before the rotation: the first seal of the file is the one at its truncate.
SLOW_SEAL = {
    "LOGLAKE_WRITER_POLL_INTERVAL": "0.05",
    "LOGLAKE_WRITER_SEGMENT_MAX_AGE": "3600",
    "LOGLAKE_WRITER_ROTATE_WAIT": "0.5",
}


def _lines(a: int, b: int) -> bytes:
    return b"\n".join(make_lines(a, b)) + b"\n"


def _open_segments_hold(data_dir: Path, marker: bytes) -> bool:
    return any(marker in p.read_bytes() for p in (data_dir / "spool").glob("*/*.csv.open"))


def test_copytruncate_of_a_file_empty_at_first_sight_before_its_first_seal(tmp_path: Path, data_dir: Path) -> None:
    """The writer starts before the server's first line. Its first seal comes at the truncate, when
    the file already holds the next content: the identity must be the one of the bytes it read, or
    the checkpoint is filed under the new content and the copy is read again from byte 0."""
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    proc = _writer(["--follow", str(log)], data_dir, **SLOW_SEAL)
    try:
        time.sleep(0.5)  # the writer has seen the empty file
        _append(log, make_lines(0, 500))
        _wait_for(lambda: _open_segments_hold(data_dir, b'"/p/499"'))  # read, not sealed
        _append(log, make_lines(500, 520))  # only in the copy
        shutil.copy(log, tmp_path / "access.log.1")
        with open(log, "r+b") as f:
            f.truncate(0)
        _append(log, make_lines(520, 600))
        _wait_for(lambda: _open_segments_hold(data_dir, b'"/p/599"'))
    finally:
        proc.send_signal(signal.SIGTERM)
        rc, err = _finish(proc)
    assert rc == 0, err
    assert sorted(markers(data_dir)) == list(range(600))
    st = json.loads(run_cli(["status", "--format", "json"], data_dir).stdout)
    assert st["doubled_bytes"] == 0 and st["unread_bytes"] == 0 and st["reconciles"]


def test_status_shows_a_range_sealed_twice(tmp_path: Path, data_dir: Path) -> None:
    """State lost (the checkpoints deleted): the file is read again from byte 0. Counts reconcile
    line by line, but `status` sees the same bytes of one content sealed twice."""
    log = tmp_path / "access.log"
    log.write_bytes(_lines(0, 100))
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    for p in (data_dir / "state" / "checkpoints").glob("*.json"):
        p.unlink()
    _append(log, make_lines(100, 150))
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    assert len(markers(data_dir)) == 250
    st = json.loads(run_cli(["status", "--format", "json"], data_dir).stdout)
    assert st["doubled"] == [
        {"file": str(log), "doubled_bytes": len(_lines(0, 100)), "doubled_ranges": [[0, len(_lines(0, 100))]]}
    ]
    assert st["reconciles"] is False
    shown = run_cli(["status"], data_dir).stdout
    assert "content read twice" in shown and "DOES NOT RECONCILE" in shown


def _tail(cfg: Config, path: Path) -> FileTail:
    return FileTail.open(Writer(cfg), str(path))


def test_one_reader_per_content_whatever_the_file(tmp_path: Path, cfg: Config) -> None:
    """A copy is the same content as its original (and as a hard link's inode): while one reader
    holds it, another is refused; once it is done, the other resumes at its checkpoint."""
    log = tmp_path / "access.log"
    log.write_bytes(_lines(0, 3))  # short: its first bytes grow after both readers' first look
    first = _tail(cfg, log)
    _append(log, make_lines(3, 100))
    shutil.copy(log, tmp_path / "access.log.copy")
    with pytest.raises(SourceBusy, match="another loglake writer is reading this content"):
        _tail(cfg, tmp_path / "access.log.copy")
    (tmp_path / "link.log").hardlink_to(log)
    with pytest.raises(SourceBusy):
        _tail(cfg, tmp_path / "link.log")
    first.pump(final=False)
    first.seal()
    first.close()
    second = _tail(cfg, tmp_path / "access.log.copy")
    assert second.offset == len(_lines(0, 100))
    second.close()
    assert sorted(markers(cfg.data_dir)) == list(range(100))


def test_a_file_empty_at_first_sight_claims_its_content_when_it_reads_it(tmp_path: Path, cfg: Config) -> None:
    """An empty file has no content to claim yet. If a copy of its first lines is claimed before
    its reader reads them, that reader gives way instead of reading them a second time."""
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    first = _tail(cfg, log)
    _append(log, make_lines(0, 100))
    shutil.copy(log, tmp_path / "access.log.copy")
    second = _tail(cfg, tmp_path / "access.log.copy")
    second.pump(final=False)
    with pytest.raises(SourceBusy):
        first.pump(final=False)
    first.close()
    second.close()
    assert sorted(markers(cfg.data_dir)) == list(range(100))


def test_two_writers_on_a_file_and_its_copy_read_each_line_once(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(_lines(0, 20_000))
    shutil.copy(log, tmp_path / "access.log.copy")
    procs = [_writer(["--follow", str(p)], data_dir) for p in (log, tmp_path / "access.log.copy")]
    try:
        _wait_for(lambda: any(p.poll() is not None for p in procs) and _sealed_count(data_dir) >= 20_000, 90)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        done = sorted(_finish(p) for p in procs)
    assert [rc for rc, _ in done] == [0, 75], done
    assert "another loglake writer is reading this content" in done[1][1]
    assert sorted(markers(data_dir)) == list(range(20_000))


def test_lock_files_do_not_pile_up(tmp_path: Path, data_dir: Path) -> None:
    """A claim is removed when its reader is done, and the file a killed reader left (or a lock file
    of the per-inode scheme) by the next reader."""
    locks = data_dir / "state" / "locks"
    locks.mkdir(parents=True, mode=0o700)
    (locks / "2049-1234.lock").write_bytes(b"")
    logs = [tmp_path / f"{i}.log" for i in range(5)]
    for i, log in enumerate(logs):
        log.write_bytes(_lines(i * 100, i * 100 + 100))
    proc = _writer(["--follow", str(logs[0])], data_dir, LOGLAKE_WRITER_POLL_INTERVAL="0.05")
    _wait_for(lambda: _sealed_count(data_dir) == 100)
    proc.send_signal(signal.SIGKILL)
    _finish(proc)
    for log in logs[1:]:
        assert run_cli(["write", str(log)], data_dir).returncode == 0
    assert sorted(p.name for p in locks.rglob("*.lock")) == []
    assert sorted(markers(data_dir)) == list(range(500))
