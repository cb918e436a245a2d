"""The store's first schema: contracts, schedule versions, measures, returns, figures, checks,
assessments and the audit trail.

Revision ID: 0001
Revises: None
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("command", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "contract",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("commissioner", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "submission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("figures", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("submitted_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "check_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("schedule_version", sa.Integer(), nullable=False),
        sa.Column("assessments", sa.Integer(), nullable=False),
        sa.Column("run_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("run_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contract.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "figure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("measure_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source_rank", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("numerator", sa.Float(), nullable=True),
        sa.Column("denominator", sa.Float(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contract.id"],
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submission.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contract_id", "measure_id", "period", "source", "version"),
    )
    with op.batch_alter_table("figure", schema=None) as batch_op:
        batch_op.create_index(
            "ix_figure_lookup", ["contract_id", "period", "measure_id", "version"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_figure_submission_id"), ["submission_id"], unique=False
        )
    op.create_table(
        "measure",
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("measure_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("parent", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("polarity", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("frequency", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("accumulation", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("judged", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("target_low", sa.Float(), nullable=True),
        sa.Column("target_high", sa.Float(), nullable=True),
        sa.Column("tolerance_low", sa.Float(), nullable=True),
        sa.Column("tolerance_high", sa.Float(), nullable=True),
        sa.Column("lag_months", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contract.id"],
        ),
        sa.PrimaryKeyConstraint("contract_id", "version", "measure_id"),
    )
    op.create_table(
        "schedule_version",
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("source_path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("effective_from", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=True),
        sa.Column("loaded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("loaded_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contract.id"],
        ),
        sa.PrimaryKeyConstraint("contract_id", "version"),
    )
    op.create_table(
        "assessment",
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("measure_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("check_run_id", sa.Integer(), nullable=False),
        sa.Column("schedule_version", sa.Integer(), nullable=False),
        sa.Column("figure_period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("sources", sa.Integer(), nullable=False),
        sa.Column("source_spread", sa.Float(), nullable=True),
        sa.Column("target_low", sa.Float(), nullable=True),
        sa.Column("target_high", sa.Float(), nullable=True),
        sa.Column("tolerance_low", sa.Float(), nullable=True),
        sa.Column("tolerance_high", sa.Float(), nullable=True),
        sa.Column("compared_with", sa.Float(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("rag", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("direction", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("previous_value", sa.Float(), nullable=True),
        sa.Column("change", sa.Float(), nullable=True),
        sa.Column("forecast", sa.Float(), nullable=True),
        sa.Column("forecast_status", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["check_run_id"],
            ["check_run.id"],
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contract.id"],
        ),
        sa.PrimaryKeyConstraint("contract_id", "period", "measure_id"),
    )
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assessment_check_run_id"), ["check_run_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("assessment")
    op.drop_table("check_run")
    op.drop_table("schedule_version")
    op.drop_table("measure")
    op.drop_table("figure")
    op.drop_table("submission")
    op.drop_table("contract")
    op.drop_table("audit")
