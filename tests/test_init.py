"""`loglake init`: the config it writes passes check-config and parses the log it was made for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CROWDSEC, ELASTIC, real_file, run_cli


def _init_then_write(log: Path, tmp_path: Path, *extra: str) -> tuple[dict, str]:
    folder = tmp_path / "site"
    done = run_cli(["init", str(folder), "--log", str(log), *extra], tmp_path / "unused")
    assert done.returncode == 0, done.stderr
    cfg = str(folder / "loglake.toml")
    assert run_cli(["check-config", "-c", cfg], tmp_path / "unused").returncode == 0
    # init's data_dir is in the file: the test's LOGLAKE_DATA_DIR must not override it
    env = {"LOGLAKE_DATA_DIR": str(folder / "loglake-data")}
    wrote = run_cli(["write", "-c", cfg, str(log)], tmp_path / "unused", **env)
    assert wrote.returncode == 0, wrote.stderr
    status = run_cli(["status", "-c", cfg, "--format", "json"], tmp_path / "unused", **env)
    return json.loads(status.stdout)["written"], (folder / "loglake.toml").read_text(encoding="utf-8") + done.stdout


@pytest.mark.parametrize("sample", [ELASTIC, CROWDSEC], ids=lambda p: p.name)
def test_init_on_each_real_sample_parses_it_with_no_dead_letter(sample: Path, tmp_path: Path) -> None:
    log = real_file(sample)
    written, text = _init_then_write(log, tmp_path)
    lines = log.read_bytes().count(b"\n") + (0 if log.read_bytes().endswith(b"\n") else 1)
    assert written["dead_lettered"] == 0
    assert written["lines_read"] == lines == written["rows"]["access_log"]
    assert 'format = "combined"' in text
    assert f"loglake write -c {tmp_path / 'site' / 'loglake.toml'} --follow" in text  # the next commands


def test_init_detects_common_json_and_a_given_log_format(tmp_path: Path) -> None:
    common = tmp_path / "common.log"
    common.write_text('1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 12\n' * 5, encoding="utf-8")
    written, text = _init_then_write(common, tmp_path / "c")
    assert 'format = "common"' in text and written["rows"]["access_log"] == 5 and written["dead_lettered"] == 0

    nd = tmp_path / "app.json"
    rec = {
        "time": "2026-10-10T13:55:36Z",
        "remote_addr": "1.2.3.4",
        "request_uri": "/login",
        "status": 302,
        "request_method": "POST",
        "remote_user": "alice",
        "request_time": 0.012,
    }
    nd.write_text("\n".join(json.dumps(rec) for _ in range(4)) + "\n", encoding="utf-8")
    written, text = _init_then_write(nd, tmp_path / "j")
    assert 'format = "json"' in text and 'ts = "time"' in text and 'client_ip = "remote_addr"' in text
    assert written["rows"]["access_log"] == 4 and written["dead_lettered"] == 0

    fmt = '$remote_addr [$time_local] "$request" $status $request_time'
    custom = tmp_path / "custom.log"
    custom.write_text('1.2.3.4 [10/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 0.004\n' * 3, encoding="utf-8")
    written, text = _init_then_write(custom, tmp_path / "n", "--log-format", fmt)
    assert 'format = "nginx"' in text and "request_time" in text
    assert written["rows"]["access_log"] == 3 and written["dead_lettered"] == 0


def test_init_refuses_garbage_an_existing_config_and_a_missing_log(tmp_path: Path) -> None:
    junk = tmp_path / "junk.log"
    junk.write_text("hello\nworld\n", encoding="utf-8")
    done = run_cli(["init", str(tmp_path / "a"), "--log", str(junk)], tmp_path)
    assert done.returncode == 2 and "no known format parses this log" in done.stderr
    assert not (tmp_path / "a" / "loglake.toml").exists()

    ok = tmp_path / "ok.log"
    ok.write_text('1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 12 "-" "x"\n', encoding="utf-8")
    assert run_cli(["init", str(tmp_path / "b"), "--log", str(ok)], tmp_path).returncode == 0
    again = run_cli(["init", str(tmp_path / "b"), "--log", str(ok)], tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr
    assert run_cli(["init", str(tmp_path / "b"), "--log", str(ok), "--force"], tmp_path).returncode == 0

    missing = run_cli(["init", str(tmp_path / "c"), "--log", str(tmp_path / "nope.log")], tmp_path)
    assert missing.returncode == 2 and "not a file" in missing.stderr and "Traceback" not in missing.stderr


def test_init_options_and_what_it_refuses(tmp_path: Path) -> None:
    ok = tmp_path / "ok.log"
    ok.write_text(
        '1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 12 "-" "x" 0.004 "h"\n', encoding="utf-8"
    )
    done = run_cli(["init", str(tmp_path / "etc"), "--log", str(ok), "--data-dir", str(tmp_path / "var")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert f'data_dir = "{tmp_path / "var"}"' in (tmp_path / "etc" / "loglake.toml").read_text(encoding="utf-8")
    assert "--log-format" in done.stderr  # the fields after the agent: a hint to keep them
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    refused = run_cli(["init", str(afile), "--log", str(ok)], tmp_path)
    assert refused.returncode == 2 and "is not a directory" in refused.stderr
    bad_format = run_cli(
        ["init", str(tmp_path / "n"), "--log", str(ok), "--log-format", "$bogus [$time_local"], tmp_path
    )
    assert bad_format.returncode == 2 and "parses none" in bad_format.stderr
    assert not (tmp_path / "n" / "loglake.toml").exists()


def test_init_on_json_with_a_request_line_keeps_method_and_path(tmp_path: Path) -> None:
    nd = tmp_path / "r.json"
    rec = {"time": "2026-10-10T13:55:36Z", "remote_addr": "1.2.3.4", "request": "POST /login HTTP/1.1", "status": 200}
    nd.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    written, text = _init_then_write(nd, tmp_path)
    assert '"method"' in text and '"path"' in text and written["rows"]["access_log"] == 1
    folder = tmp_path / "site"
    env = {"LOGLAKE_DATA_DIR": str(folder / "loglake-data")}
    cfg = str(folder / "loglake.toml")
    assert run_cli(["rollover", "-c", cfg], tmp_path, **env).returncode == 0
    q = run_cli(["query", "-c", cfg, "select method, path from access_log", "--format", "json"], tmp_path, **env)
    assert json.loads(q.stdout) == [{"method": "POST", "path": "/login"}]
