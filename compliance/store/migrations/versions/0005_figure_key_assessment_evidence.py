"""Figures keyed by what they are; each assessment names the figure version it used.

- A figure is identified by its contract, measure, period, source and version: that is now
  its primary key, in place of a number no query used. On SQLite the table is stored in that
  key's order (WITHOUT ROWID), so one b-tree holds both the rows and the key.
- An assessment carries the version of the figure it used (``figure_version``). The check's
  evidence (``check_figure``) then holds only what checks since replaced used: the current
  assessments are their own evidence. Existing evidence of current assessments moves onto
  them.
- The index of assessments by check run goes: no query looks assessments up that way.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_KEY = ["contract_id", "measure_id", "period", "source", "version"]
_COLUMNS = ["submission_id", "contract_id", "measure_id", "period", "source", "source_rank",
            "version", "value", "numerator", "denominator", "comment", "row"]


def _figure_columns() -> list[sa.Column[object]]:
    return [
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
    ]


def _sqlite_rebuild(keyed: bool) -> None:
    """SQLite cannot change a table's primary key in place: the figures move to a new table."""
    op.rename_table("figure", "figure_old")
    if keyed:
        op.create_table(
            "figure", *_figure_columns(),
            sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
            sa.ForeignKeyConstraint(["submission_id"], ["submission.id"]),
            sa.PrimaryKeyConstraint(*_KEY),
            sqlite_with_rowid=False,
        )
        columns = ", ".join(f'"{c}"' for c in _COLUMNS)
        op.execute(f"INSERT INTO figure ({columns}) SELECT {columns} FROM figure_old "
                   f"ORDER BY {', '.join(_KEY)}")
    else:
        op.create_table(
            "figure", sa.Column("id", sa.Integer(), nullable=False), *_figure_columns(),
            sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
            sa.ForeignKeyConstraint(["submission_id"], ["submission.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint(*_KEY),
        )
        columns = ", ".join(f'"{c}"' for c in _COLUMNS)
        op.execute(f"INSERT INTO figure ({columns}) SELECT {columns} FROM figure_old "
                   f"ORDER BY submission_id, \"row\", source_rank")
    op.drop_table("figure_old")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_rebuild(keyed=True)
    else:
        for unique in sa.inspect(bind).get_unique_constraints("figure"):
            if sorted(unique["column_names"]) == sorted(_KEY) and unique["name"]:
                op.drop_constraint(unique["name"], "figure", type_="unique")
        primary = sa.inspect(bind).get_pk_constraint("figure")["name"] or "figure_pkey"
        op.drop_constraint(primary, "figure", type_="primary")
        op.drop_column("figure", "id")
        op.create_primary_key("figure_pkey", "figure", _KEY)

    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("figure_version", sa.Integer(), nullable=True))
    # The evidence of the current assessments moves onto them.
    op.execute(
        "UPDATE assessment SET figure_version = (SELECT f.version FROM check_figure AS f "
        "WHERE f.check_run_id = assessment.check_run_id "
        "AND f.measure_id = assessment.measure_id)")
    op.execute(
        "DELETE FROM check_figure WHERE (check_run_id, measure_id) IN "
        "(SELECT check_run_id, measure_id FROM assessment)")
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assessment_check_run_id"))


def downgrade() -> None:
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assessment_check_run_id"), ["check_run_id"],
                              unique=False)
    op.execute(
        "INSERT INTO check_figure (check_run_id, measure_id, figure_period, version, source) "
        "SELECT check_run_id, measure_id, figure_period, figure_version, "
        "coalesce(source, '') FROM assessment WHERE figure_version IS NOT NULL")
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.drop_column("figure_version")

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_rebuild(keyed=False)
    else:
        op.drop_constraint("figure_pkey", "figure", type_="primary")
        op.add_column("figure", sa.Column("id", sa.Integer(), sa.Identity(), nullable=False))
        op.create_primary_key("figure_pkey", "figure", ["id"])
        op.create_unique_constraint(None, "figure", _KEY)
