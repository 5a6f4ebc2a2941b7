"""Every rotation style, live and across restarts: each line in the spool exactly once (issue #7).

Each test reproduces one row of the issue's table with real files and a real `loglake write`
process; markers() reads back the line numbers of every row and dead letter.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import cli_env, run_cli
from tests.helpers import dead_letters, open_files, spool_rows
from tests.hostile import age_file
from tests.writer.test_lossless import _append, _finish, _sealed_count, _wait_for, _writer, make_lines, markers

FAST = {
    "LOGLAKE_WRITER_POLL_INTERVAL": "0.05",
    "LOGLAKE_WRITER_SEGMENT_MAX_AGE": "0.2",
    "LOGLAKE_WRITER_ROTATE_WAIT": "0.5",
}


def _lines(a: int, b: int) -> bytes:
    return b"\n".join(make_lines(a, b)) + b"\n"


def _follow(log: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    return _writer(["--follow", str(log)], data_dir, **FAST)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    rc, err = _finish(proc)
    assert rc == 0, err


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    _finish(proc)


def test_rename_rotation_keeps_reading_the_old_file_until_idle(tmp_path: Path, data_dir: Path) -> None:
    """nginx writes to the renamed file until USR1 reopens its log; a half-written last line of the
    old file is completed there, not emitted as a line of its own."""
    log = tmp_path / "access.log"
    log.write_bytes(_lines(0, 100))
    proc = _follow(log, data_dir)
    try:
        _wait_for(lambda: _sealed_count(data_dir) == 100)
        old = tmp_path / "access.log.1"
        os.rename(log, old)
        line100 = make_lines(100, 101)[0]
        with open(old, "ab") as f:
            f.write(line100[:20])  # half a line, then the new file appears
        log.write_bytes(_lines(101, 200))
        time.sleep(0.3)  # shorter than rotate_wait: the old file is still followed
        with open(old, "ab") as f:
            f.write(line100[20:] + b"\n" + _lines(200, 210))  # the worker had not reopened yet
        _append(log, make_lines(210, 300))
        _wait_for(lambda: _sealed_count(data_dir) == 300)
    finally:
        _stop(proc)
    assert sorted(markers(data_dir)) == list(range(300))
    assert dead_letters(data_dir) == []


def test_copytruncate_while_the_writer_is_down(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(_lines(0, 1000))
    proc = _follow(log, data_dir)
    _wait_for(lambda: _sealed_count(data_dir) == 1000)
    _kill(proc)
    _append(log, make_lines(1000, 1300))  # only in the copy after the truncate
    shutil.copy(log, tmp_path / "access.log.1")
    with open(log, "r+b") as f:
        f.truncate(0)
    _append(log, make_lines(1300, 1400))
    proc = _follow(log, data_dir)
    try:
        _wait_for(lambda: _sealed_count(data_dir) >= 1400)
    finally:
        _stop(proc)
    assert sorted(markers(data_dir)) == list(range(1400))


def test_copytruncate_live_reads_the_copy_past_the_checkpoint(tmp_path: Path, data_dir: Path) -> None:
    """Lines appended just before the copy were not read yet at the truncate: the copy has them."""
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    env = {**FAST, "LOGLAKE_WRITER_POLL_INTERVAL": "1.0"}  # slow polls: the truncate comes first
    proc = _writer(["--follow", str(log)], data_dir, **env)
    try:
        _append(log, make_lines(0, 500))
        _wait_for(lambda: _sealed_count(data_dir) == 500)
        time.sleep(1.2)
        _append(log, make_lines(500, 800))
        shutil.copy(log, tmp_path / "access.log.1")
        with open(log, "r+b") as f:
            f.truncate(0)
        _append(log, make_lines(800, 900))
        _wait_for(lambda: _sealed_count(data_dir) >= 900)
    finally:
        _stop(proc)
    assert sorted(markers(data_dir)) == list(range(900))


def test_killed_before_every_seal_then_rename_rotation(tmp_path: Path, data_dir: Path) -> None:
    """A writer that never sealed: the discarded batch's intent (and the first look at the file)
    still say which content it was reading, so the rotated file is found on restart."""
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    slow = {**FAST, "LOGLAKE_WRITER_SEGMENT_MAX_AGE": "3600"}
    for i in range(3):
        proc = _writer(["--follow", str(log)], data_dir, **slow)
        time.sleep(1.0)
        _append(log, make_lines(i * 1000, (i + 1) * 1000))
        _wait_for(lambda: bool(list((data_dir / "spool" / "access_log").glob("*.csv.open"))))
        _kill(proc)
    os.rename(log, tmp_path / "access.log.1")
    log.write_bytes(_lines(3000, 3500))
    proc = _follow(log, data_dir)
    try:
        _wait_for(lambda: _sealed_count(data_dir) >= 3500)
    finally:
        _stop(proc)
    assert sorted(markers(data_dir)) == list(range(3500))


def test_two_rotations_and_compress_while_down(tmp_path: Path, data_dir: Path) -> None:
    """logrotate `compress` without `delaycompress`, twice while the writer is down: the old file's
    tail is in a .gz (same content, so it resumes at the checkpoint) and the middle file is new."""
    log = tmp_path / "access.log"
    (tmp_path / "access.log.9.gz").write_bytes(gzip.compress(b"history before loglake\n"))
    age_file(tmp_path / "access.log.9.gz")
    log.write_bytes(_lines(0, 1000))
    proc = _follow(log, data_dir)
    _wait_for(lambda: _sealed_count(data_dir) == 1000)
    _kill(proc)
    _append(log, make_lines(1000, 1100))
    (tmp_path / "access.log.1.gz").write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    log.write_bytes(_lines(1100, 1500))  # created and rotated while we are down
    (tmp_path / "access.log.2.gz").write_bytes((tmp_path / "access.log.1.gz").read_bytes())
    (tmp_path / "access.log.1.gz").write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    log.write_bytes(_lines(1500, 1600))
    proc = _follow(log, data_dir)
    try:
        _wait_for(lambda: _sealed_count(data_dir) >= 1600)
    finally:
        _stop(proc)
    assert sorted(markers(data_dir)) == list(range(1600))  # nor the history file


def test_one_shot_write_after_a_rotation_reads_the_rotated_tail(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(_lines(0, 100))
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    _append(log, make_lines(100, 150))
    os.rename(log, tmp_path / "access.log-20261201")
    log.write_bytes(_lines(150, 200))
    proc = run_cli(["write", str(log)], data_dir)
    assert proc.returncode == 0, proc.stderr
    assert sorted(markers(data_dir)) == list(range(200))


def test_compressed_copy_is_the_same_file(tmp_path: Path, data_dir: Path) -> None:
    """`write access.log` then `write access.log.1.gz` adds nothing; the other way round resumes."""
    log = tmp_path / "access.log"
    log.write_bytes(_lines(0, 300))
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    gz = tmp_path / "access.log.1.gz"
    gz.write_bytes(gzip.compress(log.read_bytes()))
    proc = run_cli(["write", str(gz)], data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stderr
    assert sorted(markers(data_dir)) == list(range(300))
    other = tmp_path / "other"
    (other / "b.log.2.gz").parent.mkdir()
    (other / "b.log.2.gz").write_bytes(gzip.compress(_lines(1000, 1200)))
    (other / "b.log").write_bytes(_lines(1000, 1200) + _lines(1200, 1250))
    assert run_cli(["write", str(other / "b.log.2.gz")], data_dir).returncode == 0
    assert run_cli(["write", str(other / "b.log")], data_dir).returncode == 0
    assert sorted(markers(data_dir)) == list(range(300)) + list(range(1000, 1250))


def test_half_written_last_line_is_written_once_whole(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    line = make_lines(100, 101)[0]
    log.write_bytes(_lines(0, 100) + line[:30])
    proc = run_cli(["write", str(log)], data_dir)
    assert proc.returncode == 0, proc.stderr
    assert sorted(markers(data_dir)) == list(range(100))
    _append(log, [line[30:]])
    proc = run_cli(["write", str(log)], data_dir)
    assert proc.returncode == 0, proc.stderr
    assert sorted(markers(data_dir)) == list(range(101)) and dead_letters(data_dir) == []


def test_compressed_copy_of_a_live_file_with_a_half_line(tmp_path: Path, data_dir: Path) -> None:
    """The two halves of the acceptance at once: a .gz copy taken while the live file's last line
    was half written adds nothing, and the line is written once, whole, when it is completed."""
    log = tmp_path / "access.log"
    line = make_lines(100, 101)[0]
    log.write_bytes(_lines(0, 100) + line[:30])
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    (tmp_path / "access.log.1.gz").write_bytes(gzip.compress(log.read_bytes()))
    proc = run_cli(["write", str(tmp_path / "access.log.1.gz")], data_dir)
    assert proc.returncode == 0 and "lines read 0" in proc.stderr, proc.stderr
    _append(log, [line[30:]])
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    assert sorted(markers(data_dir)) == list(range(101)) and dead_letters(data_dir) == []


def test_a_line_that_never_ends_keeps_memory_flat(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    with open(log, "wb") as f:
        f.write(_lines(0, 10))
        for _ in range(48):
            f.write(b"x" * (1 << 20))  # 48 MiB without a newline
        f.write(b"\n" + _lines(10, 20))
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, "write", str(log)],
        env=cli_env(data_dir, LOGLAKE_WRITER_READ_BLOCK_BYTES="1048576"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # Anonymous memory is what a held line would grow; file-backed pages (shared libraries) vary
    # with the machine's page cache and say nothing about the input.
    peak_mb = int(proc.stdout.split()[-1]) / 1024
    assert peak_mb < 150, f"peak anonymous RSS {peak_mb:.0f} MiB for a 48 MiB line"
    (dl,) = [d for d in dead_letters(data_dir) if d["reason"].startswith("too_long")]
    assert dl["truncated"] and dl["length"] == 48 << 20 and len(dl["raw"]) == 65536 and dl["line_no"] == 11
    assert sorted(int(r["path"].rsplit("/", 1)[1]) for r in spool_rows(data_dir)) == list(range(20))


_RSS_PROBE = """
import sys, threading, time
peak = {"RssAnon": 0, "RssFile": 0}
def watch():
    while True:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in peak:
                    peak[key] = max(peak[key], int(line.split()[1]))
        time.sleep(0.005)
