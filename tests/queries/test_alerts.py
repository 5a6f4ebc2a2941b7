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
    nothing = run_cli(["alert", "--config", str(EXAMPLE)], data_dir)
    assert nothing.returncode == 75 and "could not evaluate" in nothing.stderr
    bad = tmp_path / "bad.toml"
    for text, says in [
        ('[alerts.x]\nshare_over = 0.1\nwindow = "2m"\n', "share_over needs `where`"),
        ('[alerts.x]\nwhere = "status in (select 1)"\ncount_over = 1\n', "not a query"),
        ('[alerts.x]\nwhere = "nosuch > 1"\ncount_over = 1\n', "unknown column(s) nosuch"),
        ("[alerts.x]\ncount_over = 1\nrequests_below = 2\n", "set exactly one of"),
        ('[alerts.x]\ncount_over = 1\nwindow = "soon"\n', "not a duration"),
        ('[alerting]\nwebhook_url = "http://hooks.example.com/x"\n', "must be https://"),
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
