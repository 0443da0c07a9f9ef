"""Schema migrations (Alembic), run by ``soi db upgrade`` and on first start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from store.db import Database

__all__ = ["current_revision", "head_revision", "upgrade"]

_SCRIPT_LOCATION = Path(__file__).with_name("migrations")


def _config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    config.set_main_option(
        "sqlalchemy.url", database.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade(database: Database, revision: str = "head") -> str | None:
    """Bring the schema of ``database`` up to ``revision``; return the revision reached."""
    config = _config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return current_revision(database)


def current_revision(database: Database) -> str | None:
    """Return the schema revision the database is at (``None`` when empty)."""
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """Return the newest schema revision this version of Soi knows."""
    return ScriptDirectory(str(_SCRIPT_LOCATION)).get_current_head()
