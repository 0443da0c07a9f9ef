"""Portable ``INSERT ... ON CONFLICT DO NOTHING`` followed by a read."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.models import Base

_M = TypeVar("_M", bound=Base)


def insert_ignore(session: Session, model: type[Base], values: dict[str, Any]) -> int:
    """Insert a row unless one with the same unique key exists; return 1 if inserted."""
    dialect = session.get_bind().dialect.name
    table = model
    # The ORM adds RETURNING to an insert; the row count must be kept explicitly then.
    keep = {"preserve_rowcount": True}
    if dialect == "postgresql":
        statement = postgresql.insert(table).values(**values).on_conflict_do_nothing()
        result = session.execute(statement.execution_options(**keep))
    elif dialect == "sqlite":
        statement_lite = sqlite.insert(table).values(**values).on_conflict_do_nothing()
        result = session.execute(statement_lite.execution_options(**keep))
    else:  # pragma: no cover - only the two supported databases
        raise NotImplementedError(f"database dialect {dialect!r} is not supported")
    return int(result.rowcount)  # type: ignore[attr-defined]


def get_or_create(
    session: Session, model: type[_M], key: dict[str, Any], values: dict[str, Any]
) -> tuple[_M, bool]:
    """Return the row of ``model`` matching ``key``, creating it with ``values`` if absent.

    Safe under concurrent writers: a row inserted meanwhile by another transaction is
    returned instead of raising a unique-constraint error.
    """
    statement = select(model).filter_by(**key)
    existing = session.scalars(statement).one_or_none()
    if existing is not None:
        return existing, False
    insert_ignore(session, model, {**values, **key})
    session.expire_all()
    row = session.scalars(statement).one()
    return row, True
