"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from soi.runtime import open_database
from soi.settings import Settings, load_settings
from store import Database

__all__ = [
    "ConfigOpt",
    "DataDirOpt",
    "DatabaseUrlOpt",
    "cli_database",
    "fail",
    "settings_or_exit",
]

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML settings file.", envvar="SOI_CONFIG", show_default=False),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data folder (default: ./soi-data).",
        envvar="SOI_DATA_DIR",
        show_default=False,
    ),
]
DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL (default: SQLite in the data folder).",
        envvar="SOI_DATABASE_URL",
        show_default=False,
    ),
]


def fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr and return the exit to raise."""
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@contextmanager
def cli_database(
    config: Path | None, *, data_dir: Path | None, database_url: str | None
) -> Iterator[Database]:
    """Open the configured database (migrated) for one command, and close it after."""
    database = open_database(settings_or_exit(config, data_dir=data_dir, database_url=database_url))
    try:
        yield database
    finally:
        database.dispose()


def settings_or_exit(config: Path | None, **overrides: Any) -> Settings:
    """Load settings, turning a bad value into a clear message and exit code 1."""
    try:
        return load_settings(config, **overrides)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise fail(f"invalid settings: {problems}") from None
