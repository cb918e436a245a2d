"""When each contract's figures for a period first arrived, kept as they arrive: judging
lateness then reads one row per contract and period instead of every figure.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "return_arrival",
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.ForeignKeyConstraint(["submission_id"], ["submission.id"]),
        sa.PrimaryKeyConstraint("contract_id", "period"),
    )
    # The first submission of each contract and period that held a figure for it (the
    # earliest, as the lateness of returns was judged until now).
    op.execute(
        "INSERT INTO return_arrival (contract_id, period, submission_id, received_at) "
        "SELECT first.contract_id, first.period, min(s.id), first.received_at "
        "FROM (SELECT f.contract_id, f.period, min(s.submitted_at) AS received_at "
        "      FROM figure AS f JOIN submission AS s ON s.id = f.submission_id "
        "      GROUP BY f.contract_id, f.period) AS first "
        "JOIN figure AS f ON f.contract_id = first.contract_id AND f.period = first.period "
        "JOIN submission AS s ON s.id = f.submission_id "
        "AND s.submitted_at = first.received_at "
        "GROUP BY first.contract_id, first.period, first.received_at")


def downgrade() -> None:
    op.drop_table("return_arrival")
