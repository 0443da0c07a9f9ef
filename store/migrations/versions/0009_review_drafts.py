"""Review drafts: the impression a reader is writing, and which save each decision
belongs to.

``studies.review_impression`` holds the impression draft of the current review round;
``finding_reviews.review_version`` the study's review version the save that recorded
the decision produced (the decisions of the newest save are the current ones; rows
recorded before this revision have none).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-15 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (a constant default, no constraint), as in 0008.
    op.add_column(
        "studies",
        sa.Column("review_impression", sa.Text(), nullable=False, server_default=""),
    )
    op.add_column("finding_reviews", sa.Column("review_version", sa.Integer(), nullable=True))
    op.create_index(
        "ix_finding_reviews_study_id_review_version",
        "finding_reviews",
        ["study_id", "review_version"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_finding_reviews_study_id_review_version", table_name="finding_reviews")
    with op.batch_alter_table("finding_reviews", schema=None) as batch_op:
        batch_op.drop_column("review_version")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("review_impression")
