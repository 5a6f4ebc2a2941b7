"""What a compaction takes in: files already large (copied, never served or merged twice), files of
two PII keys (merged per key), and the replaced files it deletes (even while a DuckDB session
holds `catalog.duckdb`, after a bounded wait)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from loglake.catalog import load_catalog
from loglake.catalog.base import Partition
from loglake.config import Config
from loglake.rollover import run_rollover
from loglake.rollover.compact import read_record, run_compact, served
from loglake.storage import open_lake
from loglake.writer import Writer
from tests.conftest import ELASTIC, REPO, real_file, run_cli

HOUR = Partition("2015-05-18", 10)
COUNT = "SELECT count(*) FROM access_log"


def _lines(n: int) -> bytes:
    """n combined-format lines of 18 May 2015, 10:xx, with random (incompressible) paths."""
    rnd = os.urandom(n * 100)
    return b"".join(
        b'10.0.%d.%d - - [18/May/2015:10:%02d:%02d +0000] "GET /%s HTTP/1.1" 200 %d "-" "agent"\n'
        % (i % 250, i % 200, i // 60 % 60, i % 60, rnd[i * 100 : i * 100 + 100].hex().encode(), i)
        for i in range(n)
    )


def _write(cfg: Config, tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / name).write_bytes(data)
    Writer(cfg).write_file(str(tmp_path / name))
    run_rollover(cfg)


def _status(cfg: Config) -> dict:
    out = run_cli(["status", "--format", "json"], cfg.data_dir)
    return json.loads(out.stdout)["tables"]["access_log"]


def _with(cfg: Config, **rollover: object) -> Config:
    return dataclasses.replace(cfg, rollover=dataclasses.replace(cfg.rollover, **rollover))


def _compacted_big_and_small(make_config, tmp_path: Path) -> Config:
    """An hour of one file over the 1 MiB target and two small ones, compacted once."""
    cfg = make_config(LOGLAKE_ROLLOVER_COMPACT_TARGET_BYTES="1048576")
    _write(cfg, tmp_path, "big.log", _lines(20_000))
    (big,) = served(open_lake(cfg), "access_log", HOUR)[0]
    assert big[1] > 1024 * 1024  # over the target: compaction copies it as it is
    _write(cfg, tmp_path, "small-1.log", _lines(10))
    _write(cfg, tmp_path, "small-2.log", _lines(10))
    cat = load_catalog(cfg)
    assert run_compact(cfg, cat).partitions == 1
    assert cat.query(COUNT).rows[0][0] == 20_020
    return cfg


def test_status_counts_a_copied_large_file_once(make_config, tmp_path: Path) -> None:
    cfg = _compacted_big_and_small(make_config, tmp_path)
    st = _status(cfg)
    assert st["rows"] == 20_020 and st["files"] == 2 and st["lake_matches_manifests"], st


def test_a_merge_never_reads_a_large_file_and_its_copy(make_config, tmp_path: Path) -> None:
    """The target grows while the replaced files wait out their grace, and a late file arrives:
    the next merge takes the copy once and its Hive original not at all."""
    cfg = _compacted_big_and_small(make_config, tmp_path)
    raised = _with(cfg, compact_target_bytes=64 * 1024 * 1024)
    _write(raised, tmp_path, "late.log", _lines(5))
    cat = load_catalog(raised)
    assert run_compact(raised, cat).partitions == 1
    assert cat.query(COUNT).rows[0][0] == 20_025
    lake = open_lake(cfg)
    record = read_record(lake, "access_log", HOUR)
    assert record is not None and record["generation"] == 2
    assert len(served(lake, "access_log", HOUR)[0]) == 1
    assert _status(cfg)["rows"] == 20_025


def test_files_of_two_pii_keys_are_merged_per_key_with_their_key_id(
    data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from loglake.config import load_config

    sample = [line for line in real_file(ELASTIC).read_bytes().splitlines(keepends=True) if b"18/May/2015:10:" in line]
    for k, key in enumerate(("k" * 32, "z" * 32)):  # a key rotation in the middle of the hour
        monkeypatch.setenv("LOGLAKE_PII_KEY", key)
        environ = {"LOGLAKE_DATA_DIR": str(data_dir), "LOGLAKE_HOST_ID": "test"}
        cfg = load_config(REPO / "examples" / "pii.toml", environ=environ)
        for b in range(2):
            _write(cfg, tmp_path, f"k{k}-{b}.log", b"".join(sample[k * 2 + b :: 4]))
    lake = open_lake(cfg)
    before = served(lake, "access_log", HOUR)[0]
    ids = {_key_id(lake, f) for f, _ in before}
    assert len(before) == 4 and len(ids) == 2 and "" not in ids
    cat = load_catalog(cfg)
    assert cat.query(COUNT + " WHERE hour = 10").rows[0][0] == len(sample)
    assert run_compact(cfg, cat).partitions >= 1
    after = served(lake, "access_log", HOUR)[0]
    assert len(after) == 2 and {_key_id(lake, f) for f, _ in after} == ids  # one merged file per key
    assert cat.query(COUNT + " WHERE hour = 10").rows[0][0] == len(sample)
    assert run_compact(cfg, cat).partitions == 0  # one file per key is done: no endless re-merging


def _key_id(lake, path: str) -> str:
    with lake.fs.open(path, "rb") as f:
        return (pq.ParquetFile(f).schema_arrow.metadata or {}).get(b"loglake.pii_key_id", b"").decode()


def test_a_held_catalog_duckdb_delays_deleting_replaced_files_but_not_forever(make_config, tmp_path: Path) -> None:
    cfg = make_config()
    sample = [line for line in real_file(ELASTIC).read_bytes().splitlines(keepends=True) if b"18/May/2015:10:" in line]
    for b in range(3):
        _write(cfg, tmp_path, f"b{b}.log", b"".join(sample[b::3]))
    cat = load_catalog(cfg)
    shell = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"
    held = subprocess.Popen(  # a user's DuckDB shell in another process, open for hours
        [sys.executable, "-c", shell, str(cfg.catalog_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert held.stdout is not None and held.stdout.readline() == "held\n"
        assert run_compact(cfg, cat).partitions == 1
        record_path = cfg.data_dir / "lake" / "access_log" / HOUR.path / "_compaction.json"

        def age(seconds: float) -> None:  # the grace period ended `seconds` ago
            data = json.loads(record_path.read_text())
            for r in data["retired"]:
                r["after"] = time.time() - seconds
            record_path.write_text(json.dumps(data))

        age(60)  # grace over, but the shell's stored views still list the replaced files
        assert run_compact(cfg, cat).deleted == 0
        age(cfg.rollover.compact_view_wait + 1)  # ... and the bounded wait for that shell is over too
        assert run_compact(cfg, cat).deleted == 3
        assert served(open_lake(cfg), "access_log", HOUR)[1] == []
    finally:
        held.communicate("", timeout=30)
    assert cat.query(COUNT).rows[0][0] == len(sample)
