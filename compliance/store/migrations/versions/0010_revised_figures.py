"""The revised figures indexed by contract: a check reading many contracts' latest figures
asks first whether any of them was revised, which without it meant reading every figure of
the contracts. Only figures of a version after the first are in it: a first return's import
does not touch it.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_figure_revised", "figure", ["contract_id"], unique=False,
                    sqlite_where=sa.text("version > 1"),
                    postgresql_where=sa.text("version > 1"))


def downgrade() -> None:
    op.drop_index("ix_figure_revised", table_name="figure")
