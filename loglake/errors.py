"""One exception family, so the CLI can map every failure to a message and exit code in one place."""

from __future__ import annotations


class LoglakeError(Exception):
    """Base of every error loglake raises on purpose."""

    #: Transient errors may succeed on retry (a busy lock, a server starting); terminal ones will not.
    transient: bool = False


class ConfigError(LoglakeError):
    """The configuration is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class UsageError(LoglakeError):
    """A bad argument or option value (exit 2, like a configuration error)."""


class SourceError(LoglakeError):
    """A log source cannot be opened or read."""


class SegmentError(LoglakeError):
    """A spool segment is unreadable or inconsistent."""


class CatalogError(LoglakeError):
    """The catalog rejected an operation."""


class CatalogBusyError(CatalogError):
    """Another process holds the catalog; retrying later will work."""

    transient = True


class SchemaConflictError(CatalogError):
    """The catalog holds a column with another type than the config's (exit 2: fix the config or
    the table; retrying cannot help)."""


class NotInstalledError(LoglakeError):
    """An optional dependency is missing; the message names the install command."""


class QueryError(LoglakeError):
    """A query or report failed."""
