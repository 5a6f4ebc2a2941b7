"""One contract, every catalog: the same assertions run on DuckDB always and on Trino when its
servers are up (the `trino` marker; `catalog_backend` in tests/catalog/conftest.py builds each)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loglake.catalog import Catalog, Partition
from loglake.errors import CatalogError, QueryError

COLUMNS = ["ts", "username", "path", "status"]


def _put(backend, table: str, p: Partition, rows: int) -> None:
    """Write one Parquet file into partition `p` of `table` through the backend's lake."""
    t = pa.table(
        {
            "ts": pa.array([f"{p.dt}T{p.hour:02d}:00:{i % 60:02d}Z" for i in range(rows)]).cast(
                pa.timestamp("us", "UTC")
            ),
            "username": pa.array([f"u{i % 3}" for i in range(rows)]),
            "path": pa.array(["/x"] * rows),
            "status": pa.array([200] * rows, pa.int16()),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(t, sink)
    backend.lake.write_atomic(backend.lake.path(table, p.path, "seg.parquet"), sink.getvalue().to_pybytes())


def test_register_list_query_drop(catalog_backend) -> None:
    cat: Catalog = catalog_backend.catalog
    table = catalog_backend.table
    location = catalog_backend.lake.uri(table)
    cat.ensure_table(table, COLUMNS, location)
    cat.ensure_table(table, COLUMNS, location)  # idempotent
    assert cat.list_partitions(table) == []
    assert cat.query(f"SELECT count(*) FROM {table}").rows[0][0] == 0
    p1, p2 = Partition("2026-11-28", 23), Partition("2026-11-29", 0)
    _put(catalog_backend, table, p1, 5)
    _put(catalog_backend, table, p2, 7)
    assert cat.register_partitions(table, [p1, p2], location) == 2
    assert cat.register_partitions(table, [p1, p2], location) == 0  # registered twice: not an error
    assert cat.list_partitions(table) == [p1, p2]
    assert cat.query(f"SELECT count(*) FROM {table}").rows[0][0] == 12
    rows = cat.query(f"SELECT hour, count(DISTINCT username) FROM {table} GROUP BY hour ORDER BY hour").rows
    assert [tuple(r) for r in rows] == [(0, 3), (23, 3)]
    assert cat.drop_partition(table, p1) is True
    assert cat.drop_partition(table, p1) is False
    assert cat.list_partitions(table) == [p2]
    assert cat.query(f"SELECT count(*) FROM {table}").rows[0][0] == 7
    assert table in cat.tables()


def test_new_files_in_registered_partition_are_visible(catalog_backend) -> None:
    cat = catalog_backend.catalog
    table = catalog_backend.table
    location = catalog_backend.lake.uri(table)
    cat.ensure_table(table, COLUMNS, location)
    p = Partition("2026-11-29", 5)
    _put(catalog_backend, table, p, 3)
    cat.register_partitions(table, [p], location)
    t = pa.table(
        {
            "ts": pa.array(["2026-11-29T05:30:00Z"]).cast(pa.timestamp("us", "UTC")),
            "username": ["z"],
            "path": ["/y"],
            "status": pa.array([500], pa.int16()),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(t, sink)
    catalog_backend.lake.write_atomic(
        catalog_backend.lake.path(table, p.path, "seg2.parquet"), sink.getvalue().to_pybytes()
    )
    assert cat.query(f"SELECT count(*) FROM {table}").rows[0][0] == 4


def test_bad_identifiers_and_sql_errors(catalog_backend) -> None:
    cat = catalog_backend.catalog
    for bad in ("Access", "a;drop table x", "1abc", 'x"y', ""):
        with pytest.raises(ValueError, match="invalid table name"):
            cat.ensure_table(bad, COLUMNS, "/tmp/x")
    with pytest.raises(ValueError):
        Partition.parse("2026-13-01", 1)
    with pytest.raises(ValueError):
        Partition.parse("2026-11-29", 24)
    with pytest.raises((QueryError, CatalogError)):
        cat.query("SELECT * FROM no_such_table_here")
