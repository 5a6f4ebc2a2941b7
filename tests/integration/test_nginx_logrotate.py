"""A real nginx under load, rotated by real logrotate in each production style while `loglake write
--follow` runs, is killed (-9) and restarts (once with a rotation while it is down): every logged
request is in the lake exactly once (issue #7)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli
from tests.integration.nginx import STYLES, Load, Nginx, ids_on_disk, logrotate

ENV = {
    "LOGLAKE_WRITER_POLL_INTERVAL": "0.1",
    "LOGLAKE_WRITER_SEGMENT_MAX_AGE": "1",
    "LOGLAKE_WRITER_ROTATE_WAIT": "1",
}


def _writer(log: Path, data_dir: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "loglake", "write", "--follow", str(log)],
        env=cli_env(data_dir, **{**ENV, **env}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _lake_ids(data_dir: Path) -> list[int]:
    roll = run_cli(["rollover"], data_dir)
    assert roll.returncode == 0, roll.stderr
    q = run_cli(["query", "select path from access_log", "--format", "json"], data_dir)
    assert q.returncode == 0, q.stderr
    return [int(r["path"].rsplit("/", 1)[1]) for r in json.loads(q.stdout)]


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_logged_request_lands_once(style: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    nginx = Nginx(tmp_path)
    load = Load(nginx.port, rate=400).start()
    state = tmp_path / "logrotate.state"
    writer = _writer(nginx.log, data_dir)
    try:
        time.sleep(1.5)
        logrotate(nginx, style, state)  # 1: writer running
        time.sleep(1.0)
        writer.send_signal(signal.SIGKILL)
        writer.communicate()
        time.sleep(0.5)
        logrotate(nginx, style, state)  # 2: writer down
        time.sleep(1.0)
        writer = _writer(nginx.log, data_dir)
        time.sleep(1.2)
        logrotate(nginx, style, state)  # 3: writer just restarted
        time.sleep(0.8)
        writer.send_signal(signal.SIGKILL)  # 4: killed and restarted at once
        writer.communicate()
        writer = _writer(nginx.log, data_dir)
        time.sleep(1.0)
        logrotate(nginx, style, state)
        time.sleep(1.5)
    finally:
        load.stop()
        time.sleep(2.5)  # idle longer than rotate_wait: rotated files are finished
        writer.send_signal(signal.SIGTERM)
        _, err = writer.communicate(timeout=60)
        nginx.stop()
    assert writer.returncode == 0, err.decode()
    on_disk = ids_on_disk(nginx.logs)
    assert len(on_disk) == len(set(on_disk)) and len(load.ok) > 2000
    # Two styles lose lines by themselves, before loglake is involved: copytruncate (lines written
    # between the copy and the truncate) and compress without delaycompress (lines nginx writes to
    # the renamed file after gzip has read it, before its workers reopen: CI caught 2 of ~3,000,
    # which is why Debian's /etc/logrotate.d/nginx pairs compress with delaycompress).
    lossy = style in ("copytruncate", "compress")
    if not lossy:
        assert set(on_disk) == load.ok  # nginx logged every answered request into some file
    else:
        assert set(on_disk) <= load.ok and len(load.ok) - len(on_disk) < 0.02 * len(load.ok)
    lake = _lake_ids(data_dir)
    rotated = len(list(nginx.logs.iterdir())) - 1
    print(f"{style}: {len(load.ok)} answered, {len(on_disk)} in {rotated + 1} files, {len(lake)} in the lake")
    dupes = [i for i, n in collections.Counter(lake).items() if n > 1]
    assert not dupes, f"{len(dupes)} requests twice"
    missing = set(on_disk) - set(lake)
    assert not missing, f"{len(missing)} of {len(on_disk)} logged requests missing"
    if not lossy:
        assert len(lake) == len(on_disk)
    else:  # the writer may have read lines the rotation then lost (they are in the lake and in no
        # file, found by CI); never a request nginx did not answer
        assert set(lake) <= load.ok


def test_copytruncate_at_1000_per_second_with_the_writer_started_first(tmp_path: Path) -> None:
    """The writer is started before nginx logs its first request, so it first sees the file empty,
    and with the default segment age (60 s) its first seal is the one at the first truncate: the
    lines of the first file are in the lake once (they were twice while the identity of a file
    first seen empty was taken from the file at that seal, by then the next content), and `status`
    sees no range read twice."""
    data_dir = tmp_path / "data"
    nginx = Nginx(tmp_path)
    state = tmp_path / "logrotate.state"
    writer = _writer(nginx.log, data_dir, LOGLAKE_WRITER_SEGMENT_MAX_AGE="60")
    try:
        claims = data_dir / "state" / "locks"
        deadline = time.monotonic() + 30
        while not list(claims.rglob("*.lock")) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the writer holds the (still empty) file open
        assert os.path.getsize(nginx.log) == 0
        load = Load(nginx.port, rate=1000, clients=8).start()
        try:
            for _ in range(3):
                time.sleep(4.0)
                logrotate(nginx, "copytruncate", state)
            time.sleep(1.0)
        finally:
            load.stop()
        time.sleep(2.5)  # idle longer than rotate_wait
    finally:
        writer.send_signal(signal.SIGTERM)
        _, err = writer.communicate(timeout=60)
        nginx.stop()
    assert writer.returncode == 0, err.decode()
    on_disk = ids_on_disk(nginx.logs)
    assert len(on_disk) > 8000 and len(list(nginx.logs.iterdir())) == 4
    lake = _lake_ids(data_dir)
    dupes = [i for i, n in collections.Counter(lake).items() if n > 1]
    assert not dupes, f"{len(dupes)} requests twice"
    assert not set(on_disk) - set(lake), "logged requests missing"
    st = json.loads(run_cli(["status", "--format", "json"], data_dir).stdout)
    assert st["doubled_bytes"] == 0 and st["unread_bytes"] == 0 and st["reconciles"]
