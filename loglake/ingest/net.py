"""Network rules shared by `serve` and its clients (`send`, `LoglakeHandler`)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1, with or without brackets):
    the only places where plain HTTP carries tokens and logs without crossing a network."""
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_client_url(url: str, allow_plain_http: bool, override: str) -> None:
    """ValueError unless `url` is http(s). Plain `http://` carries the bearer token and the logs in
    clear, so a client refuses it off loopback unless `override` (named in the message) is given,
    the rule `serve` applies to where it listens."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_plain_http:
        raise ValueError(
            f"{url} is plain HTTP off loopback: the token and the logs would cross the network in clear "
            f"(use https, or {override})"
        )
