"""Compaction on the embedded catalog: fewer files, the same rows at every moment, crash-safe.

The real elastic sample (84 hours of 2015 traffic) is written as 20 batches, so each hour starts
with up to 20 small files, as a realtime profile leaves them.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from loglake.catalog import load_catalog
from loglake.catalog.base import Partition
from loglake.config import Config
from loglake.rollover import run_rollover
from loglake.rollover.compact import read_record, run_compact, served
from loglake.storage import open_lake
from loglake.writer import Writer
from tests.conftest import ELASTIC, real_file, run_cli

CHECK = "SELECT count(*), count(DISTINCT path), count(DISTINCT client_ip), sum(bytes) FROM access_log"


def _write_in_batches(cfg: Config, tmp_path: Path, source: Path, batches: int = 20) -> int:
    lines = source.read_bytes().splitlines(keepends=True)
    for i in range(batches):  # round robin: every batch holds lines of every hour
        part = tmp_path / f"part-{i:02d}.log"
        part.write_bytes(b"".join(lines[i::batches]))
        Writer(cfg).write_file(str(part))
    return len(lines)


def _served_counts(cfg: Config) -> Counter:
    lake = open_lake(cfg)
    cat = load_catalog(cfg)
    return Counter({p: len(served(lake, "access_log", p)[0]) for p in cat.list_partitions("access_log")})


@pytest.fixture
def lake_cfg(make_config, tmp_path: Path) -> Config:
    cfg = make_config()
    _write_in_batches(cfg, tmp_path, real_file(ELASTIC))
    run_rollover(cfg)
    return cfg


def test_compaction_merges_small_files_and_readers_never_see_a_difference(lake_cfg: Config) -> None:
    cfg = lake_cfg
    cat = load_catalog(cfg)
    expected = cat.query(CHECK).rows[0]
    assert expected[0] == 10_000
    before = _served_counts(cfg)
    assert max(before.values()) >= 10  # many small files per hour to start with

    seen: list[tuple] = []
    stop = threading.Event()

    def reader() -> None:  # queries racing the switches: each sees the whole table, once
        while not stop.is_set():
            seen.append(load_catalog(cfg).query(CHECK).rows[0])

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        report = run_compact(cfg, cat)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert report.partitions == sum(1 for n in before.values() if n >= 2)
    assert len(seen) > 5 and set(seen) == {expected}
    after = _served_counts(cfg)
    assert set(after) == set(before) and max(after.values()) == 1  # one file per hour
    assert cat.query(CHECK).rows[0] == expected
    # the replaced files wait out their grace period, then go
    st = json.loads(run_cli(["status", "--format", "json"], cfg.data_dir).stdout)["tables"]["access_log"]
    assert st["files"] == sum(after.values()) and st["files_in_grace"] == sum(n for n in before.values() if n >= 2)
    assert st["rows"] == 10_000 and st["lake_matches_manifests"]
    import dataclasses

    no_grace = dataclasses.replace(cfg, rollover=dataclasses.replace(cfg.rollover, compact_grace=0))
    for record in (cfg.data_dir / "lake").rglob("_compaction.json"):  # age the retired files
        data = json.loads(record.read_text())
        for r in data["retired"]:
            r["after"] = 0
        record.write_text(json.dumps(data))
    again = run_compact(no_grace, cat)
    assert again.partitions == 0 and again.deleted == st["files_in_grace"]
    remaining = sorted((cfg.data_dir / "lake").rglob("*.parquet"))
    assert len(remaining) == sum(after.values())
    assert cat.query(CHECK).rows[0] == expected


@pytest.mark.parametrize("step", ["compact-merged", "compact-recorded", "compact-switched"])
def test_kill_9_at_each_step_of_a_compaction(lake_cfg: Config, step: str) -> None:
    cfg = lake_cfg
    expected = load_catalog(cfg).query(CHECK).rows[0]
    killed = run_cli(["compact"], cfg.data_dir, LOGLAKE_FAULT=step)
    assert killed.returncode == -9, killed.stderr
    assert load_catalog(cfg).query(CHECK).rows[0] == expected  # correct right after the kill
    finished = run_cli(["compact"], cfg.data_dir)
    assert finished.returncode == 0, finished.stderr
    assert "compact:" in finished.stderr
    assert load_catalog(cfg).query(CHECK).rows[0] == expected
    assert max(_served_counts(cfg).values()) == 1
    for record in (cfg.data_dir / "lake").rglob("_compaction.json"):
        assert json.loads(record.read_text())["state"] == "switched"


def test_late_rows_for_a_compacted_hour_are_added_once(lake_cfg: Config, tmp_path: Path) -> None:
    cfg = lake_cfg
    cat = load_catalog(cfg)
    run_compact(cfg, cat)
    hour = Partition("2015-05-18", 10)
    base = cat.query("SELECT count(*) FROM access_log WHERE dt = DATE '2015-05-18' AND hour = 10").rows[0][0]
    late = [line for line in ELASTIC.read_bytes().splitlines(keepends=True) if b"18/May/2015:10:" in line][:25]
    (tmp_path / "late.log").write_bytes(b"".join(late))
    Writer(cfg).write_file(str(tmp_path / "late.log"))
    run_rollover(cfg)
    lake = open_lake(cfg)
    record = read_record(lake, "access_log", hour)
    assert record is not None
    files, _ = served(lake, "access_log", hour)
    assert len(files) == 2 and all("/_compacted/g1/" in f for f, _ in files)  # merged + the late file
    q = "SELECT count(*) FROM access_log WHERE dt = DATE '2015-05-18' AND hour = 10"
    assert cat.query(q).rows[0][0] == base + 25
    run_compact(cfg, cat)
    assert len(served(lake, "access_log", hour)[0]) == 1
    assert cat.query(q).rows[0][0] == base + 25


def test_a_rollover_rerun_after_compaction_does_not_double_rows(make_config, tmp_path: Path) -> None:
    """Rollover killed after writing Parquet but before retiring its segment; a compaction merges
    that file; the rerun must not add the same rows again."""
    cfg = make_config()
    _write_in_batches(cfg, tmp_path, real_file(ELASTIC), batches=4)
    killed = run_cli(["rollover"], cfg.data_dir, LOGLAKE_FAULT="registered")
    assert killed.returncode == -9
    run_compact(cfg, load_catalog(cfg))
    assert run_cli(["rollover"], cfg.data_dir).returncode == 0
    cat = load_catalog(cfg)
    assert cat.query("SELECT count(*) FROM access_log").rows[0][0] == 10_000


def test_an_open_duckdb_connection_on_the_catalog_stops_nothing(lake_cfg: Config, tmp_path: Path) -> None:
    """A user's DuckDB shell holding catalog.duckdb (read-write: the strongest lock) while rollover,
    compaction and queries run."""
    cfg = lake_cfg
    held = duckdb.connect(str(cfg.catalog_path))
    try:
        held.execute("SELECT count(*) FROM access_log").fetchall()
        late = ELASTIC.read_bytes().splitlines(keepends=True)[:100]
        (tmp_path / "more.log").write_bytes(b"".join(late))
        assert run_cli(["write", str(tmp_path / "more.log")], cfg.data_dir).returncode == 0
        rolled = run_cli(["rollover"], cfg.data_dir)
        assert rolled.returncode == 0, rolled.stderr
        assert run_cli(["compact"], cfg.data_dir).returncode == 0
        out = run_cli(["query", "SELECT count(*) AS n FROM access_log", "--format", "csv"], cfg.data_dir)
        assert out.returncode == 0 and out.stdout == "n\n10100\n", out.stderr
    finally:
        held.close()
    # once released, the views stored in the file catch up at the next change
    assert load_catalog(cfg).refresh_file()
    con = duckdb.connect(str(cfg.catalog_path), read_only=True)
    assert con.execute("SELECT count(*) FROM access_log").fetchone()[0] == 10_100
    con.close()


def test_a_missing_partition_folder_is_skipped_and_reported(lake_cfg: Config) -> None:
    import shutil

    cfg = lake_cfg
    gone = cfg.data_dir / "lake" / "access_log" / "dt=2015-05-18" / "hour=10"
    n_gone = (
        load_catalog(cfg).query("SELECT count(*) FROM access_log WHERE dt = DATE '2015-05-18' AND hour = 10").rows[0][0]
    )
    shutil.rmtree(gone)
    out = run_cli(["query", "SELECT count(*) AS n FROM access_log", "--format", "csv"], cfg.data_dir)
    assert out.returncode == 0 and out.stdout == f"n\n{10_000 - n_gone}\n"
    st = json.loads(run_cli(["status", "--format", "json"], cfg.data_dir).stdout)
    assert st["tables"]["access_log"]["missing_partitions"] == ["dt=2015-05-18/hour=10"]


def test_compact_and_rollover_running_at_once_lose_and_double_nothing(lake_cfg: Config, tmp_path: Path) -> None:
    """`loglake compact` processes racing a rollover process that keeps adding late rows to the
    same closed hours (the per-partition lock): every row ends up served exactly once."""
    import subprocess
    import sys

    from tests.conftest import cli_env

    cfg = lake_cfg
    lines = ELASTIC.read_bytes().splitlines(keepends=True)
    late_batches = []
    for k in range(6):  # late lines for hours that are already in the lake, six batches
        part = tmp_path / f"late-{k}.log"
        part.write_bytes(b"".join(lines[k * 7 + 5000 :: 97][:40]))
        late_batches.append(part)
    expected = 10_000 + sum(len(p.read_bytes().splitlines()) for p in late_batches)

    def add_late() -> None:
        for part in late_batches:
            assert run_cli(["write", str(part)], cfg.data_dir).returncode == 0
            assert run_cli(["rollover"], cfg.data_dir).returncode == 0

    writer = threading.Thread(target=add_late)
    writer.start()
    compactions = [
        subprocess.run(
            [sys.executable, "-m", "loglake", "compact"], env=cli_env(cfg.data_dir), capture_output=True, text=True
        )
        for _ in range(4)
    ]
    writer.join()
    assert all(c.returncode == 0 for c in compactions), [c.stderr for c in compactions]
    assert load_catalog(cfg).query("SELECT count(*) FROM access_log").rows[0][0] == expected
    assert run_cli(["compact"], cfg.data_dir).returncode == 0
    assert load_catalog(cfg).query("SELECT count(*) FROM access_log").rows[0][0] == expected
    st = json.loads(run_cli(["status", "--format", "json"], cfg.data_dir).stdout)["tables"]["access_log"]
    assert st["rows"] == expected and st["lake_matches_manifests"] and st["max_files_per_closed_hour"] == 1
