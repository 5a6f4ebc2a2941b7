"""Raw log to queryable, end to end: loglake beside the naive PostgreSQL path, same file, same run.

    python bench/e2e.py [--lines 1000000] [--runs 3]

- loglake: `loglake write FILE` then `loglake rollover` into a fresh data dir (validation, dead
  letters, CSV segment, Parquet, catalog), then `loglake query "select count(*) ..."`;
- PostgreSQL: `mawk (bench/writer.py's one-liner, tab-separated) FILE | psql -c "COPY t FROM STDIN (FORMAT csv)"`
  into a fresh table of a throwaway cluster (started once, outside the timing; fsync off), then
  `select count(*)`: no validation, every field text.
Both are timed from the raw file to a table that answers `count(*)` with every line; the input is
the real elastic sample repeated (../shared/data/real). Medians of --runs, interleaved.
"""

from __future__ import annotations

import argparse
import subprocess
import time

from common import base_env, fresh_dir, loglake_cmd, median, print_table
from pg import Postgres, _bin
from writer import real_log

#: bench/writer.py's one-liner, tab-separated: user agents hold commas.
MAWK_TSV = (
    """mawk -F'"' '{split($1,a," "); split($3,b," "); """
    """print a[4]" "a[5]"\t"a[3]"\t"a[1]"\t"$2"\t"b[1]"\t"b[2]"\t"$4"\t"$6}' {src}"""
)

_TABLE = (
    "CREATE TABLE access_log (ts text, client_ip text, username text, request text, status text, bytes text, "
    "referer text, user_agent text)"
)


def run_loglake(log: str, run: int, lines: int) -> float:
    d = fresh_dir(f"e2e-loglake-{run}")
    env = base_env(LOGLAKE_DATA_DIR=str(d / "data"))
    start = time.perf_counter()
    for args in (["write", log], ["rollover"]):
        subprocess.run([*loglake_cmd(), *args], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [*loglake_cmd(), "query", "select count(*) as n from access_log", "--format", "csv"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    assert int(out.stdout.split()[1]) == lines, out.stdout
    return took


def run_postgres(pg: Postgres, log: str, run: int, lines: int) -> float:
    pg.psql(f"DROP TABLE IF EXISTS access_log; {_TABLE};")
    psql = f"{' '.join(pg.as_user)} {_bin('psql')} -h {pg.sock} -U postgres -q -v ON_ERROR_STOP=1"
    start = time.perf_counter()
    mawk = MAWK_TSV.replace("{src}", log)
    subprocess.run(
        f"{mawk} | {psql} -c \"COPY access_log FROM STDIN (FORMAT csv, DELIMITER E'\\t', QUOTE E'\\x01')\"",
        shell=True,
        check=True,
        capture_output=True,
    )
    out, _ = pg.psql("SELECT count(*) FROM access_log;")
    took = time.perf_counter() - start
    assert int(out.strip()) == lines, out
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    log = real_log(args.lines)
    lines = log.read_bytes().count(b"\n")
    pg = Postgres().start()
    try:
        ours, theirs = [], []
        for run in range(args.runs):
            ours.append(run_loglake(str(log), run, lines))
            theirs.append(run_postgres(pg, str(log), run, lines))
    finally:
        pg.stop()
    lo, pg_t = median(ours), median(theirs)
    print(f"raw log -> table answering count(*): {lines:,} real lines, median of {args.runs}")
    print_table(
        ["path", "seconds", "lines/s", "vs PostgreSQL"],
        [
            ["loglake write + rollover", f"{lo:.2f}", f"{lines / lo:,.0f}", f"{pg_t / lo:.2f}x"],
            ["mawk | psql COPY", f"{pg_t:.2f}", f"{lines / pg_t:,.0f}", "1.00x"],
        ],
    )


if __name__ == "__main__":
    main()
