"""Database engines for the embedded default (SQLite, WAL) and national mode (PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "sqlite_url"]

_SQLITE_BUSY_TIMEOUT_MS = 30_000


def sqlite_url(path: Path) -> str:
    """Return the SQLAlchemy URL of a SQLite file at ``path``."""
    return f"sqlite+pysqlite:///{path.resolve()}"


class Database:
    """An engine and its session factories.

    Parameters
    ----------
    url:
        SQLAlchemy URL: ``sqlite+pysqlite:///PATH`` for the embedded default, or
        ``postgresql+psycopg://...`` for a national deployment.
    echo:
        Log every statement (debugging only).

    Notes
    -----
    SQLite runs in WAL mode with ``synchronous=FULL`` so that a committed transaction
    survives a power cut; write transactions start with ``BEGIN IMMEDIATE`` and are
    serialised inside the process, so a transaction never fails half-way because
    another writer got in first. PostgreSQL runs at READ COMMITTED; concurrent job
    claims use ``FOR UPDATE SKIP LOCKED``.
    """

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            database = self.url.database
            if not database or database == ":memory:":
                raise ValueError(f"`url` must name a SQLite file, {self.url!s} is given")
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {
                "timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000,
                "check_same_thread": False,
            }
            # A small pool: a new SQLite connection costs its PRAGMAs on every session.
            kwargs["pool_size"] = 8
            kwargs["max_overflow"] = 16
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine)
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            bind=self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.is_sqlite
            else self.engine,
            expire_on_commit=False,
        )

    @property
    def dialect(self) -> str:
        """Name of the database dialect (``sqlite`` or ``postgresql``)."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Open a session for reading; its transaction ends (unwritten) when it closes.

        Objects read stay usable after the block: closing does not expire them.
        """
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """Open a write transaction, committed on success and rolled back on error."""
        if self._write_lock is not None:
            with self._write_lock, self._write_sessions.begin() as session:
                yield session
        else:
            with self._write_sessions.begin() as session:
                yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")
