"""Request bodies of `loglake serve`: which content codings are accepted, and a strict gunzip.

Only `identity` and `gzip` (with its legacy alias `x-gzip`, which RFC 9110 says to treat as
gzip) are decoded; any other coding, or several stacked (`gzip, gzip`), is refused with 415
before the body is read, never stored as binary garbage. A gzip body is read member after member
(a concatenation of members is one valid gzip stream) and refused (400) unless every member ends
with its trailer and a matching CRC-32 and size, and nothing but members follows: a cut upload
would otherwise be acknowledged with a torn last line.
"""

from __future__ import annotations

import zlib

#: Accepted `Content-Encoding` values (lower case) and what they mean.
CODINGS = {"identity": "identity", "gzip": "gzip", "x-gzip": "gzip"}


class BadBody(Exception):
    """The body cannot be accepted: `status` is the HTTP answer (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def coding(header: str | None) -> str:
    """The body's content coding ("identity" or "gzip"); BadBody(415) for any other."""
    value = (header or "identity").strip().lower()
    if value not in CODINGS:
        raise BadBody(415, f"unsupported Content-Encoding {value!r}: send gzip or none")
    return CODINGS[value]


def gunzip(data: bytes, limit: int) -> bytes:
    """Every gzip member of `data`, checked, at most `limit` bytes out (BadBody 413 above)."""
    out = bytearray()
    rest = data
    while True:
        d = zlib.decompressobj(wbits=31)
        try:
            out += d.decompress(rest, limit + 1 - len(out))
        except zlib.error as e:
            raise BadBody(400, f"not a valid gzip body: {e}") from e
        if len(out) > limit or d.unconsumed_tail:
            raise BadBody(413, f"decompressed body over {limit:,} bytes")
        if not d.eof:
            raise BadBody(400, "not a valid gzip body: it ends inside a member (cut short?)")
        rest = d.unused_data
        if not rest:
            return bytes(out)
        if not rest.startswith(b"\x1f\x8b"):
            raise BadBody(400, f"not a valid gzip body: {len(rest)} bytes of garbage after the gzip data")
