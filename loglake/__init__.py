"""loglake: access logs to Hive-partitioned Parquet, registered in a SQL catalog, with no per-row inserts."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["LoglakeHandler"]


def __getattr__(name: str) -> Any:
    """`loglake.LoglakeHandler`, imported on first use (the CLI's start-up does not pay for it)."""
    if name == "LoglakeHandler":
        from loglake.ingest.handler import LoglakeHandler

        return LoglakeHandler
    raise AttributeError(f"module 'loglake' has no attribute {name!r}")
