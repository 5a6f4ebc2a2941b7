"""Bounded state: manifests fold into a ledger without changing a count; dead checkpoints go."""

from __future__ import annotations

import json
import time
from pathlib import Path

from loglake.rollover import run_rollover
from loglake.writer import Writer
from loglake.writer.ledger import LEDGER, fold, prune_checkpoints, read_ledger
from loglake.writer.segments import BATCHES
from tests.conftest import ELASTIC, real_file, run_cli

DAY = 86400


def _status(data_dir: Path) -> dict:
    out = run_cli(["status", "--format", "json"], data_dir)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _manifests(cfg) -> list[Path]:
    return sorted(p for p in (cfg.spool_dir / BATCHES).glob("[!_]*.json") if not p.name.endswith(".open.json"))


def test_old_rolled_over_manifests_fold_into_the_ledger(cfg, tmp_path: Path) -> None:
    lines = real_file(ELASTIC).read_bytes().splitlines(keepends=True)
    for i in range(5):
        (tmp_path / f"{i}.log").write_bytes(b"".join(lines[i * 2000 : (i + 1) * 2000]) + b"garbage line\n")
        Writer(cfg).write_file(str(tmp_path / f"{i}.log"))
    run_rollover(cfg)
    (tmp_path / "late.log").write_bytes(b"".join(lines[-10:]))
    Writer(cfg).write_file(str(tmp_path / "late.log"))  # sealed, not rolled over: must stay
    before = _status(cfg.data_dir)
    assert before["written"]["batches"] == 6 and before["reconciles"]
    assert fold(cfg, force=True) == 0  # nothing is a day old yet
    assert fold(cfg, now=time.time() + 2 * DAY, force=True) == 5
    assert len(_manifests(cfg)) == 1  # the pending one
    after = _status(cfg.data_dir)
    for key in ("lines_read", "rows", "filtered", "dead_lettered", "batches"):
        assert after["written"][key] == before["written"][key], key
    assert after["reconciles"] and after["tables"]["access_log"]["lake_matches_manifests"]
    ledger = read_ledger(cfg)
    (source,) = [s for s in ledger["sources"].values() if s["path"].endswith("/0.log")]
    assert source["lines"] == 2001 and source["ranges"] == [[0, (tmp_path / "0.log").stat().st_size]]


def test_a_fold_interrupted_before_its_deletions_counts_nothing_twice(cfg, tmp_path: Path) -> None:
    lines = real_file(ELASTIC).read_bytes().splitlines(keepends=True)
    for i in range(3):
        (tmp_path / f"{i}.log").write_bytes(b"".join(lines[i * 100 : (i + 1) * 100]))
        Writer(cfg).write_file(str(tmp_path / f"{i}.log"))
    run_rollover(cfg)
    names = [p.name for p in _manifests(cfg)]
    saved = {n: (cfg.spool_dir / BATCHES / n).read_bytes() for n in names}
    fold(cfg, now=time.time() + 2 * DAY, force=True)
    ledger = read_ledger(cfg)
    # as if killed after writing the ledger, before deleting: the manifests are back, listed
    ledger["absorbed"] = names
    (cfg.spool_dir / BATCHES / LEDGER).write_text(json.dumps(ledger))
    for n, data in saved.items():
        (cfg.spool_dir / BATCHES / n).write_bytes(data)
    assert _status(cfg.data_dir)["written"]["lines_read"] == 300  # listed as absorbed: not counted twice
    fold(cfg, now=time.time() + 2 * DAY, force=True)
    assert not _manifests(cfg) and read_ledger(cfg)["lines_read"] == 300


def test_checkpoints_of_content_on_no_disk_are_pruned(cfg, tmp_path: Path) -> None:
    lines = real_file(ELASTIC).read_bytes().splitlines(keepends=True)
    kept, rotated, gone = tmp_path / "kept.log", tmp_path / "app.log", tmp_path / "gone.log"
    for i, p in enumerate((kept, rotated, gone)):
        p.write_bytes(b"".join(lines[i * 50 : (i + 1) * 50]))
        Writer(cfg).write_file(str(p))
    rotated.rename(tmp_path / "app.log.1")  # rotated away: its content is still on disk
    gone.unlink()
    folder = cfg.state_dir / "checkpoints"
    assert len(list(folder.glob("*.json"))) == 3
    assert prune_checkpoints(cfg, 7 * DAY) == 0  # all recent
    assert prune_checkpoints(cfg, 7 * DAY, now=time.time() + 8 * DAY) == 1
    paths = sorted(json.loads(p.read_text())["path"] for p in folder.glob("*.json"))
    assert paths == sorted([str(kept), str(rotated)])
    # the rotated file is still known: writing it again adds nothing
    Writer(cfg).write_file(str(tmp_path / "app.log.1"))
    assert _status(cfg.data_dir)["written"]["lines_read"] == 150
