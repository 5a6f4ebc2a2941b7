"""The Trino + S3 path against real servers: SeaweedFS for storage, Trino 476 (HTTPS, auth)."""

from __future__ import annotations

import dataclasses
import subprocess
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from loglake.catalog import Partition, load_catalog
from loglake.config import Config
from loglake.errors import CatalogError
from loglake.queries import list_reports, render_report
from loglake.rollover import InjectedFault, run_rollover
from loglake.writer import Writer
from tests.conftest import ELASTIC, real_file, run_cli
from tests.helpers import EXAMPLES
from tests.integration.servers import make_jwt

pytestmark = pytest.mark.trino


def _plain(rows: list[tuple]) -> list[tuple]:
    """Engine-neutral values: Trino returns naive UTC timestamps, DuckDB aware ones."""
    out = []
    for row in rows:
        vals = []
        for v in row:
            if isinstance(v, datetime):
                v = v.replace(tzinfo=None).isoformat()
            elif isinstance(v, date):
                v = v.isoformat()
            elif isinstance(v, Decimal):
                v = float(v)
            vals.append(v)
        out.append(tuple(vals))
    return out


def test_seaweedfs_refuses_wrong_and_missing_credentials(seaweedfs) -> None:
    import s3fs

    seaweedfs.fs().pipe_file(f"{seaweedfs.bucket}/secret.txt", b"x")
    for kwargs in ({"key": seaweedfs.access_key, "secret": "not-the-secret"}, {"anon": True}):
        fs = s3fs.S3FileSystem(
            skip_instance_cache=True,
            client_kwargs={"endpoint_url": seaweedfs.endpoint},
            config_kwargs={"s3": {"addressing_style": "path"}},
            **kwargs,
        )
        with pytest.raises(PermissionError):
            fs.cat_file(f"{seaweedfs.bucket}/secret.txt")


