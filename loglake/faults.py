"""Fault injection for the crash tests, disarmed everywhere else.

`LOGLAKE_FAULT=<step>` makes rollover or compaction SIGKILL itself right after that step, so the
tests can prove a kill -9 at any moment loses and doubles nothing. A variable that kills the
process must never fire in production because someone copied an environment: it fires only when
`LOGLAKE_FAULT_ARMED` also holds the exact sentence below, which only the test fixtures set, and
`loglake status` warns whenever `LOGLAKE_FAULT` is set at all.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "LOGLAKE_FAULT"
ARMED_ENV = "LOGLAKE_FAULT_ARMED"
ARMED_VALUE = "yes-kill-this-process-for-a-crash-test"


def fault_point(step: str) -> None:
    """SIGKILL this process if the crash tests asked for a kill right after `step`."""
    if os.environ.get(FAULT_ENV) == step and os.environ.get(ARMED_ENV) == ARMED_VALUE:
        os.kill(os.getpid(), signal.SIGKILL)


def fault_warning() -> str | None:
    """What `status` says when the fault variable is set (armed or not): it has no place outside tests."""
    step = os.environ.get(FAULT_ENV)
    if step is None:
        return None
    armed = os.environ.get(ARMED_ENV) == ARMED_VALUE
    state = "ARMED: rollover or compaction will kill itself" if armed else "ignored (not armed)"
    return f"{FAULT_ENV}={step!r} is set in the environment: fault injection for tests, {state}; unset it"


__all__ = ["ARMED_ENV", "ARMED_VALUE", "FAULT_ENV", "fault_point", "fault_warning"]
