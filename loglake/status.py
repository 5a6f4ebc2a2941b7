"""`loglake status`: what is waiting, what is in the lake, and whether the counts reconcile.

Row counts in the lake come from Parquet footers (no scan), counts of what was read from batch
manifests, so `lines read = rows + filtered + dead-lettered` can be checked at any time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from loglake.config import Config
from loglake.faults import fault_warning
from loglake.fsutil import read_json
from loglake.rollover.segments import FAILED, stray_folders
from loglake.storage import open_lake
from loglake.writer.segments import BATCHES, batch_host


def _files(folder: Any, pattern: str) -> tuple[int, int]:
    paths = list(folder.glob(pattern)) if folder.is_dir() else []
    return len(paths), sum(p.stat().st_size for p in paths if p.exists())


def _table_status(lake: Any, table: str, host_id: str) -> dict[str, Any]:
    """Partitions, the files the catalog serves (rows from their footers, no scan), and the
    replaced files still kept for queries that started before a compaction's switch."""
    from loglake.rollover.compact import footer_rows, partitions_on_storage, served

    parts = partitions_on_storage(lake, table)
    rows = size = n_files = grace_files = grace_bytes = 0
    own = _OwnRows(host_id)
    most = 0  # the most files any closed hour serves (what compaction brings down to 1 or 2)
    now = time.time()
    for p in parts:
        files, grace = served(lake, table, p)
        if p.end <= now:
            most = max(most, len(files))
        counts = [footer_rows(lake, path) for path, _ in files]
        rows += sum(counts)
        size += sum(nbytes for _, nbytes in files)
        own.add(lake, table, p, [path for path, _ in files], counts)
        n_files += len(files)
        grace_files += len(grace)
        grace_bytes += sum(b for _, b in grace)
    return {
        "partitions": len(parts),
        "partition_list": sorted(parts),
        "files": n_files,
        "rows": rows,
        "own_rows": rows if not own.foreign else None if own.unknown else own.rows,
        "bytes": size,
        "max_files_per_closed_hour": most,
        "files_in_grace": grace_files,
        "bytes_in_grace": grace_bytes,
    }


class _OwnRows:
    """This host's rows among the files served, when several hosts share the lake: each host checks
    its own batch manifests against its own rows. A file rollover wrote is named after its batch,
    whose id carries the host (`batch_host`); rows a compaction merged are counted under each
    segment's name in its record (`unknown` when a record predates that count)."""

    def __init__(self, host_id: str) -> None:
        self.host_id = host_id
        self.rows = 0
        self.foreign = self.unknown = False  # another host's file seen; rows that cannot be attributed

    def _mine(self, name: str) -> bool:
        mine = batch_host(name.removesuffix(".parquet")) == self.host_id
        self.foreign = self.foreign or not mine
        return mine

    def add(self, lake: Any, table: str, p: Any, paths: list[str], counts: list[int]) -> None:
        from loglake.rollover.compact import read_record

        names = [path.rsplit("/", 1)[-1] for path in paths]
        record = read_record(lake, table, p) if any(n.startswith("part-g") for n in names) else None
        counted: dict[str, int] = (record or {}).get("consumed_rows", {})
        for name, n in zip(names, counts, strict=True):
            if not name.startswith("part-g") and self._mine(name) and name not in counted:
                self.rows += n  # a copy of a large file is in `counted`: once
        if record:
            consumed = record.get("consumed", [])
            self.unknown = self.unknown or any(name not in counted for name in consumed)
            self.rows += sum(counted.get(name, 0) for name in consumed if self._mine(name))


