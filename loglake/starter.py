"""`loglake init`: a commented starter `loglake.toml` for the log a user points it at.

A newcomer's first question is "which format is my log?". Rather than ask, the sample is parsed
with every candidate the writer knows and the one that turns the most lines into rows wins: the
same parsers the writer will run, so the config written is one that parses this log.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from loglake.config import WriterConfig
from loglake.errors import UsageError
from loglake.schema import DEFAULT_COLUMNS, FIELD_TYPES
from loglake.writer.parsers import load_parser

SAMPLE_LINES = 200
#: After `"request" status bytes`, a combined line goes on with `"referer" "agent"`.
_COMBINED_TAIL = re.compile(r'" (?:\d{3}|-) (?:\d+|-) "')
#: ...and a line with more after `"referer" "agent"` has fields the combined parser drops.
_AFTER_AGENT = re.compile(r'" (?:\d{3}|-) (?:\d+|-) "(?:[^"\\]|\\.)*" "(?:[^"\\]|\\.)*" +\S')

#: JSON keys that web servers and app loggers commonly use, per column (first match wins).
JSON_KEYS: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "time", "timestamp", "@timestamp", "time_iso8601", "time_local", "msec", "date"),
    "client_ip": ("client_ip", "remote_addr", "ip", "clientip", "remote_ip", "client"),
    "username": ("username", "remote_user", "user", "user_name"),
    "method": ("method", "request_method", "verb"),
    "path": ("path", "request_uri", "uri", "url"),
    "protocol": ("protocol", "server_protocol", "httpversion"),
    "status": ("status", "status_code", "response", "code"),
    "bytes": ("bytes", "body_bytes_sent", "bytes_sent", "size", "response_size"),
    "referer": ("referer", "http_referer", "referrer"),
    "user_agent": ("user_agent", "http_user_agent", "agent", "ua"),
    "request": ("request",),
    "host": ("host", "http_host", "server_name"),
    "request_time": ("request_time", "duration", "response_time"),
    "forwarded_for": ("forwarded_for", "http_x_forwarded_for", "x_forwarded_for"),
}


@dataclass
class Detected:
    """What the sample showed: the writer settings and the columns worth keeping."""

    format: str
    columns: list[str]
    rows: int
    lines: int
    json_fields: dict[str, str] = field(default_factory=dict)
    log_format: str = ""
    hint: str = ""  # what the user may want to add (fields the detected format leaves out)


def sample(path: Path, limit: int = SAMPLE_LINES) -> list[str]:
    """The first non-empty lines of a plain or gzip log, decoded as the writer decodes them."""
    opener = gzip.open if path.name.endswith(".gz") else open
    lines: list[str] = []
    try:
        with opener(path, "rb") as f:
            for raw in f:
                text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                if text:
                    lines.append(text)
                if len(lines) >= limit:
                    break
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from e
    if not lines:
        raise UsageError(f"{path} has no lines to detect a format from")
    return lines


def _rows(writer: WriterConfig, columns: list[str], lines: list[str]) -> int:
    try:
        return load_parser(writer, columns).parse(pa.array(lines, pa.string())).table.num_rows
    except ValueError:
        return 0


def _json_fields(lines: list[str]) -> dict[str, str]:
    keys: set[str] = set()
    for text in lines[:20]:
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        if isinstance(obj, dict):
            keys.update(obj)
    found = {}
    for column, names in JSON_KEYS.items():
        hit = next((k for k in names if k in keys), None)
        if hit is not None:
            found[column] = hit
    return found


def detect(lines: list[str], log_format: str = "") -> Detected:
    """The candidate format that parses the most sample lines (ties: the one with more columns)."""
    n = len(lines)
    if log_format:
        writer = WriterConfig(format="nginx", log_format=log_format)
        from loglake.writer.parsers.nginx import NGINX_VARIABLES, nginx_pattern

        try:
            nginx_pattern(log_format)
        except ValueError as e:
            raise UsageError(f"--log-format: {e}") from e
        named = {NGINX_VARIABLES[v] for v in NGINX_VARIABLES if f"${v}" in log_format or f"${{{v}}}" in log_format}
        columns = [c for c in FIELD_TYPES if c in named or (c in ("method", "path", "protocol") and "request" in named)]
        columns = [c for c in columns if c != "request"] if {"method", "path"} <= set(columns) else columns
        rows = _rows(writer, columns, lines)
        if rows == 0:
            raise UsageError(f"--log-format parses none of the first {n} lines of the log: check it against the log")
        return Detected("nginx", columns, rows, n, log_format=log_format)
    common = [c for c in DEFAULT_COLUMNS if c not in ("referer", "user_agent")]
    # The combined parser takes common lines too (it leaves referer and agent NULL), so which of the
    # two a log is shows in its text: quoted fields after the status and the size.
    has_tail = sum(1 for line in lines if _COMBINED_TAIL.search(line))
    candidates = [Detected("common", common, _rows(WriterConfig(format="common"), common, lines), n)]
    if has_tail * 2 > n:
        combined = _rows(WriterConfig(format="combined"), list(DEFAULT_COLUMNS), lines)
        candidates.append(Detected("combined", list(DEFAULT_COLUMNS), combined, n))
    fields = _json_fields(lines)
    if "ts" in fields:
        if "request" in fields:  # the parser splits a request line when no method/path key exists
            fields = {**fields, **{c: c for c in ("method", "path", "protocol") if c not in fields}}
        columns = [c for c in FIELD_TYPES if c in fields and c != "request"]
        mapping = {c: k for c, k in fields.items() if c != k and c in (*columns, "request")}
        rows = _rows(WriterConfig(format="json", json_fields=mapping), columns, lines)
        candidates.append(Detected("json", columns, rows, n, json_fields=mapping))
    best = max(candidates, key=lambda d: (d.rows, len(d.columns)))
    if best.format == "combined" and sum(1 for line in lines if _AFTER_AGENT.search(line)) * 2 > n:
        best.hint = (
            "the lines carry fields after the user agent, which the combined format skips: "
            "give the server's log_format with --log-format to keep them (e.g. $request_time)"
        )
    if best.rows == 0:
        raise UsageError(
            "no known format parses this log (tried combined, common, JSON); "
            "give its nginx log_format with --log-format, or write [writer] pattern = '...' by hand"
        )
    return best


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def render(found: Detected, data_dir: Path, log: Path) -> str:
    """The starter config: what was detected, set; the next choices, commented out."""
    cols = ", ".join(_toml_string(c) for c in [*found.columns, *(["country"] if "client_ip" in found.columns else [])])
    lines = [
        f"# loglake.toml written by `loglake init` for {log}",
        f"# {found.rows} of the first {found.lines} lines parse as {found.format}.",
        "# Check it with `loglake check-config`; every key is described in the README.",
        "",
        f"data_dir = {_toml_string(str(data_dir))}   # spool/, dead-letter/, state/, lake/, catalog",
        '# profile = "realtime"      # rows in SQL within a minute (for alerts); "batch" for fewer, larger files',
        "",
        "[writer]",
        f'format = "{found.format}"',
    ]
    if found.log_format:
        lines.append(f"log_format = {_toml_string(found.log_format)}")
    if found.json_fields:
        pairs = ", ".join(f"{c} = {_toml_string(k)}" for c, k in found.json_fields.items())
        lines.append(f"json_fields = {{ {pairs} }}")
    if found.format in ("json", "nginx") or found.json_fields:
        lines.append('timezone = "UTC"            # the zone of times that carry no offset')
    lines += [
        "",
        "[tables.access_log]",
        f"columns = [{cols}]",
        "# [tables.access_log.transforms]   # pseudonymize before anything touches disk (needs [pii])",
        '# username = "hash"',
        '# client_ip = "truncate_ip"',
    ]
    if "username" in found.columns and "path" in found.columns:
        lines += [
            "",
            "# Who logged in, when, and from where:",
            "# [tables.logins]",
            '# columns = ["ts", "username", "client_ip", "country"]',
            '# where = { method = "POST", path = "/login" }',
            '# require = ["username"]',
        ]
    lines += [
        "",
        "[catalog]",
        'type = "duckdb"              # embedded; "trino" with [catalog.trino] for a shared lake',
        "",
        "# [storage]",
        '# url = "s3://bucket/prefix"   # default: <data_dir>/lake',
        "",
    ]
    return "\n".join(lines)


def write_starter(
    directory: Path, log: Path, log_format: str = "", force: bool = False, data_dir: Path | None = None
) -> tuple[Path, Detected]:
    """Write `<directory>/loglake.toml` for `log` (data under `data_dir`, default
    `<directory>/loglake-data`); refuses to overwrite one unless `force`."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    target = directory / "loglake.toml"
    if target.exists() and not force:
        raise UsageError(f"{target} exists (use --force to overwrite it)")
    found = detect(sample(log), log_format)
    directory.mkdir(parents=True, exist_ok=True)
    text = render(found, (data_dir or directory / "loglake-data").absolute(), log.resolve())
    target.write_text(text, encoding="utf-8")
    return target, found


__all__ = ["Detected", "detect", "render", "sample", "write_starter"]
