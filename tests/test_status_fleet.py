"""`status` on hosts that share one lake: each host checks its own rows against its own manifests,
before and after another host's compaction merged every host's files of an hour."""

from __future__ import annotations

import json
from pathlib import Path

from loglake.catalog import load_catalog
from loglake.config import Config, load_config
from loglake.rollover import run_rollover
from loglake.rollover.compact import RECORD, partitions_on_storage, read_record, run_compact
from loglake.status import collect_status
from loglake.storage import open_lake
from loglake.writer import Writer
from tests.conftest import ELASTIC, real_file


def _host(tmp_path: Path, host: str) -> Config:
    (tmp_path / "empty.toml").write_text("")
    environ = {
        "LOGLAKE_DATA_DIR": str(tmp_path / f"host-{host}"),
        "LOGLAKE_HOST_ID": host,
        "LOGLAKE_STORAGE_URL": str(tmp_path / "lake"),
        "LOGLAKE_CATALOG_PATH": str(tmp_path / "catalog.duckdb"),
    }
    return load_config(tmp_path / "empty.toml", environ=environ)


def _tables(cfg: Config) -> dict:
    return collect_status(cfg, with_freshness=False)["tables"]["access_log"]


def test_each_host_of_a_fleet_matches_its_own_manifests(tmp_path: Path) -> None:
    lines = real_file(ELASTIC).read_bytes().splitlines(keepends=True)
    hosts = [_host(tmp_path, h) for h in ("web-1", "web-2", "web-3")]
    for i, cfg in enumerate(hosts):
        (tmp_path / f"{i}.log").write_bytes(b"".join(lines[i::3]))
        Writer(cfg).write_file(str(tmp_path / f"{i}.log"))
        run_rollover(cfg)

    def check() -> None:
        own = []
        for i, cfg in enumerate(hosts):
            st = _tables(cfg)
            assert st["rows"] == len(lines)  # the lake holds the fleet's rows...
            assert st["lake_matches_manifests"] is True and st["own_rows"] == len(lines[i::3]), st  # ...and its own
            own.append(st["own_rows"])
        assert sum(own) == len(lines)

    check()
    report = run_compact(hosts[0], load_catalog(hosts[0]))  # merges every host's files of each hour
    assert report.partitions > 20
    check()
    late = lines[4:304:3]  # host 2's late rows (each hour already merged), then a second merge
    (tmp_path / "late.log").write_bytes(b"".join(late))
    Writer(hosts[1]).write_file(str(tmp_path / "late.log"))
    run_rollover(hosts[1])
    assert _tables(hosts[1])["own_rows"] == len(lines[1::3]) + len(late)
    run_compact(hosts[2], load_catalog(hosts[2]))
    st = [_tables(cfg) for cfg in hosts]
    assert [s["lake_matches_manifests"] for s in st] == [True, True, True], st
    assert [s["own_rows"] for s in st] == [len(lines[0::3]), len(lines[1::3]) + len(late), len(lines[2::3])]
    assert st[0]["rows"] == len(lines) + len(late)
    # a compaction record written before rows were counted per segment: said, never guessed
    lake = open_lake(hosts[0])
    p = next(p for p in partitions_on_storage(lake, "access_log") if read_record(lake, "access_log", p))
    record = read_record(lake, "access_log", p)
    del record["consumed_rows"]
    lake.write_atomic(lake.path("access_log", p.path, RECORD), json.dumps(record).encode())
    assert _tables(hosts[0])["lake_matches_manifests"] is None
