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
    """The test process's environment without stray LOGLAKE_* settings (secret variables stay: that
    is where loglake reads them from), plus this test's settings."""
    secrets = ("LOGLAKE_TRINO_PASSWORD", "LOGLAKE_TRINO_JWT")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_") or k in secrets}
    env.update({"LOGLAKE_DATA_DIR": str(data_dir), "LOGLAKE_HOST_ID": "test", "COLUMNS": "200"})
    env.update(extra)
    if "LOGLAKE_FAULT" in extra:  # a crash test: arm the fault (loglake/faults.py)
        from loglake.faults import ARMED_ENV, ARMED_VALUE

        env[ARMED_ENV] = ARMED_VALUE
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


# ---- integration servers (started on first use, once per session) ---------------------------
@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real S3 server (SeaweedFS) with generated credentials, exported as AWS_* for loglake."""
    from tests.integration.servers import SeaweedFS

    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture(scope="session")
def trino_server(seaweedfs, tmp_path_factory):
    """A real Trino 476 (HTTPS, password + JWT auth) whose Hive catalog reads the SeaweedFS bucket."""
    from tests.integration.servers import Trino

    server = Trino(tmp_path_factory.mktemp("trino"), seaweedfs).start()
    print(f"\nTrino {server.port} started in {server.started_in:.1f}s")
    yield server
    server.stop()


def trino_environ(trino_server, seaweedfs, data_dir: Path, prefix: str, schema: str) -> dict[str, str]:
    """LOGLAKE_* settings for a lake on SeaweedFS registered in Trino (secrets stay out of them)."""
    return {
        "LOGLAKE_DATA_DIR": str(data_dir),
        "LOGLAKE_HOST_ID": "test",
        "LOGLAKE_STORAGE_URL": f"s3://{seaweedfs.bucket}/{prefix}",
        "LOGLAKE_STORAGE_ENDPOINT_URL": seaweedfs.endpoint,
        "LOGLAKE_STORAGE_REGION": "us-east-1",
        "LOGLAKE_CATALOG_TYPE": "trino",
        "LOGLAKE_TRINO_HOST": "127.0.0.1",
        "LOGLAKE_TRINO_PORT": str(trino_server.port),
        "LOGLAKE_TRINO_HTTP_SCHEME": "https",
        "LOGLAKE_TRINO_AUTH": "basic",
        "LOGLAKE_TRINO_USER": trino_server.user,
        "LOGLAKE_TRINO_CA_BUNDLE": str(trino_server.ca_bundle),
        "LOGLAKE_TRINO_SCHEMA": schema,
    }


@pytest.fixture
def trino_env(trino_server, seaweedfs, data_dir: Path, monkeypatch) -> dict[str, str]:
    import uuid

    token = uuid.uuid4().hex[:10]
    env = trino_environ(trino_server, seaweedfs, data_dir, f"lake-{token}", f"t_{token}")
    monkeypatch.setenv("LOGLAKE_TRINO_PASSWORD", trino_server.password)
    return env


@pytest.fixture
def trino_config(trino_env, tmp_path: Path) -> Config:
    empty = tmp_path / "trino-empty.toml"
    empty.write_text("", encoding="utf-8")
    return load_config(empty, environ=trino_env)
