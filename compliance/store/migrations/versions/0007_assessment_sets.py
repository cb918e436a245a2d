"""Assessments kept in sets: one row for each check of a contract and period, holding its
measures' assessments column by column in one JSON document (compliance.store.packed).

- A national check stores one row per contract and period instead of one per measure: the
  store writes a fortieth of the rows, each as one text.
- A later check of the same contract and period no longer deletes the set it replaces: the
  set stays, marked ``replaced_by`` the check run that replaced it, as what that check found.
  Its figures' versions are in it, so ``check_figure`` holds only the evidence of checks
  replaced before this revision.
- ``assessment`` becomes a view of the current sets, one row per measure, with the columns
  the table had.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The assessment table's columns as 0006 left them, in their order.
_COLUMNS = ["contract_id", "period", "measure_id", "check_run_id", "schedule_version",
            "figure_period", "value", "source", "sources", "source_spread", "target_low",
            "target_high", "tolerance_low", "tolerance_high", "compared_with", "status", "rag",
            "direction", "previous_value", "change", "forecast", "forecast_status", "reason",
            "variation", "assurance", "figure_version"]


# The fields of a set the view shows after measure_id, in its order, as this revision wrote
# them (a revision's schema stays as it was, whatever the code's sets hold later).
FIELDS = ("measure_id", "schedule_version", "figure_period", "figure_version", "value",
          "source", "sources", "source_spread", "target_low", "target_high", "tolerance_low",
          "tolerance_high", "compared_with", "status", "rag", "direction", "previous_value",
          "change", "forecast", "forecast_status", "reason", "variation", "assurance")
FLOATS = frozenset({"value", "source_spread", "target_low", "target_high", "tolerance_low",
                    "tolerance_high", "compared_with", "previous_value", "change",
                    "forecast"})
INTEGERS = frozenset({"schedule_version", "figure_version", "sources"})


def _view(dialect: str) -> str:
    """The ``assessment`` view: the current sets' assessments, a row for each measure."""
    if dialect == "postgresql":
        def field(name: str) -> str:
            value = f"(doc.d -> '{name}' ->> (m.n - 1)::integer)"
            cast = ("double precision" if name in FLOATS else "integer" if name in INTEGERS
                    else "text")
            return f"{value}::{cast} AS {name}"

        return (
            "CREATE VIEW assessment AS SELECT s.contract_id, s.period, m.measure_id, "
            "s.check_run_id, " + ", ".join(field(f) for f in FIELDS[1:]) +
            " FROM assessment_set AS s"
            # Each set's document parsed once (OFFSET 0 keeps the planner from parsing it
            # again for every column of every row).
            " CROSS JOIN LATERAL (SELECT s.assessments::jsonb AS d OFFSET 0) AS doc"
            " CROSS JOIN LATERAL jsonb_array_elements_text(doc.d -> 'measure_id')"
            " WITH ORDINALITY AS m(measure_id, n)"
            " WHERE s.replaced_by IS NULL")
    fields = ", ".join(f"json_extract(s.assessments, '$.{name}[' || m.key || ']') AS {name}"
                       for name in FIELDS[1:])
    return ("CREATE VIEW assessment AS SELECT s.contract_id AS contract_id, "
            "s.period AS period, m.value AS measure_id, s.check_run_id AS check_run_id, "
            f"{fields} FROM assessment_set AS s, json_each(s.assessments, '$.measure_id') AS m "
            "WHERE s.replaced_by IS NULL")


def upgrade() -> None:
    import pandas as pd

    from compliance.store.packed import assessment_sets

    bind = op.get_bind()
    op.create_table(
        "assessment_set",
        sa.Column("check_run_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("replaced_by", sa.Integer(), nullable=True),
        sa.Column("assessments", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["check_run_id"], ["check_run.id"]),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.PrimaryKeyConstraint("check_run_id"),
    )
    op.create_index("ix_assessment_set_current", "assessment_set", ["contract_id", "period"],
                    unique=True, sqlite_where=sa.text("replaced_by IS NULL"),
                    postgresql_where=sa.text("replaced_by IS NULL"))
    # Each contract and period's assessments (of one check run) become its set, the
    # measures in the order they were stored (as written, on PostgreSQL), made as a check
    # makes its sets.
    within = "rowid" if bind.dialect.name == "sqlite" else "ctid"
    names = ", ".join(f'"{c}"' for c in _COLUMNS)
    rows = bind.execute(sa.text(
        f"SELECT {names} FROM assessment ORDER BY contract_id, period, {within}")).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=_COLUMNS).rename(
        columns={"contract_id": "contract", "measure_id": "measure"})
    sets = assessment_sets(frame)
    run_of = frame.groupby(["contract", "period"], sort=True)["check_run_id"].first()
    if sets.pairs:
        table = sa.table("assessment_set", sa.column("check_run_id"), sa.column("contract_id"),
                         sa.column("period"), sa.column("assessments"))
        op.bulk_insert(table, [
            {"check_run_id": int(run_of[pair]), "contract_id": pair[0], "period": pair[1],
             "assessments": document}
            for pair, document in zip(sets.pairs, sets.documents, strict=True)])
    op.drop_table("assessment")
    op.execute(_view(bind.dialect.name))


def downgrade() -> None:
    """Back to a table of the current assessments; the evidence of replaced sets goes to
    check_figure, as 0006 kept it."""
    from compliance.store.packed import unpacked

    bind = op.get_bind()
    sets = bind.execute(sa.text(
        "SELECT contract_id, period, check_run_id, assessments, replaced_by "
        "FROM assessment_set ORDER BY check_run_id")).all()
    op.execute("DROP VIEW assessment")
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
        sa.Column("variation", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
        sa.Column("assurance", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
        sa.Column("figure_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["check_run_id"], ["check_run.id"]),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.PrimaryKeyConstraint("contract_id", "period", "measure_id"),
    )
    current = [(c, p, r, doc) for c, p, r, doc, replaced in sets if replaced is None]
    replaced = [(c, p, r, doc) for c, p, r, doc, by in sets if by is not None]
    table = sa.table("assessment", *(sa.column(c) for c in _COLUMNS))
    if current:
        op.bulk_insert(table, [{name: _plain(name, row[name]) for name in _COLUMNS}
                               for row in unpacked(current).to_dict("records")])
    evidence = sa.table("check_figure", sa.column("check_run_id"), sa.column("measure_id"),
                        sa.column("figure_period"), sa.column("version"), sa.column("source"))
    if replaced:
        used = unpacked(replaced)
        used = used[used["figure_version"].notna()]
        op.bulk_insert(evidence, [
            {"check_run_id": int(r["check_run_id"]), "measure_id": r["measure_id"],
             "figure_period": r["figure_period"], "version": int(r["figure_version"]),
             "source": r["source"] or ""} for r in used.to_dict("records")])
    op.drop_index("ix_assessment_set_current", table_name="assessment_set",
                  sqlite_where=sa.text("replaced_by IS NULL"),
                  postgresql_where=sa.text("replaced_by IS NULL"))
    op.drop_table("assessment_set")


def _plain(name: str, value: object) -> object:
    """A value as the table's column takes it: NaN as NULL, whole numbers as ints."""
    import math

    if isinstance(value, float) and math.isnan(value):
        return None
    if name in INTEGERS or name == "check_run_id":
        return int(value)  # type: ignore[call-overload]
    return value
