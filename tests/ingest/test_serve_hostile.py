"""`loglake serve` against hostile and unlucky clients: shared idempotency keys, damaged or
unsupported bodies, newline bombs, poison requests in a group commit, slow headers, too many
connections and clients that hang up mid-body (a real server over TLS on 127.0.0.1)."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest

from loglake.config import Config
from loglake.ingest.receiver import Receiver, Submission
from tests.ingest.test_serve import TOKEN, Server, _lake_ids, lines, make_certs

OTHER = "second-token-abcdefghijklmnop"


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path)


def _rss_kb(pid: int, field: str) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field + ":"):
            return int(row.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_idempotency_keys_belong_to_one_token_and_one_body(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    srv = Server(tmp_path, data_dir, certs)
    try:
        code, a = srv.post(lines(0, 5), Idempotency_Key="shared-1")
        assert code == 202 and a["rows"] == {"access_log": 5}
        code, b = srv.post(lines(5, 13), token=OTHER, Idempotency_Key="shared-1")  # another token's key
        assert code == 202 and not b["replayed"] and b["batch"] != a["batch"] and b["rows"] == {"access_log": 8}
        code, c = srv.post(lines(13, 20), Idempotency_Key="shared-1")  # same token, another body
        assert code == 422 and "another request" in c["error"]
        code, again = srv.post(lines(0, 5), Idempotency_Key="shared-1")
        assert code == 202 and again["replayed"] and again["batch"] == a["batch"]
        srv.stop()
        srv.start()  # the keys come back from the manifests with their token and body
        assert srv.post(lines(13, 20), Idempotency_Key="shared-1")[0] == 422
        code, b2 = srv.post(lines(5, 13), token=OTHER, Idempotency_Key="shared-1")
        assert code == 202 and b2["replayed"] and b2["batch"] == b["batch"]
    finally:
        rc, err = srv.stop()
    assert rc == 0, err
    assert TOKEN not in err and OTHER not in err
    manifests = "".join(p.read_text() for p in (data_dir / "spool").rglob("*.json"))
    assert TOKEN not in manifests and OTHER not in manifests  # a hash of the token, never the token
    assert sorted(_lake_ids(data_dir)) == list(range(13))


def test_the_key_index_forgets_keys_after_their_window(cfg: Config) -> None:
    receiver = Receiver(cfg, key_ttl=3.0)
    try:

        def post(key: str, body: bytes) -> Submission:
            sub = receiver.submit(Submission(body, "raw", key, principal="p", fingerprint=key))
            assert sub.done.wait(30) and sub.error is None, sub.error
            return sub

        first = post("k-0", lines(0, 3))
        assert post("k-0", lines(0, 3)).replayed and len(receiver.index) == 1
        subs = [receiver.submit(Submission(lines(i, i + 1), "raw", f"k-{i}", principal="p")) for i in range(1, 50)]
        assert all(s.done.wait(30) and s.error is None for s in subs)
        assert len(receiver.index) == 50
        time.sleep(3.2)
        post("k-late", lines(60, 61))
        assert len(receiver.index) == 1  # the 50 older keys expired with their window
        again = post("k-0", lines(0, 3))
        assert not again.replayed and again.result and again.result["batch"] != first.result["batch"]
    finally:
        receiver.close()


def test_damaged_gzip_bodies_are_refused_and_every_member_is_read(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    srv = Server(tmp_path, data_dir, certs)
    whole = gzip.compress(lines(100, 200))
    try:
        for damaged in (whole[:-30], whole[:-8], whole + b"trailing garbage", whole[:-8] + b"\0" * 8, b""):
            code, answer = srv.post(damaged, Content_Encoding="gzip")
            assert code == 400 and "gzip" in answer["error"], (len(damaged), code, answer)
        code, both = srv.post(gzip.compress(lines(0, 3)) + gzip.compress(lines(3, 7)), Content_Encoding="gzip")
        assert code == 202 and both["rows"] == {"access_log": 7} and both["lines"] == 7
    finally:
        srv.stop()
    assert not list((data_dir / "dead-letter").glob("*.jsonl"))  # nothing stored as a torn line
    assert sorted(_lake_ids(data_dir)) == list(range(7))


def test_content_codings_other_than_gzip_are_refused_with_415(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    srv = Server(tmp_path, data_dir, certs)
    try:
        assert srv.post(gzip.compress(lines(0, 2)), Content_Encoding="x-gzip")[1]["rows"] == {"access_log": 2}
        assert srv.post(lines(2, 3), Content_Encoding="Identity")[1]["rows"] == {"access_log": 1}
        for coding in ("deflate", "br", "gzip, gzip", "compress"):
            code, answer = srv.post(zlib.compress(lines(9, 10)), Content_Encoding=coding)
            assert code == 415 and coding in answer["error"], (coding, code)
    finally:
        srv.stop()
    assert not list((data_dir / "dead-letter").glob("*.jsonl"))  # nothing stored as binary garbage
    assert sorted(_lake_ids(data_dir)) == list(range(3))


def test_a_newline_bomb_gets_a_bounded_answer_and_costs_bounded_memory(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    srv = Server(tmp_path, data_dir, certs)
    bomb = gzip.compress(b"\n" * 1_000_000, 9)
    try:
        before = _rss_kb(srv.proc.pid, "VmRSS")
        started = time.monotonic()
        code, answer = srv.post(bomb + b"", Content_Encoding="gzip", Idempotency_Key="bomb")
        took = time.monotonic() - started
        peak, after = _rss_kb(srv.proc.pid, "VmHWM"), _rss_kb(srv.proc.pid, "VmRSS")
        assert code == 202, answer
        assert answer["dead_lettered_total"] == 1_000_000 and answer["dead_letter_reasons"] == {"empty_line": 1_000_000}
        assert len(answer["dead_lettered"]) == 20 and answer["dead_lettered"][0] == {"line": 1, "reason": "empty_line"}
        assert len(json.dumps(answer)) < 4000
        assert srv.post(bomb, Content_Encoding="gzip", Idempotency_Key="bomb")[1]["replayed"]
    finally:
        srv.stop()
    print(f"newline bomb: {len(bomb)} bytes gzip, {took:.1f}s, RSS {before} -> {after} kB, peak {peak} kB")
    assert peak - before < 300_000, (before, peak)  # kB: was ~900 MB for this body
    manifests = [p for p in (data_dir / "spool").rglob("*.json") if "requests" in p.read_text()]
    assert manifests and max(p.stat().st_size for p in manifests) < 8000
    dead = sum(p.read_bytes().count(b"\n") for p in (data_dir / "dead-letter").glob("*.jsonl"))
    assert dead == 1_000_000  # every line kept, as a dead letter


def test_a_poison_request_does_not_fail_the_others_in_its_group_commit(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    srv = Server(tmp_path, data_dir, certs, "--commit-interval", "0.5")
    poison = {
        "status": b'{"ts": "2026-12-01T10:00:00Z", "path": "/p", "status": 1e400}\n',
        "bytes": b'{"ts": "2026-12-01T10:00:00Z", "path": "/p", "bytes": ' + b"9" * 5000 + b"}\n",
    }
    answers: dict[str, tuple[int, dict]] = {}

    def post(name: str, body: bytes, **headers: str) -> None:
        answers[name] = srv.post(body, **headers)

    try:
        threads = [threading.Thread(target=post, args=("good", lines(0, 10)))]
        threads += [
            threading.Thread(target=post, args=(k, v), kwargs={"Content_Type": "application/x-ndjson"})
            for k, v in poison.items()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        rc, err = srv.stop()
    assert rc == 0, err
    code, good = answers["good"]
    assert code == 202 and good["rows"] == {"access_log": 10}
    for name in poison:
        code, bad = answers[name]  # its own answer; its line kept as a dead letter, never lost
        assert code == 202 and bad["dead_lettered_total"] == 1 and not bad["rows"], (name, code, bad)
    assert "Traceback" not in err
    assert sorted(_lake_ids(data_dir)) == list(range(10))


def test_a_request_that_fails_in_processing_is_dead_lettered_alone(cfg: Config) -> None:
    """Any failure inside one request's processing (here: a format no parser has, which the HTTP
    layer can never send, so the failure is independent of the parsers' own fixes) leaves the
    other requests of the group committed, and keeps the failed request's lines."""
    receiver = Receiver(cfg, commit_interval=0.5)
    try:
        good = receiver.submit(Submission(lines(0, 3), "raw"))
        bad = receiver.submit(Submission(b"one\ntwo\n", "no-such-format"))
        later = receiver.submit(Submission(lines(3, 5), "raw"))
        assert all(s.done.wait(30) for s in (good, bad, later))
    finally:
        receiver.close()
    assert good.result and later.result and bad.result and not bad.error
    assert good.result["batch"] == bad.result["batch"] == later.result["batch"]  # one group commit
    assert good.result["rows"] == {"access_log": 3} and later.result["rows"] == {"access_log": 2}
    assert bad.result["dead_letter_reasons"] == {"internal_error": 2} and bad.result["lines"] == 2
    t = receiver.w.totals
    assert t.lines_read == 7 and t.dead_lettered == 2 and t.reconciles(["access_log"])
    dead = [json.loads(x) for p in (cfg.data_dir / "dead-letter").glob("*.jsonl") for x in p.read_text().splitlines()]
    assert [(d["line"], d["reason"]) for d in dead] == [(x, "internal_error: KeyError") for x in ("one", "two")]


