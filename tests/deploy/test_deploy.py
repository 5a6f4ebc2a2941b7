"""deploy/: every file passes its own verifier, and each unit's command line does its job.

The units are run the way systemd would run them, minus systemd itself: their `ExecStart` and
`Environment` lines are read from the files, with only the install paths (/opt/loglake,
/etc/loglake, /var/lib/loglake) pointed at a temp folder. The nginx snippet runs in a real nginx
whose log the writer unit then reads with deploy/loglake.toml.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env, run_cli
from tests.integration.nginx import free_port, need

DEPLOY = REPO / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service")) + sorted((DEPLOY / "systemd").glob("*.t*"))
LOGLAKE = f"{sys.executable} -m loglake"


def _unit_lines(unit: Path, key: str) -> list[str]:
    """Values of `key=` in a unit file (systemd allows a key more than once)."""
    out = []
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{key}="):
            out.append(line.split("=", 1)[1])
    return out


def _installed(text: str, root: Path) -> str:
    """Point the install paths of a deploy file at `root` (the only edit the tests make)."""
    return (
        text.replace("/opt/loglake/bin/loglake", LOGLAKE)
        .replace("/etc/loglake", str(root / "etc"))
        .replace("/var/lib/loglake", str(root / "data"))
    )


def _install_config(root: Path, name: str = "loglake.toml") -> Path:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    target = root / "etc" / "loglake.toml"
    target.write_text(_installed((DEPLOY / name).read_text(encoding="utf-8"), root), encoding="utf-8")
    return target


def _command(unit: Path, root: Path, log: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """The unit's ExecStart as argv, and its Environment= settings, as systemd would expand them."""
    (exec_start,) = _unit_lines(unit, "ExecStart")
    line = _installed(exec_start, root)
    if log is not None:
        line = line.replace("%f", str(log))
    env = {}
    for setting in _unit_lines(unit, "Environment"):
        k, v = setting.split("=", 1)
        env[k] = _installed(v, root)
    return shlex.split(line), env


