"""`LOGLAKE_FAULT` is for the crash tests only: outside them it never kills, and `status` says it is set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loglake.catalog import load_catalog
from loglake.config import Config
from loglake.faults import ARMED_ENV
from loglake.generate import write_log
from loglake.writer import Writer
from tests.conftest import cli_env


@pytest.mark.parametrize("armed", [None, "1", "yes"])
def test_the_fault_variable_alone_never_kills_rollover_or_compaction(
    cfg: Config, tmp_path: Path, armed: str | None
) -> None:
    for seed in (1, 2):  # two segments of the same hours: something for compaction to merge
        Writer(cfg).write_file(str(write_log(tmp_path / f"{seed}.log", 250, seed=seed)))
    for command, step in (("rollover", "written"), ("compact", "compact-merged")):
        env = cli_env(cfg.data_dir, LOGLAKE_FAULT=step)
        env.pop(ARMED_ENV)  # as in production: the variable copied from somewhere, not armed
        if armed is not None:
            env[ARMED_ENV] = armed  # a guessable value arms nothing either
        done = subprocess.run([sys.executable, "-m", "loglake", command], capture_output=True, text=True, env=env)
        assert done.returncode == 0, (command, done.returncode, done.stderr)
    assert "compact: 0 partition" not in done.stderr and "compact: " in done.stderr, done.stderr  # step passed
    assert load_catalog(cfg).query("SELECT count(*) FROM access_log").rows[0][0] == 500

    status = subprocess.run(
        [sys.executable, "-m", "loglake", "status", "--format", "json"], capture_output=True, text=True, env=env
    )
    assert status.returncode == 0, status.stderr
    (warning,) = json.loads(status.stdout)["warnings"]
    assert "LOGLAKE_FAULT='compact-merged'" in warning and "not armed" in warning
    text = subprocess.run([sys.executable, "-m", "loglake", "status"], capture_output=True, text=True, env=env)
    assert "warning: LOGLAKE_FAULT='compact-merged' is set" in " ".join(text.stdout.split())


def test_status_has_no_warning_without_the_variable(cfg: Config) -> None:
    env = cli_env(cfg.data_dir)
    status = subprocess.run(
        [sys.executable, "-m", "loglake", "status", "--format", "json"], capture_output=True, text=True, env=env
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["warnings"] == []
