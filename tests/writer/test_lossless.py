"""Lossless under kill -9 and log rotation: every source line ends up exactly once."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import cli_env
from tests.helpers import dead_letters, open_files, spool_rows

LINE = '10.0.0.{ip} - user{u} [28/Nov/2026:{h:02d}:{m:02d}:{s:02d} +0000] "GET /p/{i} HTTP/1.1" 200 {b} "-" "UA/{i}"'


def make_lines(start: int, end: int, junk_every: int = 0) -> list[bytes]:
    out = []
    for i in range(start, end):
        if junk_every and i % junk_every == 0:
            out.append(f"junk line {i}".encode())
        else:
            out.append(
                LINE.format(
                    ip=i % 250, u=i % 97, h=(i // 3600) % 24, m=(i // 60) % 60, s=i % 60, i=i, b=i % 9000
                ).encode()
            )
    return out


def markers(data_dir: Path) -> list[int]:
    """The line number encoded in every row and dead letter (exactly-once means no repeats, no gaps)."""
    found = [int(r["path"].rsplit("/", 1)[1]) for r in spool_rows(data_dir)]
    found += [int(d["raw"].split()[-1]) for d in dead_letters(data_dir)]
    return found


def _writer(args: list[str], data_dir: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "loglake", "write", *args],
        env=cli_env(data_dir, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str]:
    """Wait, read stderr and close the pipe; returns (exit code, stderr)."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode()


def test_kill_9_at_random_moments_then_rerun(tmp_path: Path, data_dir: Path) -> None:
    n = 120_000
    log = tmp_path / "access.log"
    log.write_bytes(b"\n".join(make_lines(0, n, junk_every=997)) + b"\n")
    small = {"LOGLAKE_WRITER_SEGMENT_MAX_BYTES": "200000", "LOGLAKE_WRITER_READ_BLOCK_BYTES": "32768"}
    # Calibrate: how long a whole uninterrupted run takes on this machine, in a scratch data dir.
    started = time.monotonic()
    assert _finish(_writer([str(log)], tmp_path / "scratch", **small), 300)[0] == 0
    full = time.monotonic() - started
    rng = random.Random(1234)
    kills = 0
    for _attempt in range(60):
        proc = _writer([str(log)], data_dir, **small)
        delay = rng.uniform(0.1, full * 0.6)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            _finish(proc)
            kills += 1
            continue
        rc, err = _finish(proc)
        assert rc == 0, err
        break
    else:
        raise AssertionError("the writer never finished")
    assert kills >= 3, "the test must actually interrupt the writer"
    # a final clean run recovers nothing new and finds the file complete
    assert _finish(_writer([str(log)], data_dir, **small), 120)[0] == 0
    assert open_files(data_dir) == []
    found = markers(data_dir)
    assert len(found) == n, f"{len(found) - n:+d} lines after {kills} kills"
    assert sorted(found) == list(range(n))


def test_sigterm_seals_what_was_read(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"\n".join(make_lines(0, 500)) + b"\n")
    proc = _writer(["--follow", str(log)], data_dir, LOGLAKE_WRITER_POLL_INTERVAL="0.05")
    _wait_for(lambda: _sealed_count(data_dir) == 500)  # the backlog is committed once caught up
    _append(log, make_lines(500, 1000))
    _wait_for(lambda: len(list((data_dir / "spool" / "access_log").glob("*.csv.open"))) > 0)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    rc, err = _finish(proc)
    assert rc == 0, err
    assert open_files(data_dir) == []
    assert sorted(markers(data_dir)) == list(range(1000))


