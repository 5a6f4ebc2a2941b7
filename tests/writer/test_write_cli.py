"""`loglake write` as a user runs it: files, stdin, gzip, counts, dead letters, config errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, run_cli_bytes
from tests.helpers import dead_letters, open_files, spool_rows
from tests.hostile import CASES, write_hostile


def _check_output(data_dir: Path) -> None:
    rows = spool_rows(data_dir)
    dead = dead_letters(data_dir)
    assert open_files(data_dir) == []
    assert len(rows) + len(dead) == len(CASES)
    expected_rows = [exp for _, exp, _ in CASES if exp is not None]
    assert len(rows) == len(expected_rows)
    for row, exp in zip(rows, expected_rows, strict=True):
        for key, value in exp.items():
            if key == "ts_iso":
                assert row["ts"].strftime("%Y-%m-%dT%H:%M:%S") == value
            else:
                assert row[key] == value, (key, row)
    reasons = [reason for _, exp, reason in CASES if exp is None]
    assert [d["reason"].split(":")[0] for d in dead] == reasons
    raws = [raw for raw, exp, _ in CASES if exp is None]
    limit = 65536  # max_line_bytes: an over-long line keeps its first bytes, its length and a flag
    assert [d["raw"] for d in dead] == [raw[:limit] for raw in raws]  # byte-exact, base64 where not UTF-8
    for d, raw in zip(dead, raws, strict=True):
        assert d.get("truncated", False) == (len(raw) > limit) and d.get("length", len(raw)) == len(raw)
    assert all(d["line_no"] >= 1 and d["offset"] >= 0 for d in dead)


def test_write_file(tmp_path: Path, data_dir: Path) -> None:
    log = write_hostile(tmp_path / "access.log")
    proc = run_cli(["write", str(log)], data_dir)
    assert proc.returncode == 0, proc.stderr
    _check_output(data_dir)
    assert f"lines read {len(CASES)}" in proc.stderr
    dl = dead_letters(data_dir)[0]
    assert dl["source"] == str(log) and dl["offset"] == log.read_bytes().index(
        b"\n".join(raw for raw, _, _ in CASES[10:11])
    )


def test_write_stdin(tmp_path: Path, data_dir: Path) -> None:
    data = write_hostile(tmp_path / "access.log").read_bytes()
    proc = run_cli_bytes(["write"], data_dir, stdin=data)
    assert proc.returncode == 0, proc.stderr
    _check_output(data_dir)
    assert dead_letters(data_dir)[0]["source"] == "<stdin>"


def test_write_gzip_backfill(tmp_path: Path, data_dir: Path) -> None:
    plain = write_hostile(tmp_path / "access.log").read_bytes()
    gz = tmp_path / "access.log.1.gz"
    gz.write_bytes(gzip.compress(plain))
    proc = run_cli(["write", str(gz)], data_dir)
    assert proc.returncode == 0, proc.stderr
    _check_output(data_dir)


def test_rerun_resumes_from_checkpoint(tmp_path: Path, data_dir: Path) -> None:
    """A second run over the same file writes nothing; appended lines are picked up exactly once."""
    log = write_hostile(tmp_path / "access.log")
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    again = run_cli(["write", str(log)], data_dir)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert len(spool_rows(data_dir)) == sum(1 for _, e, _ in CASES if e is not None)
    # The file's last line had no newline: it was taken as a line (the file was finished: idle
    # for longer than rotate_wait). Appending starts a new line.
    with open(log, "ab") as f:
        f.write(b"\n" + CASES[0][0] + b"\n")
    third = run_cli(["write", str(log)], data_dir)
    assert third.returncode == 0, third.stderr
    rows = spool_rows(data_dir)
    dead = dead_letters(data_dir)
    # the appended "\n" ends the old last line's record, making one empty line, then one new row
    assert len(rows) == sum(1 for _, e, _ in CASES if e is not None) + 1
    assert dead[-1]["reason"] == "empty_line"


def test_counts_reconcile_with_table_filter(tmp_path: Path, data_dir: Path) -> None:
    cfg = tmp_path / "loglake.toml"
    cfg.write_text(
        """
[tables.access_log]
columns = ["ts", "username", "client_ip", "method", "path", "status"]

