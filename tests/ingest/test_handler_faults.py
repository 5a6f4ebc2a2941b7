"""`LoglakeHandler` against lost answers, a kill -9, records the server refuses for good and
shared spill folders, through a fault-injecting proxy in front of a real `loglake serve`."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from loglake.ingest.handler import LoglakeHandler
from tests.conftest import cli_env
from tests.ingest.proxy import FaultProxy
from tests.ingest.test_send_faults import assert_once, wait_for
from tests.ingest.test_serve import TOKEN, Server, _lake_ids, make_certs
from tests.integration.nginx import free_port

APP = """
import logging, sys, time, loglake
url, ca, folder, first, last, mode = sys.argv[1:7]
h = loglake.LoglakeHandler(url=url, token="TOKEN", ca_file=ca, spill_path=folder, flush_interval=0.2,
                           batch_size=int(sys.argv[7]) if len(sys.argv) > 7 else 1000)
log = logging.getLogger("app")
log.addHandler(h)
log.setLevel(logging.INFO)
for i in range(int(first), int(last)):
    extra = {"path": f"/r/{i}", "status": 200}
    if mode == "poison" and i == 5:
        extra = {"path": "/big/" + "x" * 5000, "status": 200}
    if mode == "poison" and i == 6:
        extra["status"] = float("inf")
    log.info("hit", extra=extra)
if mode == "hang":
    time.sleep(600)
h.close()
print(h.counts)
""".replace("TOKEN", TOKEN)


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path)


def app(url: str, ca: Path, folder: Path, first: int, last: int, mode: str, *extra: str) -> list[str]:
    return [sys.executable, "-c", APP, url, str(ca), str(folder), str(first), str(last), mode, *extra]


def test_handler_lost_answers_and_kill_9_each_record_once(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    """Answers are lost (the server took the batch) until the app is killed -9; a new app with the
    same spill folder resends that batch with its key (a replay) and sends its own records."""
    srv = Server(tmp_path, data_dir, certs)
    proxy = FaultProxy(srv.port, certs)
    folder = tmp_path / "spill"
    folder.mkdir()  # given as a folder (older versions took a file name there: this one is a folder)
    env = cli_env(tmp_path / "unused")
    try:
        proxy.mode = "drop"
        a = subprocess.Popen(app(proxy.url, certs["ca"], folder, 0, 30, "hang"), env=env, cwd=tmp_path)
        wait_for(lambda: proxy.counts["dropped"] >= 3, "three lost answers")
        a.kill()
        a.wait()
        proxy.mode = "pass"
        b = subprocess.run(
            app(proxy.url, certs["ca"], folder, 30, 35, "plain"), env=env, cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert b.returncode == 0, b.stderr
    finally:
        proxy.close()
        srv.stop()
    assert_once(_lake_ids(data_dir), range(35))
    counts = eval(b.stdout.strip().splitlines()[-1])
    assert counts["adopted"] == 30 and counts["sent"] == 35
    assert not list(folder.glob("*.ndjson")) and not list(folder.glob("*.lock"))


def test_handler_keeps_a_batch_refused_for_good_and_delivers_the_rest(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    """One record too large for the server (413) and one with status=inf among 20 good ones: the
    large one is kept in rejected/, the others arrive (inf as a dead letter on the server)."""
    srv = Server(tmp_path, data_dir, certs, "--max-body-bytes", "3000")
    folder = tmp_path / "spill"
    try:
        r = subprocess.run(
            app(srv.url, certs["ca"], folder, 0, 22, "poison", "1"), env=cli_env(tmp_path / "unused"),
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        srv.stop()
    assert r.returncode == 0, r.stderr
    assert sorted(_lake_ids(data_dir)) == [i for i in range(22) if i not in (5, 6)]
    counts = eval(r.stdout.strip().splitlines()[-1])
    assert counts["rejected"] == 1 and counts["sent"] == 21
    (why,) = [json.loads(p.read_text()) for p in (folder / "rejected").glob("*.json")]
    assert why["status"] == 413 and why["lines"] == 1


def test_handler_spill_in_a_shared_folder_counts_and_keeps_its_mode(tmp_path: Path, monkeypatch) -> None:
    """Nothing listens: lines wait in the spill file and are counted as spilled; the given 1777
    folder keeps its mode and nothing is made in the working directory."""
    shared, cwd = tmp_path / "shared", tmp_path / "cwd"
    shared.mkdir()
    cwd.mkdir()
    os.chmod(shared, 0o1777)
    monkeypatch.chdir(cwd)
    h = LoglakeHandler(
        url=f"http://127.0.0.1:{free_port()}/v1/logs", token=TOKEN, spill_path=shared, flush_interval=0.1
    )
    log = logging.getLogger("test-spill")
    log.addHandler(h)
    try:
        for i in range(10):
            log.warning("hit", extra={"path": f"/r/{i}"})
        wait_for(lambda: h.counts["spilled"] == 10, "10 lines counted as spilled", timeout=30)
    finally:
        log.removeHandler(h)
        h.close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    (spilled,) = shared.glob("handler-*.ndjson")
    assert stat.S_IMODE(spilled.stat().st_mode) == 0o600 and spilled.read_bytes().count(b'"path"') == 10
    assert list(cwd.iterdir()) == []


def test_handler_refuses_plain_http_off_loopback() -> None:
    with pytest.raises(ValueError, match="plain HTTP off loopback"):
        LoglakeHandler(url="http://192.0.2.7:8514/v1/logs", token=TOKEN)


def test_handler_through_resets_and_slow_answers_each_record_once(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    """Connections reset after the server took the batch, then answers that come late: every
    record arrives once (each resend carries the batch's key)."""
    srv = Server(tmp_path, data_dir, certs)
    proxy = FaultProxy(srv.port, certs)
    proxy.mode = "reset"
    h = LoglakeHandler(url=proxy.url, token=TOKEN, ca_file=str(certs["ca"]), spill_path=tmp_path / "spill",
                       flush_interval=0.1)  # fmt: skip
    log = logging.getLogger("test-reset")
    log.addHandler(h)
    log.setLevel(logging.INFO)
    try:
        for i in range(10):
            log.info("hit", extra={"path": f"/r/{i}"})
        wait_for(lambda: proxy.counts["reset"] >= 2, "two reset connections")
        proxy.mode, proxy.delay = "delay", 1.0
        for i in range(10, 20):
            log.info("hit", extra={"path": f"/r/{i}"})
        wait_for(lambda: h.counts["sent"] == 20, "20 records sent")
    finally:
        log.removeHandler(h)
        h.close()
        proxy.close()
        srv.stop()
    assert proxy.counts["delayed"] >= 1
    assert_once(_lake_ids(data_dir), range(20))