def _wait_for(cond, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _append(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as f:
        f.write(b"\n".join(lines) + b"\n")
        f.flush()


def _sealed_count(data_dir: Path) -> int:
    return len(markers(data_dir))


def test_follow_survives_rename_and_copytruncate_rotation(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    env = {"LOGLAKE_WRITER_POLL_INTERVAL": "0.05", "LOGLAKE_WRITER_SEGMENT_MAX_AGE": "0.3"}
    proc = _writer(["--follow", str(log)], data_dir, **env)
    try:
        _append(log, make_lines(0, 500))
        _append(log, make_lines(500, 1000))
        _wait_for(lambda: _sealed_count(data_dir) == 1000)
        # logrotate `create`: rename; the server keeps writing to the old inode until it reopens
        os.rename(log, tmp_path / "access.log.1")
        _append(tmp_path / "access.log.1", make_lines(1000, 1010))
        log.write_bytes(b"")
        _append(log, make_lines(1010, 2000))
        _wait_for(lambda: _sealed_count(data_dir) == 2000)
        # logrotate `copytruncate`: copy, then truncate in place, then the server writes on
        shutil.copy(log, tmp_path / "access.log.2")
        with open(log, "r+b") as f:
            f.truncate(0)
        time.sleep(0.3)
        _append(log, make_lines(2000, 3000))
        _wait_for(lambda: _sealed_count(data_dir) == 3000)
        # a truncation the writer only sees after the file has outgrown its old position
        with open(log, "r+b") as f:
            f.truncate(0)
        _append(log, make_lines(3000, 5000))
        _wait_for(lambda: _sealed_count(data_dir) >= 5000)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc, err = _finish(proc)
    assert rc == 0, err
    assert sorted(markers(data_dir)) == list(range(5000))
    # restart: checkpoints say the current file is done, so nothing is read twice
    again = _writer(["--follow", str(log)], data_dir, **env)
    time.sleep(1.0)
    again.send_signal(signal.SIGTERM)
    assert _finish(again)[0] == 0
    assert sorted(markers(data_dir)) == list(range(5000))
    _append(log, make_lines(5000, 5100))
    assert _finish(_writer([str(log)], data_dir))[0] == 0
    assert sorted(markers(data_dir)) == list(range(5100))


def test_restart_after_kill_finishes_a_file_rotated_while_down(tmp_path: Path, data_dir: Path) -> None:
    """Killed, then the log is rotated and the old file gets more lines: a restarted follower reads
    the old file's tail (found by inode and fingerprint beside the path) before the new file."""
    log = tmp_path / "access.log"
    log.write_bytes(b"\n".join(make_lines(0, 1000)) + b"\n")
    env = {"LOGLAKE_WRITER_POLL_INTERVAL": "0.05", "LOGLAKE_WRITER_SEGMENT_MAX_AGE": "0.2"}
    proc = _writer(["--follow", str(log)], data_dir, **env)
    _wait_for(lambda: _sealed_count(data_dir) == 1000)
    proc.send_signal(signal.SIGKILL)
    _finish(proc)
    _append(log, make_lines(1000, 1200))  # written after the kill, before rotation
    os.rename(log, tmp_path / "access.log.1")
    log.write_bytes(b"\n".join(make_lines(1200, 1500)) + b"\n")
    again = _writer(["--follow", str(log)], data_dir, **env)
    try:
        _wait_for(lambda: _sealed_count(data_dir) >= 1500)
    finally:
        again.send_signal(signal.SIGTERM)
        rc, err = _finish(again)
    assert rc == 0, err
    assert sorted(markers(data_dir)) == list(range(1500))


def test_stdin_batch_salvaged_after_kill_9(tmp_path: Path, data_dir: Path) -> None:
    """A pipe cannot be re-read: rows of an unsealed stdin batch are kept on restart, a torn last
    row is cut and dead-lettered as `torn`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loglake", "write"],
        env=cli_env(data_dir),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(b"\n".join(make_lines(0, 300)) + b"\n")
    proc.stdin.flush()
    spool = data_dir / "spool" / "access_log"

    def rows_on_disk() -> int:
        files = list(spool.glob("*.csv.open")) if spool.exists() else []
        return sum(f.read_bytes().count(b"\n") - 1 for f in files)

    _wait_for(lambda: rows_on_disk() == 300)
    proc.send_signal(signal.SIGKILL)
    _finish(proc)  # closes our end of the pipe too
    opened = next(spool.glob("*.csv.open"))
    with open(opened, "ab") as f:
        f.write(b'"2026-11-28T00:00:00Z","torn row, never fini')  # as if killed mid-write
    again = subprocess.run(
        [sys.executable, "-m", "loglake", "write"], env=cli_env(data_dir), input=b"", capture_output=True, timeout=60
    )
    assert again.returncode == 0, again.stderr.decode()
    assert b"1 salvaged" in again.stderr
    assert open_files(data_dir) == []
    assert sorted(int(r["path"].rsplit("/", 1)[1]) for r in spool_rows(data_dir)) == list(range(300))
    torn = [d for d in dead_letters(data_dir) if d["reason"].startswith("torn")]
    assert len(torn) == 1 and "torn row" in torn[0]["line"]
