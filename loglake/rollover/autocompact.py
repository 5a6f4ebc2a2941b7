"""Compaction inside `rollover --watch`: every `compact_interval`, the closed hours that rollover
touched (and those still holding files in their grace period) are compacted.

Only partitions this process saw change are visited, so a pass costs the same after a year of
history as after a day; `loglake compact` is the full sweep.
"""

from __future__ import annotations

import time

from loglake.catalog.base import Catalog, Partition
from loglake.config import Config
from loglake.rollover.compact import CompactReport, closed_partitions, compact_partition, read_record
from loglake.storage import open_lake

_SEED_SECONDS = 48 * 3600  # at start, hours that ended in the last two days may still need a merge


class AutoCompactor:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.interval = cfg.rollover.compact_interval
        self.next_at = time.monotonic() + self.interval
        self.watching: set[tuple[str, Partition]] = set()
        self.seeded = False

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def note(self, partitions: set[tuple[str, str, int]]) -> None:
        self.watching.update((t, Partition(dt, hour)) for t, dt, hour in partitions)

    def _seed(self, catalog: Catalog) -> None:
        self.seeded = True
        known = set(catalog.tables())
        for t in self.cfg.tables:
            if t.name in known:
                recent = closed_partitions(catalog, t.name, 0.0)
                cutoff = time.time() - _SEED_SECONDS
                self.watching.update((t.name, p) for p in recent if p.end >= cutoff)

    def maybe_run(self, catalog: Catalog) -> CompactReport | None:
        """Compact what is due, if the interval has passed; None when it has not."""
        if not self.enabled or time.monotonic() < self.next_at:
            return None
        self.next_at = time.monotonic() + self.interval
        if not self.seeded:
            self._seed(catalog)
        lake = open_lake(self.cfg)
        report = CompactReport()
        started = time.monotonic()
        now = time.time()
        purge = catalog.views_current()
        for table, p in sorted(self.watching):
            if p.end + self.cfg.rollover.compact_older_than > now:
                continue  # still open: rollover is writing it
            compact_partition(self.cfg, lake, catalog, table, p, report, purge)
            record = read_record(lake, table, p)
            if not record or not record.get("retired"):
                self.watching.discard((table, p))  # merged and nothing left to delete
        report.seconds = time.monotonic() - started
        return report


__all__ = ["AutoCompactor"]
