"""CSV segment -> Parquet files, one per (dt, hour) of the rows' own event time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loglake.catalog.base import Partition
from loglake.errors import SegmentError
from loglake.schema import FIELD_TYPES
from loglake.storage import Lake

_UTC = pa.timestamp("us", tz="UTC")


def read_segment(path: str) -> pa.Table:
    """Read a segment with the types its header's columns have; any damage is a SegmentError.

    Unquoted empty fields are nulls and quoted empty strings stay empty strings, which is how the
    writer distinguishes them (RFC 4180 quoting from Arrow's CSV writer).
    """
    with open(path, "rb") as f:
        header = f.readline()
    try:
        columns = pacsv.read_csv(pa.BufferReader(header)).column_names
    except pa.ArrowInvalid as e:
        raise SegmentError(f"{path}: unreadable header: {e}") from e
    unknown = [c for c in columns if c not in FIELD_TYPES]
    if unknown or not columns:
        raise SegmentError(f"{path}: unknown columns {unknown} in header")
    if "ts" not in columns:
        raise SegmentError(f"{path}: no ts column; rows cannot be partitioned by time")
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=8 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                # Segments hold `...Z` times; parse them as UTC, then drop the zone from the type.
                column_types={c: _UTC if c == "ts" else FIELD_TYPES[c] for c in columns},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
        raise SegmentError(f"{path}: {e}") from e
    if table["ts"].null_count:
        raise SegmentError(f"{path}: {table['ts'].null_count} rows without a time")
    ts = table.schema.get_field_index("ts")
    return table.set_column(ts, "ts", pc.cast(table["ts"], FIELD_TYPES["ts"]))


@dataclass(frozen=True)
class PartitionFile:
    partition: Partition
    path: str
    rows: int
    bytes: int


def split_by_hour(table: pa.Table) -> list[tuple[Partition, pa.Table]]:
    """Rows grouped by the UTC hour of their own `ts` (a segment across midnight gives two days).

    Logs arrive in time order, so each hour is usually one contiguous run of rows: zero-copy slices.
    Otherwise one stable sort by hour makes them contiguous (a single `take`, not one filter per hour).
    """
    hours = pc.divide(pc.cast(table["ts"], pa.int64()), 3_600_000_000).combine_chunks()
    n = len(hours)
    if n == 0:
        return []
    if n > 1 and not pc.all(pc.greater_equal(hours.slice(1), hours.slice(0, n - 1))).as_py():
        order = pc.sort_indices(hours)
        table, hours = table.take(order), hours.take(order)
    starts = [0, *(i + 1 for i in pc.indices_nonzero(pc.not_equal(hours.slice(1), hours.slice(0, n - 1))).to_pylist())]
    out = []
    for start, end in zip(starts, [*starts[1:], n], strict=True):
        part = table.slice(start, end - start)
        first = part["ts"][0].as_py()
        out.append((Partition(first.strftime("%Y-%m-%d"), first.hour), part))
    return out


#: Where a partition's file goes: called with the partition, the file name and its bytes; writes
#: them and returns the path, or None when that file's rows are already in the lake.
Place = Callable[[Partition, str, bytes], str | None]


def write_partitions(
    lake: Lake,
    table_name: str,
    segment_id: str,
    table: pa.Table,
    compression: str,
    row_group_size: int,
    metadata: dict[str, str] | None = None,
    place: Place | None = None,
) -> list[PartitionFile]:
    """Write one Parquet file per partition, named after the segment so a rerun overwrites it."""
    files = []
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    for partition, rows in split_by_hour(table):
        sink = pa.BufferOutputStream()
        pq.write_table(
            rows,
            sink,
            compression=None if compression == "none" else compression,
            row_group_size=row_group_size,
            coerce_timestamps="us",
        )
        data = sink.getvalue().to_pybytes()
        name = f"{segment_id}.parquet"
        if place is None:
            path: str | None = lake.path(table_name, partition.path, name)
            lake.write_atomic(path, data)
        else:
            path = place(partition, name, data)
        files.append(PartitionFile(partition, path or "", rows.num_rows, len(data) if path else 0))
    return files
