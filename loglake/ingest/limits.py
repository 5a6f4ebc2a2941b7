"""What one connection to `loglake serve` may cost: uvicorn's limits plus a header deadline.

uvicorn (h11) caps the header size (`h11_max_incomplete_event_size`), closes idle keep-alive
connections (`timeout_keep_alive`) and answers 503 above `limit_concurrency` connections, but it
has no deadline for the headers themselves: a client that sends one header byte now and then
holds its connection (and a slot of the cap) for ever, unauthenticated, since the token is only
checked once the headers are complete. HeaderDeadline closes a connection whose request headers
are not complete `header_timeout` seconds after it opened or after its previous answer. It also
counts header bytes itself: h11's limit applies only to headers still incomplete, so a header
block that arrives whole in one read could be any size the read is.
(Before that, a TLS handshake is bounded by asyncio's own 60 s handshake timeout.)
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 100  # open connections; a request above gets 503
    header_timeout: float = 10.0  # seconds for a request's headers to arrive
    keep_alive_timeout: float = 5.0  # seconds an idle connection stays open between requests
    max_header_bytes: int = 16 << 10  # the request line and headers together (431 above)

    def uvicorn_kwargs(self) -> dict[str, Any]:
        return {
            "http": header_deadline_protocol(self.header_timeout, self.max_header_bytes),
            "limit_concurrency": self.max_connections,
            "timeout_keep_alive": self.keep_alive_timeout,
            "h11_max_incomplete_event_size": self.max_header_bytes,
        }


_END_OF_HEADERS = re.compile(rb"\n\r?\n")  # h11 accepts bare LF line ends too
_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def header_deadline_protocol(header_timeout: float, max_header_bytes: int) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline on each request's headers, and their size checked."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _seen = 0  # header bytes of the current request so far
        _tail = b""  # the last bytes seen, for an end of headers cut between two reads

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.IDLE and self._seen >= 0:
                window = self._tail + data
                end = _END_OF_HEADERS.search(window)
                size = self._seen + (end.end() - len(self._tail) if end else len(data))
                if size > max_header_bytes:
                    self.transport.write(_TOO_LARGE)
                    self.transport.close()
                    return
                self._seen, self._tail = (-1, b"") if end else (size, window[-3:])
            super().data_received(data)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the headers are in (or the connection is over)
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()  # the next request's headers get the same time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._seen, self._tail = 0, b""
            self._deadline = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                # abort, not close: a TLS close waits up to 30 s for the client's close_notify,
                # and a client that stalls its headers will not send one
                self.transport.abort()

    return HeaderDeadline