def test_elastic_sample_on_s3_every_report_same_on_trino_and_duckdb(trino_env, data_dir: Path) -> None:
    log = real_file(ELASTIC)
    for args in (["write", str(log)], ["rollover"], ["catalog", "repair", "--engine", "duckdb"]):
        proc = run_cli(args, data_dir, **trino_env)
        assert proc.returncode == 0, proc.stderr
    count = run_cli(["query", "select count(*) as n from access_log", "--format", "csv"], data_dir, **trino_env)
    assert count.returncode == 0, count.stderr
    assert count.stdout == "n\n10000\n"
    from loglake.config import load_config

    (data_dir.parent / "e.toml").write_text("")
    cfg = load_config(data_dir.parent / "e.toml", environ=trino_env)
    trino, duck = load_catalog(cfg), load_catalog(cfg, "duckdb")
    columns = set(duck.query("SELECT * FROM access_log LIMIT 0").columns)
    assert set(trino.query("SELECT * FROM access_log LIMIT 0").columns) == columns
    for report in [r for r in list_reports() if r.table == "access_log"]:  # the tables this lake has
        t = trino.query(render_report(report, "trino", table_columns=columns))
        d = duck.query(render_report(report, "duckdb", table_columns=columns))
        assert t.columns == d.columns, report.name
        assert _plain(t.rows) == _plain(d.rows), report.name
        assert t.rows or report.name == "logins-per-hour", report.name  # the sample has no users
    # the CLI's --engine switch runs the same report text on either engine
    for engine in ("trino", "duckdb"):
        proc = run_cli(["report", "top-clients", "--engine", engine, "--format", "csv"], data_dir, **trino_env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[1].startswith("66.249.73.135,482,")
    trino.close()


def test_failure_after_each_step_is_finished_by_rerun_on_s3(trino_config: Config, tmp_path: Path) -> None:
    from loglake.generate import write_log

    for i, step in enumerate(("written", "registered", "retired")):
        Writer(trino_config).write_file(str(write_log(tmp_path / f"{i}.log", 2000, seed=i, rate=2)))
        with pytest.raises(InjectedFault):
            run_rollover(trino_config, fail_after=step)
        run_rollover(trino_config)
    cat = load_catalog(trino_config)
    assert cat.query("SELECT count(*) FROM access_log").rows[0][0] == 6000
    lake_files = cat.query('SELECT count(DISTINCT "$path") FROM access_log').rows[0][0]
    assert lake_files >= 3 and not list(trino_config.spool_dir.glob("access_log/*.csv"))
    cat.close()


def test_catalog_repair_reregisters_partitions_from_storage(trino_env, data_dir: Path) -> None:
    log = real_file(ELASTIC)
    assert run_cli(["write", str(log)], data_dir, **trino_env).returncode == 0
    assert run_cli(["rollover"], data_dir, **trino_env).returncode == 0
    from loglake.config import load_config

    (data_dir.parent / "e.toml").write_text("")
    cfg = load_config(data_dir.parent / "e.toml", environ=trino_env)
    cat = load_catalog(cfg)
    parts = cat.list_partitions("access_log")
    assert len(parts) == 84
    for p in parts[:10]:
        assert cat.drop_partition("access_log", p)
    assert cat.query("SELECT count(*) FROM access_log").rows[0][0] < 10000
    proc = run_cli(["catalog", "repair"], data_dir, **trino_env)
    assert proc.returncode == 0 and "84 partitions (10 added)" in proc.stderr
    assert cat.query("SELECT count(*) FROM access_log").rows[0][0] == 10000
    assert cat.register_partitions("access_log", [parts[0]], "") == 0  # registered twice: not an error
    cat.close()


def test_authentication_and_tls(trino_config: Config, trino_server, monkeypatch, tmp_path: Path) -> None:
    ok = load_catalog(trino_config)
    assert ok.query("SELECT current_user").rows == [(trino_server.user,)]
    ok.close()
    monkeypatch.setenv("LOGLAKE_TRINO_PASSWORD", "wrong-password")
    with pytest.raises(CatalogError, match="refused the credentials"):
        load_catalog(trino_config).query("SELECT 1")
    # JWT from a file (HS256, signed with the server's key)
    token = tmp_path / "token"
    token.write_text(make_jwt(trino_server.jwt_secret, trino_server.user))
    tc = dataclasses.replace(trino_config.catalog.trino, auth="jwt", jwt_file=str(token))
    jwt_cfg = dataclasses.replace(trino_config, catalog=dataclasses.replace(trino_config.catalog, trino=tc))
    assert load_catalog(jwt_cfg).query("SELECT current_user").rows == [(trino_server.user,)]
    forged = tmp_path / "forged"
    forged.write_text(make_jwt(b"not-the-key" * 3, trino_server.user))
    bad = dataclasses.replace(
        jwt_cfg, catalog=dataclasses.replace(jwt_cfg.catalog, trino=dataclasses.replace(tc, jwt_file=str(forged)))
    )
    with pytest.raises(CatalogError, match="refused the credentials"):
        load_catalog(bad).query("SELECT 1")
    # without the CA bundle the self-signed certificate is not trusted
    untrusted = dataclasses.replace(
        jwt_cfg, catalog=dataclasses.replace(jwt_cfg.catalog, trino=dataclasses.replace(tc, ca_bundle=""))
    )
    with pytest.raises(CatalogError, match="certificate"):
        load_catalog(untrusted).query("SELECT 1")


def test_secrets_never_reach_output_or_config(trino_env, data_dir: Path, trino_server, seaweedfs) -> None:
    proc = run_cli(["check-config"], data_dir, **trino_env)
    assert proc.returncode == 0
    bad = run_cli(["query", "select 1"], data_dir, **{**trino_env, "LOGLAKE_TRINO_PASSWORD": "hunter2-wrong"})
    assert bad.returncode == 1 and "refused the credentials" in bad.stderr
    for out in (proc.stdout + proc.stderr, bad.stdout + bad.stderr):
        assert trino_server.password not in out and "hunter2-wrong" not in out and seaweedfs.secret_key not in out
    missing = run_cli(["query", "select 1"], data_dir, **{**trino_env, "LOGLAKE_TRINO_PASSWORD": ""})
    assert missing.returncode == 2 and "LOGLAKE_TRINO_PASSWORD" in missing.stderr


def test_partition_values_are_validated_before_sql(trino_config: Config) -> None:
    cat = load_catalog(trino_config)
    cat.ensure_table("access_log", ["ts", "path"], f"{trino_config.lake_url}/access_log")
    with pytest.raises(ValueError):
        cat.register_partitions("access_log", [Partition("2026-11-29') --", 1)], "")
    cat.close()


def _one_day_in_batches(cfg: Config, tmp_path: Path, batches: int) -> list[bytes]:
    """The sample's 18 May written and rolled over as interleaved batches (that many small files
    per hour on S3); returns its lines."""
    lines = [line for line in real_file(ELASTIC).read_bytes().splitlines(keepends=True) if b"[18/May/2015:" in line]
    for i in range(batches):
        (tmp_path / f"b{i}.log").write_bytes(b"".join(lines[i::batches]))
        Writer(cfg).write_file(str(tmp_path / f"b{i}.log"))
    run_rollover(cfg)
    return lines


def test_compaction_on_trino_and_s3_keeps_every_row_once(trino_config: Config, tmp_path: Path) -> None:
    """The real sample written as 8 interleaved batches (8 small files per hour on S3), compacted
    while Trino queries run; late rows for a compacted hour land beside the merged file."""
    import threading

    lines = _one_day_in_batches(trino_config, tmp_path, 8)
    cat = load_catalog(trino_config)
    check = (
        "SELECT count(*), count(DISTINCT path), count(DISTINCT \"$path\") FROM access_log WHERE dt = DATE '2015-05-18'"
    )
    rows, paths, files_before = cat.query(check).rows[0]
    assert files_before > 24 * 4
    seen: list[tuple] = []
    stop = threading.Event()

    def reader() -> None:
        reader_cat = load_catalog(trino_config)
        while not stop.is_set():
            seen.append(tuple(reader_cat.query(check).rows[0][:2]))
        reader_cat.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        from loglake.rollover.compact import run_compact

        report = run_compact(trino_config, cat)
    finally:
        stop.set()
        thread.join()
    assert report.partitions == 24
    assert cat.query(check).rows[0] == (rows, paths, 24)  # one file per hour of that day
    # Trino has no atomic location switch (trinodb/trino#3501): a query planned between unregister
    # and register can miss one hour. What it must never do is double one.
    assert seen and all(n <= rows for n, _ in seen)
    assert cat.query("SELECT count(*) FROM access_log").rows[0][0] == rows == len(lines)
    late = [line for line in lines if b"18/May/2015:10:" in line][:30]
    (tmp_path / "late.log").write_bytes(b"".join(late))
    Writer(trino_config).write_file(str(tmp_path / "late.log"))
    run_rollover(trino_config)
    assert cat.query("SELECT count(*) FROM access_log").rows[0][0] == len(lines) + 30
    # repair re-registers from storage and keeps each hour at its compacted folder
    from loglake.storage import open_lake

    cat.repair("access_log", open_lake(trino_config), list(trino_config.tables[0].columns))
    assert cat.query("SELECT count(*) FROM access_log").rows[0][0] == len(lines) + 30
    cat.close()


def test_alert_evaluates_on_trino(trino_env, data_dir: Path, tmp_path: Path) -> None:
    from datetime import UTC, timedelta

    now = datetime.now(UTC)
    text = "".join(
        f'192.0.2.{i} - - [{now - timedelta(seconds=i):%d/%b/%Y:%H:%M:%S} +0000] "GET / HTTP/1.1" '
        f'{503 if i % 4 == 0 else 200} 10 "-" "t"\n'
        for i in range(40)
    )
    (tmp_path / "now.log").write_text(text)
    for args in (["write", str(tmp_path / "now.log")], ["rollover"]):
        assert run_cli(args, data_dir, **trino_env).returncode == 0
    example = Path(__file__).resolve().parents[2] / "examples" / "alerts.toml"
    out = run_cli(["alert", "--config", str(example), "--format", "json"], data_dir, **trino_env)
    assert out.returncode == 1, out.stderr
    import json

    verdicts = {v["rule"]: v for v in json.loads(out.stdout)}
    assert verdicts["site_down"]["firing"] and verdicts["site_down"]["rows"] == 40
    assert verdicts["site_down"]["value"] == 0.25 and not verdicts["stale"]["firing"]
    broken = tmp_path / "broken.toml"  # a rule Trino refuses (integer = varchar) is its own verdict
    broken.write_text(example.read_text() + "[alerts.typo]\nwhere = \"status = 'oops'\"\ncount_over = 0\n")
    out = run_cli(["alert", "--config", str(broken), "--format", "json"], data_dir, **trino_env)
    assert out.returncode == 1, out.stderr
    verdicts = {v["rule"]: v for v in json.loads(out.stdout)}
    assert verdicts["site_down"]["firing"] and verdicts["typo"]["error"], verdicts
    assert "TYPE_MISMATCH" in verdicts["typo"]["message"]


def test_pruning_never_changes_an_answer_on_trino(trino_env, data_dir: Path, tmp_path: Path) -> None:
    """Trino prunes partitions itself: the same generated conditions as on DuckDB (in Trino's
    syntax: typed literals, a zoned TIMESTAMP literal) give the same rows in WHERE as in the select
    list, where nothing can be pruned. Few examples (20, ~40 s): each is two Trino queries."""
    from hypothesis import given, settings

    from loglake.config import load_config
    from tests.catalog.time_conditions import conditions, pruned_sql, unpruned_sql, write_log

    lines = write_log(tmp_path / "midnights.log")
    for args in (["write", str(tmp_path / "midnights.log")], ["rollover"]):
        proc = run_cli(args, data_dir, **trino_env)
        assert proc.returncode == 0, proc.stderr
    (tmp_path / "e.toml").write_text("")
    catalog = load_catalog(load_config(tmp_path / "e.toml", environ=trino_env))
    assert catalog.query("SELECT count(*) FROM access_log").rows == [(lines,)]

    @settings(max_examples=min(EXAMPLES, 20), derandomize=True, deadline=None)
    @given(conditions("trino"))
    def check(cond: str) -> None:
        assert catalog.query(pruned_sql(cond)).rows == catalog.query(unpruned_sql(cond)).rows, cond

    try:
        check()
    finally:
        catalog.close()


def test_trino_compares_zoned_literals_in_utc_whatever_the_client_zone(
    trino_env, data_dir: Path, tmp_path: Path
) -> None:
    """`ts` holds UTC; the client's own zone (the trino client sends it by default) must not shift it."""
    from tests.catalog.time_conditions import write_log

    write_log(tmp_path / "midnights.log")
    for args in (["write", str(tmp_path / "midnights.log")], ["rollover"]):
        assert run_cli(args, data_dir, **trino_env).returncode == 0
    sql = "SELECT count(*) AS n FROM access_log WHERE ts >= TIMESTAMP '2026-01-03 00:00:00 UTC'"
    for zone in ("UTC", "Asia/Tokyo", "America/New_York"):
        out = run_cli(["query", sql, "--format", "csv"], data_dir, TZ=zone, **trino_env)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "n\n8\n", (zone, out.stdout)  # the eight rows of 2026-01-03, UTC


def test_three_hosts_compacting_one_s3_lake_at_once_merge_each_hour_once(
    trino_config: Config, trino_env: dict[str, str], tmp_path: Path
) -> None:
    """Three hosts (their own data dirs, one SeaweedFS lake, one Trino) run `compact` at the same
    moment: the S3 lease (`If-None-Match`/`If-Match`) lets one merge each hour; the others skip it,
    and nobody's re-registration collides in the metastore."""
    import re
    import subprocess
    import sys

    from tests.conftest import cli_env

    lines = _one_day_in_batches(trino_config, tmp_path, 4)
    cat = load_catalog(trino_config)
    check = 'SELECT count(*), count(DISTINCT path), count(DISTINCT "$path") FROM access_log'
    rows, paths, _ = cat.query(check).rows[0]
    assert rows == len(lines)
    shared = {k: v for k, v in trino_env.items() if k not in ("LOGLAKE_DATA_DIR", "LOGLAKE_HOST_ID")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "loglake", "compact"],
            env=cli_env(tmp_path / f"host-{h}", LOGLAKE_HOST_ID=h, **shared),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for h in ("a", "b", "c")
    ]
    outs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    merged = [sum(int(n) for n in re.findall(r"compact: (\d+) partition\(s\) merged", e)) for e in outs]
    assert sum(merged) == 24, (merged, outs)  # each hour of the day merged by exactly one host
    assert cat.query(check).rows[0] == (rows, paths, 24)


