"""Bounded state: manifests fold into a ledger without changing a count; dead checkpoints go."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from loglake.rollover import run_rollover
from loglake.writer import Writer
from loglake.writer.ledger import KEEP_SECONDS, LEDGER, fold, prune_checkpoints, read_ledger
from loglake.writer.segments import BATCHES
from tests.conftest import ELASTIC, cli_env, real_file, run_cli

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


_FOLDER = """
import sys, time
from loglake.config import load_config
from loglake.writer.ledger import fold
cfg = load_config(None)
base = float(sys.argv[1])
for k in range(int(sys.argv[2])):
    fold(cfg, now=base + k * 60, force=True)
"""


def _fake_manifests(cfg, n: int, start: float) -> int:
    """`n` rolled-over manifests, one a minute from `start`; returns their lines read in all."""
    folder = cfg.spool_dir / BATCHES
    folder.mkdir(parents=True)
    total = 0
    for i in range(n):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start + i * 60))
        bid = f"{stamp}000000Z-test-{i:06d}"
        m = {"id": bid, "lines_read": i + 1, "dead_lettered": 0, "rows": {"access_log": i + 1}, "filtered": {}}
        m["source"] = {"kind": "file", "path": f"/logs/{i}.log", "fingerprint": f"fp{i}"}
        (folder / f"{bid}.json").write_text(json.dumps({**m, "files": {}}))
        total += i + 1
    return total


def test_two_processes_folding_at_once_lose_no_count(cfg, data_dir: Path) -> None:
    """`rollover --watch` and a cron `rollover` fold the same spool; each fold takes a few minutes'
    worth of manifests, so unlocked folds overwrite each other's ledger."""
    start = time.time() - 10 * DAY
    total = _fake_manifests(cfg, 300, start)
    args = [str(start + KEEP_SECONDS), "300"]
    env = cli_env(data_dir, LOGLAKE_WRITER_FSYNC="off")
    procs = [subprocess.Popen([sys.executable, "-c", _FOLDER, *args], env=env) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    fold(cfg, now=time.time(), force=True)  # whatever a skipped fold left
    ledger = read_ledger(cfg)
    assert not _manifests(cfg)
    assert (ledger["batches"], ledger["lines_read"], ledger["rows"]["access_log"]) == (300, total, total)


def test_a_batch_whose_intent_remains_is_never_folded(cfg, tmp_path: Path, monkeypatch) -> None:
    """The writer died between the commit and the checkpoint save and stayed down over a day while
    rollover ran: the manifest must stay, so recovery finishes the batch instead of reading it again."""
    from loglake.writer.pipeline import Writer as PipelineWriter

    log = tmp_path / "app.log"
    log.write_bytes(b"".join(real_file(ELASTIC).read_bytes().splitlines(keepends=True)[:200]))
    with monkeypatch.context() as m:
        m.setattr(PipelineWriter, "_after_commit", lambda self, batch, manifest: None)  # killed here
        crashed = Writer(cfg)
        crashed.write_file(str(log))
        crashed.close()  # the kernel drops a dead writer's lease
    (manifest,) = _manifests(cfg)
    assert (cfg.spool_dir / BATCHES / manifest.name.replace(".json", ".open.json")).exists()
    run_rollover(cfg)  # cron keeps rolling over: nothing of this batch is closed yet
    assert fold(cfg, now=time.time() + 3 * DAY, force=True) == 0
    assert manifest.exists()
    Writer(cfg).write_file(str(log))  # the writer is back: recovery finishes the batch, reads nothing
    run_rollover(cfg)
    assert fold(cfg, now=time.time() + 3 * DAY, force=True) == 1  # now it is done: folded
    st = _status(cfg.data_dir)
    assert st["written"]["lines_read"] == 200 and st["written"]["batches"] == 1
    assert st["tables"]["access_log"]["rows"] == 200 and st["tables"]["access_log"]["lake_matches_manifests"]


def _gzip(path: Path, dest: Path) -> None:
    import gzip

    dest.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()


def test_a_checkpoint_stays_while_any_rotation_holds_its_content(cfg, tmp_path: Path) -> None:
    """Apache's `access_log.1`, read by hand, then rotated on to `access_log.2.gz`; and a file read
    first as a `.gz`: each checkpoint lives as long as its content is on disk, then goes."""
    lines = real_file(ELASTIC).read_bytes().splitlines(keepends=True)
    rotated, compressed = tmp_path / "access_log.1", tmp_path / "other.log.3.gz"
    rotated.write_bytes(b"".join(lines[:50]))
    (tmp_path / "other.log.3").write_bytes(b"".join(lines[50:90]))
    _gzip(tmp_path / "other.log.3", compressed)
    for p in (rotated, compressed):
        Writer(cfg).write_file(str(p))
    (tmp_path / "access_log").write_bytes(b"".join(lines[90:100]))  # the live file: other content
    _gzip(rotated, tmp_path / "access_log.2.gz")  # logrotate's next run (numbered, compress)
    later = time.time() + 8 * DAY
    assert prune_checkpoints(cfg, 7 * DAY, now=later) == 0
    Writer(cfg).write_file(str(tmp_path / "access_log.2.gz"))  # a backfill of every rotation: nothing new
    Writer(cfg).write_file(str(compressed))
    assert _status(cfg.data_dir)["written"]["lines_read"] == 90
    (tmp_path / "access_log.2.gz").unlink()
    compressed.unlink()
    assert prune_checkpoints(cfg, 7 * DAY, now=later) == 2
    assert not list((cfg.state_dir / "checkpoints").glob("*.json"))
    assert not list((cfg.state_dir / "paths").glob("*.json"))  # the paths gone with them are forgotten
