"""Arrow kernels for the writer, without importing `pyarrow.compute` until a rarer path needs it.

`import pyarrow.compute` costs 60-80 ms of CPU: it wraps each of Arrow's ~290 kernels in a Python
function, docs and signature included, which a short `loglake write` pays in full. Ordinary
traffic needs six kernels (take, cast, a byte slice, a substring search, a regex match, a string
join): they go through `call_function`, the function those wrappers call, from the extension
module that holds it (~8 ms to import). Array and table methods such as `.take()` and `.cast()`
import `pyarrow.compute` themselves, so the block path calls these instead. Everything else uses
`pc`, which imports the module on its first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

try:
    from pyarrow._compute import CastOptions, MatchSubstringOptions, SliceOptions, call_function
except ImportError:  # a pyarrow that moved them: the public names, at the import's cost
    from pyarrow.compute import CastOptions, MatchSubstringOptions, SliceOptions, call_function

if TYPE_CHECKING:
    import numpy as np
    import pyarrow.compute as pc
else:

    class _Compute:
        """`pyarrow.compute`, imported at the first attribute asked of it."""

        def __getattr__(self, name: str) -> Any:
            import pyarrow.compute

            return getattr(pyarrow.compute, name)

    pc = _Compute()


def from_numpy(values: np.ndarray) -> pa.Array:
    """`pa.array` of a 1-d integer numpy array, zero-copy. `pa.array` itself imports `numpy.ma`
    (~20 ms, once) on numpy input, to ask whether it is a masked array."""
    if values.dtype.kind not in "iu":  # a bool array's bytes are not Arrow's bits
        raise TypeError(f"from_numpy takes integers, not {values.dtype}")
    values = values if values.flags.c_contiguous else values.copy()
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def take(values: Any, indices: Any) -> Any:
    """`pc.take`: an array's, chunked array's or table's rows at `indices`."""
    return call_function("take", [values, indices])


def cast(values: Any, target: pa.DataType) -> Any:
    """`pc.cast`, safe (an unparsable value is an error, not a null)."""
    return call_function("cast", [values], CastOptions.safe(target))


def cast_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`Table.cast` to a schema with the same column names."""
    if table.schema.equals(schema):
        return table
    if table.schema.names != schema.names:
        raise ValueError(f"columns {table.schema.names} do not match {schema.names}")
    columns = [col if col.type == f.type else cast(col, f.type) for col, f in zip(table.columns, schema, strict=True)]
    return pa.table(columns, schema=schema)


def join(columns: list[Any], separator: str) -> Any:
    """`pc.binary_join_element_wise`: each row's values joined by `separator` (null if any is)."""
    return call_function("binary_join_element_wise", [*columns, pa.scalar(separator, pa.string())])


def byte_slice(values: Any, start: int, stop: int | None) -> Any:
    """`pc.binary_slice`: bytes `start:stop` of each binary value, as Python slices them."""
    return call_function("binary_slice", [values], SliceOptions(start, stop))


def find(values: Any, needle: str) -> Any:
    """`pc.find_substring`: where `needle` first occurs in each value (-1: nowhere)."""
    return call_function("find_substring", [values], MatchSubstringOptions(needle))


def matches(values: Any, pattern: str) -> Any:
    """`pc.match_substring_regex`: whether each value matches `pattern` (RE2) somewhere."""
    return call_function("match_substring_regex", [values], MatchSubstringOptions(pattern))
