"""Hosts sharing one lake and one catalog, compacting at the same moment: each hour is merged by one
of them, the others skip it and say so, every run exits 0, and no row is lost or doubled.

Each host has its own data dir (its own state and flocks), as separate machines do; the lake and
the catalog are shared (local folders here, SeaweedFS + Trino in tests/integration/test_trino_s3.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loglake.catalog import load_catalog
from loglake.config import Config
from loglake.rollover import run_rollover
from loglake.rollover.compact import list_parquet, partitions_on_storage, read_record
from loglake.storage import open_lake
from tests.conftest import ELASTIC, cli_env, real_file, run_cli
from tests.rollover.test_compact import CHECK, _write_in_batches

MERGED = re.compile(r"compact: (\d+) partition\(s\) merged")


@pytest.fixture
def fleet(make_config, tmp_path: Path) -> tuple[Config, dict[str, str]]:
    """A lake written by host a, with the settings every host shares."""
    shared = {"LOGLAKE_STORAGE_URL": str(tmp_path / "lake"), "LOGLAKE_CATALOG_PATH": str(tmp_path / "catalog.duckdb")}
    cfg = make_config(**shared)
    _write_in_batches(cfg, tmp_path, real_file(ELASTIC))
    run_rollover(cfg)
    return cfg, shared


def _start(tmp_path: Path, host: str, shared: dict[str, str], **env: str) -> subprocess.Popen[str]:
    environ = cli_env(tmp_path / f"host-{host}", LOGLAKE_HOST_ID=host, **shared, **env)
    return subprocess.Popen(
        [sys.executable, "-m", "loglake", "compact"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_three_hosts_compacting_at_once_merge_each_hour_once(fleet, tmp_path: Path) -> None:
    cfg, shared = fleet
    lake = open_lake(cfg)
    expected = load_catalog(cfg).query(CHECK).rows[0]
    assert expected[0] == 10_000
    parts = partitions_on_storage(lake, "access_log")
    mergeable = sum(1 for p in parts if len(list_parquet(lake.fs, lake.path("access_log", p.path))) >= 2)
    procs = [_start(tmp_path, host, shared) for host in ("a", "b", "c")]
    outs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in outs]
    merged = [sum(int(n) for n in MERGED.findall(err)) for _, err in outs]
    assert sum(merged) == mergeable, (merged, [err[-2000:] for _, err in outs])  # each hour merged once
    skips = "".join(err for _, err in outs)
    assert "is compacting it" in skips or max(merged) == mergeable  # the others gave way, and said so
    for p in partitions_on_storage(lake, "access_log"):
        record = read_record(lake, "access_log", p)
        assert record is None or (record["generation"] == 1 and record["state"] == "switched"), record
        assert not lake.fs.exists(lake.path("access_log", p.path, "_compacting.json"))  # leases released
    assert load_catalog(cfg).query(CHECK).rows[0] == expected
    st = json.loads(run_cli(["status", "--format", "json"], cfg.data_dir, **shared).stdout)["tables"]["access_log"]
    assert st["rows"] == 10_000 and st["max_files_per_closed_hour"] == 1


def test_a_crashed_host_blocks_an_hour_only_until_its_lease_expires(fleet, tmp_path: Path) -> None:
    cfg, shared = fleet
    expected = load_catalog(cfg).query(CHECK).rows[0]
    crashed = _start(tmp_path, "a", shared, LOGLAKE_FAULT="compact-merged", LOGLAKE_ROLLOVER_COMPACT_LEASE="3")
    crashed.communicate(timeout=300)
    assert crashed.returncode == -9  # killed holding the lease of the hour it was merging
    held = run_cli(["compact"], tmp_path / "host-b", LOGLAKE_HOST_ID="b", **shared)
    assert held.returncode == 0, held.stderr
    assert "skipped access_log dt=" in held.stderr and "host a is compacting it" in held.stderr
    assert load_catalog(cfg).query(CHECK).rows[0] == expected
    deadline = time.monotonic() + 60
    while "host a is compacting it" in held.stderr and time.monotonic() < deadline:
        time.sleep(1)  # the lease runs out 3 s after host a took it
        held = run_cli(["compact"], tmp_path / "host-b", LOGLAKE_HOST_ID="b", **shared)
        assert held.returncode == 0, held.stderr
    assert "skipped" not in held.stderr
    assert load_catalog(cfg).query(CHECK).rows[0] == expected
    st = json.loads(run_cli(["status", "--format", "json"], cfg.data_dir, **shared).stdout)["tables"]["access_log"]
    assert st["rows"] == 10_000 and st["max_files_per_closed_hour"] == 1


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_lease_is_exclusive_expires_and_fences_its_old_holder(where: str, tmp_path: Path, request) -> None:
    """The lease's compare-and-swap on a local folder and on real S3 (SeaweedFS: If-None-Match and
    If-Match): one holder; an expired lease taken over once; the old holder can neither renew nor
    release the new holder's lease."""
    from fsspec.implementations.local import LocalFileSystem

    from loglake.rollover.lease import Held, Lease, acquire
    from loglake.storage import Lake

    if where == "s3":
        server = request.getfixturevalue("seaweedfs")
        lake = Lake(server.fs(), f"{server.bucket}/lease-{tmp_path.name}", "")
    else:
        lake = Lake(LocalFileSystem(), str(tmp_path / "lake"), "")
    folder = lake.path("access_log", "dt=2015-05-18/hour=10")
    a = acquire(lake, folder, "a", ttl=2.0)
    assert isinstance(a, Lease)
    b = acquire(lake, folder, "b", ttl=60.0)
    assert isinstance(b, Held) and b.host == "a" and "host a is compacting it" in str(b)
    assert a.renew()  # the holder extends it
    time.sleep(2.5)
    b = acquire(lake, folder, "b", ttl=60.0)  # expired: b takes it over
    assert isinstance(b, Lease)
    assert isinstance(acquire(lake, folder, "c", ttl=60.0), Held)
    assert not a.renew()  # a, back from a long pause, learns it lost the lease
    a.release()
    assert isinstance(acquire(lake, folder, "c", ttl=60.0), Held)  # a's release did not free b's lease
    b.release()
    c = acquire(lake, folder, "c", ttl=60.0)
    assert isinstance(c, Lease)
    c.release()


