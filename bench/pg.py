"""A throwaway PostgreSQL cluster for the baseline: initdb in a temp dir, a unix socket, no TCP.

PostgreSQL comes from Debian's packages (`apt-get install postgresql`); when running as root the
cluster is owned by the `postgres` user, as PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _bin(name: str) -> str:
    for d in PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"PostgreSQL's {name} not found: apt-get install postgresql")
    return found


class Postgres:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="loglake-pg-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.sock.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.sock, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, *args], check=True, capture_output=True, text=True, **kw)

    def start(self) -> Postgres:
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run(
            _bin("pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.dir / "log"),
            "-o",
            f"-c listen_addresses='' -k {self.sock} -c shared_buffers=1GB -c work_mem=256MB "
            "-c max_parallel_workers_per_gather=2 -c fsync=off -c TimeZone=UTC",
            "start",
        )
        return self

    def psql(self, sql: str, timing: bool = False) -> tuple[str, float]:
        """Run SQL; with timing, the server-reported milliseconds of the last statement."""
        script = ("\\timing on\n" if timing else "") + sql
        start = time.perf_counter()
        proc = self._run(
            _bin("psql"),
            "-h",
            str(self.sock),
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-A",
            "-t",
            "-f",
            "-",
            input=script,
        )
        wall = (time.perf_counter() - start) * 1000
        times = [float(m) for m in re.findall(r"Time: ([0-9.]+) ms", proc.stdout)]
        return proc.stdout, times[-1] if times else wall

    def stop(self) -> None:
        subprocess.run([*self.as_user, _bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
