"""Tables: which parsed rows each table keeps (`where`, `require`) and which columns it stores."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from loglake.config import Config, TableConfig
from loglake.schema import FIELD_TYPES, GEO_COLUMNS
from loglake.writer.kernels import pc
from loglake.writer.transforms import TableTransforms


def stored_columns(cfg: Config) -> set[str]:
    """Every column any table stores, filters on or requires."""
    return {c for t in cfg.tables for c in (*t.columns, *t.where, *t.require)}


def needed_columns(cfg: Config) -> list[str]:
    """What the parser extracts: the stored columns, less those derived from the client IP (which
    it then needs)."""
    cols = stored_columns(cfg)
    if cols & set(GEO_COLUMNS):
        cols = (cols - set(GEO_COLUMNS)) | {"client_ip"}
    return [c for c in FIELD_TYPES if c in cols]


@dataclass(frozen=True)
class TableRouter:
    """Applies one table's filter, projection and PII transforms to a parse result."""

    table: TableConfig
    transforms: TableTransforms | None = None

    def route(self, parsed: pa.Table) -> tuple[pa.Table, int]:
        """(rows for this table, rows excluded by its filter)."""
        mask = None
        for col, want in self.table.where.items():
            values = want if isinstance(want, list) else [want]
            arr = parsed[col]
            if len(values) == 1:
                cond = pc.equal(arr, pa.scalar(values[0], arr.type))
            else:
                cond = pc.is_in(arr, value_set=pa.array(values, arr.type))
            mask = cond if mask is None else pc.and_kleene(mask, cond)
        for col in self.table.require:
            cond = pc.is_valid(parsed[col])
            mask = cond if mask is None else pc.and_kleene(mask, cond)
        rows = parsed
        if mask is not None:
            rows = parsed.filter(pc.fill_null(mask, False))
        excluded = parsed.num_rows - rows.num_rows
        rows = rows.select(list(self.table.columns))
        if self.transforms is not None:
            rows = self.transforms.apply(rows)
        return rows, excluded