def _host(tmp_path: Path, host: str, shared: dict[str, str]) -> Config:
    from loglake.config import load_config

    (tmp_path / "empty.toml").write_text("")
    environ = {"LOGLAKE_DATA_DIR": str(tmp_path / f"host-{host}"), "LOGLAKE_HOST_ID": host, **shared}
    return load_config(tmp_path / "empty.toml", environ=environ)


def _late_lines(tmp_path: Path, name: str, n: int) -> Path:
    lines = [line for line in ELASTIC.read_bytes().splitlines(keepends=True) if b"18/May/2015:10:" in line]
    path = tmp_path / name
    path.write_bytes(b"".join(lines[-n:] if name.endswith("1.log") else lines[:n]))
    return path


HOUR_10 = "SELECT count(*) FROM access_log WHERE dt = DATE '2015-05-18' AND hour = 10"


def _late_rows_on_host_b(fleet, tmp_path: Path, name: str) -> tuple[Config, dict[str, str], Config, int]:
    """Host b's writer holds 25 late rows for 18 May 10:00 (not rolled over yet)."""
    from loglake.writer import Writer

    cfg, shared = fleet
    b = _host(tmp_path, "b", shared)
    base = load_catalog(cfg).query(HOUR_10).rows[0][0]
    Writer(b).write_file(str(_late_lines(tmp_path, name, 25)))
    return cfg, shared, b, base


def _served_once(cfg: Config, shared: dict[str, str], base: int) -> None:
    assert load_catalog(cfg).query(HOUR_10).rows[0][0] == base + 25
    st = json.loads(run_cli(["status", "--format", "json"], cfg.data_dir, **shared).stdout)["tables"]["access_log"]
    assert st["rows"] == 10_025


def test_a_late_file_written_while_another_host_switches_the_hour_is_served(fleet, tmp_path: Path, monkeypatch) -> None:
    """Host b's rollover read the hour's record before host a's compaction switched it, and
    writes its late file into the Hive folder after: it moves the file into the new folder."""
    from loglake.rollover.compact import run_compact
    from loglake.storage import Lake

    cfg, shared, b, base = _late_rows_on_host_b(fleet, tmp_path, "late-1.log")
    real = Lake.write_atomic
    state = {"done": False}

    def write_after_a_compacts(self: Lake, path: str, data: bytes) -> None:
        if (
            not state["done"]
            and "dt=2015-05-18/hour=10/" in path
            and path.endswith(".parquet")
            and "/_compacted/" not in path
        ):
            state["done"] = True  # b has read the record (none yet); a compacts before b's write lands
            assert run_compact(cfg, load_catalog(cfg)).partitions > 0
        real(self, path, data)

    monkeypatch.setattr(Lake, "write_atomic", write_after_a_compacts)
    run_rollover(b)
    monkeypatch.setattr(Lake, "write_atomic", real)
    assert state["done"]
    _served_once(cfg, shared, base)


def test_a_late_file_written_while_another_host_merges_the_hour_is_served(fleet, tmp_path: Path, monkeypatch) -> None:
    """Host b's rollover writes into the Hive folder while host a merges that hour (after a
    listed it, before its switch): a adopts the file into the new folder after its switch."""
    import loglake.rollover.compact as compact

    cfg, shared, b, base = _late_rows_on_host_b(fleet, tmp_path, "late-2.log")
    real = compact.write_merged
    state = {"done": False}

    def merge_while_b_rolls_over(*args, **kwargs):
        out = real(*args, **kwargs)
        if not state["done"] and "dt=2015-05-18/hour=10/" in args[3]:
            state["done"] = True
            run_rollover(b)
        return out

    monkeypatch.setattr(compact, "write_merged", merge_while_b_rolls_over)
    compact.run_compact(cfg, load_catalog(cfg))
    monkeypatch.setattr(compact, "write_merged", real)
    assert state["done"]
    _served_once(cfg, shared, base)
