"""CPU of `loglake write --follow` on a log appended one line per write(), as nginx writes it.

    python bench/follow_cpu.py [--rates 100,1000,10000] [--seconds 30] [--profile realtime]

For each rate a fresh writer follows a fresh file; after 3 s of warm-up its CPU time (utime +
stime from /proc) is taken over --seconds. The line is a real one from ../shared/data/real.
A log shipper beside a web server should stay near 2% of a core at 1,000 lines/s.

Freshness: every line's append time is kept; each sealed batch's manifest says which lines it
holds and when it was sealed, so "append -> sealed" is known per line (p50/p95/max over the
lines appended after warm-up). A batch seals when it is `writer.segment_max_age` old (60 s by
default, 5 s with --profile realtime) or full: accumulating lines into blocks adds only the
poll interval on top of that.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path

from common import ROOT, base_env, fresh_dir, loglake_cmd, print_table


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def freshness(data: Path, appended: list[float], first: int) -> list[float]:
    """Seconds from append to seal of every line numbered `first`.. (1-based), from the manifests."""
    out = []
    for m in (data / "spool" / "_batches").glob("*.json"):
        if m.name.endswith(".open.json"):
            continue
        batch = json.loads(m.read_text())
        sealed = datetime.fromisoformat(batch["sealed_at"]).timestamp()
        for n in range(max(batch["first_line"], first), min(batch["last_line"], len(appended)) + 1):
            out.append(sealed - appended[n - 1])
    return sorted(out)


def measure(rate: float, seconds: float, line: bytes, profile: str) -> list[str]:
    d = fresh_dir(f"follow-{int(rate)}")
    log = d / "access.log"
    log.touch()
    proc = subprocess.Popen(
        [*loglake_cmd(), "write", "--follow", str(log)],
        env=base_env(LOGLAKE_DATA_DIR=str(d / "data"), **({"LOGLAKE_PROFILE": profile} if profile else {})),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    start, n, c0, w0, first = time.monotonic(), 0, 0.0, 0.0, 0
    appended: list[float] = []
    while time.monotonic() - start < seconds + 3:
        if not c0 and time.monotonic() - start >= 3:
            c0, w0, first = _cpu(proc.pid), time.monotonic(), n + 1
        os.write(fd, line)
        appended.append(time.time())
        n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    c1, w1 = _cpu(proc.pid), time.monotonic()
    # Lines still open at the end are sealed by SIGTERM: wait one max age for the open batch to
    # seal by itself first, so the figures are the steady state's, not the shutdown's.
    time.sleep(_max_age(profile) + 1)
    os.close(fd)
    proc.terminate()
    proc.wait(timeout=60)
    fresh = freshness(d / "data", appended[: n - int(rate)], first)  # the last second's: see above
    p50, p95 = (statistics.median(fresh), fresh[int(0.95 * (len(fresh) - 1))]) if fresh else (0.0, 0.0)
    return [
        f"{rate:,.0f}",
        f"{100 * (c1 - c0) / (w1 - w0):.2f}%",
        f"{(c1 - c0) * 60 / (w1 - w0):.2f}",
        f"{n:,}",
        f"{p50:.2f}",
        f"{p95:.2f}",
        f"{fresh[-1] if fresh else 0.0:.2f}",
    ]


def _max_age(profile: str) -> float:
    return 5.0 if profile == "realtime" else 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="100,1000,10000")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--profile", default="", help="loglake profile (realtime: 5 s segments)")
    a = ap.parse_args()
    sample = ROOT.parent / "shared" / "data" / "real" / "elastic_examples_apache_logs.log"
    line = sample.read_bytes().splitlines()[0] + b"\n"
    rows = [measure(float(r), a.seconds, line, a.profile) for r in a.rates.split(",")]
    print(f"\nwrite --follow, one write() a line, {a.seconds:.0f} s each, profile {a.profile or 'default'}")
    headers = ["lines/s", "of one core", "CPU s per minute", "lines written"]
    print_table([*headers, "append->sealed p50 s", "p95 s", "max s"], rows)


if __name__ == "__main__":
    main()
