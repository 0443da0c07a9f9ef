"""Deliveries name their document (one row per result, destination and document kind)
and keep what the remote answered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column(
            "kind", existing_type=sa.String(length=32), type_=sa.String(length=96)
        )
        batch_op.add_column(
            sa.Column("document_id", sa.String(length=128), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("remote_reply", sa.Text(), nullable=False, server_default=""))
        batch_op.create_unique_constraint(
            "uq_deliveries_document", ["result_id", "destination", "kind"]
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deliveries_document", type_="unique")
        batch_op.drop_column("remote_reply")
        batch_op.drop_column("document_id")
        batch_op.alter_column(
            "kind", existing_type=sa.String(length=96), type_=sa.String(length=32)
        )