[tables.logins]
columns = ["ts", "username", "client_ip"]
where = { method = "POST", path = "/login" }
require = ["username"]
""",
        encoding="utf-8",
    )
    base = CASES[0][0].decode()
    lines = [
        base,
        base.replace("GET /index.html", "POST /login"),
        base.replace("GET /index.html", "POST /login").replace("alice", "-"),  # no user: filtered
        "junk",
    ]
    log = tmp_path / "a.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = run_cli(["write", "--config", str(cfg), str(log)], data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "rows access_log=3, logins=1, filtered logins=2, dead-lettered 1" in proc.stderr
    logins = spool_rows(data_dir, "logins")
    assert [r["username"] for r in logins] == ["alice"] and set(logins[0]) == {"ts", "username", "client_ip"}
    manifests = [json.loads(p.read_text()) for p in (data_dir / "spool" / "_batches").glob("*.json")]
    m = manifests[0]
    for table in ("access_log", "logins"):
        assert m["lines_read"] == m["rows"].get(table, 0) + m["filtered"].get(table, 0) + m["dead_lettered"]


def test_segment_rotates_by_size(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes((CASES[0][0] + b"\n") * 5000)
    proc = run_cli(
        ["write", str(log)], data_dir, LOGLAKE_WRITER_SEGMENT_MAX_BYTES="40000", LOGLAKE_WRITER_READ_BLOCK_BYTES="16384"
    )
    assert proc.returncode == 0, proc.stderr
    segments = sorted((data_dir / "spool" / "access_log").glob("*.csv"))
    assert len(segments) > 5
    for seg in segments:
        assert seg.read_text().startswith('"ts","username"')  # every segment has its header
        assert seg.stat().st_size < 40000 + 3 * 16384  # closes at the first block boundary past the limit
    assert len(spool_rows(data_dir)) == 5000
    names = [s.name for s in segments]
    assert len(set(names)) == len(names) and all("-test-" in n for n in names)


def test_missing_file_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    proc = run_cli(["write", str(tmp_path / "nope.log")], data_dir)
    assert proc.returncode == 1
    assert "nope.log: cannot open: No such file or directory" in proc.stderr


def test_check_config_reports_every_error(tmp_path: Path, data_dir: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        """
colour = "blue"
[writer]
format = "combined"
segment_max_bites = 10
fsync = "sometimes"
[tables.access_log]
columns = ["ts", "nope"]
""",
        encoding="utf-8",
    )
    proc = run_cli(["check-config", "--config", str(bad)], data_dir)
    assert proc.returncode == 2
    for needle in ("colour: unknown key", "writer.segment_max_bites: unknown key", "writer.fsync", "'nope'"):
        assert needle in proc.stderr, needle
    good = tmp_path / "good.toml"
    good.write_text('[writer]\nformat = "common"\n', encoding="utf-8")
    ok = run_cli(["check-config", "--config", str(good)], data_dir)
    assert ok.returncode == 0 and "format=common" in ok.stderr


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"LOGLAKE_WRITER_SEGMENT_MAX_AGE": "soon"}, "writer.segment_max_age: expected float"),
        ({"LOGLAKE_CATALOG_TYPE": "postgres"}, "catalog.type"),
        ({"LOGLAKE_WRITER_FORMAT": "regex"}, "writer.pattern: required"),
    ],
)
def test_environment_overrides_are_validated(data_dir: Path, env: dict[str, str], needle: str) -> None:
    proc = run_cli(["check-config"], data_dir, **env)
    assert proc.returncode == 2 and needle in proc.stderr


def test_dead_letter_show_keeps_records_whole(tmp_path: Path, data_dir: Path) -> None:
    """A rejected line holding NEL or U+2028 is stored unescaped; `dead-letter show` must not split
    the record there (str.splitlines does: found by test_properties)."""
    log = tmp_path / "odd.log"
    lines = ["garbage \u0085 with NEL", "garbage \u2028 with a line separator", "plain garbage"]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    shown = run_cli(["dead-letter", "show"], data_dir)
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(x) for x in shown.stdout.split("\n") if x]
    assert [r["line"] for r in records] == lines
    assert "3 dead-letter record(s)" in shown.stderr