def _tls_socket(srv: Server) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    return srv.ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def test_slow_headers_are_cut_off_and_the_connection_cap_answers_503(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    srv = Server(tmp_path, data_dir, certs, "--max-connections", "6", "--header-timeout", "2")
    slow = []
    try:
        for _ in range(5):  # unauthenticated, headers never finished
            s = _tls_socket(srv)
            s.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        time.sleep(0.3)
        req = urllib.request.Request(srv.url, lines(0, 1), {"Authorization": f"Bearer {TOKEN}"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, context=srv.ctx, timeout=30)
        refused.value.close()
        assert refused.value.code == 503  # the cap: 5 held + this one
        opened = time.monotonic()
        for s in slow:
            s.settimeout(20)
            s.sendall(b"a")  # dribbling a byte does not extend the deadline
            assert s.recv(100) == b""  # closed by the server
        assert time.monotonic() - opened < 10
        assert srv.post(lines(0, 1))[0] == 202
    finally:
        for s in slow:
            s.close()
        srv.stop()


def test_a_client_that_hangs_up_mid_body_is_one_log_line(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    srv = Server(tmp_path, data_dir, certs)
    try:
        for _ in range(3):
            s = _tls_socket(srv)
            head = f"POST /v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 99999\r\n"
            s.sendall(head.encode() + b"\r\n" + lines(0, 5))
            time.sleep(0.2)
            s.close()
        time.sleep(0.5)
        assert srv.post(lines(0, 2))[0] == 202
    finally:
        rc, err = srv.stop()
    assert rc == 0, err
    assert "Traceback" not in err and "ClientDisconnect" not in err
    assert err.count("disconnected before the end of its body") == 3, err
    assert sorted(_lake_ids(data_dir)) == [0, 1]


def test_oversized_headers_are_a_431_and_a_stalled_body_a_408(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    srv = Server(tmp_path, data_dir, certs, "--body-timeout", "1", "--max-header-bytes", "4096")
    try:
        s = _tls_socket(srv)
        s.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 431 ")  # whole in one read: h11 alone would take it
        s.close()
        s = _tls_socket(srv)
        s.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):
            s.sendall(b"X-More: " + b"b" * 2000 + b"\r\n")  # the same, read after read
        assert s.recv(100).startswith(b"HTTP/1.1 431 ")
        s.close()
        s = _tls_socket(srv)
        head = f"POST /v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 5000\r\n"
        s.sendall(head.encode() + b"\r\n" + lines(0, 3))  # and then nothing more
        started = time.monotonic()
        assert s.recv(100).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 10
        s.close()
        assert srv.post(lines(3, 4))[0] == 202
    finally:
        srv.stop()
    assert sorted(_lake_ids(data_dir)) == [3]