def collect_status(cfg: Config, with_freshness: bool = True) -> dict[str, Any]:
    spool = cfg.spool_dir
    from loglake.config import effective

    st: dict[str, Any] = {
        "data_dir": str(cfg.data_dir),
        "lake": cfg.lake_url,
        "catalog": cfg.catalog.type,
        "profile": effective(cfg),
        "warnings": [w for w in (fault_warning(),) if w],
    }
    open_n, open_b = _files(spool, "*/*.csv.open")
    closed_n, closed_b = _files(spool, "[!_]*/*.csv")
    failed_n, failed_b = _files(spool / FAILED, "*/*.csv")
    st["spool"] = {
        "open_segments": open_n,
        "open_bytes": open_b,
        "closed_segments": closed_n,
        "closed_bytes": closed_b,
        "failed_segments": failed_n,
        "failed_bytes": failed_b,
        "failed": sorted(p.name for p in (spool / FAILED).glob("*/*.csv")),
        "stray_folders": stray_folders(cfg),
    }
    pending_ids = {(p.parent.name, p.name[:-4]) for p in spool.glob("[!_]*/*.csv")}
    failed_ids = {(p.parent.name, p.name[:-4]) for p in (spool / FAILED).glob("*/*.csv")}
    from loglake.writer.ledger import read_ledger

    ledger = read_ledger(cfg)  # batches folded away once rolled over and a day old
    written: dict[str, Any] = {
        "lines_read": ledger["lines_read"],
        "rows": dict(ledger["rows"]),
        "filtered": dict(ledger["filtered"]),
        "dead_lettered": ledger["dead_lettered"],
        "batches": ledger["batches"],
        "batches_in_ledger": ledger["batches"],
    }
    pending_rows: dict[str, int] = {}
    failed_rows: dict[str, int] = {}
    from loglake.writer.coverage import Reads, add_folded, add_read, coverage, doubled

    reads: Reads = {}  # the byte ranges of every sealed batch: a range sealed twice is a double
    add_folded(reads, ledger["sources"])
    for m in sorted((spool / BATCHES).glob("[!_.]*.json")) if (spool / BATCHES).is_dir() else []:
        if m.name.endswith(".open.json") or m.name in ledger["absorbed"]:
            continue
        data = read_json(m)
        add_read(reads, data)
        written["batches"] += 1
        written["lines_read"] += data["lines_read"]
        written["dead_lettered"] += data["dead_lettered"]
        for t, n in data["rows"].items():
            written["rows"][t] = written["rows"].get(t, 0) + n
            if (t, data["id"]) in pending_ids:
                pending_rows[t] = pending_rows.get(t, 0) + n
            if (t, data["id"]) in failed_ids:
                failed_rows[t] = failed_rows.get(t, 0) + n
        for t, n in data["filtered"].items():
            written["filtered"][t] = written["filtered"].get(t, 0) + n
    st["written"] = written
    st["dead_letter_files"] = _files(cfg.dead_letter_dir, "*.jsonl")[0]
    lake = open_lake(cfg)
    from loglake.rollover.expire import expired_rows

    expired = expired_rows(cfg, lake)  # what retention removed on purpose
    tables: dict[str, Any] = {}
    for t in sorted({*written["rows"], *(tc.name for tc in cfg.tables)}):
        tables[t] = _table_status(lake, t, cfg.host_id)
        expected = written["rows"].get(t, 0) - pending_rows.get(t, 0) - failed_rows.get(t, 0) - expired.get(t, 0)
        own = tables[t]["own_rows"]  # this host's rows: other hosts may share the lake
        tables[t].update(
            rows_pending=pending_rows.get(t, 0),
            rows_failed=failed_rows.get(t, 0),
            rows_expired=expired.get(t, 0),
            lake_matches_manifests=None if own is None else own == expected,
        )
    st["tables"] = tables
    st["sources"] = coverage(cfg)
    st["unread_bytes"] = sum(s["unread_bytes"] for s in st["sources"])
    st["doubled"] = doubled(cfg, reads)
    st["doubled_bytes"] = sum(d["doubled_bytes"] for d in st["doubled"])
    st["reconciles"] = not st["doubled_bytes"] and (
        all(
            written["lines_read"]
            == written["rows"].get(t.name, 0) + written["filtered"].get(t.name, 0) + written["dead_lettered"]
            for t in cfg.tables
        )
        if written["batches"]
        else True
    )
    last = cfg.state_dir / "last_rollover.json"
    st["last_rollover"] = datetime.fromtimestamp(read_json(last)["at"], UTC).isoformat() if last.exists() else None
    if with_freshness:
        st["freshness"] = _freshness(cfg, [t for t in tables if tables[t]["rows"]])
        _missing_partitions(cfg, tables)
    for info in tables.values():
        info.pop("partition_list", None)
    return st


def _missing_partitions(cfg: Config, tables: dict[str, Any]) -> None:
    """Partitions the catalog registers whose folder is gone (a lifecycle rule, an `rm`): queries
    of other partitions still work, and this is where an operator sees it."""
    from loglake.catalog import load_catalog
    from loglake.errors import LoglakeError

    try:
        catalog = load_catalog(cfg)
        try:
            for t, info in tables.items():
                on_disk = set(info["partition_list"])
                gone = [p for p in catalog.list_partitions(t) if p not in on_disk]
                info["missing_partitions"] = [p.path for p in gone]
        finally:
            catalog.close()
    except LoglakeError as e:
        for info in tables.values():
            info["missing_partitions_error"] = str(e)


