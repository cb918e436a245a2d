"""Escalations kept in sets: one row for each contract, holding its escalations column by
column in one JSON document (compliance.store.packed).

- A national check writes one row per contract instead of one per escalation (some 80,000).
- ``escalation`` becomes a view of the sets, one row per escalation, with the columns the
  table had. That no two escalations of a contract share their measure and opening is
  checked as the sets are made, as the table's primary key did.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The escalation table's columns as 0008 left them, in their order.
_COLUMNS = ["contract_id", "measure_id", "opened", "level", "forum", "status", "resolved",
            "rule", "resolved_rule", "description", "last_period", "history", "settings",
            "facts", "silenced_until", "silence_reason"]
# The fields of a set, in the view's order, as this revision wrote them (a revision's
# schema stays as it was, whatever the code's sets hold later).
ESCALATION_FIELDS = tuple(_COLUMNS[1:])
_INTEGERS = frozenset({"level"})


def _view(dialect: str) -> str:
    """The ``escalation`` view: the sets' escalations, a row for each."""
    if dialect == "postgresql":
        def field(name: str) -> str:
            value = f"(doc.d -> '{name}' ->> (m.n - 1)::integer)"
            return f"{value}::{'integer' if name in _INTEGERS else 'text'} AS {name}"

        return (
            "CREATE VIEW escalation AS SELECT s.contract_id, m.measure_id, "
            + ", ".join(field(f) for f in ESCALATION_FIELDS[1:]) +
            " FROM escalation_set AS s"
            # Each set's document parsed once (as the finding view does).
            " CROSS JOIN LATERAL (SELECT s.escalations::jsonb AS d OFFSET 0) AS doc"
            " CROSS JOIN LATERAL jsonb_array_elements_text(doc.d -> 'measure_id')"
            " WITH ORDINALITY AS m(measure_id, n)")
    fields = ", ".join(f"json_extract(s.escalations, '$.{name}[' || m.key || ']') AS {name}"
                       for name in ESCALATION_FIELDS[1:])
    return ("CREATE VIEW escalation AS SELECT s.contract_id AS contract_id, "
            f"m.value AS measure_id, {fields} "
            "FROM escalation_set AS s, json_each(s.escalations, '$.measure_id') AS m")


def upgrade() -> None:
    import orjson

    bind = op.get_bind()
    op.create_table(
        "escalation_set",
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("escalations", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.PrimaryKeyConstraint("contract_id"),
    )
    # Each contract's escalations become its set, in the order they were stored (as
    # written, on PostgreSQL), as a check makes its sets.
    within = "rowid" if bind.dialect.name == "sqlite" else "ctid"
    names = ", ".join(f'"{c}"' for c in _COLUMNS)
    rows = bind.execute(sa.text(
        f"SELECT {names} FROM escalation ORDER BY contract_id, {within}")).all()
    sets: dict[str, dict[str, list[object]]] = {}
    for row in rows:
        columns = sets.setdefault(str(row[0]), {name: [] for name in ESCALATION_FIELDS})
        for name, value in zip(ESCALATION_FIELDS, tuple(row)[1:], strict=True):
            columns[name].append(value)
    if sets:
        table = sa.table("escalation_set", sa.column("contract_id"), sa.column("size"),
                         sa.column("escalations"))
        op.bulk_insert(table, [
            {"contract_id": cid, "size": len(columns["measure_id"]),
             "escalations": orjson.dumps(columns).decode()}
            for cid, columns in sets.items()])
    op.drop_table("escalation")
    op.execute(_view(bind.dialect.name))


def downgrade() -> None:
    """Back to a table of escalations."""
    import orjson

    bind = op.get_bind()
    sets = bind.execute(sa.text(
        "SELECT contract_id, escalations FROM escalation_set ORDER BY contract_id")).all()
    op.execute("DROP VIEW escalation")
    op.create_table(
        "escalation",
        sa.Column("contract_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("measure_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("opened", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("forum", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("resolved", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=True),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("resolved_rule", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("last_period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("history", sa.Text(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("silenced_until", sqlmodel.sql.sqltypes.AutoString(length=7),
                  nullable=True),
        sa.Column("silence_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.PrimaryKeyConstraint("contract_id", "measure_id", "opened"),
    )
    rows = []
    for contract, document in sets:
        doc = orjson.loads(document)
        for values in zip(*(doc[name] for name in ESCALATION_FIELDS), strict=True):
            rows.append({"contract_id": str(contract),
                         **dict(zip(ESCALATION_FIELDS, values, strict=True))})
    if rows:
        op.bulk_insert(sa.table("escalation", *(sa.column(c) for c in _COLUMNS)), rows)
    op.drop_table("escalation_set")
