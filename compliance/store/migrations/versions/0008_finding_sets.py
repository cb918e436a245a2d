"""Findings kept in sets: one row for each contract, holding its findings column by column in
one JSON document (compliance.store.packed).

- A national check writes one row per contract instead of one per finding.
- The set's row holds the id of its first finding; the others follow one by one. A contract's
  findings were always numbered so, one after the other; a contract whose findings were not
  (on PostgreSQL, two checks writing at once could interleave them) is numbered again from
  after the largest id held.
- ``finding`` becomes a view of the sets, one row per finding, with the columns the table had.
  That no two findings of a contract share their measure, period, type and rule is checked as
  the sets are made, as the table's unique constraint did.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The finding table's columns as 0007 left them, in their order.
_COLUMNS = ["id", "contract_id", "measure_id", "period", "figure_period", "type", "severity",
            "rule", "description", "value", "compared_with", "status", "settings", "facts"]


# The fields of a set, in the view's order, as this revision wrote them (a revision's
# schema stays as it was, whatever the code's sets hold later).
FINDING_FIELDS = ("measure_id", "period", "figure_period", "type", "severity", "rule",
                  "description", "value", "compared_with", "status", "settings", "facts")
FINDING_FLOATS = frozenset({"value", "compared_with"})


def _view(dialect: str) -> str:
    """The ``finding`` view: the sets' findings, a row for each."""
    if dialect == "postgresql":
        def field(name: str) -> str:
            value = f"(doc.d -> '{name}' ->> (m.n - 1)::integer)"
            return f"{value}::{'double precision' if name in FINDING_FLOATS else 'text'} AS {name}"

        return (
            "CREATE VIEW finding AS SELECT (s.first_id + m.n - 1)::integer AS id, "
            "s.contract_id, m.measure_id, " + ", ".join(field(f) for f in FINDING_FIELDS[1:]) +
            " FROM finding_set AS s"
            # Each set's document parsed once (as the assessment view does).
            " CROSS JOIN LATERAL (SELECT s.findings::jsonb AS d OFFSET 0) AS doc"
            " CROSS JOIN LATERAL jsonb_array_elements_text(doc.d -> 'measure_id')"
            " WITH ORDINALITY AS m(measure_id, n)")
    fields = ", ".join(f"json_extract(s.findings, '$.{name}[' || m.key || ']') AS {name}"
                       for name in FINDING_FIELDS[1:])
    return ("CREATE VIEW finding AS SELECT s.first_id + m.key AS id, "
            "s.contract_id AS contract_id, m.value AS measure_id, "
            f"{fields} FROM finding_set AS s, json_each(s.findings, '$.measure_id') AS m")


def upgrade() -> None:
    import pandas as pd

    from compliance.store.packed import finding_sets

    bind = op.get_bind()
    op.create_table(
        "finding_set",
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.PrimaryKeyConstraint("contract_id"),
    )
    names = ", ".join(f'"{c}"' for c in _COLUMNS)
    rows = bind.execute(sa.text(f"SELECT {names} FROM finding ORDER BY contract_id, id")).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=_COLUMNS).rename(
        columns={"contract_id": "contract", "measure_id": "measure"})
    sets = finding_sets(frame)
    if sets.contracts:
        ids = frame.groupby("contract", sort=False)["id"].agg(["min", "max"])
        largest = int(ids["max"].max())
        firsts = []
        for cid, size in zip(sets.contracts, sets.sizes, strict=True):
            low, high = int(ids.at[cid, "min"]), int(ids.at[cid, "max"])
            if high - low + 1 != size:  # not one after the other: numbered again
                low, largest = largest + 1, largest + size
            firsts.append(low)
        table = sa.table("finding_set", sa.column("contract_id"), sa.column("first_id"),
                         sa.column("size"), sa.column("findings"))
        op.bulk_insert(table, [
            {"contract_id": cid, "first_id": first, "size": size, "findings": document}
            for cid, first, size, document in zip(sets.contracts, firsts, sets.sizes,
                                                  sets.documents, strict=True)])
    op.drop_table("finding")
    op.execute(_view(bind.dialect.name))


def downgrade() -> None:
    """Back to a table of findings, with their ids."""
    from compliance.store.packed import unpacked_findings

    bind = op.get_bind()
    sets = bind.execute(sa.text(
        "SELECT contract_id, first_id, findings FROM finding_set ORDER BY first_id")).all()
    op.execute("DROP VIEW finding")
    op.create_table(
        "finding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("measure_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("figure_period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("compared_with", sa.Float(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contract_id", "measure_id", "period", "type", "rule"),
    )
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.create_index("ix_finding_period", ["contract_id", "period"], unique=False)
    rows = unpacked_findings((str(c), int(first), doc) for c, first, doc in sets)
    if rows:
        op.bulk_insert(sa.table("finding", *(sa.column(c) for c in _COLUMNS)), rows)
        if bind.dialect.name == "postgresql":
            # Rows given their ids: the table's own numbering goes on after them.
            op.execute("SELECT setval(pg_get_serial_sequence('finding', 'id'), max(id)) "
                       "FROM finding")
    op.drop_table("finding_set")
