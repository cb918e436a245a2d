"""Statistical process control on each assessment (variation, assurance); silences of
escalations with their expiry; acknowledgements and notes on escalations.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("variation", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True))
        batch_op.add_column(
            sa.Column("assurance", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True))
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("silenced_until", sqlmodel.sql.sqltypes.AutoString(length=7),
                      nullable=True))
        batch_op.add_column(sa.Column("silence_reason", sa.Text(), nullable=True))
    op.create_table(
        "silence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("measure_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("start", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("until", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("silence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_silence_contract_id"), ["contract_id"],
                              unique=False)
    op.create_table(
        "escalation_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("measure_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("opened", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("escalation_note")
    op.drop_table("silence")
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.drop_column("silence_reason")
        batch_op.drop_column("silenced_until")
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.drop_column("assurance")
        batch_op.drop_column("variation")
