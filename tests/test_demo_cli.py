"""The README's first command, and the CLI's promises (help everywhere, errors as exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

COMMANDS = ["write", "rollover", "query", "report", "status", "demo", "check-config", "generate", "catalog"]


def test_demo_runs_the_whole_pipeline(data_dir: Path) -> None:
    proc = run_cli(["demo", "--lines", "20000"], data_dir)
    assert proc.returncode == 0, proc.stderr
    for report in ("top-pages", "logins-per-hour", "status-per-minute", "unique-users-per-day", "top-clients"):
        assert report in proc.stdout
    for stage in ("generate", "write", "rollover", "report top-pages"):
        assert stage in proc.stderr
    status = json.loads(run_cli(["status", "--format", "json"], data_dir).stdout)
    assert status["tables"]["access_log"]["rows"] == status["written"]["rows"]["access_log"] == 20000
    assert status["reconciles"] and status["freshness"]["access_log"]["age_seconds"] < 600


def test_every_command_has_help(data_dir: Path) -> None:
    top = run_cli(["--help"], data_dir)
    assert top.returncode == 0
    for cmd in COMMANDS:
        assert cmd in top.stdout
        sub = run_cli([cmd, "--help"], data_dir)
        assert sub.returncode == 0 and "Usage" in sub.stdout, cmd


def test_usage_errors_exit_2(data_dir: Path) -> None:
    proc = run_cli(["query", "select 1", "--format", "xml"], data_dir)
    assert proc.returncode == 2 and "--format" in proc.stderr
    assert run_cli(["no-such-command"], data_dir).returncode == 2


def test_generate_writes_lines(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "g.log"
    assert run_cli(["generate", str(out), "--lines", "1000"], data_dir).returncode == 0
    assert len(out.read_text().splitlines()) == 1000


def test_readme_config_examples_are_valid(tmp_path: Path, data_dir: Path) -> None:
    """The README's loglake.toml examples pass check-config, so the docs cannot drift from the code."""
    import re

    from tests.conftest import REPO

    blocks = re.findall(r"```toml\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    blocks += [p.read_text(encoding="utf-8") for p in sorted((REPO / "examples").glob("*.toml"))]
    for i, block in enumerate(blocks):
        path = tmp_path / f"readme{i}.toml"
        path.write_text(block, encoding="utf-8")
        # as the README says to run them: with the PII key in the environment
        proc = run_cli(["check-config", "--config", str(path)], data_dir, LOGLAKE_PII_KEY="x" * 32)
        assert proc.returncode == 0, (block, proc.stderr)
