"""Catalogs register partitions so SQL engines see new Parquet: DuckDB (embedded) or Trino (Hive).

`load_catalog` dispatches on `catalog.type`; each backend is one loader in `_LOADERS`, imported on
first use so a missing optional driver fails with the install command (the pyiceberg pattern).
"""

from __future__ import annotations

from collections.abc import Callable

from loglake.catalog.base import Catalog, Partition, QueryResult
from loglake.config import Config
from loglake.errors import NotInstalledError, UsageError


def _load_duckdb(cfg: Config) -> Catalog:
    from loglake.catalog.duckdb import DuckDBCatalog

    return DuckDBCatalog.from_config(cfg)


def _load_trino(cfg: Config) -> Catalog:
    try:
        from loglake.catalog.trino import TrinoCatalog
    except ImportError as e:  # pragma: no cover - trino is a base dependency today
        raise NotInstalledError("the Trino catalog needs the trino client: pip install trino") from e
    return TrinoCatalog.from_config(cfg)


_LOADERS: dict[str, Callable[[Config], Catalog]] = {"duckdb": _load_duckdb, "trino": _load_trino}


def load_catalog(cfg: Config, engine: str | None = None) -> Catalog:
    """The configured catalog, or the one `engine` names (e.g. `loglake query --engine duckdb`)."""
    kind = engine or cfg.catalog.type
    if kind not in _LOADERS:
        raise UsageError(f"unknown engine {kind!r}; known: {', '.join(_LOADERS)}")
    return _LOADERS[kind](cfg)


__all__ = ["Catalog", "Partition", "QueryResult", "load_catalog"]
