"""`loglake send` against lost answers, a kill -9 and batches the server refuses for good, through
a fault-injecting proxy in front of a real `loglake serve` (TLS on loopback)."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli
from tests.ingest.proxy import FaultProxy
from tests.ingest.test_serve import TOKEN, Server, _lake_ids, lines, make_certs


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path)


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def send_args(tmp_path: Path, url: str, ca: Path, *files: Path) -> list[str]:
    (tmp_path / "client-token").write_text(TOKEN + "\n")
    return ["send", *map(str, files), "--url", url, "--token-file", str(tmp_path / "client-token"),
            "--ca-file", str(ca)]  # fmt: skip


def assert_once(ids: list[int], expected: range) -> None:
    dupes = sorted(i for i, c in collections.Counter(ids).items() if c > 1)
    assert not dupes, f"{len(dupes)} line(s) twice, e.g. {dupes[:5]}"
    assert sorted(ids) == list(expected)


def test_send_lost_answers_then_kill_9_and_a_grown_file_each_line_once(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    """The server took the batch but its answers were lost; `send` is killed, the file grows, and a
    new `send` must resend that very batch (same bytes, same key) before reading on."""
    srv = Server(tmp_path, data_dir, certs)
    proxy = FaultProxy(srv.port, certs)
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 200))
    args = send_args(tmp_path, proxy.url, certs["ca"], log)
    sender_dir = tmp_path / "sender"
    try:
        proxy.mode = "drop"
        proc = subprocess.Popen(
            [sys.executable, "-m", "loglake", *args, "--follow"], env=cli_env(sender_dir), stderr=subprocess.PIPE
        )
        wait_for(lambda: proxy.counts["dropped"] >= 2, "two lost answers")  # a retry, as after any lost answer
        with open(log, "ab") as f:
            f.write(lines(200, 250))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        proxy.mode = "pass"
        again = run_cli(args, sender_dir)
        assert again.returncode == 0, again.stderr
        assert "send: 250 lines" in again.stderr
    finally:
        proxy.close()
        srv.stop()
    assert_once(_lake_ids(data_dir), range(250))


def test_send_keeps_a_batch_refused_for_good_and_goes_on(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    """A 413 cannot succeed on a retry: the batch is kept in rejected/ with its reason, counted, and
    the files after it are still sent; a 5xx-free run, so nothing waits forever."""
    srv = Server(tmp_path, data_dir, certs, "--max-body-bytes", "3000")
    files = [tmp_path / "a.log", tmp_path / "big.log", tmp_path / "c.log"]
    for f, (a, b) in zip(files, [(0, 10), (10, 60), (60, 70)], strict=True):
        f.write_bytes(lines(a, b))
    args = send_args(tmp_path, srv.url, certs["ca"], *files)
    sender_dir = tmp_path / "sender"
    try:
        first = run_cli(args, sender_dir)
        second = run_cli(args, sender_dir)  # the refused batch is not retried
    finally:
        srv.stop()
    assert first.returncode == 0, first.stderr
    assert "send: 20 lines" in first.stderr and "50 refused for good" in first.stderr
    assert second.returncode == 0 and "send: 0 lines" in second.stderr, second.stderr
    rejected = sender_dir / "state" / "send" / "rejected"
    (why,) = [json.loads(p.read_text()) for p in rejected.glob("*.json")]
    assert why["status"] == 413 and why["lines"] == 50
    (body,) = rejected.glob("*.ndjson")
    assert body.read_bytes() == lines(10, 60) and body.stat().st_mode & 0o777 == 0o600
    assert sorted(_lake_ids(data_dir)) == [*range(10), *range(60, 70)]


def test_send_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(lines(0, 1))
    (tmp_path / "t").write_text(TOKEN)
    args = ["send", str(log), "--url", "http://192.0.2.7:8514/v1/logs", "--token-file", str(tmp_path / "t")]
    r = subprocess.run(  # refused at once, never an attempt to connect (which would retry for good)
        [sys.executable, "-m", "loglake", *args],
        env=cli_env(tmp_path / "d"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2, r.stderr
    assert "plain HTTP off loopback" in r.stderr and "--allow-plain-http" in r.stderr and "Traceback" not in r.stderr
