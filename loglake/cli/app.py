"""Typer app. Each command calls the library with the same words; only `main` turns errors into exit codes."""

# The CLI modules do without `from __future__ import annotations`: typer builds every command at
# each start, and evaluating string annotations (typing.get_type_hints) cost ~25 ms of it.

import gc
import sys
from pathlib import Path
from typing import Annotated

import typer

from loglake.cli.term import Stderr
from loglake.config import Config, load_config
from loglake.errors import ConfigError, LoglakeError, SchemaConflictError, UsageError

app = typer.Typer(
    name="loglake",
    help="Access logs to Hive-partitioned Parquet and SQL, with no per-row inserts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalog_app = typer.Typer(help="Catalog maintenance.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
dead_letter_app = typer.Typer(help="Lines that could not become rows.", no_args_is_help=True)
app.add_typer(dead_letter_app, name="dead-letter")

err = Stderr()
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="loglake.toml (default: $LOGLAKE_CONFIG or ./loglake.toml)")
]


def config_from(path: Path | None) -> Config:
    """The command's config; from here on, what it creates gets no bits for others (fsutil.py)."""
    from loglake.fsutil import restrict_umask

    cfg = load_config(path)
    restrict_umask(cfg.storage.group_readable)
    return cfg


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the configuration and report every problem at once."""
    cfg = config_from(config)
    from loglake.config import effective

    tables = ", ".join(f"{t.name}({len(t.columns)} columns)" for t in cfg.tables)
    err.print(
        f"[green]ok[/green] {cfg.source}: format={cfg.writer.format} tables={tables} "
        f"data_dir={cfg.data_dir} catalog={cfg.catalog.type} alerts={','.join(r.name for r in cfg.alerts)}"
    )
    err.print("effective: " + " ".join(f"{k}={v}" for k, v in effective(cfg).items()))


from loglake.cli import commands, lake, retention, serve, starter  # noqa: E402,F401  - registers the remaining commands


def main() -> None:
    """Entry point: run the app, mapping every failure to one `error:` line and an exit code.

    0 ok, 1 error, 2 usage or configuration error, 3 segments failed to convert, 75 transient,
    130 interrupted. A bug shows one line too; LOGLAKE_DEBUG=1 adds the traceback."""
    import os

    try:
        code = app(standalone_mode=False)  # click returns a `typer.Exit(n)` code instead of exiting
        if isinstance(code, int) and code:
            sys.exit(code)
    except (ConfigError, UsageError, SchemaConflictError) as e:
        _fail(str(e), 2)
    except LoglakeError as e:
        _fail(str(e), 75 if e.transient else 1)  # 75 = EX_TEMPFAIL: cron wrappers may retry
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        _fail(f"{e.strerror or e}{where}", 1)
    except Exception as e:
        # click's (typer's) own exceptions, matched by shape: typer vendors click in a private module.
        name = type(e).__name__
        if name == "Abort":
            sys.exit(130)
        if name == "Exit":
            sys.exit(int(getattr(e, "exit_code", 0) or 0))
        if hasattr(e, "exit_code") and hasattr(e, "format_message"):  # usage errors
            _fail(" ".join(str(e.format_message()).split()), int(e.exit_code))
        if os.environ.get("LOGLAKE_DEBUG"):
            raise
        _fail(f"internal error: {name}: {e} (set LOGLAKE_DEBUG=1 for the traceback)", 1)
    finally:
        sys.stdout.flush()
        # Every object left is about to be freed at exit: the collector's passes over them then
        # (module teardown) cost ~75 ms after a write of a few hundred MB, and find nothing.
        gc.freeze()


def _fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)
