"""Property tests (issue #12): arbitrary bytes as log lines, arbitrary TOML values for every config
key, arbitrary `--since/--until` strings. CI runs a fixed number of derandomized examples
(`EXAMPLES` each), so a run is repeatable; raise it locally with LOGLAKE_HYPOTHESIS_EXAMPLES."""

from __future__ import annotations

import dataclasses
import json
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
)


def _config(data_dir: Path, extra: dict[str, str] | None = None) -> Config:
    empty = data_dir.parent / "empty.toml"
    empty.write_text("", encoding="utf-8")
    return load_config(empty, environ={"LOGLAKE_DATA_DIR": str(data_dir), "LOGLAKE_HOST_ID": "prop", **(extra or {})})


@FIXED
@given(st.lists(line_bytes, min_size=1, max_size=40), st.booleans())
def test_arbitrary_bytes_every_line_is_a_row_or_a_dead_letter(lines: list[bytes], final_newline: bool) -> None:
    from loglake.writer import Writer

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
        cfg = _config(data_dir)
        w = Writer(cfg)
        try:
            w.write_file(str(log))
        finally:
            w.close()
        rows, dead = spool_rows(data_dir), dead_letters(data_dir)
        assert len(rows) + len(dead) == len(lines)
        assert w.totals.lines_read == len(lines) and w.totals.reconciles([t.name for t in cfg.tables])
        for d in dead:  # byte-exact, so it can be replayed
            assert d["raw"] == lines[d["line_no"] - 1]
        for r in rows:
            assert r["ts"] is not None and (r["status"] is None or 100 <= r["status"] <= 599)


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
