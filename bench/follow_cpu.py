"""CPU of `loglake write --follow` on a log appended one line per write(), as nginx writes it.

    python bench/follow_cpu.py [--rates 100,1000,10000] [--seconds 30]

For each rate a fresh writer follows a fresh file; after 3 s of warm-up its CPU time (utime +
stime from /proc) is taken over --seconds. The line is a real one from ../shared/data/real.
A log shipper beside a web server should stay near 2% of a core at 1,000 lines/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from common import ROOT, base_env, fresh_dir, loglake_cmd, print_table


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(rate: float, seconds: float, line: bytes) -> list[str]:
    d = fresh_dir(f"follow-{int(rate)}")
    log = d / "access.log"
    log.touch()
    proc = subprocess.Popen(
        [*loglake_cmd(), "write", "--follow", str(log)],
        env=base_env(LOGLAKE_DATA_DIR=str(d / "data")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    start, n, c0, w0 = time.monotonic(), 0, 0.0, 0.0
    while time.monotonic() - start < seconds + 3:
        if not c0 and time.monotonic() - start >= 3:
            c0, w0 = _cpu(proc.pid), time.monotonic()
        os.write(fd, line)
        n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    c1, w1 = _cpu(proc.pid), time.monotonic()
    os.close(fd)
    proc.terminate()
    proc.wait(timeout=60)
    return [f"{rate:,.0f}", f"{100 * (c1 - c0) / (w1 - w0):.2f}%", f"{(c1 - c0) * 60 / (w1 - w0):.2f}", f"{n:,}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="100,1000,10000")
    ap.add_argument("--seconds", type=float, default=30.0)
    a = ap.parse_args()
    sample = ROOT.parent / "shared" / "data" / "real" / "elastic_examples_apache_logs.log"
    line = sample.read_bytes().splitlines()[0] + b"\n"
    rows = [measure(float(r), a.seconds, line) for r in a.rates.split(",")]
    print(f"\nwrite --follow, one write() a line, {a.seconds:.0f} s each")
    print_table(["lines/s", "of one core", "CPU s per minute", "lines written"], rows)


if __name__ == "__main__":
    main()
