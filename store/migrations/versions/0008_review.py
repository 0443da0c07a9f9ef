"""Review: each study's urgency and review state (with the worklist indexes), readers'
decisions on findings, and signed reports.

The urgency of the studies already stored is filled in from their current results
(the newest result of each job), with the default critical label ``pneumothorax``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The labels the urgency backfill takes as critical (the setting's default).
_CRITICAL_LABELS = ("pneumothorax",)

#: The newest result of each of the study's jobs.
_CURRENT = "SELECT MAX(r2.id) FROM results r2 WHERE r2.study_id = studies.id GROUP BY r2.job_id"
_POSITIVE = (
    "SELECT 1 FROM findings f JOIN results r ON r.id = f.result_id "
    f"WHERE r.id IN ({_CURRENT}) AND r.state = 'complete' AND f.positive = :yes"
)
_BACKFILL = f"""
UPDATE studies SET
    urgency = CASE
        WHEN EXISTS ({_POSITIVE} AND f.label IN :critical) THEN 0
        WHEN EXISTS ({_POSITIVE}) THEN 1
        WHEN EXISTS (
            SELECT 1 FROM results r WHERE r.id IN ({_CURRENT}) AND r.state = 'complete'
        ) THEN 2
        ELSE 3
    END,
    urgency_score = COALESCE((
        SELECT MAX(f.probability) FROM findings f JOIN results r ON r.id = f.result_id
        WHERE r.id IN ({_CURRENT}) AND r.state = 'complete' AND f.positive = :yes
    ), 0)
"""


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: SQLite adds columns with a constant default
    # (and a REFERENCES clause) in place, where rebuilding the table (batch mode) would
    # trip over the rows of other tables that refer to the studies.
    op.add_column(
        "studies", sa.Column("urgency", sa.SmallInteger(), nullable=False, server_default="3")
    )
    op.add_column(
        "studies", sa.Column("urgency_score", sa.Float(), nullable=False, server_default="0")
    )
    op.add_column(
        "studies",
        sa.Column(
            "review_state",
            sa.Enum(
                "unread",
                "in_review",
                "signed",
                "amended",
                name="reviewstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
            server_default="unread",
        ),
    )
    op.add_column(
        "studies",
        sa.Column("review_version", sa.Integer(), nullable=False, server_default="0"),
    )
    if op.get_context().dialect.name == "sqlite":
        # Alembic adds no constraint to an existing SQLite table; SQLite takes it inline.
        op.execute(
            "ALTER TABLE studies ADD COLUMN assigned_to_user_id INTEGER "
            "CONSTRAINT fk_studies_assigned_to_user_id_users REFERENCES users (id)"
        )
    else:
        op.add_column("studies", sa.Column("assigned_to_user_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_studies_assigned_to_user_id_users"),
            "studies",
            "users",
            ["assigned_to_user_id"],
            ["id"],
        )
    op.create_index(
        op.f("ix_studies_assigned_to_user_id"), "studies", ["assigned_to_user_id"], unique=False
    )
    for name, leading in (
        ("ix_studies_worklist", []),
        ("ix_studies_facility_worklist", ["facility_id"]),
    ):
        op.create_index(
            name,
            "studies",
            [
                *leading,
                "urgency",
                sa.text("urgency_score DESC"),
                "first_received_at",
                "id",
                "review_state",
            ],
            unique=False,
        )
    op.execute(
        sa.text(_BACKFILL).bindparams(
            sa.bindparam("critical", value=list(_CRITICAL_LABELS), expanding=True),
            sa.bindparam("yes", value=True, type_=sa.Boolean()),
        )
    )

    op.create_table(
        "finding_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("ai_probability", sa.Float(), nullable=True),
        sa.Column(
            "decision",
            sa.Enum(
                "accepted",
                "rejected",
                "edited",
                "added",
                name="reviewdecision",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("probability_class", sa.Text(), nullable=True),
        sa.Column("region", sa.JSON(), nullable=True),
        sa.Column("reader_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_finding_reviews_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_finding_reviews_result_id_results")
        ),
        sa.ForeignKeyConstraint(
            ["finding_id"], ["findings.id"], name=op.f("fk_finding_reviews_finding_id_findings")
        ),
        sa.ForeignKeyConstraint(
            ["reader_user_id"],
            ["users.id"],
            name=op.f("fk_finding_reviews_reader_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finding_reviews")),
    )
    with op.batch_alter_table("finding_reviews", schema=None) as batch_op:
        for column in ("study_id", "result_id", "finding_id", "reader_user_id"):
            batch_op.create_index(
                batch_op.f(f"ix_finding_reviews_{column}"), [column], unique=False
            )

    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("final", "amended", name="reportstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("impression", sa.Text(), nullable=False),
        sa.Column("signed_by_user_id", sa.Integer(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("supersedes_report_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_reports_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["signed_by_user_id"],
            ["users.id"],
            name=op.f("fk_reports_signed_by_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_report_id"],
            ["reports.id"],
            name=op.f("fk_reports_supersedes_report_id_reports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("study_id", "version", name="uq_reports_study_version"),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reports_signed_by_user_id"), ["signed_by_user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reports_signed_by_user_id"))
    op.drop_table("reports")
    with op.batch_alter_table("finding_reviews", schema=None) as batch_op:
        for column in ("reader_user_id", "finding_id", "result_id", "study_id"):
            batch_op.drop_index(batch_op.f(f"ix_finding_reviews_{column}"))
    op.drop_table("finding_reviews")
    op.drop_index("ix_studies_facility_worklist", table_name="studies")
    op.drop_index("ix_studies_worklist", table_name="studies")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_studies_assigned_to_user_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_studies_assigned_to_user_id_users"), type_="foreignkey"
        )
        for column in (
            "assigned_to_user_id",
            "review_version",
            "review_state",
            "urgency_score",
            "urgency",
        ):
            batch_op.drop_column(column)
