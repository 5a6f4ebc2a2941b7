"""Trino's Hive connector as the catalog: an external table per loglake table, partitions
registered with `system.register_partition`.

Credentials travel only over https (Trino refuses basic/JWT on http) and come from an environment
variable or a file named in the config, never from the config value or argv. Identifiers are
validated (`[a-z][a-z0-9_]*`) and quoted; partition values are validated before they become literals.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from loglake.storage import Lake

from loglake.catalog.base import Partition, QueryResult, check_column_types, table_name
from loglake.config import Config, TrinoConfig
from loglake.errors import CatalogBusyError, CatalogError, ConfigError, NotInstalledError, QueryError
from loglake.schema import quote_identifier, quote_literal, sql_columns

try:
    import trino
    from trino.exceptions import TrinoExternalError, TrinoQueryError, TrinoUserError
except ImportError as e:  # pragma: no cover
    raise NotInstalledError("the Trino catalog needs the trino client: pip install trino") from e


#: Trino errors that mean "try again shortly": a coordinator still starting, a worker not yet seen,
#: or a partition re-registered by a compaction while the query was reading it.
_TRANSIENT = {
    "NO_NODES_AVAILABLE",
    "SERVER_STARTING_UP",
    "SERVER_SHUTTING_DOWN",
    "TOO_MANY_REQUESTS_FAILED",
    "HIVE_PARTITION_DROPPED_DURING_QUERY",
}


def _secret(env_name: str, file_name: str, what: str) -> str:
    """A secret from a file (preferred: not in the process environment) or an environment variable."""
    if file_name:
        try:
            value = Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError([f"catalog.trino: cannot read the {what} file {file_name}: {e.strerror}"]) from e
        if value:
            return value
    value = os.environ.get(env_name, "")
    if not value:
        raise ConfigError([f"catalog.trino: no {what}: set ${env_name} or catalog.trino.{what}_file"])
    return value


class _PinnedVerifySession(requests.Session):
    """A session whose `verify` wins over REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE.

    Plain requests lets those variables replace `Session.verify` (psf/requests#3829), so a
    configured `ca_bundle` would silently be ignored on machines that set them, and the self-signed
    certificate of a private Trino would fail verification. Proxies from the environment still apply.
    """

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and self.verify is not True:
            settings["verify"] = self.verify
        return settings


def _auth(tc: TrinoConfig) -> Any:
    if tc.auth == "basic":
        return trino.auth.BasicAuthentication(tc.user, _secret(tc.password_env, tc.password_file, "password"))
    if tc.auth == "jwt":
        return trino.auth.JWTAuthentication(_secret(tc.jwt_env, tc.jwt_file, "jwt"))
    return None


class TrinoCatalog:
    """Registers partitions in Trino's Hive connector and runs queries on Trino."""

    engine = "trino"

    def __init__(self, tc: TrinoConfig, location_root: str, lake_url: str = "") -> None:
        self.tc = tc
        self.lake_url = (lake_url or location_root).rstrip("/")
        self.catalog = quote_identifier(tc.catalog)
        self.schema = quote_identifier(tc.schema)
        self.location_root = location_root.rstrip("/")
        self._conn: Any = None
        self.retry_seconds = 30.0

    @classmethod
    def from_config(cls, cfg: Config) -> TrinoCatalog:
        return cls(cfg.catalog.trino, cfg.catalog.trino.location or cfg.lake_url, cfg.lake_url)

    # ---- connection -----------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._conn is None:
            tc = self.tc
            session = _PinnedVerifySession()
            session.verify = tc.ca_bundle or True
            self._conn = trino.dbapi.connect(
                host=tc.host,
                port=tc.port,
                user=tc.user,
                http_scheme=tc.http_scheme,
                auth=_auth(tc),
                http_session=session,
                catalog=tc.catalog,
                schema=tc.schema,
                request_timeout=tc.request_timeout,
                source="loglake",
                timezone="UTC",  # `ts` is UTC: a zoned literal compares to it as UTC, as on DuckDB
            )
        return self._conn

    def _run(self, sql: str) -> QueryResult:
        """Run one statement; transient failures (a coordinator that is starting or has not yet
        seen its workers) are retried with backoff for up to `retry_seconds`."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.25
        while True:
            try:
                return self._run_once(sql)
            except CatalogBusyError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 4.0)

    def _run_once(self, sql: str) -> QueryResult:
        try:
            cur = self._connect().cursor()
            cur.execute(sql)
            rows = cur.fetchall()
            columns = [d[0] for d in cur.description] if cur.description else []
            return QueryResult(columns, [tuple(r) for r in rows])
        except TrinoUserError as e:
            raise QueryError(f"trino: {e.error_name}: {e.message}") from e
        except (TrinoExternalError, TrinoQueryError) as e:
            if e.error_name in _TRANSIENT:
                raise CatalogBusyError(f"trino: {e.error_name}: {e.message}") from e
            raise CatalogError(f"trino: {e.error_name}: {e.message}") from e
        except trino.exceptions.TrinoConnectionError as e:
            text = str(e)
            if "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text:
                raise CatalogError(
                    f"trino's TLS certificate is not trusted ({text[-160:]}); set catalog.trino.ca_bundle to "
                    "the CA that signed it"
                ) from e
            raise CatalogBusyError(f"cannot reach trino: {text[:300]}") from e
        except trino.exceptions.HttpError as e:
            text = str(e)
            if "401" in text or "403" in text:
                raise CatalogError(f"trino refused the credentials: {text[:200]}") from e
            raise CatalogBusyError(f"trino: {text[:300]}") from e
        except OSError as e:  # connection refused, TLS failures (requests wraps them as OSError)
            raise CatalogBusyError(
                f"cannot reach trino at {self.tc.http_scheme}://{self.tc.host}:{self.tc.port}: {e}"
            ) from e

    def _qualified(self, table: str) -> str:
        return f"{self.catalog}.{self.schema}.{quote_identifier(table_name(table))}"

    # ---- Catalog protocol -----------------------------------------------------------------
    def ensure_table(self, table: str, columns: Sequence[str], location: str) -> None:
        """Create the table, or add the columns the config gained since it was created.

        Old files and partitions read a new column as NULL (the Hive connector matches Parquet
        columns by name, `hive.parquet.use-column-names`). A column whose type differs is refused:
        Trino would fail every query of the files written before."""
        name = table_name(table)
        self._create(f"CREATE SCHEMA IF NOT EXISTS {self.catalog}.{self.schema}")
        wanted = sql_columns(list(columns), "trino")
        cols = ", ".join(f"{quote_identifier(c)} {t}" for c, t in wanted)
        self._create(
            f"CREATE TABLE IF NOT EXISTS {self._qualified(name)} ({cols}, dt date, hour integer) WITH ("
            f"format = 'PARQUET', external_location = {quote_literal(location)}, "
            f"partitioned_by = ARRAY['dt', 'hour'])"
        )
        have = dict(
            self._run(
                f"SELECT column_name, data_type FROM {self.catalog}.information_schema.columns "
                f"WHERE table_schema = {quote_literal(self.tc.schema)} AND table_name = {quote_literal(name)}"
            ).rows
        )
        check_column_types(name, have, wanted, "trino")
        for column, sql_type in wanted:
            if column not in have:
                add = f"ADD COLUMN IF NOT EXISTS {quote_identifier(column)} {sql_type}"
                self._create(f"ALTER TABLE {self._qualified(name)} {add}")

    def _create(self, sql: str) -> None:
        """DDL with IF NOT EXISTS, which is not atomic in the Hive metastore: hosts of a fleet starting
        together race between its check and its create, and the loser's ALREADY_EXISTS is success."""
        try:
            self._run(sql)
        except (QueryError, CatalogError) as e:
            if "ALREADY_EXISTS" not in str(e) and "already exists" not in str(e).lower():
                raise

    def list_partitions(self, table: str) -> list[Partition]:
        name = table_name(table)
        try:
            rows = self._run(
                f"SELECT CAST(dt AS varchar), hour FROM {self.catalog}.{self.schema}."
                f'"{name}$partitions" ORDER BY 1, 2'  # name is validated; `$partitions` is Trino's suffix
            ).rows
        except QueryError as e:
            if "TABLE_NOT_FOUND" in str(e):
                return []
            raise
        return [Partition(dt, int(hour)) for dt, hour in rows]

    def register_partitions(self, table: str, partitions: Sequence[Partition], location: str = "") -> int:
        name = table_name(table)
        base = (location or f"{self.location_root}/{name}").rstrip("/")
        existing = set(self.list_partitions(name))
        added = 0
        for p in partitions:
            p = Partition.parse(p.dt, p.hour)
            if p in existing:
                continue
            sql = (
                f"CALL {self.catalog}.system.register_partition("
                f"schema_name => {quote_literal(self.tc.schema)}, table_name => {quote_literal(name)}, "
                f"partition_columns => ARRAY['dt', 'hour'], "
                f"partition_values => ARRAY[{quote_literal(p.dt)}, {quote_literal(f'{p.hour:02d}')}], "
                f"location => {quote_literal(f'{base}/{p.path}')})"
            )
            added += self._register(name, p, sql)
        return added

    def _register(self, name: str, p: Partition, sql: str, attempts: int = 5) -> int:
        """1 if this call registered `p`, 0 if a concurrent rollover (another host of a fleet) did.

        The loser of that race gets ALREADY_EXISTS, or, from the file metastore, which writes the
        partition's schema file without a lock, `HIVE_METASTORE_ERROR: Could not write partition
        schema`: then `p` is either registered by the winner or is tried again."""
        for attempt in range(attempts):
            try:
                self._run(sql)
                return 1
            except (QueryError, CatalogError) as e:
                text = str(e)
                if "ALREADY_EXISTS" in text or "already exists" in text.lower():
                    return 0
                if "HIVE_METASTORE_ERROR" not in text or attempt == attempts - 1:
                    raise
                if p in set(self.list_partitions(name)):
                    return 0
                time.sleep(0.2 * (attempt + 1))
        return 0

    def set_location(self, table: str, partition: Partition, location: str) -> None:
        """Re-register a partition at another folder. Trino has no atomic location change
        (trinodb/trino#3501), so this is unregister + register: a query planned between the two
        calls misses the partition. Safe to repeat (a compaction rerun finishes it)."""
        name = table_name(table)
        p = Partition.parse(partition.dt, partition.hour)
        values = f"ARRAY[{quote_literal(p.dt)}, {quote_literal(f'{p.hour:02d}')}]"
        args = f"schema_name => {quote_literal(self.tc.schema)}, table_name => {quote_literal(name)}, "
        args += f"partition_columns => ARRAY['dt', 'hour'], partition_values => {values}"
        if location.startswith(self.lake_url + "/"):  # the lake's URL as Trino sees it
            location = self.location_root + location[len(self.lake_url) :]
        try:
            self._run(f"CALL {self.catalog}.system.unregister_partition({args})")
        except QueryError as e:
            if "NOT_FOUND" not in str(e) and "does not exist" not in str(e):
                raise  # not registered (a rerun after the unregister) is fine
        self._run(f"CALL {self.catalog}.system.register_partition({args}, location => {quote_literal(location)})")

    def views_current(self) -> bool:
        """Trino reads partition locations from its metastore: nothing to catch up."""
        return True

    def drop_partition(self, table: str, partition: Partition) -> bool:
        name = table_name(table)
        p = Partition.parse(partition.dt, partition.hour)
        if p not in set(self.list_partitions(name)):
            return False
        self._run(
            f"CALL {self.catalog}.system.unregister_partition("
            f"schema_name => {quote_literal(self.tc.schema)}, table_name => {quote_literal(name)}, "
            f"partition_columns => ARRAY['dt', 'hour'], "
            f"partition_values => ARRAY[{quote_literal(p.dt)}, {quote_literal(f'{p.hour:02d}')}])"
        )
        return True

    def repair(self, table: str, lake: Lake, columns: Sequence[str]) -> None:
        """Recovery: Trino's own `sync_partition_metadata` adds the partitions found on storage."""
        name = table_name(table)
        self.ensure_table(name, columns, lake.uri(name))
        self._run(
            f"CALL {self.catalog}.system.sync_partition_metadata({quote_literal(self.tc.schema)}, "
            f"{quote_literal(name)}, 'ADD')"
        )
        from loglake.rollover.compact import current_location

        for p in self.list_partitions(name):  # sync registers Hive folders; compacted ones move on
            location = current_location(lake, name, p)
            if location:
                self.set_location(name, p, location)

    def tables(self) -> list[str]:
        try:
            rows = self._run(f"SHOW TABLES FROM {self.catalog}.{self.schema}").rows
        except QueryError as e:
            if "SCHEMA_NOT_FOUND" in str(e):
                return []
            raise
        return sorted(r[0] for r in rows)

    def query(self, sql: str) -> QueryResult:
        return self._run(sql)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


__all__ = ["TrinoCatalog"]
