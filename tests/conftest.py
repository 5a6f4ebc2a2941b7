"""Shared fixtures: a fresh data dir and config per test, the real log samples, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from loglake.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent
REAL_DIR = REPO.parent / "shared" / "data" / "real"
ELASTIC = REAL_DIR / "elastic_examples_apache_logs.log"
CROWDSEC = REAL_DIR / "crowdsec_nginx_http_malformed.log"


def real_file(path: Path) -> Path:
    """A real sample from ../shared/data/real, or a skip that says why (outside the CI layout)."""
    if not path.is_file():
        pytest.skip(f"real sample {path} not present (CI places ../shared beside the clone)")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_config(data_dir: Path, tmp_path: Path) -> Callable[..., Config]:
    """Build a Config from TOML text (optional) with LOGLAKE_DATA_DIR pointing at the test's dir."""

    def make(toml: str = "", **env: str) -> Config:
        environ = {"LOGLAKE_DATA_DIR": str(data_dir), "LOGLAKE_HOST_ID": "test", **env}
        path = None
        if toml:
            path = tmp_path / "loglake.toml"
            path.write_text(toml, encoding="utf-8")
        else:
            path = tmp_path / "absent.toml"
            path.write_text("", encoding="utf-8")
        return load_config(path, environ=environ)

    return make


@pytest.fixture
def cfg(make_config: Callable[..., Config]) -> Config:
    return make_config()


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    env.update(LOGLAKE_DATA_DIR=str(data_dir), LOGLAKE_HOST_ID="test", COLUMNS="200", **extra)
    return env


def run_cli(
    args: list[str], data_dir: Path, stdin: bytes | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m loglake ARGS` as a user would; returns the completed process (text)."""
    return subprocess.run(
        [sys.executable, "-m", "loglake", *args],
        input=stdin.decode("utf-8", "surrogateescape") if stdin is not None else None,
        capture_output=True,
        text=True,
        env=cli_env(data_dir, **env),
        cwd=cwd,
        timeout=600,
    )


def run_cli_bytes(args: list[str], data_dir: Path, stdin: bytes, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "loglake", *args],
        input=stdin,
        capture_output=True,
        env=cli_env(data_dir, **env),
        timeout=600,
    )
