"""Indexes for QIDO-RS searches: patient identifier value, study date, accession number
and series modality.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_patient_identifiers_value"), "patient_identifiers", ["value"], unique=False
    )
    op.create_index(op.f("ix_studies_study_date"), "studies", ["study_date"], unique=False)
    op.create_index(
        op.f("ix_studies_accession_number"), "studies", ["accession_number"], unique=False
    )
    op.create_index(op.f("ix_series_modality"), "series", ["modality"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_series_modality"), table_name="series")
    op.drop_index(op.f("ix_studies_accession_number"), table_name="studies")
    op.drop_index(op.f("ix_studies_study_date"), table_name="studies")
    op.drop_index(op.f("ix_patient_identifiers_value"), table_name="patient_identifiers")
