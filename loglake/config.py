"""Typed, frozen configuration: embedded defaults, then `loglake.toml`, then `LOGLAKE_*` variables.

Unknown keys are errors and every problem is reported at once (like `vector validate`), so a typo
in a key never silently falls back to a default. Secrets are never config values: the config names
the environment variable or file that holds them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from loglake.durations import parse_duration
from loglake.errors import ConfigError
from loglake.schema import CLF_COLUMNS, DEFAULT_COLUMNS, FIELD_TYPES, GEO_COLUMNS, validate_identifier

FORMATS = ("combined", "common", "json", "regex", "nginx")
FSYNC_POLICIES = ("off", "on-seal", "interval")


@dataclass(frozen=True)
class WriterConfig:
    """How lines are read, parsed and spooled."""

    format: str = "combined"
    pattern: str = ""  # regex format: a Python pattern with named groups
    log_format: str = ""  # nginx format: an nginx `log_format` string
    json_fields: dict[str, str] = field(default_factory=dict)  # column -> JSON key (json format)
    time_format: str = ""  # strptime format for json/regex `ts`; empty = ISO 8601, epoch or CLF
    timezone: str = "UTC"  # IANA zone of json/regex times that carry no offset
    max_line_bytes: int = 65536
    segment_max_bytes: int = 128 * 1024 * 1024
    segment_max_age: float = 60.0
    fsync: str = "on-seal"
    fsync_interval: float = 1.0
    poll_interval: float = 0.25
    read_block_bytes: int = 4 * 1024 * 1024
    rotate_wait: float = 5.0  # a rotated file is finished once idle this long (and the new one has data)
    state_retention: float = 7 * 86400.0  # checkpoints of content on no disk are kept this long (s)


@dataclass(frozen=True)
class TableConfig:
    """One output table: which columns, which rows (equality filter) and which columns must be set;
    `transforms` protect personal data per column before anything reaches the spool."""

    name: str
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    where: dict[str, Any] = field(default_factory=dict)
    require: tuple[str, ...] = ()
    transforms: dict[str, Any] = field(default_factory=dict)  # column -> "hash" | {op = "redact", ...}
    retention: dict[str, str] = field(default_factory=dict)  # {lake = "400d"}: overrides [retention]


@dataclass(frozen=True)
class GeoConfig:
    """Location from the client IP: `country` from data shipped in the iptocc wheel; with a MaxMind
    or DB-IP `.mmdb` also city and region, and asn / as_org from an ASN database."""

    mmdb: str = ""  # a City (or Country) database
    asn_mmdb: str = ""  # an ASN database
    cache_size: int = 100_000  # distinct IPs remembered (web logs repeat addresses)


@dataclass(frozen=True)
class PiiConfig:
    """The key for `hash` and `encrypt` transforms: from an environment variable or a file only."""

    key_env: str = "LOGLAKE_PII_KEY"
    key_file: str = ""
    encrypt_dead_letters: bool = False  # dead letters keep raw lines: encrypt them with the key


@dataclass(frozen=True)
class RolloverConfig:
    """Segment to Parquet conversion."""

    retention: str = "done"  # "done": keep converted segments in spool/done/; "delete"
    compression: str = "zstd"
    row_group_size: int = 1_000_000
    watch_interval: float = 10.0
    workers: int = 2  # segments converted at once (Arrow releases the GIL); the machines have 2 cores
    compact_interval: float = 0.0  # rollover --watch compacts closed hours this often (s); 0 = never
    compact_older_than: float = 0.0  # an hour is compacted once it ended this many seconds ago
    compact_target_bytes: int = 128 * 1024 * 1024  # merged files are at least this big (or the whole hour)
    compact_grace: float = 600.0  # replaced files stay this long for queries that started before the switch
    compact_memory: str = "512MB"  # DuckDB's memory limit while merging (its sort spills beyond it)
    # a DuckDB session holding catalog.duckdb (stale views) delays deleting replaced files this long at most
    compact_view_wait: float = 3600.0
    compact_lease: float = 900.0  # a host compacting an hour holds it this long at most (a crash frees it then)


@dataclass(frozen=True)
class RetentionConfig:
    """How long each kind of data is kept ("" = forever), applied by `loglake expire` and hourly by
    `rollover --watch`: durations like 90d, since the end of a partition's hour or a file's mtime."""

    lake: str = ""  # partitions whose hour ended before now - this (per table: [tables.T.retention])
    done_segments: str = ""  # spool/_done/: converted CSV segments kept for replay
    dead_letters: str = ""  # dead-letter/*.jsonl


#: The shortest retentions accepted: a typo ("9m" for "9d") must not empty a lake.
RETENTION_MINIMUM = {"lake": 86400.0, "done_segments": 3600.0, "dead_letters": 3600.0}


@dataclass(frozen=True)
class StorageConfig:
    """Where Parquet goes: a local folder (default `<data_dir>/lake`) or `s3://bucket/prefix`."""

    url: str = ""
    endpoint_url: str = ""
    region: str = ""
    path_style: bool = True
    profile: str = ""
    sse: str = ""  # S3 server-side encryption: "" | "AES256" | "aws:kms"
    sse_kms_key_id: str = ""  # with sse = "aws:kms": the key id or ARN (not a secret)
    group_readable: bool = False  # local lake + catalog files 0640 in 0750 folders (else 0600/0700)


@dataclass(frozen=True)
class TrinoConfig:
    """Connection to a Trino coordinator; passwords and tokens come from env vars or files only."""

    host: str = "localhost"
    port: int = 8080
    http_scheme: str = "http"
    user: str = "loglake"
    catalog: str = "hive"
    schema: str = "loglake"
    auth: str = "none"  # none | basic | jwt
    password_env: str = "LOGLAKE_TRINO_PASSWORD"
    password_file: str = ""
    jwt_env: str = "LOGLAKE_TRINO_JWT"
    jwt_file: str = ""
    ca_bundle: str = ""
    location: str = ""  # the lake root as Trino sees it; default: storage.url
    request_timeout: float = 60.0


@dataclass(frozen=True)
class CatalogConfig:
    """Which catalog registers partitions."""

    type: str = "duckdb"
    path: str = ""  # duckdb database file; default `<data_dir>/catalog.duckdb`
    trino: TrinoConfig = field(default_factory=TrinoConfig)


@dataclass(frozen=True)
class AlertRule:
    """One alert: exactly one of `share_over`, `requests_below`, `count_over`, `stale_after` is set
    (>= 0). `where` is a SQL condition on the table's columns (Trino syntax, e.g. "status >= 500")."""

    name: str
    table: str = "access_log"
    where: str = ""
    window: str = "5m"
    share_over: float = -1.0  # share of the window's rows matching `where`, 0..1
    requests_below: int = -1  # rows (matching `where`, if given) in the window
    count_over: int = -1
    stale_after: float = -1.0  # seconds since the newest row visible to SQL
    min_requests: int = 10  # a share rule stays quiet below this many rows in the window


