"""Rollover end to end on a real DuckDB catalog: exactly once across crashes, races and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from loglake.catalog import load_catalog
from loglake.config import Config
from loglake.generate import write_log
from loglake.rollover import InjectedFault, run_rollover
from loglake.storage import Lake
from loglake.writer import Writer
from tests.conftest import ELASTIC, cli_env, real_file, run_cli


def write(cfg: Config, path: Path) -> Writer:
    w = Writer(cfg)
    w.write_file(str(path))
    return w


def count(cfg: Config, sql: str = "SELECT count(*) FROM access_log") -> int:
    return load_catalog(cfg).query(sql).rows[0][0]


def parquet_files(cfg: Config) -> list[Path]:
    return sorted((cfg.data_dir / "lake" / "access_log").rglob("*.parquet"))


def test_cli_write_rollover_query_and_idempotent_rerun(tmp_path: Path, data_dir: Path) -> None:
    log = real_file(ELASTIC)
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    first = run_cli(["rollover"], data_dir)
    assert first.returncode == 0, first.stderr
    out = run_cli(["query", "select count(*) as n from access_log", "--format", "csv"], data_dir)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "n\n10000\n"  # nothing else on stdout
    before = {p: p.stat().st_mtime_ns for p in (data_dir / "lake").rglob("*")}
    second = run_cli(["rollover"], data_dir)
    assert second.returncode == 0 and "rollover: 0 segment(s)" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in (data_dir / "lake").rglob("*")} == before
    # the dt=/hour= folders on disk are exactly the (dt, hour) pairs SQL sees
    on_disk = {(p.parent.parent.name[3:], int(p.parent.name[5:])) for p in (data_dir / "lake").rglob("*.parquet")}
    sql = run_cli(
        ["query", "select distinct strftime(dt, '%Y-%m-%d') as dt, hour from access_log", "--format", "json"], data_dir
    )
    import json

    assert {(r["dt"], r["hour"]) for r in json.loads(sql.stdout)} == on_disk
    assert len(on_disk) == 84  # 17-20 May 2015, hour by hour


def test_parquet_types_and_compression(cfg: Config) -> None:
    write(cfg, real_file(ELASTIC))
    run_rollover(cfg)
    f = parquet_files(cfg)[0]
    meta = pq.ParquetFile(f)
    schema = meta.schema_arrow
    assert str(schema.field("ts").type) == "timestamp[us]"  # UTC wall clock (see schema.py)
    assert str(schema.field("status").type) == "int16" and str(schema.field("bytes").type) == "int64"
    assert "dt" not in schema.names and "hour" not in schema.names  # partition values live in the path
    assert meta.metadata.row_group(0).column(0).compression == "ZSTD"


def test_segment_across_midnight_lands_in_two_days(cfg: Config, tmp_path: Path) -> None:
    log = write_log(tmp_path / "a.log", 2000, start=datetime(2026, 11, 28, 23, 59, 0, tzinfo=UTC), rate=10)
    write(cfg, log)
    assert len(list((cfg.spool_dir / "access_log").glob("*.csv"))) == 1  # one segment...
    run_rollover(cfg)
    days = sorted({p.parent.parent.name for p in parquet_files(cfg)})
    assert days == ["dt=2026-11-28", "dt=2026-11-29"]  # ...two partitions by each row's own time
    assert count(cfg) == 2000
    assert count(cfg, "SELECT count(*) FROM access_log WHERE dt = DATE '2026-11-28'") == 60 * 10


def test_corrupt_segment_goes_to_failed_and_others_continue(cfg: Config, tmp_path: Path) -> None:
    write(cfg, write_log(tmp_path / "a.log", 500))
    bad = cfg.spool_dir / "access_log" / "20000101T000000000000Z-test-1-000001.csv"
    good_header = next((cfg.spool_dir / "access_log").glob("*.csv")).read_text().splitlines()[0]
    bad.write_text(good_header + '\n"not a time",,"1.2.3.4",,,,200,1,,\n')
    report = run_rollover(cfg)
    assert report.failed == ["20000101T000000000000Z-test-1-000001"] and report.segments == 1
    failed = cfg.spool_dir / "_failed" / "access_log"
    assert (failed / bad.name).exists()
    assert "not a time" in (failed / "20000101T000000000000Z-test-1-000001.error").read_text()
    assert count(cfg) == 500
    status = run_cli(["status", "--format", "json"], cfg.data_dir)
    assert '"failed_segments": 1' in status.stdout


@pytest.mark.parametrize("step", ["written", "registered", "retired"])
def test_failure_after_each_step_then_rerun_is_exact(cfg: Config, tmp_path: Path, step: str) -> None:
    write(cfg, write_log(tmp_path / "a.log", 3000, rate=1))  # ~50 minutes: one or two hours
    with pytest.raises(InjectedFault):
        run_rollover(cfg, fail_after=step)
    run_rollover(cfg)
    assert count(cfg) == 3000
    assert run_rollover(cfg).segments == 0
    assert count(cfg) == 3000
    assert not list((cfg.spool_dir / "access_log").glob("*.csv"))


@pytest.mark.parametrize("step", ["written", "registered", "retired"])
def test_kill_9_during_rollover_then_rerun_is_exact(cfg: Config, tmp_path: Path, step: str) -> None:
    for i in range(3):
        write(cfg, write_log(tmp_path / f"{i}.log", 1000, seed=i))
    proc = subprocess.run(
        [sys.executable, "-m", "loglake", "rollover"],
        capture_output=True,
        text=True,
        env=cli_env(cfg.data_dir, LOGLAKE_FAULT=step),
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    assert run_cli(["rollover"], cfg.data_dir).returncode == 0
    assert count(cfg) == 3000
    assert not list(cfg.data_dir.rglob("*.tmp"))


def test_next_write_into_a_folder_removes_temp_files_of_killed_processes(tmp_path: Path) -> None:
    """A worker thread killed with its process between create and rename leaves `.<name>.<pid>.tmp`;
    the next write into that folder removes it, and leaves a live process's temp file alone."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "lake" / "access_log" / "dt=2026-11-28" / "hour=22"
    folder.mkdir(parents=True)
    orphan = folder / f".a.parquet.{dead.pid}.tmp"
    in_flight = folder / f".b.parquet.{os.getppid()}.tmp"
    orphan.write_bytes(b"half")
    in_flight.write_bytes(b"half")
    lake = Lake(LocalFileSystem(), str(tmp_path / "lake"), str(tmp_path / "lake"))
    lake.write_atomic(str(folder / "c.parquet"), b"whole")
    assert not orphan.exists() and in_flight.exists()
    assert (folder / "c.parquet").read_bytes() == b"whole"


