"""``soi db``: the database schema."""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from soi.cli.options import ConfigOpt, DatabaseUrlOpt, DataDirOpt, fail, settings_or_exit
from soi.runtime import open_database
from store import current_revision, head_revision

__all__ = ["app"]

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None
) -> None:
    """Bring the database schema up to date (also done on first start)."""
    settings = settings_or_exit(config, data_dir=data_dir, database_url=database_url)
    try:
        database = open_database(settings, migrate=True)
        revision = current_revision(database)
        database.dispose()
    except SQLAlchemyError as exc:
        raise fail(f"cannot upgrade the database: {exc}") from None
    typer.echo(f"Database at revision {revision} (newest: {head_revision()}).")
