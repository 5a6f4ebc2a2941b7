"""CI's short run of bench/chaos.py: kill -9 of writer and rollover amid rename, copytruncate and
compress rotations; the script exits 1 if any line is lost or duplicated."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_chaos_short_run_loses_and_doubles_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "chaos.py"), "--trials", "6", "--rate", "300", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| lost           | 0 |" in proc.stdout and "| duplicated     | 0 |" in proc.stdout
    assert "every line exactly once" in proc.stdout
