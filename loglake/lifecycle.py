"""Stopping long-running commands: SIGTERM and SIGINT become a callback, restored afterwards."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def on_stop_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Call `handler(signum)` on SIGTERM/SIGINT instead of dying, so work in progress is sealed."""
    old = {s: signal.signal(s, lambda signum, frame: handler(signum)) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
