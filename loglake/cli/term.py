"""The CLI's stderr: rich on a terminal, plain lines anywhere else.

Importing rich costs 60-90 ms of CPU, about a sixth of `loglake write`'s start-up on a small file,
and a pipe, a file or cron gets neither colours nor live bars from it. There the same messages are
written as plain lines: our few style tags removed, no wrapping at 80 columns, and nothing in the
text (a path, an error message) read as markup.
"""

from __future__ import annotations

import re
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

#: The styles the CLI's messages use; user text is never parsed for any other tag.
_TAGS = re.compile(r"\[/?(?:bold red|bold|red|green|yellow)?\]")


class Stderr:
    """What the commands print their notes, summaries and errors to."""

    def __init__(self) -> None:
        self._console: Console | None = None

    @property
    def is_terminal(self) -> bool:
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):  # replaced or closed stderr
            return False

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    def print(self, text: str, **kwargs: Any) -> None:
        if self.is_terminal:
            self.console.print(text, **kwargs)
            return
        sys.stderr.write(_TAGS.sub("", text) + "\n")
        sys.stderr.flush()

    def progress(self) -> Progress | NullProgress:
        """A transient transfer bar (task description, bar, bytes, speed) on a terminal, else a
        stand-in that records nothing."""
        if not self.is_terminal:
            return NullProgress()
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=self.console,
            transient=True,
        )


class NullProgress:
    """`rich.progress.Progress`' calls the commands make, doing nothing."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        return 0

    def advance(self, task: int, advance: float = 1) -> None:
        return None

    def update(self, task: int, **fields: Any) -> None:
        return None
