"""A real nginx (Debian package) on 127.0.0.1 with its own prefix, a load client whose every request
carries a unique id, and real logrotate runs: the pieces of the rotation tests and bench/chaos.py."""

from __future__ import annotations

import gzip
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

NGINX_CONF = """
daemon off;
master_process on;
worker_processes 2;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {log} combined;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

_USR1 = "postrotate\n        kill -USR1 $(cat {pid})\n    endscript"

#: logrotate stanzas under test, as production writes them.
STYLES = {
    "create": "create 0644 root root\n    sharedscripts\n    " + _USR1,
    "delaycompress": "compress\n    delaycompress\n    create\n    " + _USR1,
    "compress": "compress\n    create\n    " + _USR1,
    "copytruncate": "copytruncate",
    "dateext": "dateext\n    dateformat -%Y%m%d-%s\n    create\n    " + _USR1,
}


def need(binary: str) -> str:
    """The path of a Debian-packaged tool; these tests fail (never skip) without it: .ci/run installs it."""
    found = shutil.which(binary) or next((p for p in (f"/usr/sbin/{binary}",) if os.path.exists(p)), None)
    if not found:
        pytest.fail(f"{binary} is not installed (apt-get install {binary}; .ci/run does this)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    def __init__(self, root: Path) -> None:
        self.prefix = root / "nginx"
        (self.prefix / "tmp").mkdir(parents=True)
        self.logs = root / "logs"
        self.logs.mkdir()
        self.log = self.logs / "access.log"
        self.port = free_port()
        conf = self.prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=self.prefix, log=self.log, port=self.port), encoding="utf-8")
        self.proc = subprocess.Popen(
            [need("nginx"), "-p", str(self.prefix), "-c", str(conf)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    why = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"nginx exited: {why}") from None
                time.sleep(0.05)
        raise RuntimeError("nginx did not start listening within 20 s")

    @property
    def pid_file(self) -> Path:
        return self.prefix / "nginx.pid"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish and flush
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


class Load:
    """`clients` threads, each on a keep-alive connection, sending GET /r/<unique id> at `rate`/s in
    total, for a bounded time; `ok` holds the ids nginx answered 200."""

    def __init__(self, port: int, rate: float, clients: int = 4) -> None:
        self.port, self.rate, self.clients = port, rate, clients
        self.ok: set[int] = set()
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def _take_id(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def _run(self) -> None:
        interval = self.clients / self.rate
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        next_at = time.monotonic()
        while not self._stop.is_set():
            rid = self._take_id()
            try:
                conn.request("GET", f"/r/{rid}")
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    with self._lock:
                        self.ok.add(rid)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)


def logrotate(nginx: Nginx, style: str, state: Path) -> None:
    conf = state.with_suffix(".conf")
    body = STYLES[style].format(pid=nginx.pid_file)
    conf.write_text(f"{nginx.log} {{\n    rotate 50\n    missingok\n    {body}\n}}\n", encoding="utf-8")
    os.chmod(conf, 0o644)
    proc = subprocess.run([need("logrotate"), "-f", "-s", str(state), str(conf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"logrotate failed: {proc.stderr}")


_ID = re.compile(rb'"GET /r/(\d+) ')


def ids_on_disk(logs: Path) -> list[int]:
    """Every request id in every log file nginx and logrotate left (decompressing .gz)."""
    found: list[int] = []
    for p in sorted(logs.iterdir()):
        data = p.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        found += [int(m) for m in _ID.findall(data)]
    return found
