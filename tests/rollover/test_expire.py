"""Retention on the embedded catalog: what goes is listed first, goes from catalog and storage, and
leaves every kept hour's answer unchanged and `status` reconciled, across kills and odd clocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loglake.catalog import load_catalog
from loglake.catalog.base import Partition
from loglake.config import Config
from loglake.rollover import run_rollover
from loglake.rollover.compact import read_record, run_compact
from loglake.rollover.expire import read_expired, run_expire
from loglake.status import collect_status
from loglake.storage import open_lake
from loglake.writer import Writer
from tests.conftest import ELASTIC, cli_env, real_file, run_cli

PER_HOUR = "SELECT CAST(dt AS VARCHAR), hour, count(*), sum(bytes) FROM access_log GROUP BY 1, 2 ORDER BY 1, 2"
DAY = 86400


def _five_days(path: Path, now: datetime) -> dict[Partition, int]:
    """100 hourly partitions: hours 0-19 of each of the 5 days before today, 3 lines each."""
    lines, parts = [], {}
    for back in range(1, 6):
        day = (now - timedelta(days=back)).date()
        for hour in range(20):
            for i in range(3):
                t = datetime(day.year, day.month, day.day, hour, 10 + i, tzinfo=UTC)
                stamp = f"{t:%d/%b/%Y:%H:%M:%S} +0000"
                lines.append(f'203.0.113.{i} - u{hour} [{stamp}] "GET /p{hour} HTTP/1.1" 200 {100 + i} "-" "t"\n')
            parts[Partition(day.isoformat(), hour)] = 3
    path.write_text("".join(lines), encoding="utf-8")
    return parts


@pytest.fixture
def five_days(make_config, tmp_path: Path) -> tuple[Config, dict[Partition, int], float]:
    now = datetime.now(UTC)
    cfg = make_config('[retention]\nlake = "3d"\n')
    parts = _five_days(tmp_path / "access.log", now)
    Writer(cfg).write_file(str(tmp_path / "access.log"))
    run_rollover(cfg)
    return cfg, parts, now.timestamp()


def _per_hour(cfg: Config) -> dict[tuple[str, int], tuple[int, int]]:
    cat = load_catalog(cfg)
    try:
        return {(r[0], r[1]): (r[2], r[3]) for r in cat.query(PER_HOUR).rows}
    finally:
        cat.close()


def _cli(cfg: Config, *args: str) -> subprocess.CompletedProcess[str]:
    toml = cfg.source if cfg.source != "<defaults>" else ""
    return run_cli(list(args), cfg.data_dir, **({"LOGLAKE_CONFIG": toml} if toml else {}))


def test_expire_lists_then_removes_old_hours_from_catalog_and_storage(five_days) -> None:
    cfg, parts, now = five_days
    before = _per_hour(cfg)
    assert len(before) == 100 and sum(n for n, _ in before.values()) == 300
    old = {p for p in parts if p.end <= now - 3 * DAY}
    assert 40 <= len(old) <= 60

    dry = _cli(cfg, "expire", "--dry-run", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    listed = json.loads(dry.stdout)
    assert {e["partition"] for e in listed["partitions"]} == {p.path for p in old}
    assert all(e["rows"] == 3 and e["bytes"] > 0 for e in listed["partitions"])
    assert listed["rows"] == 3 * len(old) and _per_hour(cfg) == before  # a dry run deletes nothing

    done = _cli(cfg, "expire")
    assert done.returncode == 0, done.stderr
    assert f"expire: {len(old)} partition(s), {3 * len(old)} rows" in done.stderr
    after = _per_hour(cfg)
    kept = {k: v for k, v in before.items() if Partition(k[0], k[1]) not in old}
    assert after == kept  # the kept hours answer exactly as before; the expired ones not at all
    lake = open_lake(cfg)
    cat = load_catalog(cfg)
    assert set(cat.list_partitions("access_log")) == set(parts) - old
    assert not any(lake.fs.exists(lake.path("access_log", p.path)) for p in old)
    assert all(lake.fs.exists(lake.path("access_log", p.path)) for p in set(parts) - old)
    st = collect_status(cfg)
    t = st["tables"]["access_log"]
    assert st["reconciles"] and t["lake_matches_manifests"] and t["rows_expired"] == 3 * len(old)

    again = _cli(cfg, "expire", "--format", "json")
    assert json.loads(again.stdout)["partitions"] == []  # a rerun finds nothing more


def test_a_clock_set_back_expires_nothing_and_one_set_forward_is_refused(five_days) -> None:
    cfg, _, now = five_days
    before = _per_hour(cfg)
    cat, lake = load_catalog(cfg), open_lake(cfg)
    back = run_expire(cfg, cat, lake, now=now - 365 * DAY)
    assert back.partitions == [] and _per_hour(cfg) == before
    forward = run_expire(cfg, cat, lake, now=now + 365 * DAY)
    assert forward.partitions == [] and _per_hour(cfg) == before
    assert any(p == "*" and "clock" in why for _, p, why in forward.skipped)
    # the current day is never expired, even explicitly
    today = run_expire(cfg, cat, lake, now=now - 2 * DAY, before=now)
    assert all(e.partition.dt < datetime.fromtimestamp(now - 2 * DAY, UTC).date().isoformat() for e in today.partitions)
    assert any("current day" in why for _, _, why in today.skipped)


def test_expire_before_a_date_on_the_real_sample_asks_unless_yes(make_config, tmp_path: Path) -> None:
    cfg = make_config()
    Writer(cfg).write_file(str(real_file(ELASTIC)))
    run_rollover(cfg)
    before = _per_hour(cfg)
    refused = _cli(cfg, "expire", "--before", "2015-05-19")  # no terminal, no --yes: refuse
    assert refused.returncode == 2 and "--yes" in refused.stderr and _per_hour(cfg) == before
    done = _cli(cfg, "expire", "--before", "2015-05-19", "--yes", "--format", "json")
    assert done.returncode == 0, done.stderr
    gone = {e["partition"] for e in json.loads(done.stdout)["partitions"]}
    expected = {f"dt={d}/hour={h:02d}" for d, h in before if d < "2015-05-19"}
    assert gone == expected and len(gone) > 20
    assert _per_hour(cfg) == {k: v for k, v in before.items() if k[0] >= "2015-05-19"}
    st = collect_status(cfg)
    assert st["tables"]["access_log"]["lake_matches_manifests"] and st["reconciles"]


def test_each_crash_point_of_an_expiry_is_finished_by_the_rerun(five_days) -> None:
    """Step 1 done (recorded, still served), step 2 done (unregistered, files left): a rerun leaves
    the same lake and the same counts as an expiry that was never interrupted."""
    cfg, parts, now = five_days
    cat, lake = load_catalog(cfg), open_lake(cfg)
    victims = sorted(p for p in parts if p.end <= now - 3 * DAY)[:2]
    data = read_expired(cfg)
    data["tables"]["access_log"] = {"rows": 0, "expiring": {p.path: 3 for p in victims}}
    (cfg.state_dir / "expired.json").write_text(json.dumps(data), encoding="utf-8")
    cat.drop_partition("access_log", victims[1])  # the second one got as far as the catalog
    cat.close()
    st = collect_status(cfg)  # while interrupted: files still there, so they still count
    assert st["tables"]["access_log"]["lake_matches_manifests"]
    report = run_expire(cfg, load_catalog(cfg), lake, now=now)
    assert {e.partition for e in report.partitions} >= set(victims)
    assert read_expired(cfg)["tables"]["access_log"]["expiring"] == {}
    assert not any(lake.fs.exists(lake.path("access_log", p.path)) for p in victims)
    st = collect_status(cfg)
    assert st["tables"]["access_log"]["lake_matches_manifests"] and st["reconciles"]


def test_kill_9_during_expire_then_rerun_leaves_it_consistent(five_days) -> None:
    """kill -9 at later and later moments until a run gets through by itself: after every kill the
    counts agree, and the kills land in the middle of an expiry (some partitions gone, or recorded
    as expiring), not only before or after it."""
    cfg, parts, now = five_days
    old = {p for p in parts if p.end <= now - 3 * DAY}
    env = cli_env(cfg.data_dir, LOGLAKE_CONFIG=cfg.source)
    midway = 0
    delay = 0.4  # start-up is ~0.45 s
    for _ in range(40):
        proc = subprocess.Popen(
            [sys.executable, "-m", "loglake", "expire"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        if proc.poll() is not None:
            assert proc.returncode == 0
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        entry = read_expired(cfg)["tables"].get("access_log", {})
        midway += bool(entry.get("expiring")) or 0 < int(entry.get("rows", 0)) < 3 * len(old)
        st = collect_status(cfg)  # between a kill and the rerun, counts still agree
        assert st["tables"]["access_log"]["lake_matches_manifests"], st["tables"]["access_log"]
        delay += 0.07
    assert midway >= 1
    assert _cli(cfg, "expire").returncode == 0
    cat = load_catalog(cfg)
    assert set(cat.list_partitions("access_log")) == set(parts) - old
    assert sum(n for n, _ in _per_hour(cfg).values()) == 3 * (len(parts) - len(old))
    st = collect_status(cfg)
    assert st["reconciles"] and st["tables"]["access_log"]["lake_matches_manifests"]
    assert st["tables"]["access_log"]["rows_expired"] == 3 * len(old)


def test_done_segments_and_dead_letters_expire_by_age_never_all_at_once(make_config, tmp_path: Path) -> None:
    cfg = make_config('[retention]\ndone_segments = "2d"\ndead_letters = "30d"\n')
    line = '1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /{} HTTP/1.1" 200 1 "-" "x"\ngarbage {}\n'
    made: list[set[Path]] = []
    for i in range(2):  # two batches: one old, one new
        log = tmp_path / f"a{i}.log"
        log.write_text(line.format(i, i), encoding="utf-8")
        known = set((cfg.spool_dir / "_done").glob("**/*.csv")) | set(cfg.dead_letter_dir.glob("*.jsonl"))
        Writer(cfg).write_file(str(log))
        run_rollover(cfg)
        now_there = set((cfg.spool_dir / "_done").glob("**/*.csv")) | set(cfg.dead_letter_dir.glob("*.jsonl"))
        made.append(now_there - known)
    now = time.time()
    for path in made[0]:  # the first batch's files are 40 days old
        os.utime(path, (now - 40 * DAY, now - 40 * DAY))
    report = run_expire(cfg, load_catalog(cfg), open_lake(cfg), now=now)
    assert report.done_segments[0] == 1 and report.dead_letters[0] == 1
    assert not any(p.exists() for p in made[0]) and all(p.exists() for p in made[1])
    forward = run_expire(cfg, load_catalog(cfg), open_lake(cfg), now=now + 365 * DAY)  # a clock set forward
    assert forward.done_segments == (0, 0) and forward.dead_letters == (0, 0)
    assert {k for k, p, _ in forward.skipped if p == "*"} == {"done_segments", "dead_letters"}
    assert all(p.exists() for p in made[1]) and collect_status(cfg)["reconciles"]


def test_an_hour_in_a_compaction_grace_period_waits(make_config, tmp_path: Path) -> None:
    cfg = make_config('[retention]\nlake = "3d"\n[rollover]\ncompact_grace = 600.0\n')
    now = datetime.now(UTC)
    parts = _five_days(tmp_path / "a.log", now)
    other = tmp_path / "b.log"  # a second file per hour: compaction merges and retires the two
    other.write_text((tmp_path / "a.log").read_text(encoding="utf-8").replace("GET /p", "GET /q"), encoding="utf-8")
    Writer(cfg).write_file(str(tmp_path / "a.log"))
    Writer(cfg).write_file(str(other))
    run_rollover(cfg)
    cat, lake = load_catalog(cfg), open_lake(cfg)
    oldest = min(parts)
    run_compact(cfg, cat, older_than=0.0)
    assert read_record(lake, "access_log", oldest)["retired"]
    t = now.timestamp()
    waiting = run_expire(cfg, cat, lake, now=t, dry_run=True)
    assert oldest not in {e.partition for e in waiting.partitions}
    assert (("access_log", oldest.path, "a compaction is pending or in its grace period")) in waiting.skipped
    later = run_expire(cfg, cat, lake, now=t + 700, dry_run=True)
    assert oldest in {e.partition for e in later.partitions}
