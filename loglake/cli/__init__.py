"""The `loglake` command line: thin wrappers over the library, errors mapped in one place."""

import os

# numpy's OpenBLAS starts a thread per core when it is imported (~40-100 ms of CPU, which a short
# `loglake write` pays in full); loglake does no linear algebra. A user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from loglake.cli.app import app, main  # after the setting: numpy reads it when imported

__all__ = ["app", "main"]
