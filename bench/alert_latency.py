"""Alert latency: from the first 503 appended to a followed log until `loglake alert --watch` fires.

    python bench/alert_latency.py [--trials 3] [--profiles default,realtime] [--rate 100]

Each trial: a fresh data dir, `write --follow` + `rollover --watch` under the profile, and
`alert --watch --config examples/alerts.toml` (site_down: 5xx share over 5% in 2 minutes) whose
`alerting.command` records when it ran. Healthy traffic (real lines, current time) runs for 20 s,
then every other line is a 503; the latency is the notification time minus the first 503's
append time. `default` (no profile) is the baseline in the same invocation. Goal: realtime p95
under 60 s (20 s).
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
_STATUS = re.compile(rb'(" )(\d{3})( )')


def _traffic(log: Path, rate: float, stop: threading.Event, burst: threading.Event, marks: dict) -> None:
    lines = REAL.read_bytes().splitlines(keepends=True)[:5000]
    i = 0
    with log.open("ab", buffering=0) as f:
        next_at = time.monotonic()
        while not stop.is_set():
            line = _STAMP.sub(datetime.now(UTC).strftime("[%d/%b/%Y:%H:%M:%S +0000]").encode(), lines[i % 5000], 1)
            line = _STATUS.sub(rb"\g<1>200\g<3>", line, 1)
            if burst.is_set() and i % 2 == 0:
                line = _STATUS.sub(rb"\g<1>503\g<3>", line, 1)
                marks.setdefault("first_503", time.time())
            f.write(line)
            i += 1
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))


def trial(profile: str, rate: float, n: int) -> float | None:
    d = fresh_dir(f"alert-{profile}-{n}")
    log, fired = d / "access.log", d / "fired.jsonl"
    log.touch()
    config = d / "alerts.toml"
    example = (ROOT / "examples" / "alerts.toml").read_text()
    config.write_text(
        example.replace(
            "[alerting]\ninterval = 15",
            f"[alerting]\ninterval = 2\ncommand = \"sh -c 'cat >> {fired}; echo >> {fired}'\"",
        )
    )
    env = base_env(LOGLAKE_DATA_DIR=str(d / "data"), **({"LOGLAKE_PROFILE": profile} if profile != "default" else {}))
    procs = [
        subprocess.Popen([*loglake_cmd(), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for args in (
            ["write", "--follow", str(log)],
            ["rollover", "--watch"],
            ["alert", "--watch", "--rule", "site_down", "--config", str(config)],
        )
    ]
    stop, burst, marks = threading.Event(), threading.Event(), {}
    t = threading.Thread(target=_traffic, args=(log, rate, stop, burst, marks))
    t.start()
    try:
        time.sleep(20)
        burst.set()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if fired.exists() and fired.read_text().strip():
                event = json.loads(fired.read_text().splitlines()[0])
                if event["state"] == "firing":
                    return datetime.fromisoformat(event["at"]).timestamp() - marks["first_503"]
            time.sleep(0.2)
        return None
    finally:
        stop_all(stop, t, procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--profiles", default="default,realtime")
    ap.add_argument("--rate", type=float, default=100.0)
    args = ap.parse_args()
    rows, medians = [], {}
    for profile in args.profiles.split(","):
        got = [trial(profile, args.rate, i) for i in range(args.trials)]
        ok = sorted(x for x in got if x is not None)
        missed = len(got) - len(ok)
        medians[profile] = statistics.median(ok) if ok else float("nan")
        p95 = ok[min(len(ok) - 1, int(0.95 * len(ok)))] if ok else float("nan")
        rows.append(
            [profile, str(len(got)), str(missed), f"{medians[profile]:.1f}", f"{p95:.1f}", f"{max(ok, default=0):.1f}"]
        )
    base = medians.get("default")
    for r in rows:
        r.append(f"{base / medians[r[0]]:.1f}x" if base and medians[r[0]] == medians[r[0]] else "-")
    print(f"alert latency: first 503 appended -> site_down notification, {args.rate:.0f} lines/s")
    print_table(["profile", "trials", "missed (>180 s)", "p50 s", "p95 s", "max s", "p50 vs default"], rows)


if __name__ == "__main__":
    main()
