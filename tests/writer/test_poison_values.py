"""Poison values: numbers of any length, infinities, NaN, exponents, other scripts' digits, lone
surrogates. Each line is a row or a dead letter naming the check, in every parser and on both chunk
paths; one such line never stops the writer. With encrypted dead letters, no rejected value is
left in clear in a reason, a manifest or the writer's output."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loglake.config import Config
from loglake.writer.lines import Chunk
from loglake.writer.parsers.values import typed_row
from tests.conftest import REPO, cli_env, run_cli
from tests.helpers import dead_letters, spool_rows
from tests.writer.test_lossless import _append, _wait_for
from tests.writer.test_parsers import BASE, parse

LONG = "9" * 5000  # `int` refuses more than 4,300 digits
TS = "2020-01-01T00:00:00Z"
GOOD_JSON = '{"ts": "2020-01-01T00:00:00Z", "status": 200, "bytes": 5, "path": "/ok"}'
KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("bytes", LONG, "invalid_bytes"),
        ("bytes", "1" + "0" * 19, "invalid_bytes"),  # 20 digits: past int64 without converting
        ("bytes", 10**4000, "invalid_bytes"),  # a JSON integer of 4,001 digits
        ("bytes", float("inf"), "invalid_bytes"),  # JSON's `1e400` and `Infinity`
        ("bytes", float("-inf"), "invalid_bytes"),
        ("bytes", float("nan"), "invalid_bytes"),
        ("bytes", 1.5, "invalid_bytes"),  # `int` would truncate it to 1
        ("bytes", 1e300, "invalid_bytes"),
        ("bytes", "-5", "invalid_bytes"),
        ("bytes", -5, "invalid_bytes"),
        ("bytes", "1e3", "invalid_bytes"),
        ("bytes", "1_000", "invalid_bytes"),  # `int` takes underscores
        ("bytes", " 12", "invalid_bytes"),  # and spaces
        ("bytes", "\u0663", "invalid_bytes"),  # ARABIC-INDIC DIGIT THREE: `int` gives 3
        ("bytes", "\uff11\uff12", "invalid_bytes"),  # fullwidth 12
        ("bytes", True, "invalid_bytes"),
        ("status", LONG, "invalid_status"),
        ("status", "0" * 5000 + "200", "invalid_status"),
        ("status", "+200", "invalid_status"),
        ("status", float("inf"), "invalid_status"),
        ("status", 10**400, "status_out_of_range"),
        ("request_time", LONG, "invalid_request_time"),  # float() of it is inf
        ("request_time", 10**400, "invalid_request_time"),  # float() raises OverflowError
        ("request_time", "nan", "invalid_request_time"),
        ("request_time", float("inf"), "invalid_request_time"),
        ("request_time", True, "invalid_request_time"),
        ("ts", LONG, "invalid_time"),
        ("ts", 10**4000, "invalid_time"),
        ("ts", float("nan"), "invalid_time"),
        ("ts", float("inf"), "invalid_time"),
        ("ts", 1e300, "invalid_time"),
        ("ts", "\u0661" * 10, "invalid_time"),  # epoch seconds in Arabic-Indic digits
    ],
    ids=lambda v: f"{type(v).__name__}-of-{len(str(v))}" if len(repr(v)) > 24 else None,
)
def test_a_poison_value_is_a_short_reason_not_an_error(key: str, value: Any, reason: str) -> None:
    row, why = typed_row({"ts": TS, key: value})
    assert row is None and why.startswith(reason + ":")
    assert len(why) < 100


@pytest.mark.parametrize(
    ("key", "value", "typed"),
    [
        ("bytes", "0" * 18 + "7", 7),
        ("bytes", str(2**63 - 1), 2**63 - 1),
        ("bytes", 200.0, 200),  # an integral JSON float
        ("bytes", 2**63 - 1, 2**63 - 1),
        ("status", "404", 404),
        ("request_time", "0.25", 0.25),
        ("request_time", "1e-3", 0.001),
    ],
)
def test_plain_values_still_convert(key: str, value: Any, typed: Any) -> None:
    row, why = typed_row({"ts": TS, key: value})
    assert why == "" and row is not None and row[key] == typed


def _clf(status: str = "200", size: str = "1234") -> str:
    return BASE.replace(" 200 1234 ", f" {status} {size} ")


#: (format, kwargs, poison lines with their reason, a good line): each chunk holds 500 good lines
#: and the poison ones among them, so the block paths and the per-line ones are all taken.
NGINX = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent $request_time'
NGINX_GOOD = '1.2.3.4 - bob [17/May/2015:10:05:03 +0000] "GET /x HTTP/1.1" 200 12 0.003'
REGEX = r"^(?P<ts>\S+) (?P<status>\S+) (?P<bytes>\S+)$"
CASES = [
    (
        "combined",
        {},
        [
            (_clf(size=LONG), "invalid_bytes"),
            (_clf(size="1" + "0" * 19), "invalid_bytes"),
            (_clf(status=LONG), "invalid_status"),
            (_clf(status="\uff12\uff10\uff10"), "invalid_status"),
            (_clf(size="1_000"), "invalid_bytes"),
            (_clf(size="1e3"), "invalid_bytes"),
            (_clf(size="-1"), "invalid_bytes"),
        ],
        _clf(),
    ),
    (
        "common",
        {},
        [
            (_clf(size=LONG).split(' "http')[0], "invalid_bytes"),
            (_clf(status=LONG).split(' "http')[0], "invalid_status"),
        ],
        _clf().split(' "http')[0],
    ),
    (
        "nginx",
        {"log_format": NGINX},
        [
            (NGINX_GOOD.replace(" 12 ", f" {LONG} "), "invalid_bytes"),
            (NGINX_GOOD.replace(" 200 ", " \u0662\u0660\u0660 "), "invalid_status"),
            (NGINX_GOOD.replace("0.003", LONG), "invalid_request_time"),
            (NGINX_GOOD.replace("0.003", "inf"), "invalid_request_time"),
            (NGINX_GOOD.replace("0.003", "NaN"), "invalid_request_time"),
        ],
        NGINX_GOOD,
    ),
    (
        "regex",
        {"pattern": REGEX},
        [
            (f"{TS} 200 {LONG}", "invalid_bytes"),
            (f"{TS} {LONG} 1", "invalid_status"),
            (f"{LONG} 200 1", "invalid_time"),
        ],
        f"{TS} 200 1",
    ),
    (
        "json",
        {},
        [
            ('{"ts": "2020-01-01T00:00:00Z", "status": 1e400}', "invalid_status"),
            ('{"ts": "2020-01-01T00:00:00Z", "status": Infinity}', "invalid_status"),
            ('{"ts": "2020-01-01T00:00:00Z", "status": NaN}', "invalid_status"),
            ('{"ts": "2020-01-01T00:00:00Z", "bytes": 12.5}', "invalid_bytes"),
            ('{"ts": "2020-01-01T00:00:00Z", "bytes": -1}', "invalid_bytes"),
            ('{"ts": "2020-01-01T00:00:00Z", "bytes": "' + LONG + '"}', "invalid_bytes"),
            ('{"ts": "2020-01-01T00:00:00Z", "bytes": 1' + "0" * 4000 + "}", "invalid_bytes"),
            ('{"ts": "2020-01-01T00:00:00Z", "bytes": 1' + "0" * 5000 + "}", "invalid_json"),
            ('{"ts": "2020-01-01T00:00:00Z", "x": [1' + "0" * 5000 + "]}", "invalid_json"),
            ('{"ts": 1' + "0" * 5000 + "}", "invalid_json"),
            ('{"ts": 1e400}', "invalid_time"),
            ('{"ts": -Infinity}', "invalid_time"),
            ('{"ts": "2020-01-01T00:00:00Z", "path": "/a\\ud800b"}', "invalid_json"),  # a lone surrogate
        ],
        GOOD_JSON,
    ),
]


@pytest.mark.parametrize(("fmt", "kw", "poison", "good"), CASES, ids=[c[0] for c in CASES])
def test_poison_lines_are_dead_letters_in_every_parser(
    fmt: str, kw: dict[str, str], poison: list[tuple[str, str]], good: str
) -> None:
    lines = [good] * 500
    at = {}
    for k, (line, reason) in enumerate(poison):
        at[k * 37 + 3] = reason
        lines.insert(k * 37 + 3, line)
    cols = ["ts", "status", "bytes", "path"] if fmt != "regex" else ["ts", "status", "bytes"]
    if fmt == "nginx":
        cols.append("request_time")
    rows, rejects = parse("\n".join(lines) + "\n", fmt, columns=cols, **kw)  # both chunk paths, equal
    assert {i: r.split(":", 1)[0] for i, r in rejects.items()} == at
    assert len(rows) == len(lines) - len(at) and all(len(r) < 100 for r in rejects.values())


def _write(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    proc = run_cli(["write", *args], data_dir, **env)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_write_dead_letters_a_5000_digit_bytes_line(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(f"{_clf()}\n{_clf(size=LONG)}\n{_clf()}\n", encoding="utf-8")
    _write([str(log)], data_dir)
    (dead,) = dead_letters(data_dir)
    assert dead["line_no"] == 2 and dead["reason"] == "invalid_bytes: 5000 digits"
    assert len(spool_rows(data_dir)) == 2


def test_follow_keeps_running_past_a_5000_digit_bytes_line(tmp_path: Path, data_dir: Path) -> None:
    """The writer that met the line used to die at it, and again at every restart."""
    log = tmp_path / "access.log"
    log.write_text("".join(_clf(size=str(i)) + "\n" for i in range(10)), encoding="utf-8")
    env = {"LOGLAKE_WRITER_POLL_INTERVAL": "0.05", "LOGLAKE_WRITER_SEGMENT_MAX_AGE": "0.3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loglake", "write", "--follow", str(log)],
        env=cli_env(data_dir, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: len(spool_rows(data_dir)) == 10, timeout=90)
        _append(log, [_clf(size=LONG).encode(), _clf(status=LONG).encode()])
        _append(log, [_clf(size=str(i)).encode() for i in range(10, 20)])
        _wait_for(lambda: len(spool_rows(data_dir)) == 20 or proc.poll() is not None, timeout=90)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert sorted(r["bytes"] for r in spool_rows(data_dir)) == list(range(20))
    assert [(d["line_no"], d["reason"].split(":")[0]) for d in dead_letters(data_dir)] == [
        (11, "invalid_bytes"),
        (12, "invalid_status"),
    ]
    status = json.loads(run_cli(["status", "--format", "json"], data_dir).stdout)
    assert status["written"]["lines_read"] == 22 and status["written"]["dead_lettered"] == 2
    assert status["reconciles"] is True


def _pii_env(tmp_path: Path) -> dict[str, str]:
    return {"LOGLAKE_CONFIG": str(REPO / "examples" / "pii.toml"), "LOGLAKE_PII_KEY": KEY}


def test_a_batch_without_a_valid_line_keeps_its_location_columns(tmp_path: Path, data_dir: Path) -> None:
    """`country` is derived from the client IP: a block of only bad lines still has the column."""
    log = tmp_path / "garbage.log"
    log.write_text("garbage\n", encoding="utf-8")
    _write([str(log)], data_dir, **_pii_env(tmp_path))
    (dead,) = dead_letters_sealed(data_dir)
    assert dead["reason"] == "unparseable" and "line_enc" in dead


def test_the_geo_step_keeps_its_columns_on_an_empty_chunk(make_config: Callable[..., Config]) -> None:
    from loglake.writer import Writer

    w = Writer(make_config('[tables.access_log]\ncolumns = ["ts", "country", "path"]\n'))
    try:
        geo = w.geo.apply(w.parser.parse(pa.array(["garbage"])).table)
        assert geo.num_rows == 0 and geo.schema.field("country").type == pa.string()
        rows, excluded = w.routers[0].route(geo)
        assert rows.num_rows == 0 and rows.column_names == ["ts", "country", "path"] and excluded == 0
    finally:
        w.close()


def dead_letters_sealed(data_dir: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted((data_dir / "dead-letter").glob("*.jsonl")):
        out += [json.loads(t) for t in p.read_text(encoding="utf-8").split("\n") if t]
    return out


def _clear_text_under(data_dir: Path, needle: bytes) -> list[str]:
    return [str(p) for p in data_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_encrypted_dead_letters_keep_no_value_in_clear(tmp_path: Path, data_dir: Path) -> None:
    """The reason names the check; its detail (which quotes the value) is sealed with the line and
    shown again by `dead-letter show` with the key."""
    log = tmp_path / "access.log"
    lines = [
        _clf().replace("17/May/2015:10:05:03 +0000", "carol@example.com"),
        _clf(size="carol@example.com"),
        _clf(status="carol@example.com"),
        _clf(),
    ]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = _pii_env(tmp_path)
    out = _write([str(log)], data_dir, **env)
    assert b"carol" not in (out.stdout + out.stderr).encode()
    assert _clear_text_under(data_dir, b"carol") == []
    dead = dead_letters_sealed(data_dir)
    assert [d["reason"] for d in dead] == ["invalid_time", "invalid_bytes", "invalid_status"]
    assert all("reason_enc" in d and "line_enc" in d for d in dead)
    status = run_cli(["status", "--format", "json"], data_dir, **env)
    assert status.returncode == 0 and "carol" not in status.stdout + status.stderr
    shown = run_cli(["dead-letter", "show"], data_dir, **env)
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(t) for t in shown.stdout.splitlines()]
    assert [r["reason"] for r in records] == [
        "invalid_time: 'carol@example.com'",
        "invalid_bytes: 'carol@example.com'",
        "invalid_status: 'carol@example.com'",
    ]
    assert [r["line"] for r in records] == lines[:3]


def test_process_answers_checks_only_when_dead_letters_are_encrypted(
    make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `Writer.process` returns is what the ingest receiver puts in its answer and in the
    manifest's per-request summary: with encryption, the check without the value."""
    from loglake.writer import Writer
    from loglake.writer.segments import SourceInfo

    monkeypatch.setenv("LOGLAKE_TEST_KEY", KEY)
    text = (_clf(size="carol@example.com") + "\n" + _clf() + "\n").encode()
    for encrypt, reason in (("false", "invalid_bytes: 'carol@example.com'"), ("true", "invalid_bytes")):
        w = Writer(make_config(f"[pii]\nkey_env = 'LOGLAKE_TEST_KEY'\nencrypt_dead_letters = {encrypt}\n"))
        try:
            batch = w.open_batch(SourceInfo("http", "test", False), 0, 0)
            assert w.process(batch, Chunk(text, 0, 1)) == [(0, reason)]
            batch.abort()
        finally:
            w.close()