threading.Thread(target=watch, daemon=True).start()
from loglake.cli import main
sys.argv = ["loglake", *sys.argv[1:]]
try:
    main()
finally:
    time.sleep(0.02)
    print(peak["RssFile"], peak["RssAnon"])
"""


def test_writers_in_other_pid_namespaces_keep_their_batches(tmp_path: Path, data_dir: Path) -> None:
    """Liveness is the writer's lease (an flock), not its pid: a writer in its own pid namespace
    (pid 1, as in a container) keeps its open batch when a second writer starts beside it."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(_lines(0, 200))
    b.write_bytes(_lines(1000, 1200))
    slow = {**FAST, "LOGLAKE_WRITER_SEGMENT_MAX_AGE": "3600"}
    first = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "loglake", "write", "--follow", str(a)],
        env=cli_env(data_dir, **slow),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: _sealed_count(data_dir) == 200)
        _append(a, make_lines(200, 300))
        _wait_for(lambda: bool(list((data_dir / "spool" / "access_log").glob("*.csv.open"))))
        intent = next((data_dir / "spool" / "_batches").glob("*.open.json"))
        second = run_cli(["write", str(b)], data_dir)
        assert second.returncode == 0, second.stderr
        assert intent.exists() and "recovered" not in second.stderr
    finally:
        _signal_cmdline(str(a), signal.SIGTERM)  # unshare does not forward signals to its child
        rc, err = _finish(first)
        assert rc == 0, err
    assert sorted(markers(data_dir)) == list(range(300)) + list(range(1000, 1200))
    assert open_files(data_dir) == []


