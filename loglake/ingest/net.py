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
