"""Figures without the indexes that only slowed their import: the unique constraint's index
(contract, measure, period, source, version) serves every query of the latest figures, and
no query looks figures up by their submission.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("figure", schema=None) as batch_op:
        batch_op.drop_index("ix_figure_lookup")
        batch_op.drop_index(batch_op.f("ix_figure_submission_id"))


def downgrade() -> None:
    with op.batch_alter_table("figure", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_figure_submission_id"), ["submission_id"], unique=False
        )
        batch_op.create_index(
            "ix_figure_lookup", ["contract_id", "period", "measure_id", "version"], unique=False
        )
