"""Read back what the writer produced, through the same reader the rollover uses."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from loglake.rollover.convert import read_segment

#: Examples per property test: CI runs this many, derandomized; raise it locally.
EXAMPLES = int(os.environ.get("LOGLAKE_HYPOTHESIS_EXAMPLES", "150"))


def spool_rows(data_dir: Path, table: str = "access_log", include_done: bool = True) -> list[dict[str, Any]]:
    """Every row of every closed segment of `table` (also those already rolled over into _done/)."""
    paths = sorted((data_dir / "spool" / table).glob("*.csv"))
    if include_done:
        paths += sorted((data_dir / "spool" / "_done" / table).glob("*.csv"))
    rows: list[dict[str, Any]] = []
    for p in paths:
        rows.extend(read_segment(str(p)).to_pylist())
    return rows


def dead_letters(data_dir: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted((data_dir / "dead-letter").glob("*.jsonl")):
        for line in p.read_text(encoding="utf-8").split("\n"):  # not splitlines: NEL is in records
            if not line:
                continue
            rec = json.loads(line)
            rec["raw"] = base64.b64decode(rec["line_b64"]) if "line_b64" in rec else rec["line"].encode()
            out.append(rec)
    return out


def open_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*.open"))
