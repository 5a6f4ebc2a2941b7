"""Shared bench helpers: cached inputs, timing child processes, medians, a table printer."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
sys.path.insert(0, str(ROOT))


def cached_log(lines: int, seed: int = 7, rate: float = 500.0) -> Path:
    """A generated combined log of `lines` lines, made once and kept in bench/.cache/."""
    from loglake.generate import write_log

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"access-{lines}-{seed}-{int(rate)}.log"
    if not path.exists():
        print(f"generating {lines:,} lines -> {path} ...", file=sys.stderr, flush=True)
        tmp = path.with_suffix(".tmp")
        write_log(tmp, lines, seed=seed, rate=rate)
        tmp.rename(path)
    return path


@dataclass
class Timing:
    wall: float
    cpu: float  # user + system of the child processes
    rss_mb: float = 0.0  # peak resident set of the process (and the children it waited for)


def run_timed(cmd: list[str] | str, env: dict[str, str] | None = None, shell: bool = False) -> Timing:
    """Run a command to completion; wall time, the CPU seconds it (and its children) used, and its
    peak RSS (wait4 gives this child's own rusage, not the sum over every child so far)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return Timing(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def median(values: list[float]) -> float:
    return statistics.median(values)


def one_core() -> list[str]:
    """`taskset -c 0` when available, so 'one core' means one core, not 'one process'."""
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def fresh_dir(name: str) -> Path:
    d = CACHE / "run" / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def loglake_cmd() -> list[str]:
    return [sys.executable, "-m", "loglake"]


def base_env(**extra: str) -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE (set on these machines) would make every run compile loglake's
    # modules from source (~0.1 s); an installed loglake has its bytecode cached.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def stop_all(stop: Any, thread: Any, procs: list[subprocess.Popen]) -> None:
    """Stop a traffic thread, then the loglake processes beside it (SIGTERM: they seal and exit)."""
    stop.set()
    thread.join()
    for p in procs:
        p.terminate()
        p.wait(timeout=60)