@dataclass(frozen=True)
class AlertingConfig:
    """Where `loglake alert --watch` says that a rule started or stopped firing."""

    interval: float = 15.0  # seconds between evaluations with --watch
    command: str = ""  # run with the event as JSON on stdin (split like a shell would; no shell)
    webhook_url: str = ""  # https (plain http only to localhost): the event is POSTed as JSON
    webhook_token_env: str = "LOGLAKE_ALERT_TOKEN"  # sent as `Authorization: Bearer <token>` when set
    webhook_token_file: str = ""
    ca_bundle: str = ""  # a private CA for the webhook's certificate
    timeout: float = 10.0


#: The rule every config has unless it defines its own `[alerts.stale]`: the pipeline is behind
#: (which is not the same as the site being down).
DEFAULT_STALE = AlertRule(name="stale", stale_after=120.0)


@dataclass(frozen=True)
class Config:
    """Everything loglake needs, passed down explicitly (never a global)."""

    data_dir: Path = Path("loglake-data")
    host_id: str = ""
    profile: str = ""  # "realtime" | "batch": defaults for freshness vs few large files (PROFILES)
    writer: WriterConfig = field(default_factory=WriterConfig)
    tables: tuple[TableConfig, ...] = (TableConfig(name="access_log"),)
    rollover: RolloverConfig = field(default_factory=RolloverConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    geoip: GeoConfig = field(default_factory=GeoConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    alerts: tuple[AlertRule, ...] = (DEFAULT_STALE,)
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    source: str = "<defaults>"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def dead_letter_dir(self) -> Path:
        return self.data_dir / "dead-letter"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def lake_url(self) -> str:
        return self.storage.url or str((self.data_dir / "lake").absolute())

    @property
    def catalog_path(self) -> Path:
        return Path(self.catalog.path) if self.catalog.path else self.data_dir / "catalog.duckdb"

    def table(self, name: str) -> TableConfig:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


#: What a profile sets; a key set explicitly (file or environment) wins over its profile.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # Seconds from request to SQL: a segment closes every 5 s, rollover looks every second, and
    # closed hours are merged every minute so 720 small files an hour do not stay.
    "realtime": {
        "writer": {"segment_max_age": 5.0, "poll_interval": 0.1},
        "rollover": {"watch_interval": 1.0, "compact_interval": 60.0, "compact_grace": 300.0},
    },
    # Minutes are fine (offline reports, ~20 min): ten-minute segments, hourly merges.
    "batch": {
        "writer": {"segment_max_age": 600.0},
        "rollover": {"watch_interval": 60.0, "compact_interval": 3600.0, "compact_older_than": 600.0},
    },
}


def _apply_profile(data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Fill in a profile's values beneath whatever the file and environment set."""
    name = data.get("profile", "")
    if not name:
        return data
    if not isinstance(name, str) or name not in PROFILES:
        problems.append(f"profile: {name!r} is not one of {', '.join(PROFILES)}")
        return data
    return _merge(PROFILES[name], data)


def effective(cfg: Config) -> dict[str, Any]:
    """The values a profile decides, as they came out (for check-config and status)."""
    keys = {
        section: sorted({k for prof in PROFILES.values() for k in prof.get(section, {})})
        for section in ("writer", "rollover")
    }
    return {
        "profile": cfg.profile or "default",
        **{f"{section}.{k}": getattr(getattr(cfg, section), k) for section, names in keys.items() for k in names},
    }


def _default_host_id() -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-").lower() or "host"


def _coerce(value: Any, typ: Any, where: str, problems: list[str]) -> Any:
    """Check a TOML/env value against a dataclass field type, converting env strings."""
    origin = get_origin(typ)
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    elif typ is Path:
        if isinstance(value, str):
            return Path(value)
    elif origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif origin is dict and isinstance(value, dict):
        return dict(value)
    problems.append(f"{where}: expected {getattr(typ, '__name__', str(typ))}, got {value!r}")
    return None


def _build(cls: type, data: dict[str, Any], where: str, problems: list[str], **fixed: Any) -> Any:
    """Build a frozen dataclass from a dict, recording unknown keys and type errors."""
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = dict(fixed)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names or key in fixed or key == "source":
            problems.append(f"{path}: unknown key")
            continue
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, dict):
                problems.append(f"{path}: expected a table")
                continue
            kwargs[key] = _build(typ, value, path, problems)
            continue
        coerced = _coerce(value, typ, path, problems)
        if coerced is not None:
            kwargs[key] = coerced
    return cls(**kwargs)


_TABLE_KEYS = ("columns", "where", "require", "transforms")


def _env_value(var: str, value: str, problems: list[str]) -> Any:
    """A dict-valued variable is JSON (`{"ts": "time"}`) or `key=value,key=value`."""
    text = value.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            problems.append(f"{var}: not a JSON object: {e.msg}")
            return {}
        return parsed
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, val = part.partition("=")
        if not sep:
            problems.append(f"{var}: expected key=value pairs or a JSON object, got {part!r}")
            continue
        out[key.strip()] = val.strip()
    return out


def _table_overrides(environ: dict[str, str], problems: list[str]) -> dict[str, dict[str, Any]]:
    """`LOGLAKE_TABLES_<NAME>_<KEY>` (KEY = COLUMNS, WHERE or REQUIRE; NAME lower-cased, and may
    hold underscores: the key is matched from the end)."""
    out: dict[str, dict[str, Any]] = {}
    for var, value in environ.items():
        if not var.startswith("LOGLAKE_TABLES_"):
            continue
        rest = var[len("LOGLAKE_TABLES_") :]
        key = next((k for k in _TABLE_KEYS if rest.endswith("_" + k.upper())), None)
        name = rest[: -len(key) - 1].lower() if key else ""
        if not key or not name:
            problems.append(f"{var}: expected LOGLAKE_TABLES_<NAME>_<{'|'.join(k.upper() for k in _TABLE_KEYS)}>")
            continue
        dict_valued = key in ("where", "transforms")
        out.setdefault(name, {})[key] = _env_value(var, value, problems) if dict_valued else value
    return out


def _env_overrides(environ: dict[str, str], problems: list[str]) -> dict[str, Any]:
    """Turn `LOGLAKE_SECTION_KEY` variables into nested dict entries, for known keys only."""
    out: dict[str, Any] = {}
    scalar_top = {"data_dir": "LOGLAKE_DATA_DIR", "host_id": "LOGLAKE_HOST_ID", "profile": "LOGLAKE_PROFILE"}
    for key, var in scalar_top.items():
        if var in environ:
            out[key] = environ[var]
    sections = {
        "writer": WriterConfig,
        "rollover": RolloverConfig,
        "retention": RetentionConfig,
        "storage": StorageConfig,
        "geoip": GeoConfig,
        "pii": PiiConfig,
        "alerting": AlertingConfig,
    }
    for section, cls in sections.items():
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            var = f"LOGLAKE_{section}_{f.name}".upper()
            if var in environ:
                value: Any = environ[var]
                if get_origin(hints[f.name]) is dict:
                    value = _env_value(var, value, problems)
                out.setdefault(section, {})[f.name] = value
    for f in dataclasses.fields(CatalogConfig):
        var = f"LOGLAKE_CATALOG_{f.name}".upper()
        if f.name != "trino" and var in environ:
            out.setdefault("catalog", {})[f.name] = environ[var]
    for f in dataclasses.fields(TrinoConfig):
        var = f"LOGLAKE_TRINO_{f.name}".upper()
        # The secret variables themselves are read at connect time, never copied into config.
        if var in environ and f.name not in ("password_env", "jwt_env"):
            out.setdefault("catalog", {}).setdefault("trino", {})[f.name] = environ[var]
    tables = _table_overrides(environ, problems)
    if tables:
        out["tables"] = tables
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict) and k not in ("json_fields", "where", "transforms"):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def find_config_file(explicit: str | Path | None, environ: dict[str, str]) -> Path | None:
    """`--config`, else `LOGLAKE_CONFIG`, else `./loglake.toml` if present, else none (defaults)."""
    if explicit:
        return Path(explicit)
    if environ.get("LOGLAKE_CONFIG"):
        return Path(environ["LOGLAKE_CONFIG"])
    local = Path("loglake.toml")
    return local if local.is_file() else None


