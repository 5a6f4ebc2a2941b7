"""Finish or undo what a killed writer left in the spool (DESIGN.md, "Recovery after kill -9").

- committed (manifest exists): finish renaming its `.open` files;
- uncommitted, replayable source (a file): delete its files; the lines are read again from the
  checkpoint, which never moved past them;
- uncommitted, stdin: the bytes cannot be read again, so complete CSV rows and dead-letter records
  are kept (a torn last row is cut and dead-lettered with reason `torn`) and the batch is sealed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loglake.config import Config
from loglake.fsutil import atomic_write_json, private_dir, read_json, token_alive
from loglake.writer.identity import CheckpointStore, WriterLease
from loglake.writer.segments import BATCHES, finish_renames


@dataclass
class RecoveryReport:
    finished: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    salvaged: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # files of committed batches found nowhere

    def __bool__(self) -> bool:
        return bool(self.finished or self.discarded or self.salvaged or self.orphans or self.missing)


def _open_files(cfg: Config, batch_id: str) -> list[Path]:
    found = []
    if cfg.spool_dir.is_dir():
        for table_dir in cfg.spool_dir.iterdir():
            p = table_dir / f"{batch_id}.csv.open"
            if p.exists():
                found.append(p)
    dead = cfg.dead_letter_dir / f"{batch_id}.jsonl.open"
    if dead.exists():
        found.append(dead)
    return found


def complete_csv_prefix(data: bytes) -> int:
    """Length of the longest prefix of whole RFC 4180 records (newlines inside quotes don't end one)."""
    end, quotes, pos = 0, 0, 0
    for piece in data.split(b"\n")[:-1]:
        quotes += piece.count(b'"')
        pos += len(piece) + 1
        if quotes % 2 == 0:
            end = pos
    return end


def _salvage(cfg: Config, intent: dict) -> dict:
    """Keep the whole rows of a non-replayable batch; return the manifest to commit."""
    batch_id = intent["id"]
    rows: dict[str, int] = {}
    files: dict[str, str] = {}
    torn: list[bytes] = []
    dead = 0
    for path in _open_files(cfg, batch_id):
        data = path.read_bytes()
        if path.name.endswith(".jsonl.open"):
            keep = data.rfind(b"\n") + 1
            dead += data[:keep].count(b"\n")
            files["_dead_letter"] = f"dead-letter/{batch_id}.jsonl"
        else:
            keep = complete_csv_prefix(data)
            lines = data[:keep].count(b"\n")
            table = path.parent.name
            rows[table] = max(0, lines - 1)  # minus the header
            files[table] = f"spool/{table}/{batch_id}.csv"
        if keep < len(data):
            torn.append(data[keep:])
            with open(path, "r+b") as f:
                f.truncate(keep)
                os.fsync(f.fileno())
    if torn:
        dl = cfg.dead_letter_dir / f"{batch_id}.jsonl.open"
        private_dir(cfg.dead_letter_dir)
        with open(dl, "ab") as f:
            for piece in torn:
                rec = {
                    "source": intent["source"]["path"],
                    "offset": None,
                    "line_no": None,
                    "reason": "torn: partial record cut after a crash",
                    "batch": batch_id,
                    "line": piece.decode("utf-8", "backslashreplace"),
                }
                f.write(json.dumps(rec).encode() + b"\n")
                dead += 1
            os.fsync(f.fileno())
        files["_dead_letter"] = f"dead-letter/{batch_id}.jsonl"
    # A stdin batch cannot be re-read, so lines_read is what survived: rows of the widest table
    # plus dead letters. Lines still in the pipe or in memory at the kill are the documented gap.
    # A narrower table's missing rows were excluded by its filter, so the counts still reconcile.
    lines_read = max(rows.values(), default=0) + dead
    filtered = {t: lines_read - dead - rows.get(t, 0) for t in (tc.name for tc in cfg.tables)}
    return {
        "id": batch_id,
        "host": cfg.host_id,
        "source": intent["source"],
        "start_offset": intent["start_offset"],
        "end_offset": intent["start_offset"],
        "first_line": intent["start_line"],
        "last_line": intent["start_line"] - 1,
        "lines_read": lines_read,
        "rows": rows,
        "filtered": {t: n for t, n in filtered.items() if n},
        "dead_lettered": dead,
        "files": files,
        "salvaged": True,
        "sealed_at": datetime.now(UTC).isoformat(),
    }


def _alive(intent: dict, lease: WriterLease | None) -> bool:
    holder = str(intent.get("writer", ""))
    if lease is not None and not (":" in holder and holder.split(":", 1)[0].isdigit()):
        return lease.holder_alive(holder)
    return token_alive(holder)  # an intent written before writer leases


def _finish(cfg: Config, manifest: dict, store: CheckpointStore | None, report: RecoveryReport) -> None:
    report.missing += finish_renames(cfg.data_dir, manifest, cfg.writer.fsync != "off")
    if store is not None and not manifest.get("salvaged"):
        store.save_source(manifest["source"], int(manifest["end_offset"]), int(manifest["last_line"]))
    report.finished.append(manifest["id"])


def recover_spool(
    cfg: Config, store: CheckpointStore | None = None, lease: WriterLease | None = None
) -> RecoveryReport:
    """Bring every batch a dead writer left behind to a committed or a never-happened state.

    Liveness is decided by the writer's lease (an flock), so writers in other pid namespaces that
    share this data dir keep their open batches. A discarded batch's intent still says where its
    source was being read: it becomes a checkpoint at its start, so the file is looked for after a
    rotation even if its writer never sealed anything."""
    report = RecoveryReport()
    batches = cfg.spool_dir / BATCHES
    if not batches.is_dir():
        return report
    durable = cfg.writer.fsync != "off"
    known: set[str] = set()
    for intent_path in sorted(batches.glob("*.open.json")):
        try:
            intent = read_json(intent_path)
        except (OSError, json.JSONDecodeError):
            continue  # being written by a live writer this instant
        batch_id = intent["id"]
        known.add(batch_id)
        if _alive(intent, lease):
            continue  # a live writer's open batch
        manifest_path = batches / f"{batch_id}.json"
        if manifest_path.exists():
            _finish(cfg, read_json(manifest_path), store, report)
        elif intent["source"].get("replayable", True) or intent["source"].get("kind") == "http":
            # A file is read again from its checkpoint; an HTTP batch was never acknowledged (202
            # comes after the seal), so its client sends it again: keeping it would double it.
            for p in _open_files(cfg, batch_id):
                p.unlink()
            if store is not None:
                store.save_source(intent["source"], int(intent["start_offset"]), int(intent["start_line"]) - 1)
            report.discarded.append(batch_id)
        else:
            manifest = _salvage(cfg, intent)
            if manifest["lines_read"]:
                atomic_write_json(manifest_path, manifest, durable)
                _finish(cfg, manifest, None, report)
                report.finished.pop()
                report.salvaged.append(batch_id)
            else:
                for p in _open_files(cfg, batch_id):
                    p.unlink()
                report.discarded.append(batch_id)
        intent_path.unlink(missing_ok=True)
    # `.open` files of a committed batch whose intent is already gone (killed between renames).
    for path in [*cfg.spool_dir.glob("*/*.csv.open"), *cfg.dead_letter_dir.glob("*.jsonl.open")]:
        batch_id = path.name.split(".", 1)[0]
        if batch_id in known or (batches / f"{batch_id}.open.json").exists():
            continue
        manifest_path = batches / f"{batch_id}.json"
        if manifest_path.exists():
            _finish(cfg, read_json(manifest_path), store, report)
        else:
            path.unlink()  # no intent and no manifest: never part of a batch that can commit
            report.orphans.append(batch_id)
    return report
