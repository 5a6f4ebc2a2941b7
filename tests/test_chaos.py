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
    table = {
        cells[0]: cells[1]
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and len(cells := [c.strip() for c in line.strip("|").split("|")]) == 2
    }
    assert table["lost"] == "0" and table["duplicated"] == "0" and table["unread at the end"] == "none"
    assert int(table["lines in"].replace(",", "")) == int(table["rows in lake"].replace(",", "")) > 1000
    assert int(table["writer kills"]) >= 6 and int(table["rollover kills"]) >= 6
    assert "every line exactly once" in proc.stdout
