"""Typer app. Each command calls the library with the same words; only `main` turns errors into exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from loglake.config import Config, load_config
from loglake.errors import ConfigError, LoglakeError

app = typer.Typer(
    name="loglake",
    help="Access logs to Hive-partitioned Parquet and SQL, with no per-row inserts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalog_app = typer.Typer(help="Catalog maintenance.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

err = Console(stderr=True)
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="loglake.toml (default: $LOGLAKE_CONFIG or ./loglake.toml)")
]


def config_from(path: Path | None) -> Config:
    return load_config(path)


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the configuration and report every problem at once."""
    cfg = config_from(config)
    tables = ", ".join(f"{t.name}({len(t.columns)} columns)" for t in cfg.tables)
    err.print(
        f"[green]ok[/green] {cfg.source}: format={cfg.writer.format} tables={tables} "
        f"data_dir={cfg.data_dir} catalog={cfg.catalog.type}"
    )


from loglake.cli import commands  # noqa: E402,F401  - registers the remaining commands


def main() -> None:
    """Entry point: run the app, mapping loglake errors to messages and exit codes."""
    try:
        app(standalone_mode=False)
    except ConfigError as e:
        err.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
        sys.exit(2)
    except LoglakeError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        sys.exit(75 if e.transient else 1)  # 75 = EX_TEMPFAIL: cron wrappers may retry
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except typer.Abort:
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:
        # Usage errors (bad option values, unknown commands) carry their own exit code and message.
        if hasattr(e, "exit_code") and hasattr(e, "show"):
            e.show()
            sys.exit(e.exit_code)
        raise
    finally:
        sys.stdout.flush()