def test_two_concurrent_rollovers_convert_each_segment_once(cfg: Config, tmp_path: Path) -> None:
    for i in range(12):
        write(cfg, write_log(tmp_path / f"{i}.log", 3000, seed=i))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "loglake", "rollover"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(cfg.data_dir),
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    converted = [int(o.split("rollover: ")[1].split(" segment")[0]) for o in outs]
    assert sum(converted) == 12, outs
    assert count(cfg) == 36000
    names = Counter(p.name for p in parquet_files(cfg))
    assert all(n <= 2 for n in names.values())  # a segment spanning two hours has two files, never more


def test_rollover_counts_match_writer_on_real_log(cfg: Config) -> None:
    w = write(cfg, real_file(ELASTIC))
    rep = run_rollover(cfg)
    assert rep.rows == w.totals.rows["access_log"] == count(cfg) == 10000
    assert rep.files == 84  # one file per (dt, hour) the segment touched


def test_status_reconciles(cfg: Config, tmp_path: Path) -> None:
    write(cfg, write_log(tmp_path / "a.log", 1000))
    (tmp_path / "b.log").write_text("junk\n" * 7)
    write(cfg, tmp_path / "b.log")
    run_rollover(cfg)
    write(cfg, write_log(tmp_path / "c.log", 200, seed=3))  # written, not rolled over yet
    proc = run_cli(["status", "--format", "json"], cfg.data_dir)
    import json

    st = json.loads(proc.stdout)
    assert st["written"]["lines_read"] == 1207 and st["written"]["dead_lettered"] == 7
    assert st["reconciles"] is True
    t = st["tables"]["access_log"]
    assert t["rows"] == 1000 and t["rows_pending"] == 200 and t["lake_matches_manifests"] is True
    assert st["spool"]["closed_segments"] == 1
    assert st["freshness"]["access_log"]["age_seconds"] > 0


def test_rollover_watch_picks_up_new_segments_and_stops_cleanly(cfg: Config, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loglake", "rollover", "--watch", "--interval", "0.2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(cfg.data_dir),
    )
    try:
        for i in range(2):
            write(cfg, write_log(tmp_path / f"{i}.log", 500, seed=i))
            deadline = time.monotonic() + 60
            while (
                time.monotonic() < deadline
                and (cfg.spool_dir / "access_log").exists()
                and list((cfg.spool_dir / "access_log").glob("*.csv"))
            ):
                time.sleep(0.1)
            assert count(cfg) == 500 * (i + 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "rollover --watch: stopped after" in err and "2 segment(s), 1000 rows" in err
