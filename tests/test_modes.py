"""What loglake creates under the data dir is private (0600 files, 0700 folders) whatever the umask:
without transforms the Parquet files and the catalog hold raw user names and client IPs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from loglake.generate import write_log
from tests.conftest import cli_env

_CONFIG = """
[rollover]
compact_older_than = 0
compact_grace = 0
"""


def _cli(args: list[str], data_dir: Path, config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user with the common umask 022 runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "loglake", "--help" if not args else args[0], "-c", str(config), *args[1:]],
        capture_output=True,
        text=True,
        env=cli_env(data_dir, **env),
        umask=0o022,
        timeout=300,
    )
    assert done.returncode in (0, 3), (args, done.stderr)  # 3: the corrupt segment, parked on purpose
    return done


def _corrupt_segment(data_dir: Path) -> None:
    """A segment rollover cannot convert (its `.error` quotes the raw value)."""
    segment = next((data_dir / "spool" / "access_log").glob("*.csv"))
    bad = segment.with_name("20000101T000000000000Z-test-1-000001.csv")
    bad.write_text(segment.read_text().splitlines()[0] + '\n"not a time",,"1.2.3.4",,,,200,1,,\n')
    os.chmod(bad, 0o600)  # the test's own file: what loglake makes of it is what is checked


def _pipeline(tmp_path: Path, toml: str = "", **env: str) -> Path:
    """write (2 batches of the same hours) + a corrupt segment + rollover + compact + query + status,
    in a data dir that exists beforehand as 0755 (as `mkdir` under umask 022 leaves it)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.chmod(data_dir, 0o755)
    config = tmp_path / "loglake.toml"
    config.write_text(_CONFIG + toml, encoding="utf-8")
    for seed in (1, 2):
        _cli(["write", str(write_log(tmp_path / f"{seed}.log", 300, seed=seed))], data_dir, config, **env)
    _corrupt_segment(data_dir)
    _cli(["rollover"], data_dir, config, **env)
    assert "compact: 0 partition" not in _cli(["compact"], data_dir, config, **env).stderr
    _cli(["compact"], data_dir, config, **env)  # purges the replaced files
    query = _cli(["query", "SELECT count(*) FROM access_log"], data_dir, config, **env)
    assert "600" in query.stdout
    _cli(["status"], data_dir, config, **env)
    return data_dir


def _created(data_dir: Path) -> list[tuple[str, int, bool]]:
    out = []
    for root, dirs, files in os.walk(data_dir):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(root, name))
            out.append((os.path.relpath(os.path.join(root, name), data_dir), stat.S_IMODE(st.st_mode), name in dirs))
    return out


def test_everything_created_under_a_0755_data_dir_is_private(tmp_path: Path) -> None:
    data_dir = _pipeline(tmp_path)
    found = _created(data_dir)
    names = {p for p, _, _ in found}
    for expected in ("lake", "catalog.duckdb", "catalog.sqlite", "spool/_done", "spool/_failed", "state"):
        assert expected in names, expected
    assert any(p.endswith(".parquet") for p in names) and any(p.endswith(".error") for p in names)
    loose = [(p, oct(m)) for p, m, _ in found if m & 0o077]
    assert not loose, loose
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755  # not loglake's folder: left as it was


def test_group_readable_opens_the_lake_and_catalog_to_the_group_only(tmp_path: Path) -> None:
    data_dir = _pipeline(tmp_path, "[storage]\ngroup_readable = true\n")
    found = _created(data_dir)
    assert not [(p, oct(m)) for p, m, _ in found if m & 0o007]  # never for everyone
    for path, mode, is_dir in found:
        shared = path.startswith("lake") or path.startswith("catalog.")
        want = (0o750 if is_dir else 0o640) if shared else 0
        if shared and not path.endswith(".lock"):
            assert mode & 0o070 == want & 0o070, (path, oct(mode))
        elif not shared:
            assert mode & 0o070 == 0, (path, oct(mode))  # raw lines and state stay the owner's


def test_the_python_api_makes_the_same_modes_under_umask_022(make_config, tmp_path: Path) -> None:
    """No CLI, so no umask of loglake's own: the modes are explicit where loglake creates things."""
    from loglake.catalog import load_catalog
    from loglake.rollover import run_rollover
    from loglake.writer import Writer

    cfg = make_config(_CONFIG)
    cfg.data_dir.mkdir()
    os.chmod(cfg.data_dir, 0o755)
    old = os.umask(0o022)
    try:
        for seed in (1, 2):
            Writer(cfg).write_file(str(write_log(tmp_path / f"{seed}.log", 300, seed=seed)))
        _corrupt_segment(cfg.data_dir)
        assert run_rollover(cfg).failed  # parked in _failed/ with its .error beside it
        catalog = load_catalog(cfg)
        assert catalog.query("SELECT count(*) FROM access_log").rows[0][0] == 600
        catalog.close()
    finally:
        os.umask(old)
    found = _created(cfg.data_dir)
    assert any(p.endswith(".error") for p, _, _ in found)
    loose = [(p, oct(m)) for p, m, _ in found if m & 0o077]
    assert not loose, loose
