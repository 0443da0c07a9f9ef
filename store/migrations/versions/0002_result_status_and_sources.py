"""Results carry their status (preliminary until signed) and per-instance details;
findings name the image they were read on and their overlay picture; jobs count
their failures apart from their claims.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 07:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failures", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "status",
                sa.Enum(
                    "preliminary",
                    "final",
                    "amended",
                    name="resultstatus",
                    native_enum=False,
                    length=32,
                ),
                nullable=False,
                server_default="preliminary",
            )
        )
        batch_op.add_column(
            sa.Column("details", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sop_instance_uid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("overlay_path", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_column("overlay_path")
        batch_op.drop_column("sop_instance_uid")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("details")
        batch_op.drop_column("status")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("failures")
