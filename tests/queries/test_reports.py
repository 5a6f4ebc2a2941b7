"""Every report, on a real DuckDB over real Parquet, against a plain-Python computation."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from loglake.catalog import load_catalog
from loglake.config import Config
from loglake.generate import write_log
from loglake.queries import list_reports, load_report, render_report
from loglake.rollover import run_rollover
from loglake.writer import Writer
from tests.conftest import ELASTIC, real_file, run_cli
from tests.queries.oracle import ORACLES, records


def normalize(name: str, rows: list[tuple]) -> list[tuple]:
    """Engine values -> the oracle's plain values (minute/hour/day strings, floats)."""
    out = []
    for row in rows:
        vals = []
        for v in row:
            if isinstance(v, datetime):
                v = v.strftime("%Y-%m-%dT%H" if name == "logins-per-hour" else "%Y-%m-%dT%H:%M")
            elif isinstance(v, date):
                v = v.isoformat()
            elif hasattr(v, "is_finite"):  # Decimal
                v = float(v)
            vals.append(v)
        out.append(tuple(vals))
    return out


def build(cfg: Config, log: Path) -> None:
    Writer(cfg).write_file(str(log))
    run_rollover(cfg)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> dict[str, tuple[Config, list[dict]]]:
    from loglake.config import load_config

    out = {}
    generated = write_log(tmp_path_factory.mktemp("gen") / "gen.log", 20_000, rate=5)
    sources = {"generated": generated}
    if ELASTIC.is_file():
        sources["elastic"] = ELASTIC
    for name, log in sources.items():
        d = tmp_path_factory.mktemp(name)
        (d / "empty.toml").write_text("")
        cfg = load_config(d / "empty.toml", environ={"LOGLAKE_DATA_DIR": str(d / "data"), "LOGLAKE_HOST_ID": "t"})
        build(cfg, log)
        out[name] = (cfg, records(log))
    return out


@pytest.mark.parametrize("source", ["generated", "elastic"])
@pytest.mark.parametrize("report", sorted(ORACLES))
def test_report_matches_python(lakes, source: str, report: str) -> None:
    if source == "elastic":
        real_file(ELASTIC)
    cfg, recs = lakes[source]
    catalog = load_catalog(cfg)
    columns = set(catalog.query("SELECT * FROM access_log LIMIT 0").columns)
    result = catalog.query(render_report(load_report(report), "duckdb", table_columns=columns))
    expected = ORACLES[report](recs)
    assert normalize(report, result.rows) == expected
    if source == "generated":
        assert expected, "the generated log must give every report something to show"


def test_every_report_is_listed_with_a_description(data_dir: Path) -> None:
    proc = run_cli(["report", "--list"], data_dir)
    assert proc.returncode == 0
    names = [r.name for r in list_reports()]
    assert set(ORACLES) <= set(names)
    for r in list_reports():
        assert r.description and r.name in proc.stdout


def test_report_cli_formats_and_time_window(tmp_path: Path, data_dir: Path) -> None:
    log = real_file(ELASTIC)
    assert run_cli(["write", str(log)], data_dir).returncode == 0
    assert run_cli(["rollover"], data_dir).returncode == 0
    proc = run_cli(["report", "unique-users-per-day", "--format", "json"], data_dir)
    assert proc.returncode == 0, proc.stderr
    days = json.loads(proc.stdout)
    assert [d["day"] for d in days] == ["2015-05-17", "2015-05-18", "2015-05-19", "2015-05-20"]
    window = run_cli(
        ["report", "unique-users-per-day", "--since", "2015-05-18", "--until", "2015-05-19T00:00Z", "--format", "csv"],
        data_dir,
    )
    assert window.returncode == 0, window.stderr
    lines = window.stdout.splitlines()
    assert lines[0] == "day,users,clients,requests" and len(lines) == 2 and lines[1].startswith("2015-05-18,")
    assert sum(d["requests"] for d in days) == 10000
    bad = run_cli(["report", "top-pages", "--since", "last tuesday"], data_dir)
    assert bad.returncode == 2 and "invalid time" in bad.stderr  # a usage error
    missing = run_cli(["report", "no-such-report"], data_dir)
    assert missing.returncode == 2 and "known: " in missing.stderr
    bad_sql = run_cli(["query", "select nope from access_log"], data_dir)
    assert bad_sql.returncode == 1 and "duckdb:" in bad_sql.stderr


def test_one_text_two_dialects() -> None:
    rep = load_report("status-per-minute")
    trino = render_report(rep, "trino")
    duck = render_report(rep, "duckdb")
    assert "count_if" in trino.lower() and "count_if" in duck.lower()
    assert ":since" not in trino and "TIMESTAMP" in trino.upper()


def test_logins_per_hour_by_location_when_the_column_exists(make_config, tmp_path: Path) -> None:
    cfg = make_config(
        """
[writer]
format = "regex"
pattern = '^(?P<ts>\\S+) (?P<username>\\S+) (?P<location>\\S+) (?P<path>\\S+)$'

[tables.access_log]
columns = ["ts", "username", "location", "path"]
"""
    )
    log = tmp_path / "app.log"
    log.write_text(
        "2026-11-29T10:01:00Z ann paris /login\n2026-11-29T10:02:00Z bob paris /login\n"
        "2026-11-29T10:03:00Z ann paris /x\n2026-11-29T10:04:00Z cid oslo /login\n"
        "2026-11-29T11:00:00Z ann oslo /login\n"
    )
    build(cfg, log)
    catalog = load_catalog(cfg)
    sql = render_report(load_report("logins-per-hour"), "duckdb", table_columns={"location", "username", "ts"})
    rows = [(h.hour, loc, users, n) for h, loc, users, n in catalog.query(sql).rows]
    assert rows == [(10, "oslo", 1, 1), (10, "paris", 2, 3), (11, "oslo", 1, 1)]
    without = render_report(load_report("logins-per-hour"), "duckdb", table_columns={"username", "ts"})
    assert "location" not in without
