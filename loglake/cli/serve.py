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
    config: ConfigOpt = None,
) -> None:
    """Receive logs over HTTP(S): POST /v1/logs, answered 202 once the lines are durably spooled."""
    from loglake.errors import UsageError
    from loglake.ingest.net import is_loopback
    from loglake.ingest.receiver import Receiver
    from loglake.ingest.server import Limits, ServeOptions, load_tokens, run_server

    if bool(tls_cert) != bool(tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if tls_client_ca and not tls_cert:
        raise UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    if not tls_cert and not is_loopback(host) and not allow_plain_http:
        raise UsageError(f"serving on {host} without TLS sends logs and tokens in the clear: give --tls-cert/--tls-key")
    for f in (tls_cert, tls_key, tls_client_ca):
        if f and not f.is_file():
            raise UsageError(f"{f}: no such file")
    tokens = load_tokens(str(token_file) if token_file else None, dict(os.environ))
    cfg = config_from(config)
    receiver = Receiver(cfg, commit_interval=commit_interval)
    opts = ServeOptions(host, port, str(tls_cert or ""), str(tls_key or ""), str(tls_client_ca or ""))
    scheme = "https" if tls_cert else "http"
    err.print(f"loglake serve: {scheme}://{host}:{port}/v1/logs ({len(tokens)} token(s)); SIGTERM stops")
    try:
        run_server(receiver, tokens, opts, Limits(max_body_bytes, max(max_body_bytes, 64 << 20)))
    finally:
        receiver.close()
    t = receiver.w.totals
    err.print(
        f"loglake serve: stopped; {receiver.commits} commit(s), {t.batches} batch(es), lines {t.lines_read}, "
        f"dead-lettered {t.dead_lettered}"
    )
