"""Freshness: how old the newest row visible to SQL is, measured from outside, per profile.

    python bench/freshness.py [--profiles default,realtime] [--seconds 120] [--rate 200]

For each profile, `loglake write --follow` and `loglake rollover --watch` run as separate
processes on a log appended at --rate lines/s with the current time (real lines from
../shared/data/real, re-stamped); every second `loglake query "SELECT max(ts) ..."` is run and
freshness = now - max(ts) is recorded (after 10 s of warm-up). `default` (no profile) is the
baseline in the same invocation. Add `batch` with --seconds 1800 or more (10-minute segments).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from common import ROOT, base_env, fresh_dir, loglake_cmd, print_table, stop_all

REAL = ROOT.parent / "shared" / "data" / "real" / "elastic_examples_apache_logs.log"
_STAMP = re.compile(rb"\[[^\]]+\]")


def _lines() -> list[bytes]:
    return REAL.read_bytes().splitlines(keepends=True)[:5000]


def _append(log: Path, rate: float, stop: threading.Event, lines: list[bytes]) -> None:
    i = 0
    with log.open("ab", buffering=0) as f:
        next_at = time.monotonic()
        while not stop.is_set():
            stamp = datetime.now(UTC).strftime("[%d/%b/%Y:%H:%M:%S +0000]").encode()
            f.write(_STAMP.sub(stamp, lines[i % len(lines)], count=1))
            i += 1
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))


def measure(profile: str, seconds: float, rate: float) -> dict[str, float]:
    d = fresh_dir(f"freshness-{profile}")
    log = d / "access.log"
    log.touch()
    env = base_env(LOGLAKE_DATA_DIR=str(d / "data"), **({"LOGLAKE_PROFILE": profile} if profile != "default" else {}))
    procs = [
        subprocess.Popen([*loglake_cmd(), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for args in (["write", "--follow", str(log)], ["rollover", "--watch"])
    ]
    stop = threading.Event()
    appender = threading.Thread(target=_append, args=(log, rate, stop, _lines()))
    appender.start()
    ages: list[float] = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds + 10:
            tick = time.monotonic()
            out = subprocess.run(
                [*loglake_cmd(), "query", "SELECT max(ts) AS newest FROM access_log", "--format", "json"],
                env=env,
                capture_output=True,
                text=True,
            )
            if time.monotonic() - start >= 10:
                newest = json.loads(out.stdout)[0]["newest"] if out.returncode == 0 else None
                if newest is None:
                    ages.append(time.monotonic() - start)  # nothing visible yet: as old as the run
                else:
                    when = datetime.fromisoformat(newest).replace(tzinfo=UTC)
                    ages.append((datetime.now(UTC) - when).total_seconds())
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    finally:
        stop_all(stop, appender, procs)
    ages.sort()
    return {
        "samples": len(ages),
        "p50": statistics.median(ages),
        "p95": ages[min(len(ages) - 1, int(0.95 * len(ages)))],
        "max": ages[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profiles", default="default,realtime")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--rate", type=float, default=200.0)
    args = ap.parse_args()
    results = {p: measure(p, args.seconds, args.rate) for p in args.profiles.split(",")}
    base = results.get("default")
    rows = []
    for p, r in results.items():
        ratio = f"{base['p95'] / r['p95']:.1f}x" if base and r["p95"] else "-"
        rows.append([p, str(r["samples"]), f"{r['p50']:.1f}", f"{r['p95']:.1f}", f"{r['max']:.1f}", ratio])
    print(f"freshness (now - newest row visible to SQL), {args.rate:.0f} lines/s, {args.seconds:.0f} s per profile")
    print_table(["profile", "samples", "p50 s", "p95 s", "max s", "p95 vs default"], rows)


if __name__ == "__main__":
    main()
