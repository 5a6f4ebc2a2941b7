"""`loglake serve`: POST /v1/logs over HTTPS with bearer tokens, 202 only once durable.

- bodies: `text/plain` lines in the configured log format, or NDJSON (`application/x-ndjson`,
  `application/jsonl`); `Content-Encoding: gzip` (bodies.py); `?table=T` routes the lines to
  one table; `X-Loglake-Source` names the sender in the manifest;
- answers: 202 with the batch id and a bounded summary (counts per table and per dead-letter
  reason, the first dead-lettered lines), 400 (a bad key, table or gzip body), 401 (no token),
  403 (a wrong token), 408 (the body took too long), 413 (over the size limit), 415 (unknown
  content type or coding), 422 (an Idempotency-Key reused for another body), 429 (too much
  waiting) and 503 (the disk refused the commit, or too many connections), with `Retry-After`;
- `GET /healthz`, `GET /metrics` (Prometheus text).
Tokens are compared in constant time against every configured one, and never logged. Every
connection is bounded (limits.py): headers in size and time, the body in size and time, and the
number of connections.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loglake import metrics
from loglake.ingest.bodies import CODINGS, BadBody, coding, gunzip
from loglake.ingest.keys import KeyConflict, fingerprint, principal
from loglake.ingest.limits import ConnectionLimits
from loglake.ingest.receiver import Busy, DiskRefused, Receiver, Submission

_TYPES = {
    "text/plain": "raw",
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/json": "ndjson",
}
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 16 << 20  # as sent (compressed or not)
    max_lines_bytes: int = 64 << 20  # after gunzip
    body_timeout: float = 60.0  # seconds to receive a whole body (408 after)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    metrics.http_request(status)
    return JSONResponse(body, status_code=status, headers=headers)


def make_app(receiver: Receiver, tokens: list[str], limits: Limits = Limits()) -> Starlette:
    secrets = [(t.encode(), principal(t)) for t in tokens]
    accept_encoding = {"Accept-Encoding": ", ".join(CODINGS)}

    def authorized(request: Request) -> tuple[int, str]:
        """(200, the principal) or (401/403, "")."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return 401, ""
        given = header[7:].strip().encode()
        who = ""
        for s, p in secrets:  # every token, always: the time taken says nothing about which matched
            if hmac.compare_digest(given, s):
                who = p
        return (200, who) if who else (403, "")

    async def read_body(request: Request, encoding: str) -> bytes:
        data = bytearray()
        async with asyncio.timeout(limits.body_timeout):
            async for piece in request.stream():
                data += piece
                if len(data) > limits.max_body_bytes:
                    raise BadBody(413, f"body over {limits.max_body_bytes:,} bytes")
        return gunzip(bytes(data), limits.max_lines_bytes) if encoding == "gzip" else bytes(data)

    async def post_logs(request: Request) -> Response:
        auth, who = authorized(request)
        if auth != 200:
            headers = {"WWW-Authenticate": "Bearer"} if auth == 401 else None
            return _json(auth, {"error": "a bearer token is required" if auth == 401 else "token refused"}, headers)
        ctype = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
        fmt = _TYPES.get(ctype)
        if fmt is None:
            return _json(415, {"error": f"unsupported content type {ctype!r}", "accepted": sorted(_TYPES)})
        try:
            encoding = coding(request.headers.get("content-encoding"))
        except BadBody as e:
            return _json(e.status, {"error": str(e)}, accept_encoding)
        key = request.headers.get("idempotency-key")
        if key is not None and not _KEY.fullmatch(key):
            return _json(400, {"error": "Idempotency-Key must be 1-200 printable ASCII characters"})
        table = request.query_params.get("table")
        if table is not None and table not in {r.table.name for r in receiver.w.routers}:
            return _json(400, {"error": f"unknown table {table!r}"})
        try:
            body = await read_body(request, encoding)
        except BadBody as e:
            return _json(e.status, {"error": str(e)})
        except TimeoutError:
            return _json(408, {"error": f"the body took over {limits.body_timeout:g} s"}, {"Connection": "close"})
        except ClientDisconnect:  # one line, not a traceback: nothing was committed, the client retries
            peer = request.client.host if request.client else "?"
            print(f"loglake serve: {peer} disconnected before the end of its body; nothing committed", file=sys.stderr)
            return Response(status_code=400)
        source = request.headers.get("x-loglake-source", "http")[:200]
        fp = fingerprint(fmt, table, body) if key is not None else ""
        sub = Submission(body, fmt, key, table, source, principal=who, fingerprint=fp)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        sub.callbacks.append(lambda: loop.call_soon_threadsafe(_resolve, done))
        try:
            waited = receiver.submit(sub)
        except Busy as e:
            return _json(429, {"error": str(e)}, {"Retry-After": "1"})
        if waited is not sub and not waited.done.is_set():  # the same key is in flight: wait for it
            waited.callbacks.append(lambda: loop.call_soon_threadsafe(_resolve, done))
        if not waited.done.is_set():
            await done
        if isinstance(waited.error, KeyConflict):
            return _json(422, {"error": str(waited.error)})
        if isinstance(waited.error, DiskRefused):
            return _json(503, {"error": f"the disk refused the commit: {waited.error}"}, {"Retry-After": "5"})
        if waited.error is not None or waited.result is None:
            return _json(500, {"error": f"commit failed: {type(waited.error).__name__}"}, {"Retry-After": "5"})
        return _json(202, {**waited.result, "replayed": waited.replayed or waited is not sub})

    async def healthz(request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")

    async def metrics_page(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    metrics.enable()  # the receiver always serves /metrics
    return Starlette(
        routes=[
            Route("/v1/logs", post_logs, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
        ]
    )


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def load_tokens(token_file: str | None, environ: dict[str, str]) -> list[str]:
    """Tokens from a file (one a line, `#` comments) and/or LOGLAKE_SERVE_TOKENS (comma-separated)."""
    from loglake.errors import UsageError

    tokens = []
    if token_file:
        try:
            text = open(token_file, encoding="utf-8").read()  # noqa: SIM115
        except OSError as e:
            raise UsageError(f"--token-file {token_file}: {e.strerror}") from e
        tokens += [t.strip() for t in text.splitlines() if t.strip() and not t.strip().startswith("#")]
    tokens += [t.strip() for t in re.split(r"[,\n]", environ.get("LOGLAKE_SERVE_TOKENS", "")) if t.strip()]
    if not tokens:
        raise UsageError("serve needs at least one token: --token-file FILE or LOGLAKE_SERVE_TOKENS")
    if any(len(t) < 16 for t in tokens):
        raise UsageError("tokens must be at least 16 characters")
    return tokens


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8514
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""  # verify client certificates against this CA (mutual TLS)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)


def run_server(receiver: Receiver, tokens: list[str], opts: ServeOptions, limits: Limits = Limits()) -> None:
    """Serve until SIGTERM/SIGINT: uvicorn stops accepting and finishes in-flight requests, then
    the receiver commits what is queued."""
    import ssl

    import uvicorn

    kwargs: dict[str, Any] = {}
    if opts.tls_cert:
        kwargs.update(ssl_certfile=opts.tls_cert, ssl_keyfile=opts.tls_key)
        if opts.tls_client_ca:
            kwargs.update(ssl_ca_certs=opts.tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    config = uvicorn.Config(
        make_app(receiver, tokens, limits),
        host=opts.host,
        port=opts.port,
        log_level="warning",
        access_log=False,  # request lines would carry nothing useful, and headers hold tokens
        lifespan="off",
        timeout_graceful_shutdown=30,
        **opts.connections.uvicorn_kwargs(),
        **kwargs,
    )
    _graceful_server_class()(config).run()


def _graceful_server_class() -> type:
    import uvicorn

    from loglake.lifecycle import on_stop_signals

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after its graceful shutdown, which would end the process
        before the receiver seals what is queued: take the signals here instead."""

        def capture_signals(self):  # type: ignore[no-untyped-def]
            def handle(signum: int) -> None:
                self.force_exit = self.should_exit  # a second signal: stop waiting for requests
                self.should_exit = True

            return on_stop_signals(handle)

    return GracefulServer
