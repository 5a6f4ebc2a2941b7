"""Catalog backends for the contract suite: DuckDB always, Trino with the integration servers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from loglake.storage import Lake, open_lake


@dataclass
class Backend:
    catalog: Any
    lake: Lake
    table: str


def _duckdb(make_config) -> Backend:
    from loglake.catalog import load_catalog

    cfg = make_config()
    return Backend(load_catalog(cfg), open_lake(cfg), "contract_t")


def _trino(request) -> Backend:
    from loglake.catalog import load_catalog

    cfg = request.getfixturevalue("trino_config")
    table = f"contract_{uuid.uuid4().hex[:8]}"
    return Backend(load_catalog(cfg), open_lake(cfg), table)


@pytest.fixture(params=["duckdb", pytest.param("trino", marks=pytest.mark.trino)])
def catalog_backend(request, make_config):
    backend = _duckdb(make_config) if request.param == "duckdb" else _trino(request)
    yield backend
    backend.catalog.close()
