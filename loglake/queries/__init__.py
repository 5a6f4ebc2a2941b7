"""Named reports (`*.sql`, written once in Trino SQL) and the runner that targets either engine."""

from loglake.queries.runner import Report, list_reports, load_report, render_report, run_query

__all__ = ["Report", "list_reports", "load_report", "render_report", "run_query"]
