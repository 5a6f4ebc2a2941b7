"""One HTTP request's lines inside a group commit: cut into bounded pieces, summarised in bounded size.

Whatever the body (64 MiB of newlines is 64 M dead letters), the memory a request costs while it
is processed, the answer it gets, the manifest record and the idempotency entry that keep that
answer are bounded: pieces of at most PIECE_BYTES and PIECE_LINES go through the pipeline one at
a time, and the summary keeps counts per reason plus the first SUMMARY_LINES dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: A piece of a request body handed to the pipeline at once: at most this many bytes...
PIECE_BYTES = 1 << 20
#: ...and this many lines (each rejected line costs a few hundred bytes until it is written).
PIECE_LINES = 32_768
#: Dead-lettered lines listed (line number and reason) in an answer; the rest are counted.
SUMMARY_LINES = 20


def pieces(body: bytes, size: int = PIECE_BYTES, max_lines: int = PIECE_LINES) -> list[tuple[int, bytes]]:
    """(offset in body, piece) of whole lines; a line longer than `size` is a piece of its own."""
    if len(body) <= size and body.count(b"\n") <= max_lines:
        return [(0, body)]
    out, start = [], 0
    while start < len(body):
        end = min(start + size, len(body))
        if end < len(body):
            cut = body.rfind(b"\n", start, end)
            if cut < 0:  # one long line: up to its end
                cut = body.find(b"\n", end)
                end = len(body) if cut < 0 else cut + 1
            else:
                end = cut + 1
        if body.count(b"\n", start, end) > max_lines:
            end = _nth_newline(body, start, max_lines) + 1
        out.append((start, body[start:end]))
        start = end
    return out


def _nth_newline(body: bytes, start: int, n: int) -> int:
    at = start - 1
    for _ in range(n):
        at = body.index(b"\n", at + 1)
    return at


@dataclass
class Summary:
    """What one request became: lines, rows and filtered per table, dead letters (bounded)."""

    lines: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, int] = field(default_factory=dict)
    dead: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    first: list[dict[str, Any]] = field(default_factory=list)

    def add_rejects(self, first_line: int, rejects: list[tuple[int, str]]) -> None:
        """`rejects` of a piece whose first line is the request's line `first_line` (1-based)."""
        self.dead += len(rejects)
        for i, reason in rejects:
            name = reason.split(":", 1)[0]
            self.reasons[name] = self.reasons.get(name, 0) + 1
            if len(self.first) < SUMMARY_LINES:
                self.first.append({"line": first_line + i, "reason": reason})

    def add_counts(self, target: dict[str, int], after: dict[str, int], before: dict[str, int]) -> None:
        for t, n in after.items():
            if n - before.get(t, 0):
                target[t] = target.get(t, 0) + n - before.get(t, 0)

    def result(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "rows": self.rows,
            "filtered": self.filtered,
            "dead_lettered": self.first,
            "dead_lettered_total": self.dead,
            "dead_letter_reasons": self.reasons,
        }
