"""A month of daily `dateext` rotations as logrotate does them, each day's files read by a cron
`loglake write access.log-*`: every line reaches the lake once and `state/` stops growing."""

from __future__ import annotations

import gzip
import os
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

from loglake.catalog import load_catalog
from loglake.config import Config
from loglake.rollover import run_rollover
from loglake.writer import Writer
from loglake.writer.ledger import prune_checkpoints

DAY = 86400
DAYS, PER_DAY = 30, 5

ROTATE = 14  # logrotate `rotate 14`


def _rotate(log: Path, day: datetime) -> None:
    """What logrotate does with `dateext`, `compress`, `delaycompress`, `create`, `rotate 14`, in
    its order: rename the log to its dated name, create a new empty one, gzip the one rotated the
    time before (gzip writes `X.gz` with X's mtime, then unlinks X), drop the oldest beyond 14."""
    dated = sorted(log.parent.glob(f"{log.name}-*"))
    os.rename(log, log.with_name(f"{log.name}-{day:%Y%m%d}"))
    os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for old in dated:
        if old.suffix != ".gz":
            with open(old, "rb") as src, gzip.open(f"{old}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            st = old.stat()
            os.utime(f"{old}.gz", (st.st_atime, st.st_mtime))
            old.unlink()
    for old in sorted(log.parent.glob(f"{log.name}-*"))[:-ROTATE]:
        old.unlink()


def _age(cfg: Config, since: float, fake_now: float) -> None:
    """The fake clock: state files written today (in real seconds) get today's (fake) mtime."""
    for sub in ("checkpoints", "paths"):
        for p in (cfg.state_dir / sub).glob("*.json"):
            if since <= p.stat().st_mtime <= time.time():  # not yet aged: a real time
                os.utime(p, (fake_now, fake_now))


def test_a_month_of_dateext_rotations_reads_every_line_once_with_bounded_state(cfg: Config, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    log.touch()
    start = time.time()
    counts: list[int] = []
    for day in range(DAYS):
        with open(log, "a") as f:
            for i in range(PER_DAY):
                f.write(f'10.0.0.1 - - [07/Dec/2026:10:00:00 +0000] "GET /d{day}/l{i} HTTP/1.1" 200 1 "-" "t"\n')
        _rotate(log, datetime(2026, 11, 1) + timedelta(days=day))
        since, fake_now = time.time() - 0.01, start + day * DAY
        writer = Writer(cfg)  # the cron job: every rotated file, old and compressed ones included
        for path in sorted(logs.glob("access.log-*")):
            writer.write_file(str(path))
        writer.close()
        assert writer.totals.lines_read == PER_DAY, (day, writer.totals.lines_read)
        _age(cfg, since, fake_now)
        prune_checkpoints(cfg, cfg.writer.state_retention, now=fake_now)
        counts.append(sum(1 for p in cfg.state_dir.rglob("*") if p.is_file()))  # locks included
    assert len(list(logs.glob("access.log-*.gz"))) == 13  # logrotate keeps 14: one not compressed yet
    run_rollover(cfg)
    total, distinct = load_catalog(cfg).query("SELECT count(*), count(DISTINCT path) FROM access_log").rows[0]
    assert (total, distinct) == (DAYS * PER_DAY, DAYS * PER_DAY)
    # bounded: a checkpoint per file on disk (14), the paths of the last 7 days' reads and of the
    # 13 compressed files, a few markers; the same count every day once the first rotations are gone
    assert len(set(counts[-10:])) == 1 and counts[-1] <= 14 + 8 + 13 + 3, counts
