"""`serve`: the HTTPS receiver, its TLS and token checks and the limits every connection gets."""

import os
from pathlib import Path
from typing import Annotated

import typer

from loglake.cli.app import ConfigOpt, app, config_from, err


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8514,
    tls_cert: Annotated[Path | None, typer.Option(help="Certificate file (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Private key file (PEM)")] = None,
    tls_client_ca: Annotated[Path | None, typer.Option(help="Require client certificates from this CA")] = None,
    token_file: Annotated[Path | None, typer.Option(help="Bearer tokens, one a line (or LOGLAKE_SERVE_TOKENS)")] = None,
    commit_interval: Annotated[float, typer.Option(min=0.0, help="Seconds requests gather per fsync")] = 0.01,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body (413 above)")] = 16 << 20,
    allow_plain_http: Annotated[bool, typer.Option(help="Serve without TLS on a non-loopback address")] = False,
    body_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to receive a body (408 after)")] = 60.0,
    max_connections: Annotated[int, typer.Option(min=1, help="Open connections at most (503 above)")] = 100,
    header_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds for the headers (then closed)")] = 10.0,
    keep_alive_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds an idle connection stays open")] = 5.0,
    max_header_bytes: Annotated[int, typer.Option(min=1024, help="Request line and headers (431 above)")] = 16 << 10,
    config: ConfigOpt = None,
) -> None:
    """Receive logs over HTTP(S): POST /v1/logs, answered 202 once the lines are durably spooled."""
    from loglake.ingest.limits import ConnectionLimits
    from loglake.ingest.receiver import Receiver
    from loglake.ingest.server import Limits, ServeOptions, load_tokens, run_server

    _check_tls(host, tls_cert, tls_key, tls_client_ca, allow_plain_http)
    tokens = load_tokens(str(token_file) if token_file else None, dict(os.environ))
    cfg = config_from(config)
    receiver = Receiver(cfg, commit_interval=commit_interval)
    connections = ConnectionLimits(max_connections, header_timeout, keep_alive_timeout, max_header_bytes)
    opts = ServeOptions(host, port, str(tls_cert or ""), str(tls_key or ""), str(tls_client_ca or ""), connections)
    limits = Limits(max_body_bytes, max(max_body_bytes, 64 << 20), body_timeout)
    scheme = "https" if tls_cert else "http"
    err.print(f"loglake serve: {scheme}://{host}:{port}/v1/logs ({len(tokens)} token(s)); SIGTERM stops")
    try:
        run_server(receiver, tokens, opts, limits)
    finally:
        receiver.close()
    t = receiver.w.totals
    err.print(
        f"loglake serve: stopped; {receiver.commits} commit(s), {t.batches} batch(es), lines {t.lines_read}, "
        f"dead-lettered {t.dead_lettered}"
    )


def _check_tls(host: str, cert: Path | None, key: Path | None, client_ca: Path | None, allow_plain_http: bool) -> None:
    from loglake.errors import UsageError
    from loglake.ingest.net import is_loopback

    if bool(cert) != bool(key):
        raise UsageError("--tls-cert and --tls-key go together")
    if client_ca and not cert:
        raise UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    if not cert and not is_loopback(host) and not allow_plain_http:
        raise UsageError(f"serving on {host} without TLS sends logs and tokens in the clear: give --tls-cert/--tls-key")
    for f in (cert, key, client_ca):
        if f and not f.is_file():
            raise UsageError(f"{f}: no such file")
