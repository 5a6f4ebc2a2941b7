"""Writer throughput: `loglake write FILE` beside a mawk one-liner on the same file, same run.

    python bench/writer.py [--lines 2000000] [--runs 5]

Both extract the same fields (time, user, client, request, status, bytes, referer, user agent)
from the same generated combined log. mawk splits naively (no CSV quoting, no validation, no
escapes): it is the simplest thing a user could do instead, and the bar. Figures are medians of
--runs runs; "1 core" runs are pinned with taskset.
"""

from __future__ import annotations

import argparse
import sys

from common import base_env, cached_log, fresh_dir, loglake_cmd, median, one_core, print_table, run_timed

MAWK = (
    """mawk -F'"' '{split($1,a," "); split($3,b," "); """
    """print a[4]" "a[5]","a[3]","a[1]","$2","b[1]","b[2]","$4","$6}' {src} > {dst}"""
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    log = cached_log(args.lines)
    size = log.stat().st_size
    pin = one_core()
    variants = {
        "mawk one-liner (1 core)": lambda d: run_timed(
            " ".join(pin) + " " + MAWK.replace("{src}", str(log)).replace("{dst}", str(d / "out.csv")), shell=True
        ),
        "loglake write (1 core)": lambda d: run_timed(
            [*pin, *loglake_cmd(), "write", str(log)], env=base_env(LOGLAKE_DATA_DIR=str(d))
        ),
        "loglake write, fsync=off (1 core)": lambda d: run_timed(
            [*pin, *loglake_cmd(), "write", str(log)],
            env=base_env(LOGLAKE_DATA_DIR=str(d), LOGLAKE_WRITER_FSYNC="off"),
        ),
        "loglake write (2 cores)": lambda d: run_timed(
            [*loglake_cmd(), "write", str(log)], env=base_env(LOGLAKE_DATA_DIR=str(d))
        ),
    }
    walls: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(args.runs):
        for name, fn in variants.items():  # interleaved, so machine noise hits every variant alike
            t = fn(fresh_dir(f"writer-{i}"))
            walls[name].append(t.wall)
            cpus[name].append(t.cpu)
            print(f"run {i + 1}/{args.runs} {name}: {t.wall:.2f}s wall, {t.cpu:.2f}s cpu", file=sys.stderr)
    base = median(walls["mawk one-liner (1 core)"])
    rows = []
    for name in variants:
        w, c = median(walls[name]), median(cpus[name])
        rows.append(
            [
                name,
                f"{args.lines / w:,.0f}",
                f"{size / w / 1e6:,.1f}",
                f"{c / (args.lines / 1e6):.2f}",
                f"{w:.2f}",
                f"{base / w:.2f}x",
            ]
        )
    print(f"\n{args.lines:,} lines, {size / 1e6:,.0f} MB ({size / args.lines:.0f} B/line), median of {args.runs} runs")
    print_table(["variant", "lines/s", "MB/s", "CPU s per M lines", "wall s", "vs mawk"], rows)


if __name__ == "__main__":
    main()