def _signal_cmdline(needle: str, sig: int) -> None:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if needle.encode() in cmd and b"loglake" in cmd and b"unshare" not in cmd[0]:
                os.kill(int(pid), sig)


def test_spool_and_state_are_private(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(_lines(0, 10) + b"junk\n")
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    for p in [*data_dir.rglob("*")]:
        mode = p.stat().st_mode & 0o777
        if p.is_dir():
            assert mode == 0o700, (p, oct(mode))
        else:
            assert mode & 0o077 == 0, (p, oct(mode))


def test_status_shows_bytes_never_read(tmp_path: Path, data_dir: Path) -> None:
    """A gap is visible: `status` compares checkpoints with the path and its rotated siblings."""
    log = tmp_path / "access.log"
    log.write_bytes(_lines(0, 100))
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    tail = _lines(100, 130)
    _append(log, make_lines(100, 130))
    os.rename(log, tmp_path / "access.log.1")  # rotated while no writer runs
    log.write_bytes(_lines(130, 140))
    st = json.loads(run_cli(["status", "--format", "json"], data_dir).stdout)
    (src,) = st["sources"]
    unread = {Path(f["file"]).name: f["unread_bytes"] for f in src["files"]}
    assert unread == {"access.log": len(_lines(130, 140)), "access.log.1": len(tail)}
    assert st["unread_bytes"] == len(tail) + len(_lines(130, 140))
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    st = json.loads(run_cli(["status", "--format", "json"], data_dir).stdout)
    assert st["unread_bytes"] == 0
    assert sorted(markers(data_dir)) == list(range(140))
