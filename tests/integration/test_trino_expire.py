"""Retention on Trino + S3: partitions leave Trino's metastore before their S3 objects go."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loglake.catalog import load_catalog
from loglake.config import Config, RetentionConfig
from loglake.rollover import run_rollover
from loglake.rollover.expire import run_expire
from loglake.status import collect_status
from loglake.storage import open_lake
from loglake.writer import Writer
from tests.rollover.test_expire import DAY, PER_HOUR, _five_days

pytestmark = pytest.mark.trino


def test_expire_on_trino_and_s3_keeps_the_kept_days_unchanged(trino_config: Config, tmp_path: Path) -> None:
    cfg = dataclasses.replace(trino_config, retention=RetentionConfig(lake="3d"))
    now = datetime.now(UTC)
    parts = _five_days(tmp_path / "a.log", now)
    Writer(cfg).write_file(str(tmp_path / "a.log"))
    run_rollover(cfg)
    cat, lake = load_catalog(cfg), open_lake(cfg)
    per_hour = PER_HOUR.replace("CAST(dt AS VARCHAR)", "CAST(dt AS varchar)")
    before = {(r[0], r[1]): (r[2], r[3]) for r in cat.query(per_hour).rows}
    assert len(before) == 100
    old = {p for p in parts if p.end <= now.timestamp() - 3 * DAY}

    dry = run_expire(cfg, cat, lake, dry_run=True)
    assert {e.partition for e in dry.partitions} == old and all(e.rows == 3 and e.bytes > 0 for e in dry.partitions)
    done = run_expire(cfg, cat, lake)
    assert {e.partition for e in done.partitions} == old and done.rows == 3 * len(old)

    after = {(r[0], r[1]): (r[2], r[3]) for r in cat.query(per_hour).rows}
    assert after == {k: v for k, v in before.items() if (k[0], k[1]) not in {(p.dt, p.hour) for p in old}}
    assert set(cat.list_partitions("access_log")) == set(parts) - old  # Trino's metastore
    lake.fs.invalidate_cache()
    assert not any(lake.fs.exists(lake.path("access_log", p.path)) for p in old)  # S3: no object, no folder
    st = collect_status(cfg)
    assert st["reconciles"] and st["tables"]["access_log"]["lake_matches_manifests"]
    assert run_expire(cfg, cat, lake).partitions == []
    cat.close()
