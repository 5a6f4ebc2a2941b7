"""The `loglake` command line: thin wrappers over the library, errors mapped in one place."""

from loglake.cli.app import app, main

__all__ = ["app", "main"]
