"""Plain-Python answers to every report, computed from the raw log with its own simple parser.

Deliberately independent of loglake's parsers: if both agree, both are right.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

_LINE = re.compile(r'^(\S+) \S+ (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\S+)')


def records(path: Path) -> list[dict]:
    out = []
    for raw in path.read_bytes().decode("utf-8").splitlines():
        m = _LINE.match(raw)
        assert m, raw
        ip, user, when, request, status, size = m.groups()
        ts = datetime.strptime(when, "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
        parts = request.split(" ")
        path_ = parts[1] if len(parts) in (2, 3) and parts[0].isalpha() and parts[0].isupper() else None
        out.append(
            {
                "ip": ip,
                "user": None if user == "-" else user,
                "ts": ts,
                "path": path_,
                "status": int(status),
                "bytes": None if size == "-" else int(size),
            }
        )
    return out


def top_pages(recs: list[dict]) -> list[tuple]:
    counts: Counter[str] = Counter()
    clients: dict[str, set] = defaultdict(set)
    for r in recs:
        if r["path"] is not None:
            counts[r["path"]] += 1
            clients[r["path"]].add(r["ip"])
    rows = sorted(((p, n, len(clients[p])) for p, n in counts.items()), key=lambda x: (-x[1], x[0]))
    return rows[:20]


def top_clients(recs: list[dict]) -> list[tuple]:
    agg: dict[str, list] = defaultdict(lambda: [0, None, 0])
    for r in recs:
        a = agg[r["ip"]]
        a[0] += 1
        if r["bytes"] is not None:
            a[1] = (a[1] or 0) + r["bytes"]
        a[2] += r["status"] >= 400
    rows = sorted(((ip, a[0], a[1], a[2]) for ip, a in agg.items()), key=lambda x: (-x[1], x[0]))
    return rows[:20]


def status_per_minute(recs: list[dict]) -> list[tuple]:
    agg: dict[str, list] = defaultdict(lambda: [0, 0])
    for r in recs:
        a = agg[r["ts"].strftime("%Y-%m-%dT%H:%M")]
        a[0] += 1
        a[1] += r["status"] >= 500
    return [(m, n, e, round(e * 100 / n, 2)) for m, (n, e) in sorted(agg.items())]


def unique_users_per_day(recs: list[dict]) -> list[tuple]:
    users: dict[str, set] = defaultdict(set)
    ips: dict[str, set] = defaultdict(set)
    n: Counter[str] = Counter()
    for r in recs:
        d = r["ts"].strftime("%Y-%m-%d")
        if r["user"]:
            users[d].add(r["user"])
        ips[d].add(r["ip"])
        n[d] += 1
    return [(d, len(users[d]), len(ips[d]), n[d]) for d in sorted(n)]


def logins_per_hour(recs: list[dict]) -> list[tuple]:
    users: dict[str, set] = defaultdict(set)
    n: Counter[str] = Counter()
    for r in recs:
        if r["user"]:
            h = r["ts"].strftime("%Y-%m-%dT%H")
            users[h].add(r["user"])
            n[h] += 1
    return [(h, len(users[h]), n[h]) for h in sorted(n)]


ORACLES = {
    "top-pages": top_pages,
    "top-clients": top_clients,
    "status-per-minute": status_per_minute,
    "unique-users-per-day": unique_users_per_day,
    "logins-per-hour": logins_per_hour,
}
