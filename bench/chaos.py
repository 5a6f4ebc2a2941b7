"""Chaos run for the lossless path: every line in the lake exactly once, whatever happens.

A generator appends combined-format lines with unique ids (one `write()` a line, like nginx; some
lines in two writes, so half lines exist), a rotator rotates the log by rename (the generator keeps
writing to the old file for a moment, as a server before its reopen), copytruncate and
rename + gzip, while `loglake write --follow` and `loglake rollover --watch` are killed with
SIGKILL at random moments and restarted after random downtimes (rotations happen while they are
down too). At the end the lake is compared with every id generated.

    python bench/chaos.py --trials 200        # >= 200 kills (writer and rollover each)
    python bench/chaos.py --trials 6 --rate 300   # the short run CI does (tests/test_chaos.py)

Exits 1 if any line is lost or duplicated.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = '10.{a}.{b}.{c} - u{u} [{ts} +0000] "GET /c/{i} HTTP/1.1" 200 {n} "-" "chaos/1.0"\n'


class Generator(threading.Thread):
    """Appends unique lines to `path` at `rate`/s; `reopen()` switches to the file now at `path`."""

    def __init__(self, path: Path, rate: float, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.path, self.rate, self.rng = path, rate, rng
        self.count = 0
        self.lock = threading.Lock()  # held by the rotator for a copytruncate: no line is in no file
        self.stop = threading.Event()
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def reopen(self) -> None:
        with self.lock:
            old, self.fd = self.fd, os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.close(old)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            i = self.count
            ts = time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime())
            line = LINE.format(a=i % 250, b=(i // 250) % 250, c=i % 7, u=i % 53, ts=ts, i=i, n=i % 5000).encode()
            with self.lock:
                if self.rng.random() < 0.05:  # a half line for a moment
                    os.write(self.fd, line[:25])
                    time.sleep(0.002)
                    os.write(self.fd, line[25:])
                else:
                    os.write(self.fd, line)
                self.count += 1
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        os.close(self.fd)


class Rotator(threading.Thread):
    def __init__(self, gen: Generator, every: float, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.gen, self.every, self.rng = gen, every, rng
        self.seq = 0
        self.styles: collections.Counter[str] = collections.Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(0.5, 1.5) * self.every):
            self.rotate(self.rng.choice(["rename", "copytruncate", "compress"]))

    def rotate(self, style: str) -> None:
        log = self.gen.path
        self.seq += 1
        rotated = log.with_name(f"{log.name}.{self.seq:04d}")
        self.styles[style] += 1
        if style == "copytruncate":
            with self.gen.lock:
                shutil.copyfile(log, rotated)
                os.truncate(log, 0)
            return
        os.rename(log, rotated)
        log.touch()
        time.sleep(self.rng.uniform(0, 0.8))  # the server writes on to the renamed file until it reopens
        self.gen.reopen()
        if style == "compress":  # logrotate `compress` without `delaycompress`: right after the reopen
            tmp = rotated.with_name(rotated.name + ".gz.tmp")
            with open(rotated, "rb") as src, gzip.open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.rename(tmp, rotated.with_name(rotated.name + ".gz"))
            rotated.unlink()


class Victim:
    """A loglake process that is SIGKILLed at random moments and started again after a pause."""

    def __init__(
        self, args: list[str], env: dict[str, str], rng: random.Random, up: tuple[float, float], log: Path
    ) -> None:
        self.args, self.env, self.rng, self.up, self.log = args, env, rng, up, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.next_kill = 0.0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "loglake", *self.args], env=self.env, stdout=out, stderr=out, cwd=ROOT
            )
        self.next_kill = time.monotonic() + self.rng.uniform(*self.up)

    def tick(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"loglake {self.args[0]} exited by itself ({self.proc.returncode}):\n{tail}")
        if self.proc is not None and time.monotonic() >= self.next_kill:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1
            self.proc = None
            self.next_kill = time.monotonic() + self.rng.uniform(0.0, 1.5)  # down for a while
        elif self.proc is None and time.monotonic() >= self.next_kill:
            self.start()

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def _loglake(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loglake", *args], env=env, capture_output=True, text=True, cwd=ROOT)


def run(trials: int, rate: float, seed: int, workdir: Path) -> dict[str, int | float | str]:
    logs, data = workdir / "logs", workdir / "data"
    logs.mkdir(parents=True)
    log = logs / "access.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    env.update(
        LOGLAKE_DATA_DIR=str(data),
        LOGLAKE_HOST_ID="chaos",
        LOGLAKE_WRITER_SEGMENT_MAX_AGE="1",
        LOGLAKE_WRITER_POLL_INTERVAL="0.1",
        LOGLAKE_WRITER_ROTATE_WAIT="1",
        LOGLAKE_ROLLOVER_WATCH_INTERVAL="0.5",
        PYTHONPATH=str(ROOT),
    )
    gen = Generator(log, rate, random.Random(seed + 1))
    rot = Rotator(gen, every=2.0, rng=random.Random(seed + 2))
    writer = Victim(["write", "--follow", str(log)], env, random.Random(seed + 3), (0.8, 4.0), workdir / "writer.out")
    roll = Victim(["rollover", "--watch"], env, random.Random(seed + 4), (0.8, 4.0), workdir / "rollover.out")
    started = time.monotonic()
    gen.start()
    rot.start()
    writer.start()
    roll.start()
    shown = 0.0
    while writer.kills < trials or roll.kills < trials:
        writer.tick()
        roll.tick()
        time.sleep(0.05)
        if sys.stderr.isatty() and time.monotonic() - shown >= 1.0:
            shown = time.monotonic()
            sys.stderr.write(f"\rkills: writer {writer.kills}, rollover {roll.kills} / {trials}, lines {gen.count:,}")
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    rot.stop.set()
    rot.join()
    gen.stop.set()
    gen.join()
    for v in (writer, roll):
        if v.proc is None:
            v.start()
    time.sleep(3.0)  # idle past rotate_wait: every rotated file is finished
    behind = _wait_until_read(env)
    assert writer.stop() == 0 and roll.stop() == 0
    final = _loglake(["rollover"], env)
    if final.returncode != 0:
        raise RuntimeError(final.stderr)
    q = _loglake(["query", "select path from access_log", "--format", "json"], env)
    if q.returncode != 0:
        raise RuntimeError(q.stderr)
    seen = collections.Counter(int(r["path"].rsplit("/", 1)[1]) for r in json.loads(q.stdout))
    lost = sum(1 for i in range(gen.count) if i not in seen)
    dup = sum(n - 1 for n in seen.values() if n > 1)
    return {
        "lines in": gen.count,
        "rows in lake": sum(seen.values()),
        "lost": lost,
        "duplicated": dup,
        "writer kills": writer.kills,
        "rollover kills": roll.kills,
        "rotations": ", ".join(f"{k} {v}" for k, v in sorted(rot.styles.items())),
        "seconds": round(time.monotonic() - started, 1),
        "unread at the end": behind or "none",
    }


def _wait_until_read(env: dict[str, str], timeout: float = 300) -> str:
    """'' once every byte on disk is sealed; else what `status` still lists as unread."""
    deadline = time.monotonic() + timeout
    behind = "status failed"
    while time.monotonic() < deadline:
        st = _loglake(["status", "--format", "json"], env)
        if st.returncode == 0:
            data = json.loads(st.stdout)
            if data["unread_bytes"] == 0:
                return ""
            behind = "; ".join(
                f"{Path(f['file']).name}: {f['unread_bytes']} of {f['size']}"
                for s in data["sources"]
                for f in s["files"]
                if f["unread_bytes"]
            )
        time.sleep(1.0)
    return behind


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=40, help="kills of the writer and of the rollover, each")
    ap.add_argument("--rate", type=float, default=500.0, help="lines per second")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loglake-chaos-"))
    try:
        res = run(a.trials, a.rate, a.seed, work)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    width = max(len(k) for k in res)
    print("| " + "measure".ljust(width) + " | value |\n|" + "-" * (width + 2) + "|-------|")
    for k, v in res.items():
        print(f"| {k.ljust(width)} | {v:,} |" if isinstance(v, int) else f"| {k.ljust(width)} | {v} |")
    ok = res["lost"] == 0 and res["duplicated"] == 0 and res["unread at the end"] == "none"
    print("chaos: " + ("every line exactly once" if ok else "LINES LOST OR DUPLICATED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