def _freshness(cfg: Config, tables: list[str]) -> dict[str, Any]:
    """Age of the newest row each table shows to SQL (what an alert on staleness watches)."""
    from loglake.catalog import load_catalog
    from loglake.errors import LoglakeError
    from loglake.schema import quote_identifier

    out: dict[str, Any] = {}
    try:
        catalog = load_catalog(cfg)
    except LoglakeError as e:
        return {"error": str(e)}
    try:
        for t in tables:
            try:
                table = quote_identifier(t)
                recent = f"SELECT max(ts) FROM {table} WHERE dt >= current_date - INTERVAL 2 DAY"
                if catalog.engine == "trino":
                    recent = f"SELECT max(ts) FROM {table} WHERE dt >= current_date - INTERVAL '2' DAY"
                newest = catalog.query(recent).rows[0][0]  # prunes to two days of partitions
                if newest is None:
                    newest = catalog.query(f"SELECT max(ts) FROM {table}").rows[0][0]
            except LoglakeError as e:
                out[t] = {"error": str(e)}
                continue
            if newest is None:
                out[t] = {"newest": None, "age_seconds": None}
                continue
            if newest.tzinfo is None:
                newest = newest.replace(tzinfo=UTC)
            out[t] = {"newest": newest.isoformat(), "age_seconds": round(time.time() - newest.timestamp(), 1)}
    finally:
        catalog.close()
    return out


def render_status(st: dict[str, Any]) -> None:
    console = Console()
    sp = st["spool"]
    w = st["written"]
    console.print(
        f"[bold]data[/bold] {st['data_dir']}  [bold]lake[/bold] {st['lake']}  [bold]catalog[/bold] {st['catalog']}"
    )
    for warning in st.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    prof = st.get("profile", {})
    console.print("profile: " + " ".join(f"{k}={v}" for k, v in prof.items()))
    console.print(
        f"spool: {sp['open_segments']} open ({sp['open_bytes']:,} B), {sp['closed_segments']} closed "
        f"({sp['closed_bytes']:,} B), {sp['failed_segments']} failed"
    )
    for name in sp["failed"]:
        console.print(f"  [red]failed[/red] {name}")
    for name in sp.get("stray_folders", []):
        console.print(f"  [yellow]ignored[/yellow] spool/{name}/: not a valid table name")
    console.print(
        f"written: {w['batches']} batches, {w['lines_read']:,} lines read, rows {w['rows']}, "
        f"filtered {w['filtered']}, dead-lettered {w['dead_lettered']:,}"
        f" -> {'[green]reconciles[/green]' if st['reconciles'] else '[red]DOES NOT RECONCILE[/red]'}"
    )
    table = Table("table", "partitions", "files", "rows", "bytes", "pending rows", "lake = manifests", "newest row age")
    for t, info in st["tables"].items():
        fresh = st.get("freshness", {}).get(t, {})
        age = fresh.get("age_seconds")
        table.add_row(
            t,
            str(info["partitions"]),
            str(info["files"]),
            f"{info['rows']:,}",
            f"{info['bytes']:,}",
            f"{info['rows_pending']:,}",
            {True: "yes", False: "[red]no[/red]", None: "unknown"}[info["lake_matches_manifests"]],
            "-" if age is None else f"{age:,.0f}s",
        )
    console.print(table)
    for t, info in st["tables"].items():
        if info.get("files_in_grace"):
            console.print(
                f"  {t}: {info['files_in_grace']} replaced file(s) ({info['bytes_in_grace']:,} B) kept for "
                "queries that started before a compaction; deleted after rollover.compact_grace"
            )
        for path in info.get("missing_partitions", []):
            console.print(f"  [red]missing[/red] {t}/{path}: registered, but its folder is gone (queries skip it)")
    _render_sources(console, st.get("sources", []))
    _render_doubled(console, st.get("doubled", []))
    console.print(f"last rollover: {st['last_rollover'] or 'never'}")


def _render_sources(console: Console, sources: list[dict[str, Any]]) -> None:
    """Files with bytes past their checkpoint: a writer behind, stopped, or a gap of any cause."""
    behind = [f for s in sources for f in s["files"] if f["unread_bytes"]]
    if not behind:
        if sources:
            console.print(f"sources: {len(sources)} path(s), every byte on disk is sealed")
        return
    table = Table(
        "file", "size", "sealed up to", "unread bytes", title="sources with unread bytes", title_justify="left"
    )
    for f in behind:
        table.add_row(f["file"], f"{f['size']:,}", f"{f['read_to']:,}", f"[yellow]{f['unread_bytes']:,}[/yellow]")
    console.print(table)


def _render_doubled(console: Console, doubled: list[dict[str, Any]]) -> None:
    """Byte ranges of one content sealed twice: their lines are in the lake twice."""
    if not doubled:
        return
    table = Table("file", "bytes read twice", "ranges", title="content read twice", title_justify="left")
    for d in doubled:
        ranges = ", ".join(f"{a:,}-{b:,}" for a, b in d["doubled_ranges"][:3])
        more = len(d["doubled_ranges"]) - 3
        table.add_row(
            d["file"], f"[red]{d['doubled_bytes']:,}[/red]", ranges + (f" (+{more} more)" if more > 0 else "")
        )
    console.print(table)
