"""Translate an nginx `log_format` string into a regular expression with column-named groups."""

from __future__ import annotations

import re

#: nginx variables that map onto loglake columns; all others are matched and discarded.
NGINX_VARIABLES: dict[str, str] = {
    "remote_addr": "client_ip",
    "http_x_real_ip": "client_ip",
    "remote_user": "username",
    "time_local": "ts",
    "time_iso8601": "ts",
    "msec": "ts",
    "request": "request",
    "request_method": "method",
    "request_uri": "path",
    "uri": "path",
    "server_protocol": "protocol",
    "status": "status",
    "body_bytes_sent": "bytes",
    "bytes_sent": "bytes",
    "http_referer": "referer",
    "http_user_agent": "user_agent",
    "host": "host",
    "http_host": "host",
    "server_name": "host",
    "request_time": "request_time",
    "http_x_forwarded_for": "forwarded_for",
}

_COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'
)
#: What the combined fields give (method, path and protocol come from the request).
_COMBINED_COLUMNS = {"client_ip", "username", "ts", "request", "status", "bytes", "referer", "user_agent"}
_COMMON = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent'
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def nginx_pattern(log_format: str) -> tuple[str, str | None]:
    """Return (regex, clf) where clf names the vectorized format when `log_format` is a standard one.

    Values inside quotes may hold escaped quotes (`\\x22`, `\\"`); unquoted values are runs of
    non-spaces; `$time_local` runs to its closing bracket.
    """
    fmt = " ".join(log_format.split())
    # Trailing variables after the combined fields are skipped by the vectorized parser, which is
    # right only while none of them is a column: `... "$http_user_agent" $request_time` needs the regex.
    if fmt.startswith(_COMBINED):
        trailing = {NGINX_VARIABLES.get(m.group(1) or m.group(2)) for m in _VAR.finditer(fmt[len(_COMBINED) :])}
        if not trailing - {None, *_COMBINED_COLUMNS}:
            return "", "combined"
    if fmt == _COMMON:
        return "", "common"
    parts: list[str] = []
    used: set[str] = set()
    pos = 0
    for m in _VAR.finditer(fmt):
        parts.append(re.escape(fmt[pos : m.start()]))
        name = m.group(1) or m.group(2)
        quoted = m.start() > 0 and fmt[m.start() - 1] == '"'
        if name == "time_local":
            body = r"[^\]]+"
        elif quoted:
            body = r'(?:[^"\\]|\\.)*'
        else:
            body = r"\S*"
        column = NGINX_VARIABLES.get(name)
        if column and column not in used:
            used.add(column)
            parts.append(f"(?P<{column}>{body})")
        else:
            parts.append(f"(?:{body})")
        pos = m.end()
    parts.append(re.escape(fmt[pos:]))
    if not used:
        raise ValueError("log_format names no variable that loglake knows (e.g. $remote_addr, $time_local)")
    if "ts" not in used:
        raise ValueError("log_format needs a time variable ($time_local, $time_iso8601 or $msec)")
    return "^" + "".join(parts) + r"(?: .*)?\r?$", None
