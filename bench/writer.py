"""Writer throughput: `loglake write FILE` beside a mawk one-liner on the same file, same run.

    python bench/writer.py [--input real|generated|adversarial|all] [--lines 1500000] [--runs 3]

Inputs (each at least --lines lines):
- real: ../shared/data/real/elastic_examples_apache_logs.log repeated (the headline: real traffic,
  mostly distinct timestamps, long user agents);
- generated: `loglake generate` (few distinct timestamps, no escapes);
- adversarial: the real lines mutated: 10% escaped quotes in the agent, CRLF endings, IPv6 clients,
  host names, trailing fields, 5% probes (the crowdsec sample) and bad lines.
mawk splits naively (no CSV quoting, no validation, no escapes): the simplest thing a user could do
instead, and the bar. Inputs and variants run interleaved; figures are medians of --runs runs; "1
core" runs are pinned with taskset. "CPU per line vs real": a variant's CPU per line on this input
over the same variant's on the real sample (the issue's "no mix more than 2x slower per line").
"pii" adds hash(username) + truncate_ip(client_ip) + a country column.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from common import CACHE, ROOT, base_env, cached_log, fresh_dir, loglake_cmd, median, one_core, print_table, run_timed

MAWK = (
    """mawk -F'"' '{split($1,a," "); split($3,b," "); """
    """print a[4]" "a[5]","a[3]","a[1]","$2","b[1]","b[2]","$4","$6}' {src} > {dst}"""
)
REAL = ROOT.parent / "shared" / "data" / "real"
PII_TOML = """
[tables.access_log]
columns = ["ts", "username", "client_ip", "country", "method", "path", "protocol", "status", "bytes", "referer",
    "user_agent"]
[tables.access_log.transforms]
username = "hash"
client_ip = "truncate_ip"
"""


def real_log(lines: int) -> Path:
    sample = (REAL / "elastic_examples_apache_logs.log").read_bytes()
    reps = -(-lines // sample.count(b"\n"))
    path = CACHE / f"real-x{reps}.log"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:  # one copy at a time: see adversarial_log on peak RSS
            for _ in range(reps):
                out.write(sample)
        tmp.rename(path)
    return path


def adversarial_log(lines: int, seed: int = 5) -> Path:
    path = CACHE / f"adversarial-{lines}-{seed}.log"
    if path.exists():
        return path
    rng = random.Random(seed)
    base = (REAL / "elastic_examples_apache_logs.log").read_bytes().splitlines()
    probes = (REAL / "crowdsec_nginx_http_malformed.log").read_bytes().splitlines()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    out = open(tmp, "wb")  # noqa: SIM115 - streamed: a bench process that holds the file would
    # show its own memory in the children's peak RSS (wait4 counts the image before exec)
    for i in range(lines):
        line = base[i % len(base)]
        r = rng.random()
        if r < 0.10 and line.endswith(b'"'):
            line = line[:-1] + rb' \"quoted\" part"'  # an escaped quote in the agent
        elif r < 0.15:
            line = b"2001:db8:%x::%x" % (i % 65535, i % 251) + line[line.index(b" ") :]
        elif r < 0.20:
            line = b"host-%d.example.net" % (i % 997) + line[line.index(b" ") :]
        elif r < 0.25:
            line += b' "10.0.0.1, 10.0.0.2" 0.003'  # trailing $http_x_forwarded_for $request_time
        elif r < 0.28:
            line = probes[i % len(probes)]
        elif r < 0.30:
            line = b"garbage %d that is no log line" % i
        out.write(line + (b"\r\n" if rng.random() < 0.1 else b"\n"))
    out.close()
    tmp.rename(path)
    return path


def variants(log: Path, pii_cfg: Path) -> dict:
    pin = one_core()
    mawk = " ".join(pin) + " " + MAWK.replace("{src}", str(log))

    def write(d: Path, cores: list[str], **env: str):
        return run_timed([*cores, *loglake_cmd(), "write", str(log)], env=base_env(LOGLAKE_DATA_DIR=str(d), **env))

    return {
        "mawk one-liner (1 core)": lambda d: run_timed(mawk.replace("{dst}", str(d / "out.csv")), shell=True),
        "loglake write (1 core)": lambda d: write(d, pin),
        "loglake write, pii (1 core)": lambda d: write(d, pin, LOGLAKE_CONFIG=str(pii_cfg), LOGLAKE_PII_KEY="b" * 32),
        "loglake write (2 cores)": lambda d: write(d, []),
    }


class Measured:
    """One input's runs: its size, and wall, CPU and peak RSS per variant."""

    def __init__(self, name: str, log: Path, pii_cfg: Path) -> None:
        with open(log, "rb") as f:
            self.lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))
        self.name, self.size = name, log.stat().st_size
        self.variants = variants(log, pii_cfg)
        self.walls: dict[str, list[float]] = {k: [] for k in self.variants}
        self.cpus: dict[str, list[float]] = {k: [] for k in self.variants}
        self.rss: dict[str, list[float]] = {k: [] for k in self.variants}
        mb, per = self.size / 1e6, self.size / self.lines
        print(f"{name}: {self.lines:,} lines, {mb:,.0f} MB ({per:.0f} B/line)", file=sys.stderr)

    def run(self, i: int, runs: int) -> None:
        for v, fn in self.variants.items():  # interleaved, so machine noise hits every variant alike
            t = fn(fresh_dir(f"writer-{self.name}-{i}"))
            self.walls[v].append(t.wall)
            self.cpus[v].append(t.cpu)
            self.rss[v].append(t.rss_mb)
            print(f"{self.name} run {i + 1}/{runs} {v}: {t.wall:.2f}s wall, {t.cpu:.2f}s cpu", file=sys.stderr)

    def cpu_per_m(self, v: str) -> float:
        return median(self.cpus[v]) / (self.lines / 1e6)

    def rows(self, real: Measured | None) -> list[list[str]]:
        base = median(self.walls["mawk one-liner (1 core)"])
        out = []
        for v in self.variants:
            w = median(self.walls[v])
            per_line = "" if real is None or v.startswith("mawk") else f"{self.cpu_per_m(v) / real.cpu_per_m(v):.2f}x"
            out.append(
                [
                    self.name,
                    v,
                    f"{self.lines / w:,.0f}",
                    f"{self.size / w / 1e6:,.1f}",
                    f"{self.cpu_per_m(v):.2f}",
                    f"{median(self.rss[v]):,.0f}",
                    f"{base / w:.2f}x",
                    per_line,
                ]
            )
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", choices=["real", "generated", "adversarial", "all"], default="all")
    ap.add_argument("--lines", type=int, default=1_500_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    pii_cfg = CACHE / "pii.toml"
    CACHE.mkdir(parents=True, exist_ok=True)
    pii_cfg.write_text(PII_TOML, encoding="utf-8")
    makers = {"real": real_log, "generated": cached_log, "adversarial": adversarial_log}
    chosen = list(makers) if args.input == "all" else [args.input]
    inputs = [Measured(name, makers[name](args.lines), pii_cfg) for name in chosen]
    for i in range(args.runs):  # inputs interleaved too: the per-line ratios compare like with like
        for m in inputs:
            m.run(i, args.runs)
    real = next((m for m in inputs if m.name == "real"), None)
    rows = [row for m in inputs for row in m.rows(real)]
    print(f"\nmedian of {args.runs} runs, inputs and variants interleaved")
    print_table(
        ["input", "variant", "lines/s", "MB/s", "CPU s per M lines", "peak RSS MB", "vs mawk", "CPU per line vs real"],
        rows,
    )


if __name__ == "__main__":
    main()