def _env(root: Path, unit_env: dict[str, str]) -> dict[str, str]:
    env = cli_env(root / "data", **unit_env)
    del env["LOGLAKE_DATA_DIR"], env["LOGLAKE_HOST_ID"]  # the installed config says where
    return env


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_every_unit_passes_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    """`systemd-analyze verify` prints a warning (and still exits 0) for an unknown key or a bad
    value; a clean unit prints nothing."""
    verify = need("systemd-analyze")
    for other in (DEPLOY / "systemd").iterdir():  # the timer names its service: verify sees both
        (tmp_path / other.name).write_text(_installed(other.read_text(encoding="utf-8"), tmp_path), encoding="utf-8")
    name = unit.name.replace("@.service", "@var-log-nginx-access.log.service")
    if name != unit.name:
        (tmp_path / name).write_text((tmp_path / unit.name).read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run([verify, "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).strip() == ""


def test_units_are_hardened_and_retry_on_75() -> None:
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text(encoding="utf-8")
        for setting in (
            "User=loglake",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "ProtectHome=yes",
            "ReadWritePaths=/var/lib/loglake",
            "UMask=0077",
        ):
            assert setting in text, f"{unit.name}: {setting}"
        oneshot = "Type=oneshot" in text
        assert ("SuccessExitStatus=75" if oneshot else "RestartForceExitStatus=75") in text, unit.name
        assert "password" not in "".join(_unit_lines(unit, "ExecStart")).lower()


def _nginx(root: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """A real nginx whose http{} block includes deploy/nginx/loglake-log-format.conf as shipped and
    names its format on the access log, as the snippet's comment says to."""
    prefix, log = root / "nginx", root / "logs" / "access.log"
    (prefix / "tmp").mkdir(parents=True)
    log.parent.mkdir()
    snippet = (DEPLOY / "nginx" / "loglake-log-format.conf").read_text(encoding="utf-8")
    (prefix / "loglake.conf").write_text(snippet, encoding="utf-8")
    port = free_port()
    temps = "".join(
        f"    {k}_temp_path {prefix}/tmp/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        f"daemon off;\nuser root;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
        f"events {{ worker_connections 64; }}\nhttp {{\n{temps}    include {prefix}/loglake.conf;\n"
        f"    access_log {log} loglake;\n"
        f'    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}\n}}\n',
        encoding="utf-8",
    )
    test = subprocess.run(
        [need("nginx"), "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert test.returncode == 0, test.stderr
    proc = subprocess.Popen(
        [need("nginx"), "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port, log
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "nginx did not start"
            time.sleep(0.05)


def _requests(port: int, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for i in range(n):
        headers = {"Host": f"site{i % 3}.example", "User-Agent": "deploy-test"}
        if i % 2:
            headers["X-Forwarded-For"] = f"198.51.100.{i % 250}, 10.0.0.1"
        if i % 10 == 0:  # nginx logs $remote_user from the header
            headers["Authorization"] = "Basic " + base64.b64encode(f"user{i}:pw".encode()).decode()
        conn.request("POST" if i % 10 == 0 else "GET", "/login" if i % 10 == 0 else f"/p/{i}", headers=headers)
        conn.getresponse().read()
    conn.close()


def _stop(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_units_run_the_pipeline_on_a_real_nginx_log(tmp_path: Path) -> None:
    """The writer unit tails the nginx log written with the shipped log_format, the rollover units
    convert it: every request is a row with its extra fields, nothing is dead-lettered, and both
    long-running units stop on SIGTERM with exit 0 (what systemctl stop sends)."""
    cfg_path = _install_config(tmp_path)
    nginx, port, log = _nginx(tmp_path)
    try:
        argv, unit_env = _command(DEPLOY / "systemd" / "loglake-writer@.service", tmp_path, log)
        assert argv[-3:] == ["write", "--follow", str(log)]
        assert unit_env["LOGLAKE_CONFIG"] == str(cfg_path)
        env = _env(tmp_path, unit_env)
        writer = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        _requests(port, 200)
        watch_argv, watch_env = _command(DEPLOY / "systemd" / "loglake-rollover.service", tmp_path)
        watch = subprocess.Popen(
            watch_argv, env=_env(tmp_path, watch_env), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        deadline = time.monotonic() + 60
        count = 0
        while time.monotonic() < deadline and count < 200:
            time.sleep(1)
            q = run_cli(
                ["query", "select count(*) from access_log", "--format", "json"],
                tmp_path / "data",
                LOGLAKE_CONFIG=str(cfg_path),
            )
            count = json.loads(q.stdout)[0]["count_star()"] if q.returncode == 0 and q.stdout.strip() else 0
        assert _stop(writer)[0] == 0
        assert _stop(watch)[0] == 0
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=15)
    once_argv, once_env = _command(DEPLOY / "systemd" / "loglake-rollover-once.service", tmp_path)
    once = subprocess.run(once_argv, env=_env(tmp_path, once_env), capture_output=True, text=True, timeout=120)
    assert once.returncode == 0, once.stderr
    q = run_cli(
        [
            "query",
            "select count(*) n, count(request_time) rt, count(forwarded_for) ff, count(host) h, "
            "count(distinct host) hosts from access_log",
            "--format",
            "json",
        ],
        tmp_path / "data",
        LOGLAKE_CONFIG=str(cfg_path),
    )
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout) == [{"n": 200, "rt": 200, "ff": 100, "h": 200, "hosts": 3}]
    logins = run_cli(
        ["query", "select count(*) n from logins", "--format", "json"], tmp_path / "data", LOGLAKE_CONFIG=str(cfg_path)
    )
    assert json.loads(logins.stdout) == [{"n": 20}]
    status = subprocess.run(  # as the units run: the host id is the host name, as theirs
        [*LOGLAKE.split(), "status", "--format", "json"], env=_env(tmp_path, once_env), capture_output=True, text=True
    )
    facts = json.loads(status.stdout)
    assert facts["written"]["dead_lettered"] == 0 and facts["reconciles"] is True, status.stdout
    assert facts["unread_bytes"] == 0 and facts["tables"]["access_log"]["lake_matches_manifests"] is True


def test_logrotate_snippet_passes_logrotate_debug(tmp_path: Path) -> None:
    logrotate = need("logrotate")
    logs = tmp_path / "nginx"
    logs.mkdir()
    (logs / "access.log").write_text("x\n", encoding="utf-8")
    snippet = (DEPLOY / "logrotate" / "nginx").read_text(encoding="utf-8")
    conf = tmp_path / "nginx.rotate"
    conf.write_text(
        snippet.replace("/var/log/nginx", str(logs))
        .replace("/run/nginx.pid", str(tmp_path / "pid"))
        .replace("create 0640 www-data adm", "create 0640 root root"),
        encoding="utf-8",
    )
    done = subprocess.run(
        [logrotate, "-d", "-f", "-s", str(tmp_path / "state"), str(conf)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "error" not in out.lower(), out
    log = str(logs / "access.log")
    for expected in (
        "rotating pattern",
        f"renaming {log} to {log}.1",
        f"creating new {log}",
        "running postrotate script",
    ):
        assert expected in out, out


@pytest.mark.parametrize(
    "config", [*sorted((REPO / "examples").glob("*.toml")), *sorted(DEPLOY.glob("*.toml"))], ids=lambda p: p.name
)
def test_every_shipped_config_passes_check_config(config: Path, tmp_path: Path) -> None:
    done = run_cli(
        ["check-config"],
        tmp_path / "data",
        LOGLAKE_CONFIG=str(config),
        LOGLAKE_PII_KEY="aGVsbG8tdGhpcy1pcy1hLTMyLWJ5dGUta2V5LXRlc3Q=",
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"ok {config}")


def test_the_writer_unit_refuses_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    """RestartPreventExitStatus=2 relies on this: a configuration error is exit 2, not a crash loop."""
    cfg = _install_config(tmp_path)
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n[writer2]\nx = 1\n", encoding="utf-8")
    argv, unit_env = _command(DEPLOY / "systemd" / "loglake-writer@.service", tmp_path, tmp_path / "a.log")
    done = subprocess.run(argv, env=_env(tmp_path, unit_env), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and "Traceback" not in done.stderr
    assert os.environ.get("LOGLAKE_CONFIG") != str(cfg)
