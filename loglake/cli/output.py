"""Query results as a rich table (people), CSV or JSON (programs: header/keys, nothing else on stdout)."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from loglake.catalog import QueryResult

FORMATS = ("table", "csv", "json")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def print_result(result: QueryResult, fmt: str, title: str | None = None) -> None:
    if fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(result.columns)
        for row in result.rows:
            w.writerow(["" if v is None else _plain(v) for v in row])
    elif fmt == "json":
        rows = [dict(zip(result.columns, map(_plain, row), strict=True)) for row in result.rows]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=None)
        sys.stdout.write("\n")
    else:
        table = Table(title=title, title_justify="left")
        for c in result.columns:
            table.add_column(c)
        for row in result.rows:
            table.add_row(*["" if v is None else str(_plain(v)) for v in row])
        Console().print(table)
