"""`loglake serve`, `send` and `LoglakeHandler` against a real server on 127.0.0.1 over TLS with
a CA and certificates made in the test (issue #10)."""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli
from tests.integration.nginx import free_port

TOKEN = "test-token-0123456789abcdef"
LINE = '10.0.{a}.{b} - user{u} [01/Dec/2026:10:{m:02d}:{s:02d} +0000] "GET /r/{i} HTTP/1.1" 200 {i} "-" "t"'


def lines(a: int, b: int) -> bytes:
    return "".join(
        LINE.format(a=i % 200, b=i % 250, u=i % 9, m=(i // 60) % 60, s=i % 60, i=i) + "\n" for i in range(a, b)
    ).encode()


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, signed by that CA."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("loglake test CA"))
        .issuer_name(name("loglake test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    out = {"ca": folder / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(f"loglake test {who}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if who == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        out[f"{who}_cert"] = folder / f"{who}.pem"
        out[f"{who}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{who}_key"] = folder / f"{who}.key"
        write_key(key, out[f"{who}_key"])
    return out


class Server:
    def __init__(self, tmp: Path, data_dir: Path, certs: dict[str, Path], *extra: str) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}/v1/logs"
        self.tokens = tmp / "tokens"
        self.tokens.write_text(f"# one a line\n{TOKEN}\nsecond-token-abcdefghijklmnop\n")
        self.args = [
            sys.executable, "-m", "loglake", "serve", "--port", str(self.port),
            "--tls-cert", str(certs["server_cert"]), "--tls-key", str(certs["server_key"]),
            "--token-file", str(self.tokens), *extra,
        ]  # fmt: skip
        self.data_dir, self.ctx = data_dir, ssl.create_default_context(cafile=str(certs["ca"]))
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, env=cli_env(self.data_dir), stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url.replace("/v1/logs", "/healthz"), context=self.ctx, timeout=1)
                return
            except (urllib.error.URLError, OSError):
                assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else ""
                time.sleep(0.1)
        raise AssertionError("serve did not answer /healthz within 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err.decode()

    def post(self, body: bytes, token: str | None = TOKEN, **headers: str) -> tuple[int, dict]:
        hdrs = {"Content-Type": "text/plain", **{k.replace("_", "-"): v for k, v in headers.items()}}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url, data=body, method="POST", headers=hdrs)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path)


def _lake_ids(data_dir: Path) -> list[int]:
    assert run_cli(["rollover"], data_dir).returncode == 0
    q = run_cli(["query", "select path from access_log", "--format", "json"], data_dir)
    assert q.returncode == 0, q.stderr
    return [int(r["path"].rsplit("/", 1)[1]) for r in json.loads(q.stdout)]


def test_serve_acceptance(tmp_path: Path, data_dir: Path, certs: dict[str, Path]) -> None:
    srv = Server(tmp_path, data_dir, certs, "--max-body-bytes", "200000")
    try:
        assert srv.post(lines(0, 10), token=None)[0] == 401
        assert srv.post(lines(0, 10), token="wrong-token-0123456789")[0] == 403
        code, first = srv.post(lines(0, 10) + b"junk\n", Idempotency_Key="batch-1")
        assert code == 202 and first["rows"] == {"access_log": 10} and not first["replayed"]
        assert first["dead_lettered"] == [{"line": 11, "reason": "unparseable: not combined log format"}]
        code, again = srv.post(lines(0, 10) + b"junk\n", Idempotency_Key="batch-1")
        assert code == 202 and again["replayed"] and again["batch"] == first["batch"]
        assert srv.post(gzip.compress(lines(10, 20)), Content_Encoding="gzip")[0] == 202
        nd = b"".join(json.dumps({"ts": "2026-12-01T10:00:00Z", "path": f"/r/{i}"}).encode() + b"\n" for i in (20, 21))
        assert srv.post(nd, Content_Type="application/x-ndjson")[1]["rows"] == {"access_log": 2}
        assert srv.post(lines(0, 1), Content_Type="image/png")[0] == 415
        assert srv.post(b"x" * 300_000)[0] == 413
        assert srv.post(gzip.compress(b"x" * 80_000_000), Content_Encoding="gzip")[0] == 413  # a gzip bomb
        assert srv.post(lines(0, 1), token="second-token-abcdefghijklmnop")[0] == 202
        with urllib.request.urlopen(srv.url.replace("/v1/logs", "/metrics"), context=srv.ctx) as m:
            assert b"loglake_lines_read_total" in m.read()
    finally:
        rc, err = srv.stop()
    assert rc == 0, err
    assert TOKEN not in err and "stopped" in err
    ids = _lake_ids(data_dir)
    assert sorted(ids) == [0, *range(22)]  # batch-1 once, the 1-line post of /r/0 again


def test_kill_9_during_a_stream_every_acknowledged_line_once(
    tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    srv = Server(tmp_path, data_dir, certs)
    acked: list[int] = []
    stop = threading.Event()

    def client(n: int) -> None:
        for k in range(n, n + 40):
            body = lines(k * 50, k * 50 + 50)
            while not stop.is_set():  # retry the same key until acknowledged, as `send` does
                try:
                    code, _ = srv.post(body, Idempotency_Key=f"k{k}")
                except (urllib.error.URLError, OSError):
                    time.sleep(0.1)
                    continue
                if code == 202:
                    acked.extend(range(k * 50, k * 50 + 50))
                    break
                time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(i * 40,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            time.sleep(0.6)
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.communicate()
            srv.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        stop.set()
        rc, err = srv.stop()
    assert rc == 0, err
    assert len(acked) == 160 * 50
    ids = _lake_ids(data_dir)
    dupes = [i for i, c in collections.Counter(ids).items() if c > 1]
    assert not dupes and sorted(ids) == sorted(acked)


def test_send_follows_a_file_exactly_once_across_a_kill(tmp_path: Path, data_dir: Path, certs: dict[str, Path]) -> None:
    srv = Server(tmp_path, data_dir, certs)
    (tmp_path / "client-token").write_text(TOKEN + "\n")
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 3000))
    args = ["send", str(log), "--url", srv.url, "--token-file", str(tmp_path / "client-token"),
            "--ca-file", str(certs["ca"])]  # fmt: skip
    sender_dir = tmp_path / "sender"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loglake", *args, "--follow"], env=cli_env(sender_dir), stderr=subprocess.PIPE
        )
        time.sleep(3)
        with open(log, "ab") as f:
            f.write(lines(3000, 3500))
        time.sleep(2)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        with open(log, "ab") as f:
            f.write(lines(3500, 4000))
        again = run_cli(args, sender_dir)
        assert again.returncode == 0, again.stderr
        third = run_cli(args, sender_dir)  # nothing new
        assert third.returncode == 0 and "send: 0 lines" in third.stderr
    finally:
        srv.stop()
    assert sorted(_lake_ids(data_dir)) == list(range(4000))


