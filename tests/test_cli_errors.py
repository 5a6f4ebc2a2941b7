"""Every bad input gets one `error:` line and the right exit code, never a traceback (issue #12)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loglake.config import load_config
from tests.conftest import cli_env, run_cli

HOSTILE: list[tuple[list[str], int]] = [
    (["report", "top-pages", "--since", "99999999d"], 2),
    (["report", "top-pages", "--since", "0001-01-01T00:00+05:00"], 2),
    (["report", "top-pages", "--until", "9999-12-31T23:00-05:00"], 2),
    (["report", "top-pages", "--since", "yesterday"], 2),
    (["report", "top-pages", "--since", "99999999999999999999999d"], 2),
    (["report", "nosuch"], 2),
    (["report", "../../etc/passwd"], 2),
    (["report", "top-pages", "--format", "xml"], 2),
    (["catalog", "repair", "--table", "nosuch"], 2),
    (["catalog", "repair", "--engine", "oracle"], 2),
    (["query", "select 1", "--engine", "oracle"], 2),
    (["query", "select 1", "--format", "xml"], 2),
    (["query", "selec broken sql"], 1),
    (["query", "select * from access_log"], 1),
    (["query"], 2),
    (["status", "--format", "xml"], 2),
    (["write", "/nonexistent/access.log"], 1),
    (["write", "{tmp}"], 1),
    (["write", "--follow", "a.log", "b.log"], 2),
    (["write", "--follow", "-"], 2),
    (["write", "--config", "/nonexistent.toml", "x.log"], 2),
    (["check-config", "--config", "{tmp}"], 2),
    (["check-config", "--config", "{tmp}/bad.toml"], 2),
    (["rollover", "--interval", "abc"], 2),
    (["generate", "{tmp}/x.log", "--lines", "abc"], 2),
    (["generate", "/nonexistent/dir/x.log", "--lines", "3"], 1),
    (["demo", "--input", "/nonexistent.log"], 1),
    (["nosuch"], 2),
    (["write", "--bogus"], 2),
]


@pytest.mark.parametrize(("args", "code"), HOSTILE, ids=[" ".join(a) for a, _ in HOSTILE])
def test_hostile_arguments_give_one_error_line(args: list[str], code: int, tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "bad.toml").write_text("[writer\nformat = ", encoding="utf-8")
    proc = run_cli([a.replace("{tmp}", str(tmp_path)) for a in args], data_dir, cwd=tmp_path)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert proc.returncode == code, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr


def test_a_stray_spool_folder_is_ignored_before_any_work(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text('1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n', encoding="utf-8")
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    stray = data_dir / "spool" / "bad name!"
    stray.mkdir()
    (stray / "20260101T000000Z-x-1-000001.csv").write_text("ts\n2026-01-01T00:00:00Z\n", encoding="utf-8")
    proc = run_cli(["rollover"], data_dir)
    assert proc.returncode == 0, proc.stderr
    assert not list((data_dir / "lake").glob("bad*"))
    st = json.loads(run_cli(["status", "--format", "json"], data_dir).stdout)
    assert st["spool"]["stray_folders"] == ["bad name!"] and st["tables"]["access_log"]["rows"] == 1


def test_trino_host_with_a_scheme_is_a_config_error(tmp_path: Path, data_dir: Path) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text('[catalog.trino]\nhost = "http://trino:8080"\nhttp_scheme = "https"\n', encoding="utf-8")
    proc = run_cli(["check-config", "--config", str(cfg)], data_dir)
    assert proc.returncode == 2 and "catalog.trino.host" in proc.stderr and "bare host name" in proc.stderr


def test_every_key_can_come_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("", encoding="utf-8")
    env = {
        "LOGLAKE_DATA_DIR": str(tmp_path / "d"),
        "LOGLAKE_WRITER_FORMAT": "json",
        "LOGLAKE_WRITER_JSON_FIELDS": '{"ts": "time", "client_ip": "remote.ip"}',
        "LOGLAKE_TABLES_LOGINS_COLUMNS": "ts,username",
        "LOGLAKE_TABLES_LOGINS_WHERE": "method=POST,path=/login",
        "LOGLAKE_TABLES_LOGINS_REQUIRE": "username",
    }
    cfg = load_config(tmp_path / "empty.toml", environ=env)
    assert cfg.writer.json_fields == {"ts": "time", "client_ip": "remote.ip"}
    logins = cfg.table("logins")
    assert logins.columns == ("ts", "username") and logins.where == {"method": "POST", "path": "/login"}
    assert logins.require == ("username",) and cfg.table("access_log").columns[0] == "ts"
    env["LOGLAKE_WRITER_JSON_FIELDS"] = "{not json"
    env["LOGLAKE_TABLES_X"] = "y"
    with pytest.raises(Exception) as e:
        load_config(tmp_path / "empty.toml", environ=env)
    assert "LOGLAKE_WRITER_JSON_FIELDS" in str(e.value) and "LOGLAKE_TABLES_X" in str(e.value)


def test_times_without_an_offset_follow_writer_timezone(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_text('{"ts": "2026-07-01T12:00:00", "path": "/x"}\n', encoding="utf-8")
    env = {"LOGLAKE_WRITER_FORMAT": "json", "LOGLAKE_TABLES_ACCESS_LOG_COLUMNS": "ts,path"}
    proc = run_cli(["write", str(log)], data_dir, LOGLAKE_WRITER_TIMEZONE="Europe/Berlin", **env)
    assert proc.returncode == 0, proc.stderr
    from tests.helpers import spool_rows

    assert spool_rows(data_dir)[0]["ts"].isoformat() == "2026-07-01T10:00:00"  # CEST is UTC+2
    bad = run_cli(["check-config"], data_dir, LOGLAKE_WRITER_TIMEZONE="Mars/Olympus")
    assert bad.returncode == 2 and "writer.timezone" in bad.stderr


def test_sigterm_while_the_followed_file_is_rotated_away_exits_0(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n', encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loglake", "write", "--follow", str(log)],
        env=cli_env(data_dir, LOGLAKE_WRITER_POLL_INTERVAL="0.05"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.5)
    os.rename(log, tmp_path / "access.log.1")  # and no new file appears
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()


def test_a_column_the_clf_format_lacks_is_a_configuration_error(tmp_path) -> None:
    """Caught when the config loads (check-config, exit 2), not as an internal error at write."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tables.access_log]\ncolumns = ["ts", "host"]\n', encoding="utf-8")
    done = run_cli(["check-config"], tmp_path / "data", LOGLAKE_CONFIG=str(cfg))
    assert done.returncode == 2 and "the combined format has no host field" in done.stderr
    log = tmp_path / "a.log"
    log.write_text('1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n', encoding="utf-8")
    wrote = run_cli(["write", str(log)], tmp_path / "data", LOGLAKE_CONFIG=str(cfg))
    assert wrote.returncode == 2 and "internal error" not in wrote.stderr
    common = tmp_path / "common.toml"  # the default table, common format: its columns fit the format
    common.write_text('[writer]\nformat = "common"\n', encoding="utf-8")
    log.write_text('1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 1\n', encoding="utf-8")
    wrote = run_cli(["write", str(log)], tmp_path / "data", LOGLAKE_CONFIG=str(common))
    assert wrote.returncode == 0 and "rows access_log=1" in wrote.stderr, wrote.stderr
