"""Prometheus metrics: `GET /metrics` on `loglake serve`, and `--metrics-port` on `write --follow`
and `rollover --watch` (bound to 127.0.0.1 unless told otherwise: metrics name files and tables).

Counters are fed from sealed manifests, so they count what is durable, like `loglake status`.
prometheus_client is imported only once metrics are enabled (`enable`, `serve`): a `loglake
write` from cron should not pay for an exporter nobody scrapes.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

_m: Any = None


def enable() -> Any:
    """Create the metrics (once) and return them."""
    global _m
    if _m is None:
        from prometheus_client import Counter, Gauge

        _m = SimpleNamespace(
            LINES=Counter("loglake_lines_read", "Source lines in sealed batches"),
            ROWS=Counter("loglake_rows_written", "Rows written to the spool, per table", ["table"]),
            FILTERED=Counter("loglake_rows_filtered", "Rows a table's filter excluded", ["table"]),
            DEAD=Counter("loglake_dead_lettered", "Lines dead-lettered, per reason", ["reason"]),
            BATCHES=Counter("loglake_batches_sealed", "Batches sealed (committed)"),
            BYTES=Counter("loglake_bytes_read", "Source bytes read"),
            BACKOFFS=Counter("loglake_backoffs", "Times the disk refused a write and the writer backed off"),
            REQUESTS=Counter("loglake_http_requests", "HTTP ingest requests, per status code", ["code"]),
            PENDING=Gauge("loglake_segments_pending", "Closed segments waiting for rollover"),
            LAG=Gauge("loglake_rollover_lag_seconds", "Age of the oldest closed segment waiting for rollover"),
            LAST_ROLLOVER=Gauge("loglake_last_rollover_timestamp_seconds", "When the last rollover pass succeeded"),
            SEGMENTS=Counter("loglake_segments_converted", "Segments converted to Parquet"),
        )
    return _m


def bytes_read(n: int) -> None:
    if _m is not None:
        _m.BYTES.inc(n)


def backoff() -> None:
    if _m is not None:
        _m.BACKOFFS.inc()


def http_request(status: int) -> None:
    if _m is not None:
        _m.REQUESTS.labels(str(status)).inc()


def observe_manifest(m: dict[str, Any]) -> None:
    if _m is None:
        return
    _m.LINES.inc(m["lines_read"])
    _m.BATCHES.inc()
    for t, n in m["rows"].items():
        _m.ROWS.labels(t).inc(n)
    for t, n in m.get("filtered", {}).items():
        _m.FILTERED.labels(t).inc(n)
    for reason, n in m.get("dead_letter_reasons", {}).items():
        _m.DEAD.labels(reason).inc(n)


def observe_rollover(converted: int, pending: list[Any]) -> None:
    """After a rollover pass: what it did and what waits (oldest first, by modification time)."""
    if _m is None:
        return
    _m.SEGMENTS.inc(converted)
    _m.PENDING.set(len(pending))
    ages = []
    for seg in pending:
        try:
            ages.append(time.time() - seg.path.stat().st_mtime)
        except OSError:
            continue
    _m.LAG.set(max(ages, default=0.0))
    _m.LAST_ROLLOVER.set(time.time())


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Expose the default registry on http://addr:port/metrics (a daemon thread)."""
    from prometheus_client import start_http_server

    enable()
    start_http_server(port, addr=addr)