def load_config(
    path: str | Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Load and validate the configuration; raise ConfigError listing every problem."""
    env = dict(os.environ if environ is None else environ)
    file = find_config_file(path, env)
    data: dict[str, Any] = {}
    problems: list[str] = []
    if file is not None and file.is_dir():
        raise ConfigError([f"{file}: is a directory, not a TOML file"])
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{file}: no such file"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError([f"{file}: not valid TOML: {e}"]) from e
    env_data = _env_overrides(env, problems)
    if "tables" in env_data and "tables" not in data:
        data["tables"] = {"access_log": {}}  # an env-defined table comes beside the default one
    data = _merge(data, env_data)
    if overrides:
        data = _merge(data, overrides)
    data = _apply_profile(data, problems)
    tables_data = data.pop("tables", None)
    alerts_data = data.pop("alerts", None)
    cfg: Config = _build(Config, data, "", problems)
    if tables_data is not None:
        cfg = dataclasses.replace(cfg, tables=_build_tables(tables_data, problems))
    if alerts_data is not None:
        cfg = dataclasses.replace(cfg, alerts=_build_alerts(alerts_data, problems))
    names = [t.name for t in cfg.tables]
    if names and DEFAULT_STALE.table not in names:  # the built-in `stale` watches a table that exists
        stale = dataclasses.replace(DEFAULT_STALE, table=names[0])
        cfg = dataclasses.replace(cfg, alerts=tuple(stale if r is DEFAULT_STALE else r for r in cfg.alerts))
    if cfg.writer.format == "common":  # the default columns, less the two the common format lacks
        fit = tuple(c for c in DEFAULT_COLUMNS if c in CLF_COLUMNS["common"])
        tables = tuple(dataclasses.replace(t, columns=fit) if t.columns == DEFAULT_COLUMNS else t for t in cfg.tables)
        cfg = dataclasses.replace(cfg, tables=tables)
    if not cfg.host_id:
        cfg = dataclasses.replace(cfg, host_id=_default_host_id())
    cfg = dataclasses.replace(cfg, source=str(file) if file else "<defaults>")
    problems.extend(validate(cfg))
    if problems:
        raise ConfigError([f"{cfg.source}: {p}" for p in problems])
    return cfg


def _build_tables(data: Any, problems: list[str]) -> tuple[TableConfig, ...]:
    if not isinstance(data, dict) or not data:
        problems.append("tables: expected one or more [tables.NAME] sections")
        return (TableConfig(name="access_log"),)
    out = []
    for name, spec in data.items():
        if not isinstance(spec, dict):
            problems.append(f"tables.{name}: expected a table")
            continue
        table = _build(TableConfig, spec, f"tables.{name}", problems, name=name)
        dropped = {
            c for c, t in table.transforms.items() if t == "drop" or (isinstance(t, dict) and t.get("op") == "drop")
        }
        if dropped:  # `drop`: the column is never written (the catalog's schema follows)
            table = dataclasses.replace(table, columns=tuple(c for c in table.columns if c not in dropped))
        out.append(table)
    return tuple(out)


def _build_alerts(data: Any, problems: list[str]) -> tuple[AlertRule, ...]:
    if not isinstance(data, dict):
        problems.append("alerts: expected [alerts.NAME] sections")
        return (DEFAULT_STALE,)
    rules = []
    for name, spec in data.items():
        if not isinstance(spec, dict):
            problems.append(f"alerts.{name}: expected a table")
            continue
        rules.append(_build(AlertRule, spec, f"alerts.{name}", problems, name=name))
    if not any(r.name == "stale" for r in rules):
        rules.append(DEFAULT_STALE)
    return tuple(rules)


def _retention_problem(where: str, text: str, kind: str) -> list[str]:
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        return [f"{where}: {e}"]
    if seconds < RETENTION_MINIMUM[kind]:
        return [f"{where}: {text!r} is shorter than the minimum of {RETENTION_MINIMUM[kind] / 3600:g} h"]
    return []


def validate(cfg: Config) -> list[str]:
    """Semantic checks that types alone cannot express; returns every problem."""
    p: list[str] = []
    for kind in RETENTION_MINIMUM:
        if getattr(cfg.retention, kind):
            p.extend(_retention_problem(f"retention.{kind}", getattr(cfg.retention, kind), kind))
    w = cfg.writer
    if w.format not in FORMATS:
        p.append(f"writer.format: {w.format!r} is not one of {', '.join(FORMATS)}")
    if w.format == "regex":
        if not w.pattern:
            p.append("writer.pattern: required when writer.format = 'regex'")
        else:
            try:
                rx = re.compile(w.pattern)
                unknown = set(rx.groupindex) - set(FIELD_TYPES)
                if unknown:
                    p.append(f"writer.pattern: unknown named groups {sorted(unknown)}")
            except re.error as e:
                p.append(f"writer.pattern: does not compile: {e}")
    if w.format == "nginx" and not w.log_format:
        p.append("writer.log_format: required when writer.format = 'nginx'")
    if w.format == "nginx" and w.log_format:
        from loglake.writer.parsers.nginx import nginx_pattern

        try:
            nginx_pattern(w.log_format)
        except ValueError as e:
            p.append(f"writer.log_format: {e}")
    for col in w.json_fields:
        if col not in FIELD_TYPES:
            p.append(f"writer.json_fields: unknown column {col!r}")
    if w.timezone != "UTC":
        try:
            zoneinfo.ZoneInfo(w.timezone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            p.append(f"writer.timezone: {w.timezone!r} is not an IANA time zone name (e.g. 'Europe/Berlin')")
    if w.fsync not in FSYNC_POLICIES:
        p.append(f"writer.fsync: {w.fsync!r} is not one of {', '.join(FSYNC_POLICIES)}")
    for name in ("max_line_bytes", "segment_max_bytes", "read_block_bytes"):
        if getattr(w, name) <= 0:
            p.append(f"writer.{name}: must be positive")
    for name in ("segment_max_age", "fsync_interval", "poll_interval"):
        if getattr(w, name) <= 0:
            p.append(f"writer.{name}: must be positive")
    if w.state_retention < 3600:
        p.append("writer.state_retention: must be at least 3600 seconds")
    if w.rotate_wait < 0:
        p.append("writer.rotate_wait: must not be negative")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", cfg.host_id):
        p.append(f"host_id: {cfg.host_id!r} must be lower-case letters, digits and '-'")
    seen: set[str] = set()
    for t in cfg.tables:
        try:
            validate_identifier(t.name, "table name")
        except ValueError as e:
            p.append(f"tables.{t.name}: {e}")
        if t.name in seen:
            p.append(f"tables.{t.name}: defined twice")
        seen.add(t.name)
        if not t.columns:
            p.append(f"tables.{t.name}.columns: must not be empty")
        for c in (*t.columns, *t.where, *t.require):
            if c not in FIELD_TYPES:
                p.append(f"tables.{t.name}: unknown column {c!r} (known: {', '.join(FIELD_TYPES)})")
        if w.format in CLF_COLUMNS:
            lacking = set(t.columns) - CLF_COLUMNS[w.format] - set(GEO_COLUMNS)
            if lacking:
                p.append(
                    f"tables.{t.name}.columns: the {w.format} format has no {', '.join(sorted(lacking))} field "
                    "(an nginx log_format or a regex can read more)"
                )
        if t.columns and "ts" not in t.columns:
            p.append(f"tables.{t.name}.columns: must include 'ts' (Parquet is partitioned by event time)")
        for key in t.retention:
            if key != "lake":
                p.append(f"tables.{t.name}.retention: unknown key {key!r} (only 'lake' is per table)")
        if t.retention.get("lake"):
            p.extend(_retention_problem(f"tables.{t.name}.retention.lake", t.retention["lake"], "lake"))
        if len(set(t.columns)) != len(t.columns):
            p.append(f"tables.{t.name}.columns: duplicate column")
        for c, v in t.where.items():
            vals = v if isinstance(v, list) else [v]
            if not vals or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in vals):
                p.append(f"tables.{t.name}.where.{c}: expected a string, integer, or list of them")
    r = cfg.rollover
    if r.retention not in ("done", "delete"):
        p.append(f"rollover.retention: {r.retention!r} is not 'done' or 'delete'")
    if r.compression not in ("zstd", "snappy", "gzip", "none"):
        p.append(f"rollover.compression: {r.compression!r} is not zstd, snappy, gzip or none")
    if r.row_group_size <= 0:
        p.append("rollover.row_group_size: must be positive")
    for name in ("compact_interval", "compact_older_than", "compact_grace", "compact_view_wait"):
        if getattr(r, name) < 0:
            p.append(f"rollover.{name}: must not be negative")
    if r.compact_lease <= 0:
        p.append("rollover.compact_lease: must be positive")
    if r.compact_target_bytes < 1024 * 1024:
        p.append("rollover.compact_target_bytes: must be at least 1 MiB")
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)", r.compact_memory):
        p.append(f"rollover.compact_memory: {r.compact_memory!r} is not a size like '512MB'")
    if not 1 <= r.workers <= 64:
        p.append("rollover.workers: must be between 1 and 64")
    from loglake.queries.alerts import validate_alerts
    from loglake.writer.geo import validate_geo
    from loglake.writer.transforms import validate_transforms

    p.extend(validate_alerts(cfg))

    p.extend(validate_transforms(cfg))
    p.extend(validate_geo(cfg.geoip, {c for t in cfg.tables for c in (*t.columns, *t.where, *t.require)}))
    if cfg.storage.sse not in ("", "AES256", "aws:kms"):
        p.append(f"storage.sse: {cfg.storage.sse!r} is not '', 'AES256' or 'aws:kms'")
    if cfg.storage.sse_kms_key_id and cfg.storage.sse != "aws:kms":
        p.append("storage.sse_kms_key_id: only used with sse = 'aws:kms'")
    if cfg.geoip.cache_size < 0:
        p.append("geoip.cache_size: must not be negative")
    url = cfg.storage.url
    if url and not (url.startswith("s3://") or url.startswith("/") or url.startswith("file://")):
        p.append(f"storage.url: {url!r} must be an absolute path, file:// or s3:// URL")
    c = cfg.catalog
    if c.type not in ("duckdb", "trino"):
        p.append(f"catalog.type: {c.type!r} is not 'duckdb' or 'trino'")
    tr = c.trino
    if "://" in tr.host or "/" in tr.host or ":" in tr.host.strip("[]"):
        p.append(
            f"catalog.trino.host: {tr.host!r} must be a bare host name; the scheme is http_scheme, the port is port"
        )
    if tr.http_scheme not in ("http", "https"):
        p.append(f"catalog.trino.http_scheme: {tr.http_scheme!r} is not http or https")
    if tr.auth not in ("none", "basic", "jwt"):
        p.append(f"catalog.trino.auth: {tr.auth!r} is not none, basic or jwt")
    if tr.auth != "none" and tr.http_scheme != "https":
        p.append("catalog.trino.auth: credentials are only sent over https (Trino refuses them on http)")
    for what, name in (("catalog", tr.catalog), ("schema", tr.schema)):
        try:
            validate_identifier(name, f"trino {what}")
        except ValueError as e:
            p.append(f"catalog.trino.{what}: {e}")
    return p
