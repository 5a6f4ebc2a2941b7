"""The catalog contract: a handful of methods every backend implements, checked by one test suite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from loglake.errors import SchemaConflictError
from loglake.schema import validate_identifier

if TYPE_CHECKING:
    from loglake.storage import Lake


@dataclass(frozen=True, order=True)
class Partition:
    """One Hive partition of a table: `dt=YYYY-MM-DD/hour=HH` under the table's location."""

    dt: str
    hour: int

    @property
    def path(self) -> str:
        return f"dt={self.dt}/hour={self.hour:02d}"

    @property
    def end(self) -> float:
        """When the hour closes (Unix seconds): rollover stops writing it, compaction may start."""
        import datetime as _dt

        return _dt.datetime.fromisoformat(self.dt).replace(tzinfo=_dt.UTC).timestamp() + (self.hour + 1) * 3600

    @classmethod
    def parse(cls, dt: str, hour: int | str) -> Partition:
        """Validate values that will be spliced into paths and SQL literals."""
        import datetime as _dt

        try:
            _dt.date.fromisoformat(dt)
            h = int(hour)
        except (TypeError, ValueError) as e:
            raise ValueError(f"invalid partition dt={dt!r} hour={hour!r}") from e
        if len(dt) != 10 or not 0 <= h <= 23:
            raise ValueError(f"invalid partition dt={dt!r} hour={hour!r}")
        return cls(dt, h)


@dataclass
class QueryResult:
    """Column names and rows, engine-neutral (Python values)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class Catalog(Protocol):
    """What rollover, status and the query runner need from a catalog.

    `register_partitions` is idempotent: registering an existing partition is success, because a
    rollover rerun after a crash repeats it.
    """

    engine: str

    def ensure_table(self, table: str, columns: Sequence[str], location: str) -> None: ...

    def register_partitions(self, table: str, partitions: Sequence[Partition], location: str) -> int: ...

    def list_partitions(self, table: str) -> list[Partition]: ...

    def drop_partition(self, table: str, partition: Partition) -> bool: ...

    def set_location(self, table: str, partition: Partition, location: str) -> None:
        """Read a registered partition from another folder (compaction's switch)."""
        ...

    def views_current(self) -> bool:
        """Whether every view a reader may use points at the current folders (compaction deletes
        replaced files only then)."""
        ...

    def repair(self, table: str, lake: Lake, columns: Sequence[str]) -> None:
        """Register every partition found on storage under the table (recovery)."""
        ...

    def tables(self) -> list[str]: ...

    def query(self, sql: str) -> QueryResult: ...

    def close(self) -> None: ...


def table_name(name: str) -> str:
    return validate_identifier(name, "table name")


def check_column_types(table: str, have: dict[str, str], wanted: Sequence[tuple[str, str]], engine: str) -> None:
    """Refuse a column the catalog already holds with another type than `wanted`: files written
    under either type would stop reading, so neither side may win silently."""
    for column, sql_type in wanted:
        found = have.get(column)
        if found is not None and found.lower() != sql_type.lower():
            raise SchemaConflictError(
                f"{engine}: table {table} has column {column} as {found}, but loglake writes it as {sql_type}; "
                f"drop or rename that column in the catalog (ALTER TABLE {table} DROP COLUMN {column}) and rerun"
            )
