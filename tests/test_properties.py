"""Property tests (issue #12): arbitrary bytes as log lines, arbitrary TOML values for every config
key, arbitrary `--since/--until` strings. CI runs a fixed number of derandomized examples
(`EXAMPLES` each), so a run is repeatable; raise it locally with LOGLAKE_HYPOTHESIS_EXAMPLES."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake.config import CatalogConfig, Config, RolloverConfig, StorageConfig, TrinoConfig, WriterConfig, load_config
from loglake.errors import ConfigError, UsageError
from loglake.queries import load_report, render_report
from loglake.queries.runner import parse_when
from tests.helpers import EXAMPLES, dead_letters, spool_rows

FIXED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GOOD = b'1.2.3.4 - bob [17/May/2015:10:05:03 +0000] "GET /x HTTP/1.1" 200 12 "-" "UA"'
#: Number-like text of any length: digit runs up to 6,000 long (`int` refuses over 4,300), signs,
#: fractions, exponents, infinities and NaN in JSON's and Python's spellings, underscores, spaces
#: and other scripts' digits (Arabic-Indic, fullwidth, Devanagari: `int` takes them all).
digits = st.one_of(
    st.integers(1, 25).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)),
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.text(st.characters(categories=["Nd"]), min_size=1, max_size=12),
)
number_text = st.one_of(
    digits,
    st.tuples(
        st.sampled_from(["", "-", "+"]), digits, st.sampled_from(["", ".5", "." + "0" * 30, "e400", "E-7", "e+3"])
    ).map("".join),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "inf", "-inf", "1e400", "-1e400", "1_000", " 12", "0x1f"]),
)
# Lines near the real shape mutate into the interesting cases more often than uniform bytes do.
line_bytes = st.one_of(
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")),
    st.builds(
        lambda cut, junk, at: (GOOD[:cut] + junk + GOOD[at:]).replace(b"\n", b""),
        st.integers(0, len(GOOD)),
        st.binary(max_size=12),
        st.integers(0, len(GOOD)),
    ),
    st.just(GOOD),
    st.builds(  # a status or a bytes field of any number-like text
        lambda status, size: GOOD.replace(b" 200 12 ", f" {status} {size} ".encode()),
        st.one_of(st.just("200"), number_text),
        st.one_of(st.just("12"), number_text),
    ),
)


def _config(data_dir: Path, extra: dict[str, str] | None = None) -> Config:
    empty = data_dir.parent / "empty.toml"
    empty.write_text("", encoding="utf-8")
    return load_config(empty, environ={"LOGLAKE_DATA_DIR": str(data_dir), "LOGLAKE_HOST_ID": "prop", **(extra or {})})


@FIXED
@given(st.lists(line_bytes, min_size=1, max_size=40), st.booleans())
def test_arbitrary_bytes_every_line_is_a_row_or_a_dead_letter(lines: list[bytes], final_newline: bool) -> None:
    content = b"\n".join(lines) + (b"\n" if final_newline else b"")
    lines = content.split(b"\n")  # what a reader sees: a final newline ends the last line
    if content.endswith(b"\n") or not content:
        lines.pop()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        log = Path(tmp) / "a.log"
        log.write_bytes(content)
        then = datetime(2020, 1, 1).timestamp()
        os.utime(log, (then, then))  # a finished file: its last line counts without a newline
        _write_every_line_once(_config(data_dir), log, lines)


def _write_every_line_once(cfg: Config, log: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    """Write `log` (whose lines are `lines`): each line is a row or a byte-exact dead letter with a
    short reason, and the counters reconcile. Returns the rows."""
    from loglake.writer import Writer

    w = Writer(cfg)
    try:
        w.write_file(str(log))
    finally:
        w.close()
    rows, dead = spool_rows(cfg.data_dir), dead_letters(cfg.data_dir)
    assert len(rows) + len(dead) == len(lines)
    assert w.totals.lines_read == len(lines) and w.totals.reconciles([t.name for t in cfg.tables])
    for d in dead:  # byte-exact, so it can be replayed
        assert d["raw"] == lines[d["line_no"] - 1] and len(d["reason"]) < 200
    for r in rows:
        assert r["ts"] is not None and (r["status"] is None or 100 <= r["status"] <= 599)
        assert r["bytes"] is None or 0 <= r["bytes"] < 2**63
    return rows


GOOD_JSON = '{"ts": "2020-01-01T00:00:00Z", "status": 200, "bytes": 12, "request_time": 0.5, "path": "/x"}'
#: JSON value text: numbers of any length (json refuses integers over 4,300 digits), NaN and the
#: infinities (which Python's json reads), strings of number-like text or with `\\u` escapes (a lone
#: surrogate among them), nesting, and the literals.
json_value = st.one_of(
    number_text.filter(lambda t: t not in ("nan", "inf", "-inf") and "_" not in t and " " not in t and "x" not in t),
    number_text.map(lambda t: json.dumps(t)),
    st.text(max_size=20).map(lambda t: json.dumps(t)),
    st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\u00e9"', '"2020-01-01T00:00:00Z"', "1577836800", "true", "null"]),
    st.sampled_from(["[1, 2]", '{"a": 1}', "[" * 30 + "]" * 30, '"-"', '""']),
)
json_line = st.one_of(
    st.dictionaries(st.sampled_from(["ts", "status", "bytes", "request_time", "path"]), json_value, max_size=5).map(
        lambda d: ("{" + ", ".join(f'"{k}": {v}' for k, v in d.items()) + "}").encode()
    ),
    st.builds(  # the arbitrary-bytes damage, on an NDJSON line
        lambda cut, junk, at: (GOOD_JSON.encode()[:cut] + junk + GOOD_JSON.encode()[at:]).replace(b"\n", b""),
        st.integers(0, len(GOOD_JSON)),
        st.binary(max_size=12),
        st.integers(0, len(GOOD_JSON)),
    ),
    st.just(GOOD_JSON.encode()),
)


@FIXED
@given(st.lists(json_line, min_size=1, max_size=20))
def test_arbitrary_ndjson_values_every_line_is_a_row_or_a_dead_letter(lines: list[bytes]) -> None:
    content = b"\n".join(lines) + b"\n"
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        log = Path(tmp) / "a.jsonl"
        log.write_bytes(content)
        toml = Path(tmp) / "loglake.toml"
        columns = '["ts", "status", "bytes", "request_time", "path"]'
        toml.write_text(f'[writer]\nformat = "json"\n[tables.access_log]\ncolumns = {columns}\n', encoding="utf-8")
        cfg = load_config(toml, environ={"LOGLAKE_DATA_DIR": str(data_dir), "LOGLAKE_HOST_ID": "prop"})
        for r in _write_every_line_once(cfg, log, lines):
            assert r["request_time"] is None or math.isfinite(r["request_time"])


#: Python values a parser hands the converters: JSON's (ints of any size, floats with NaN and the
#: infinities, bools, None) and text of number-like shapes.
raw_value = st.one_of(
    number_text,
    st.integers(),
    st.integers(1, 4000).map(lambda n: 10**n - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
)


@FIXED
@given(st.sampled_from(["ts", "status", "bytes", "request_time"]), raw_value, st.sampled_from(["", "%d/%b/%Y"]))
def test_every_value_converter_gives_a_value_or_a_short_reason(key: str, value: Any, fmt: str) -> None:
    from loglake.writer.parsers.values import typed_row

    raw = {"ts": "2020-01-01T00:00:00Z", key: value}
    row, reason = typed_row(raw, fmt if key == "ts" else "")
    if row is None:
        assert reason.split(":", 1)[0] in (
            "invalid_time",
            "invalid_status",
            "status_out_of_range",
            "invalid_bytes",
            "invalid_request_time",
            "missing_time",
        )
        assert len(reason) < 100
    else:
        v = row[key]
        assert reason == "" and (
            v is None or {"ts": str, "status": int, "bytes": int, "request_time": float}[key] is type(v)
        )
        assert key != "request_time" or v is None or math.isfinite(v)
        assert key != "bytes" or v is None or 0 <= v < 2**63


def _section_keys() -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [("data_dir",), ("host_id",)]
    for prefix, cls in (
        (("writer",), WriterConfig),
        (("rollover",), RolloverConfig),
        (("storage",), StorageConfig),
        (("catalog",), CatalogConfig),
        (("catalog", "trino"), TrinoConfig),
    ):
        out += [(*prefix, f.name) for f in dataclasses.fields(cls) if f.name != "trino"]
    out += [("tables", "t", k) for k in ("columns", "where", "require")]
    return out


KEYS = _section_keys()
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
toml_values = st.one_of(
    toml_scalars,
    st.lists(toml_scalars, max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=8), toml_scalars, max_size=3),
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan" if value != value else ("inf" if value == float("inf") else "-inf" if value < -1e308 else repr(value))
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


@FIXED
@given(st.sampled_from(KEYS), toml_values)
def test_arbitrary_toml_value_for_any_key_is_reported_never_crashes(key: tuple[str, ...], value: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "loglake.toml"
        section, name = key[:-1], key[-1]
        header = f"[{'.'.join(section)}]\n" if section else ""
        path.write_text(f"{header}{name} = {_toml(value)}\n", encoding="utf-8")
        try:
            cfg = load_config(path, environ={"LOGLAKE_DATA_DIR": tmp})
        except ConfigError as e:
            assert e.problems and all(isinstance(p, str) for p in e.problems)
        else:
            assert isinstance(cfg, Config)


@FIXED
@given(st.one_of(st.text(max_size=40), st.from_regex(r"\d{1,25}[mhd]", fullmatch=True), st.datetimes().map(str)))
def test_arbitrary_since_until_is_a_time_or_a_usage_error(text: str) -> None:
    try:
        when = parse_when(text, now=datetime(2026, 12, 1, tzinfo=UTC))
    except UsageError as e:
        assert str(e)
        return
    assert when.tzinfo is not None
    sql = render_report(load_report("top-pages"), "duckdb", when, when, {"ts", "path", "client_ip"})
    assert f"'{when.year:04d}-{when:%m-%d %H:%M:%S}" in sql  # bound as a literal, years padded
