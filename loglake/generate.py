"""Realistic synthetic access logs for the demo, tests and benchmarks.

Users, pages and clients follow Zipf-like popularity (a few hot pages, a long tail), agents are a
mix of browsers, bots and tools, timestamps advance at a steady rate as on a busy server, and a
share of requests are logins (POST /login with a user) so every canned report has something to say.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "python-requests/2.31.0",
)
_AGENT_WEIGHTS = (40, 20, 10, 20, 5, 3, 2)
_SECTIONS = ("products", "blog", "docs", "api/v1/items", "static/img", "search", "account", "cart")
_STATUSES = (200, 200, 200, 200, 200, 200, 200, 200, 304, 304, 301, 404, 404, 403, 500, 502, 503)


def _zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1.0 / (k**s) for k in range(1, n + 1)]


def clf_time(t: datetime) -> str:
    return f"{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S} +0000"


def generate_lines(n: int, seed: int = 7, start: datetime | None = None, rate: float = 500.0) -> Iterator[str]:
    """Yield `n` combined-format lines (with newline) at about `rate` lines per second."""
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 28, 22, 0, 0, tzinfo=UTC)
    users = [f"user{i}" for i in range(1, 5001)]
    pages = [f"/{_SECTIONS[i % len(_SECTIONS)]}/{i}" for i in range(1, 20001)]
    ips = [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(3000)
    ] + [f"2001:db8::{i:x}" for i in range(1, 301)]
    batch = 4096
    cw_users = _cum(_zipf_weights(len(users)))
    cw_pages = _cum(_zipf_weights(len(pages)))
    cw_ips = _cum(_zipf_weights(len(ips), 0.9))
    cw_agents = _cum(list(map(float, _AGENT_WEIGHTS)))
    done = 0
    while done < n:
        k = min(batch, n - done)
        us = rng.choices(users, cum_weights=cw_users, k=k)
        ps = rng.choices(pages, cum_weights=cw_pages, k=k)
        cs = rng.choices(ips, cum_weights=cw_ips, k=k)
        ags = rng.choices(AGENTS, cum_weights=cw_agents, k=k)
        for i in range(k):
            t = start + timedelta(seconds=(done + i) / rate)
            roll = rng.random()
            if roll < 0.03:
                method, path, status, user = "POST", "/login", 302, us[i]
            elif roll < 0.35:
                method, path, status, user = "GET", ps[i], rng.choice(_STATUSES), us[i]
            else:
                method, path, status, user = "GET", ps[i], rng.choice(_STATUSES), "-"
            size = "-" if status in (304, 301, 302) else str(rng.randrange(200, 60000))
            ref = "-" if roll > 0.7 else f"https://www.example.com{ps[i - 1]}"
            yield (f'{cs[i]} - {user} [{clf_time(t)}] "{method} {path} HTTP/1.1" {status} {size} "{ref}" "{ags[i]}"\n')
        done += k


def _cum(weights: list[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def write_log(path: Path, n: int, seed: int = 7, start: datetime | None = None, rate: float = 500.0) -> Path:
    """Write `n` generated lines to `path` and return it."""
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as f:
        for line in generate_lines(n, seed, start, rate):
            f.write(line)
    return path