HANDLER_SCRIPT = """
import logging, sys, threading, loglake
kind, target, token, ca, size = sys.argv[1:6]
if kind == "url":
    h = loglake.LoglakeHandler(url=target, token=token, ca_file=ca, queue_size=int(size))
else:
    h = loglake.LoglakeHandler(data_dir=target, queue_size=int(size))
log = logging.getLogger("app")
log.addHandler(h)
log.setLevel(logging.INFO)
def work(t):
    for i in range(500):
        log.info("hit", extra={"path": f"/r/{t * 500 + i}", "username": f"u{t}", "status": 200})
threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
h.close()
print(h.counts)
"""


@pytest.mark.parametrize(("kind", "queue_size"), [("url", 100), ("spool", 100), ("url", 100_000)])
def test_logging_handler_from_a_plain_script(
    kind: str, queue_size: int, tmp_path: Path, data_dir: Path, certs: dict[str, Path]
) -> None:
    """A 100-line queue spills; a huge one still holds thousands of lines at close(): both arrive."""
    srv = Server(tmp_path, data_dir, certs) if kind == "url" else None
    target = srv.url if srv else str(data_dir)
    proc = subprocess.run(
        [sys.executable, "-c", HANDLER_SCRIPT, kind, target, TOKEN, str(certs["ca"]), str(queue_size)],
        env=cli_env(tmp_path / "unused"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    if srv:
        srv.stop()
    assert proc.returncode == 0, proc.stderr
    counts = eval(proc.stdout.strip().splitlines()[-1])  # the handler's own dict of counts
    assert counts["emitted"] == 4000 and counts["sent"] == 4000
    assert (counts["spilled"] > 0) == (queue_size < 4000)
    assert sorted(_lake_ids(data_dir)) == list(range(4000))
