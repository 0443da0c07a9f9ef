"""Index series by study and modality together: QIDO-RS ``ModalitiesInStudy`` checks
each candidate study's series from the index alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 21:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_series_study_id_modality", "series", ["study_id", "modality"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_series_study_id_modality", table_name="series")
