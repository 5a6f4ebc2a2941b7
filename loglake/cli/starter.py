"""`loglake init`: a starter config for a log, checked, and the commands that come next."""

import shlex
from pathlib import Path
from typing import Annotated

import typer

from loglake.cli.app import app, err
from loglake.errors import UsageError

#: Where a web server's log usually is, for `init` without --log.
USUAL_LOGS = ("/var/log/nginx/access.log", "/var/log/apache2/access.log", "/var/log/httpd/access_log")


@app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for loglake.toml (and loglake-data/)")] = Path("."),
    log: Annotated[Path | None, typer.Option("--log", help="The access log to detect the format from")] = None,
    log_format: Annotated[str, typer.Option("--log-format", help="nginx log_format string of that log")] = "",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing loglake.toml")] = False,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the data goes (default: DIR/loglake-data)")
    ] = None,
) -> None:
    """Write a commented starter loglake.toml for a log (format detected from its first lines)."""
    from loglake.config import load_config
    from loglake.starter import write_starter

    if log is None:
        log = next((Path(p) for p in USUAL_LOGS if Path(p).is_file()), None)
        if log is None:
            raise UsageError("which log? give --log FILE (none of " + ", ".join(USUAL_LOGS) + " exists)")
    if not log.is_file():
        raise UsageError(f"--log: {log} is not a file")
    target, found = write_starter(directory, log, log_format, force, data_dir)
    cfg = load_config(target)  # check-config: a ConfigError here is exit 2 with every problem
    err.print(
        f"[green]wrote[/green] {target}: format={found.format} ({found.rows} of {found.lines} sample lines parse), "
        f"columns={','.join(cfg.tables[0].columns)}, data_dir={cfg.data_dir}"
    )
    if found.hint:
        err.print(f"[yellow]hint:[/yellow] {found.hint}")
    c, f = shlex.quote(str(target)), shlex.quote(str(log.resolve()))
    print(f"loglake write -c {c} --follow {f}    # or without --follow, from cron")
    print(f"loglake rollover -c {c} --watch")
    print(f'loglake query -c {c} "select status, count(*) from access_log group by 1 order by 2 desc"')
