"""The merge step of compaction: small Parquet files of one hour, of one PII key, into few large ones.

Files written under different PII keys are never merged together: each merged file carries the
`loglake.pii_key_id` of its inputs, so a key rotation stays visible in a compacted hour (which
rows were pseudonymised with which key) exactly as in a fresh one.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from loglake.config import Config
from loglake.schema import quote_literal
from loglake.storage import Lake

KEY_ID = "loglake.pii_key_id"


def by_key_id(lake: Lake, files: list[tuple[str, int]]) -> dict[str, list[tuple[str, int]]]:
    """`files` grouped by the PII key id in their footers ("" for files written without one)."""
    import pyarrow.parquet as pq

    groups: dict[str, list[tuple[str, int]]] = {}
    for path, size in files:
        with lake.fs.open(path, "rb") as f:
            md = pq.ParquetFile(f).schema_arrow.metadata or {}
        groups.setdefault(md.get(KEY_ID.encode(), b"").decode(), []).append((path, size))
    return dict(sorted(groups.items()))


def write_merged(
    cfg: Config, lake: Lake, inputs: list[str], folder: str, prefix: str, key_id: str
) -> list[tuple[str, int]]:
    """Merge `inputs`, all written under `key_id` (see `by_key_id`), sorted by `ts`, into
    `folder`/part-`prefix`-N.parquet, which carry that key id.

    DuckDB writes into a local scratch folder (its sort spills to disk, so memory stays bounded
    whatever the hour's size), then each file is uploaded whole. Returns (path, size) written."""
    import duckdb

    scratch = Path(tempfile.mkdtemp(prefix=".compact-", dir=cfg.state_dir))
    try:
        con = duckdb.connect(config={"memory_limit": cfg.rollover.compact_memory, "temp_directory": str(scratch)})
        try:
            con.execute("SET TimeZone = 'UTC'")
            if not lake.is_local:
                con.register_filesystem(lake.fs)
            sources = ", ".join(quote_literal(f if lake.is_local else f"s3://{f}") for f in inputs)
            kv = f", KV_METADATA {{{quote_literal(KEY_ID)}: {quote_literal(key_id)}}}" if key_id else ""
            con.execute(
                f"COPY (SELECT * FROM read_parquet([{sources}], union_by_name = true, hive_partitioning = false) "
                f"ORDER BY ts) TO {quote_literal(str(scratch / 'out'))} (FORMAT parquet, COMPRESSION "
                f"{_codec(cfg)}, ROW_GROUP_SIZE {cfg.rollover.row_group_size}, FILE_SIZE_BYTES "
                f"{cfg.rollover.compact_target_bytes}, FILENAME_PATTERN 'part-{prefix}-{{i}}'{kv})"
            )
        finally:
            con.close()
        out = []
        for local in sorted((scratch / "out").glob("*.parquet")):
            data = local.read_bytes()
            lake.write_atomic(f"{folder}/{local.name}", data)
            out.append((f"{folder}/{local.name}", len(data)))
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _codec(cfg: Config) -> str:
    return {"none": "uncompressed"}.get(cfg.rollover.compression, cfg.rollover.compression)


__all__ = ["KEY_ID", "by_key_id", "write_merged"]
