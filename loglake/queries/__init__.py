"""Named reports (`*.sql`, written once in Trino SQL) and the runner that targets either engine.

Imported lazily: sqlglot costs a quarter of a second, and `loglake write` never needs it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Report", "list_reports", "load_report", "render_report", "run_query"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from loglake.queries import runner

        return getattr(runner, name)
    raise AttributeError(name)
