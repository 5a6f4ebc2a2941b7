"""HTTP ingest: lines/s through `loglake serve` with batched POSTs on loopback, and emit() cost.

    python bench/ingest.py [--lines-per-post 1000] [--posts 60] [--clients 1,8,64]

Each client is a thread with a keep-alive connection posting --posts requests of real lines
(../shared/data/real, the elastic sample) with an Idempotency-Key each; every 202 means fsync'd.
Then LoglakeHandler.emit() is timed from 8 threads logging to the same server (the calls an
application's request path pays for). Plain HTTP on 127.0.0.1 (TLS costs are the TLS library's).
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from common import ROOT, base_env, fresh_dir, loglake_cmd, print_table

TOKEN = "bench-token-0123456789abcdef"


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 2 else values[0]


def start_server(port: int) -> subprocess.Popen[bytes]:
    d = fresh_dir("ingest")
    proc = subprocess.Popen(
        [*loglake_cmd(), "serve", "--port", str(port)],
        env=base_env(LOGLAKE_DATA_DIR=str(d), LOGLAKE_SERVE_TOKENS=TOKEN),
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("serve did not start")


def post_load(port: int, clients: int, posts: int, body: bytes, lines: int) -> list[str]:
    latencies: list[float] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for p in range(posts):
            t = time.perf_counter()
            conn.request(
                "POST",
                "/v1/logs",
                body=body,
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "text/plain",
                    "Idempotency-Key": f"{clients}-{c}-{p}",
                },
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status != 202:
                raise RuntimeError(f"POST answered {resp.status}")
            with lock:
                latencies.append(time.perf_counter() - t)
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    total = clients * posts * lines
    return [
        f"{clients} client(s)",
        f"{total / wall:,.0f}",
        f"{_pct(latencies, 50) * 1000:.1f}",
        f"{_pct(latencies, 99) * 1000:.1f}",
        f"{clients * posts / wall:,.0f}",
    ]


def emit_cost(port: int, threads: int = 8, per_thread: int = 5000) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from loglake.ingest.handler import LoglakeHandler

    handler = LoglakeHandler(url=f"http://127.0.0.1:{port}/v1/logs", token=TOKEN)
    log = logging.getLogger("bench")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    times: list[float] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        mine = []
        for i in range(per_thread):
            s = time.perf_counter_ns()
            log.info("hit", extra={"path": f"/p/{t}/{i}", "status": 200, "username": f"u{t}"})
            mine.append((time.perf_counter_ns() - s) / 1000)
        with lock:
            times.extend(mine)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    handler.close()
    return [
        f"{threads} threads x {per_thread}",
        f"{_pct(times, 50):.1f}",
        f"{_pct(times, 99):.1f}",
        str(handler.counts),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines-per-post", type=int, default=1000)
    ap.add_argument("--posts", type=int, default=60)
    ap.add_argument("--clients", default="1,8,64")
    a = ap.parse_args()
    sample = (ROOT.parent / "shared" / "data" / "real" / "elastic_examples_apache_logs.log").read_bytes().splitlines()
    body = b"\n".join(sample[: a.lines_per_post]) + b"\n"
    port = 18000 + os.getpid() % 1000
    server = start_server(port)
    try:
        rows = [post_load(port, int(c), a.posts, body, a.lines_per_post) for c in a.clients.split(",")]
        emit = emit_cost(port)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"\nPOST {a.lines_per_post} real lines per request, {a.posts} requests per client, loopback, plain HTTP")
    print_table(["clients", "lines/s", "p50 ms", "p99 ms", "requests/s"], rows)
    print("\nLoglakeHandler.emit() to the same server")
    print_table(["load", "p50 us", "p99 us", "handler counts"], [emit])


if __name__ == "__main__":
    main()