def _log(path: Path, lines: int, hour: int, start: int = 0) -> Path:
    """`lines` requests in one hour of 2026-03-01, each with a request_time field (nginx `$request_time`)."""
    path.write_text(
        "".join(
            f'192.0.2.{i % 200} - - [01/Mar/2026:{hour:02d}:{i % 60:02d}:00 +0000] "GET /p{start + i} HTTP/1.1" '
            f'200 {i} "-" "t" 0.{i % 10}\n'
            for i in range(lines)
        )
    )
    return path


def test_a_column_added_to_the_config_is_added_on_trino(trino_env, data_dir: Path, tmp_path: Path) -> None:
    """Old rows (old files, partitions registered before the column existed) read it as NULL; a
    column the table already holds with another type is refused in one line, exit 2."""
    base = ["ts", "client_ip", "method", "path", "protocol", "status", "bytes", "referer", "user_agent"]
    nginx = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"'
    fmt = f'format = "nginx"\nlog_format = \'{nginx} "$http_user_agent" $request_time\'\n'
    conf = tmp_path / "loglake.toml"

    def configure(columns: list[str]) -> None:
        listed = ", ".join(f'"{c}"' for c in columns)
        conf.write_text(f"[writer]\n{fmt}\n[tables.access_log]\ncolumns = [{listed}]\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--config", str(conf)], data_dir, **trino_env)

    configure(base)
    for args in (["write", str(_log(tmp_path / "a.log", 50, 8))], ["rollover"]):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
    configure([*base, "request_time"])
    for args in (["write", str(_log(tmp_path / "b.log", 30, 9, 50))], ["rollover"]):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
    sql = "select hour, count(*) as n, count(request_time) as timed from access_log group by hour order by hour"
    proc = cli("query", sql, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hour,n,timed\n8,50,0\n9,30,30\n"
    # a column the table already holds with another type: refused, nothing registered
    from loglake.config import load_config

    cat = load_catalog(load_config(conf, environ=trino_env))
    cat.query('ALTER TABLE access_log ADD COLUMN "username" bigint')
    configure([*base, "request_time", "username"])
    for args in (["write", str(_log(tmp_path / "c.log", 10, 10, 80))], ["rollover"]):
        proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "column username as bigint, but loglake writes it as varchar" in proc.stderr
    assert cat.query("SELECT count(*) FROM access_log").rows[0][0] == 80
    cat.close()
