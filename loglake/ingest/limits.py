"""What one connection to `loglake serve` may cost: uvicorn's limits plus a header deadline.

uvicorn (h11) caps the header size (`h11_max_incomplete_event_size`), closes idle keep-alive
connections (`timeout_keep_alive`) and answers 503 above `limit_concurrency` connections, but it
has no deadline for the headers themselves: a client that sends one header byte now and then
holds its connection (and a slot of the cap) for ever, unauthenticated, since the token is only
checked once the headers are complete. HeaderDeadline closes a connection whose request headers
are not complete `header_timeout` seconds after it opened or after its previous answer.
(Before that, a TLS handshake is bounded by asyncio's own 60 s handshake timeout.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 100  # open connections; a request above gets 503
    header_timeout: float = 10.0  # seconds for a request's headers to arrive
    keep_alive_timeout: float = 5.0  # seconds an idle connection stays open between requests
    max_header_bytes: int = 16 << 10  # the request line and headers together (400 above)

    def uvicorn_kwargs(self) -> dict[str, Any]:
        return {
            "http": header_deadline_protocol(self.header_timeout),
            "limit_concurrency": self.max_connections,
            "timeout_keep_alive": self.keep_alive_timeout,
            "h11_max_incomplete_event_size": self.max_header_bytes,
        }


def header_deadline_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline on each request's headers."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

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
