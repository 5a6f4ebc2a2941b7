"""Prometheus metrics: `GET /metrics` on `loglake serve`, and `--metrics-port` on `write --follow`
and `rollover --watch` (bound to 127.0.0.1 unless told otherwise: metrics name files and tables).

Counters are fed from sealed manifests, so they count what is durable, like `loglake status`.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, start_http_server

LINES = Counter("loglake_lines_read", "Source lines in sealed batches")
ROWS = Counter("loglake_rows_written", "Rows written to the spool, per table", ["table"])
FILTERED = Counter("loglake_rows_filtered", "Rows a table's filter excluded", ["table"])
DEAD = Counter("loglake_dead_lettered", "Lines dead-lettered, per reason", ["reason"])
BATCHES = Counter("loglake_batches_sealed", "Batches sealed (committed)")
BYTES = Counter("loglake_bytes_read", "Source bytes read")
BACKOFFS = Counter("loglake_backoffs", "Times the disk refused a write and the writer backed off")
REQUESTS = Counter("loglake_http_requests", "HTTP ingest requests, per status code", ["code"])
PENDING = Gauge("loglake_segments_pending", "Closed segments waiting for rollover")
LAG = Gauge("loglake_rollover_lag_seconds", "Age of the oldest closed segment waiting for rollover")
LAST_ROLLOVER = Gauge("loglake_last_rollover_timestamp_seconds", "When the last rollover pass succeeded")
SEGMENTS = Counter("loglake_segments_converted", "Segments converted to Parquet")


def observe_manifest(m: dict[str, Any]) -> None:
    LINES.inc(m["lines_read"])
    BATCHES.inc()
    for t, n in m["rows"].items():
        ROWS.labels(t).inc(n)
    for t, n in m.get("filtered", {}).items():
        FILTERED.labels(t).inc(n)
    for reason, n in m.get("dead_letter_reasons", {}).items():
        DEAD.labels(reason).inc(n)


def observe_rollover(converted: int, pending: list[Any]) -> None:
    """After a rollover pass: what it did and what waits (oldest first, by modification time)."""
    SEGMENTS.inc(converted)
    PENDING.set(len(pending))
    ages = []
    for seg in pending:
        try:
            ages.append(time.time() - seg.path.stat().st_mtime)
        except OSError:
            continue
    LAG.set(max(ages, default=0.0))
    LAST_ROLLOVER.set(time.time())


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Expose the default registry on http://addr:port/metrics (a daemon thread)."""
    start_http_server(port, addr=addr)
