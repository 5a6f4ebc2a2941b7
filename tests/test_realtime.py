"""The realtime profile end to end: `write --follow` + `rollover --watch` as separate processes,
rows visible to SQL within seconds, closed hours compacted by the watch itself while readers keep
seeing the same counts. Bounds here are generous functional limits; bench/freshness.py measures."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loglake.config import load_config
from tests.conftest import cli_env, run_cli


def test_profiles_set_defaults_beneath_explicit_keys(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    rt = load_config(empty, environ={"LOGLAKE_PROFILE": "realtime"})
    assert (rt.writer.segment_max_age, rt.rollover.watch_interval, rt.rollover.compact_interval) == (5, 1, 60)
    batch = load_config(empty, environ={"LOGLAKE_PROFILE": "batch"})
    assert batch.writer.segment_max_age == 600 and batch.rollover.compact_interval == 3600
    explicit = tmp_path / "x.toml"
    explicit.write_text('profile = "realtime"\n[writer]\nsegment_max_age = 2.5\n')
    mixed = load_config(explicit, environ={"LOGLAKE_ROLLOVER_WATCH_INTERVAL": "3"})
    assert (mixed.writer.segment_max_age, mixed.rollover.watch_interval) == (2.5, 3.0)
    out = run_cli(["check-config", "--config", str(explicit)], tmp_path / "d")
    assert "profile=realtime" in out.stderr and "writer.segment_max_age=2.5" in out.stderr
    st = json.loads(run_cli(["status", "--format", "json", "--config", str(explicit)], tmp_path / "d").stdout)
    assert st["profile"]["profile"] == "realtime" and st["profile"]["rollover.compact_interval"] == 60.0


def _line(t: datetime, i: int, status: int = 200) -> bytes:
    when = f"{t:%d/%b/%Y:%H:%M:%S} +0000"
    return f'198.51.100.{i % 250} - u{i % 7} [{when}] "GET /r/{i % 13} HTTP/1.1" {status} 99 "-" "t"\n'.encode()


def _count(data_dir: Path, sql: str) -> list:
    out = run_cli(["query", sql, "--format", "json"], data_dir)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_realtime_rows_are_queryable_in_seconds_and_closed_hours_get_compacted(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    env = {
        "LOGLAKE_PROFILE": "realtime",
        "LOGLAKE_WRITER_SEGMENT_MAX_AGE": "1",
        "LOGLAKE_ROLLOVER_COMPACT_INTERVAL": "4",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "loglake", *args],
            env=cli_env(data_dir, **env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for args in (["write", "--follow", str(log)], ["rollover", "--watch"])
    ]
    try:
        old_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        n = 0
        for burst in range(6):  # late lines of a closed hour, one segment per burst
            with log.open("ab") as f:
                f.write(b"".join(_line(old_hour + timedelta(minutes=burst, seconds=i), n + i) for i in range(50)))
            n += 50
            time.sleep(1.3)
        appended = time.monotonic()
        with log.open("ab") as f:  # and one current line: how long until SQL sees it?
            f.write(_line(datetime.now(UTC), 0, 201))
        while time.monotonic() - appended < 30:
            if _count(data_dir, "SELECT count(*) AS n FROM access_log WHERE status = 201")[0]["n"] == 1:
                break
            time.sleep(0.3)
        visible_after = time.monotonic() - appended
        assert visible_after < 15, f"a new row took {visible_after:.1f}s to reach SQL"
        counts = set()
        deadline = time.monotonic() + 30
        merged = False
        q = "SELECT count(*) AS n, count(DISTINCT path) AS p FROM access_log WHERE status = 200"
        while time.monotonic() < deadline and not merged:
            counts.add(tuple(_count(data_dir, q)[0].values()))
            st = json.loads(run_cli(["status", "--format", "json"], data_dir).stdout)["tables"]["access_log"]
            merged = st["files_in_grace"] > 0
            time.sleep(0.5)
        assert merged, "rollover --watch did not compact the closed hour"
        counts.add(tuple(_count(data_dir, q)[0].values()))
        assert counts == {(n, 13)}  # before, during and after the merge
        hour_dir = data_dir / "lake" / "access_log" / f"dt={old_hour:%Y-%m-%d}" / f"hour={old_hour:%H}"
        record = json.loads((hour_dir / "_compaction.json").read_text())
        current = Path(record["location"])
        served = [p.name for p in current.glob("*.parquet")]
        assert record["state"] == "switched" and f"part-{current.name}-0.parquet" in served
        # bursts that arrived after the merge went beside it; none of them is also in the merge
        assert not set(served) & set(record["consumed"])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert "compact: 1 partition(s) merged" in errors[1]
