"""`loglake alert` on a real DuckDB catalog: rules over lines stamped with the current time."""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import REPO, cli_env, run_cli

EXAMPLE = REPO / "examples" / "alerts.toml"


def _lines(n: int, status: int, ago: float, spread: float = 60.0) -> bytes:
    """`n` combined-format lines stamped between `ago + spread` and `ago` seconds before now."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        t = now - timedelta(seconds=ago + spread * (n - 1 - i) / max(n - 1, 1))
        when = f"{t:%d/%b/%Y:%H:%M:%S} +0000"
        out.append(f'203.0.113.{i % 200} - - [{when}] "GET /p/{i % 9} HTTP/1.1" {status} 512 "-" "probe"\n')
    return "".join(out).encode()


def _ingest(data_dir: Path, tmp_path: Path, data: bytes) -> None:
    log = tmp_path / f"in-{time.monotonic_ns()}.log"
    log.write_bytes(data)
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    rolled = run_cli(["rollover"], data_dir)
    assert rolled.returncode == 0, rolled.stderr


def test_quiet_then_site_down_then_stale(data_dir: Path, tmp_path: Path) -> None:
    _ingest(data_dir, tmp_path, _lines(200, 200, ago=1))
    quiet = run_cli(["alert", "--config", str(EXAMPLE)], data_dir)
    assert quiet.returncode == 0, quiet.stderr
    assert "ok site_down: 0.0% of 200 rows" in quiet.stderr and "ok stale" in quiet.stderr

    _ingest(data_dir, tmp_path, _lines(30, 503, ago=1, spread=10))
    down = run_cli(["alert", "--config", str(EXAMPLE), "--format", "json"], data_dir)
    assert down.returncode == 1, down.stderr
    verdicts = {v["rule"]: v for v in json.loads(down.stdout)}
    assert verdicts["site_down"]["firing"] and verdicts["site_down"]["rows"] == 230
    assert verdicts["site_down"]["value"] == pytest.approx(30 / 230, abs=1e-4)
    assert not verdicts["stale"]["firing"]


def test_stale_fires_when_the_newest_row_is_old(data_dir: Path, tmp_path: Path) -> None:
    _ingest(data_dir, tmp_path, _lines(50, 200, ago=600))
    out = run_cli(["alert", "--config", str(EXAMPLE)], data_dir)
    assert out.returncode == 1
    assert "FIRING stale: newest row in access_log is 6" in out.stderr
    assert "ok site_down: 0.0% of 0 rows" in out.stderr  # nothing in the window: not an outage


def test_rules_that_cannot_be_evaluated_or_are_wrong(data_dir: Path, tmp_path: Path) -> None:
    nothing = run_cli(["alert", "--config", str(EXAMPLE)], data_dir)  # no rollover yet: zero rows
    assert nothing.returncode == 1, nothing.stderr
    assert "FIRING stale: no rows in access_log" in nothing.stderr and "ok site_down: 0.0% of 0 rows" in nothing.stderr
    _ingest(data_dir, tmp_path, _lines(20, 200, ago=1))
    broken = tmp_path / "broken.toml"
    broken.write_text("[alerts.typo]\nwhere = \"status = 'oops'\"\ncount_over = 0\n")  # fails on the engine only
    out = run_cli(["alert", "--config", str(broken)], data_dir)
    assert out.returncode == 75, out.stderr  # nothing fires, one rule could not be evaluated
    assert "ERROR typo: could not evaluate: duckdb: Conversion Error" in out.stderr and "ok stale" in out.stderr
    bad = tmp_path / "bad.toml"
    for text, says in [
        ('[alerts.x]\nshare_over = 0.1\nwindow = "2m"\n', "share_over needs `where`"),
        ('[alerts.x]\nwhere = "status in (select 1)"\ncount_over = 1\n', "not a query"),
        ('[alerts.x]\nwhere = "nosuch > 1"\ncount_over = 1\n', "unknown column(s) nosuch"),
        ("[alerts.x]\ncount_over = 1\nrequests_below = 2\n", "set exactly one of"),
        ('[alerts.x]\ncount_over = 1\nwindow = "soon"\n', "not a duration"),
        ('[alerting]\nwebhook_url = "http://hooks.example.com/x"\n', "must be https://"),
        ('[alerts.x]\ntable = "nosuch"\ncount_over = 1\n', "'nosuch' is not a configured table (access_log)"),
        (
            '[tables.access_log]\ncolumns = ["ts", "status"]\n[alerts.x]\nwhere = "path = \'/\' and status > 1"\n'
            "count_over = 1\n",
            "uses column(s) path that table access_log does not have (its columns: ts, status)",
        ),
    ]:
        bad.write_text(text)
        out = run_cli(["alert", "--config", str(bad)], data_dir)
        assert out.returncode == 2 and says in out.stderr, (text, out.stderr)
        assert "Traceback" not in out.stderr
    unknown = run_cli(["alert", "--config", str(EXAMPLE), "--rule", "nosuch"], data_dir)
    assert unknown.returncode == 2 and "unknown rule" in unknown.stderr


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((self.headers.get("Authorization", ""), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_watch_notifies_each_change_once_by_command_and_webhook(data_dir: Path, tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events = tmp_path / "events.jsonl"
    config = tmp_path / "watch.toml"
    config.write_text(
        "[alerts.errors]\n"
        'where = "status >= 500"\nshare_over = 0.2\nwindow = "6s"\nmin_requests = 5\n'
        "[alerting]\ninterval = 0.5\n"
        f"command = \"sh -c 'cat >> {events}; echo >> {events}'\"\n"
        f'webhook_url = "http://127.0.0.1:{server.server_port}/hook"\n'
    )
    _ingest(data_dir, tmp_path, _lines(20, 200, ago=0, spread=2))
    watch = subprocess.Popen(
        [sys.executable, "-m", "loglake", "alert", "--watch", "--config", str(config)],
        env=cli_env(data_dir, LOGLAKE_ALERT_TOKEN="s3cret-token"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)
        assert not events.exists()  # healthy: nothing sent
        _ingest(data_dir, tmp_path, _lines(20, 503, ago=0, spread=1))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not events.exists():
            time.sleep(0.2)
        assert events.exists(), "no notification for the burst of 503s"
        time.sleep(2)  # still firing: no repeat
        assert len(_events(events)) == 1
        time.sleep(6)  # the 503s leave the 6 s window: healthy rows only now
        _ingest(data_dir, tmp_path, _lines(20, 200, ago=0, spread=1))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_events(events)) < 2:
            time.sleep(0.2)
    finally:
        watch.send_signal(signal.SIGTERM)
        _out, err = watch.communicate(timeout=30)
        server.shutdown()
        server.server_close()
    assert watch.returncode == 0, err
    states = [e["state"] for e in _events(events)]
    assert states == ["firing", "resolved"], err
    assert [(auth, body["state"]) for auth, body in _Hook.received] == [
        ("Bearer s3cret-token", "firing"),
        ("Bearer s3cret-token", "resolved"),
    ]
    assert "s3cret-token" not in err
    assert "notification(s) sent" in err


def test_a_table_without_access_log_keeps_the_builtin_stale_rule_valid(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "api.toml"
    config.write_text("[tables.api]\n")
    out = run_cli(["alert", "--config", str(config), "--format", "json"], data_dir)
    assert out.returncode == 1, out.stderr
    assert [(v["rule"], v["firing"], v["message"]) for v in json.loads(out.stdout)] == [
        ("stale", True, "no rows in api for a day or more")
    ]


#: The lake of BROKEN_LAKE has no `referer` column (rolled over under these columns); BROKEN's
#: `spam` rule needs it (check-config accepts it: the configured table has it) and `api` has no rows.
BROKEN_LAKE = '[tables.access_log]\ncolumns = ["ts", "client_ip", "method", "path", "status", "bytes"]\n'
BROKEN = """
[tables.access_log]
[tables.api]
[alerts.site_down]
where = "status >= 500"
share_over = 0.05
window = "10m"
min_requests = 10
[alerts.stale]
stale_after = 30
[alerts.spam]
where = "referer like '%spam%'"
count_over = 0
window = "10m"
[alerts.api_stale]
table = "api"
stale_after = 60
"""


def _broken_lake(data_dir: Path, tmp_path: Path) -> Path:
    """A lake whose newest rows are 5xx, 60-120 s old; returns the config with one broken rule."""
    lake_config = tmp_path / "lake.toml"
    lake_config.write_text(BROKEN_LAKE)
    log = tmp_path / "down.log"
    log.write_bytes(_lines(40, 503, ago=60))
    for args in (["write", str(log)], ["rollover"]):
        proc = run_cli([*args, "--config", str(lake_config)], data_dir)
        assert proc.returncode == 0, proc.stderr
    config = tmp_path / "broken.toml"
    config.write_text(BROKEN)
    assert run_cli(["check-config", "--config", str(config)], data_dir).returncode == 0
    return config


def test_one_broken_rule_does_not_silence_the_others(data_dir: Path, tmp_path: Path) -> None:
    config = _broken_lake(data_dir, tmp_path)
    out = run_cli(["alert", "--config", str(config), "--format", "json"], data_dir)
    assert out.returncode == 1, out.stderr  # firing wins over "could not evaluate"
    verdicts = {v["rule"]: v for v in json.loads(out.stdout)}
    assert {r: (v["firing"], v["error"]) for r, v in verdicts.items()} == {
        "site_down": (True, False),
        "stale": (True, False),
        "spam": (False, True),
        "api_stale": (True, False),  # a configured table with no rows yet: zero rows, not an error
    }
    assert verdicts["site_down"]["rows"] == 40 and verdicts["api_stale"]["rows"] == 0
    assert "could not evaluate: duckdb:" in verdicts["spam"]["message"] and "referer" in verdicts["spam"]["message"]


def test_watch_notifies_a_broken_rule_once_and_the_others_as_usual(data_dir: Path, tmp_path: Path) -> None:
    config = _broken_lake(data_dir, tmp_path)
    events = tmp_path / "events.jsonl"
    config.write_text(BROKEN + f"[alerting]\ninterval = 0.3\ncommand = \"sh -c 'cat >> {events}; echo >> {events}'\"\n")
    watch = subprocess.Popen(
        [sys.executable, "-m", "loglake", "alert", "--watch", "--config", str(config)],
        env=cli_env(data_dir),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (events.exists() and len(_events(events)) >= 4):
            time.sleep(0.2)
        time.sleep(1.5)  # several more rounds: nothing is sent again
    finally:
        watch.send_signal(signal.SIGTERM)
        _out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    sent = sorted((e["rule"], e["state"]) for e in _events(events)) if events.exists() else []
    assert sent == [("api_stale", "firing"), ("site_down", "firing"), ("spam", "error"), ("stale", "firing")], err
    spam = next(e for e in _events(events) if e["rule"] == "spam")
    assert spam["error"] and "referer" in spam["message"] and spam["previous"] == "ok"


def test_alert_state_goes_ok_error_resolved_firing_and_reads_its_older_file(tmp_path: Path) -> None:
    from loglake.queries.alerts import Verdict
    from loglake.queries.notify import AlertState

    path = tmp_path / "state" / "alerts.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"firing": {"old": True}}))  # the file as earlier versions wrote it
    state = AlertState(path)

    def round_(firing: bool, error: bool) -> list[str]:
        events = state.transitions(
            [Verdict("r", firing, None, 1.0, None, "m", error), Verdict("old", True, 1.0, 1.0, 1, "m")]
        )
        for e in events:
            state.mark(e)
        return [f"{e['rule']}:{e['previous']}->{e['state']}" for e in events]

    assert round_(False, True) == ["r:ok->error"]  # "old" was already firing: not sent again
    assert round_(False, True) == []
    assert round_(False, False) == ["r:error->resolved"]
    assert round_(True, False) == ["r:ok->firing"]
    assert AlertState(path).states == {"old": "firing", "r": "firing"}
