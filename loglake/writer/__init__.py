"""The writer: sources, parsers, fields and segment files (issue #2)."""

from loglake.writer.pipeline import Totals, Writer
from loglake.writer.recovery import RecoveryReport, recover_spool

__all__ = ["RecoveryReport", "Totals", "Writer", "recover_spool"]
