"""Table models of the store. Separate from the validation models they share fields with."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Index, Text
from sqlalchemy import text as sql_text
from sqlmodel import Field, SQLModel


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Contract(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=100)
    title: str
    commissioner: str
    provider: str
    current_version: int
    created_at: dt.datetime = Field(default_factory=_now)


class ScheduleVersion(SQLModel, table=True):
    __tablename__ = "schedule_version"

    contract_id: str = Field(primary_key=True, foreign_key="contract.id", max_length=100)
    version: int = Field(primary_key=True)
    sha256: str = Field(max_length=64)
    spec_json: str = Field(sa_column=Column(Text, nullable=False))
    source_path: str
    effective_from: str | None = Field(default=None, max_length=7)
    loaded_at: dt.datetime = Field(default_factory=_now)
    loaded_by: str


class Measure(SQLModel, table=True):
    contract_id: str = Field(primary_key=True, foreign_key="contract.id", max_length=100)
    version: int = Field(primary_key=True)
    measure_id: str = Field(primary_key=True, max_length=100)
    kind: str
    parent: str | None = None
    title: str
    unit: str
    polarity: str
    frequency: str
    accumulation: str
    judged: str
    target_low: float | None = None
    target_high: float | None = None
    tolerance_low: float | None = None
    tolerance_high: float | None = None
    lag_months: int = 0


class Submission(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    file: str
    sha256: str = Field(max_length=64)
    figures: int
    submitted_at: dt.datetime = Field(default_factory=_now)
    submitted_by: str


class Figure(SQLModel, table=True):
    """One version of one source's figure for a measure and period, as a return gave it.

    Its key is what it is (contract, measure, period, source, version); on SQLite the rows
    are stored in that order. The revised figures (a version after the first) are indexed by
    contract: a read of many contracts' latest figures asks first whether any was revised."""

    __table_args__ = (
        Index("ix_figure_revised", "contract_id", sqlite_where=sql_text("version > 1"),
              postgresql_where=sql_text("version > 1")),
        {"sqlite_with_rowid": False},
    )

    submission_id: int = Field(foreign_key="submission.id")
    contract_id: str = Field(primary_key=True, foreign_key="contract.id", max_length=100)
    measure_id: str = Field(primary_key=True, max_length=100)
    period: str = Field(primary_key=True, max_length=7)
    source: str = Field(default="", primary_key=True)
    source_rank: int = 0
    version: int = Field(primary_key=True)
    value: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    row: int


class ReturnArrival(SQLModel, table=True):
    """When the first figure for each contract and period arrived, and in which submission:
    how late a return was is judged from it."""

    __tablename__ = "return_arrival"

    contract_id: str = Field(primary_key=True, foreign_key="contract.id", max_length=100)
    period: str = Field(primary_key=True, max_length=7)
    submission_id: int = Field(foreign_key="submission.id")
    received_at: dt.datetime


class CheckRun(SQLModel, table=True):
    __tablename__ = "check_run"

    id: int | None = Field(default=None, primary_key=True)
    contract_id: str = Field(foreign_key="contract.id", max_length=100)
    period: str = Field(max_length=7)
    schedule_version: int
    assessments: int
    run_at: dt.datetime = Field(default_factory=_now)
    run_by: str


class AssessmentSet(SQLModel, table=True):
    """The assessments one check made of a contract's period: its measures' assessments in
    one JSON document, column by column (see compliance.store.packed). A later check of the
    same contract and period replaces it as the current set; the replaced set stays, as what
    that check found and the figures it used."""

    __tablename__ = "assessment_set"
    __table_args__ = (
        Index("ix_assessment_set_current", "contract_id", "period", unique=True,
              sqlite_where=sql_text("replaced_by IS NULL"),
              postgresql_where=sql_text("replaced_by IS NULL")),
    )

    check_run_id: int = Field(primary_key=True, foreign_key="check_run.id")
    contract_id: str = Field(foreign_key="contract.id", max_length=100)
    period: str = Field(max_length=7)
    # The check run whose set replaced this one; None while it is current.
    replaced_by: int | None = None
    assessments: str = Field(sa_column=Column(Text, nullable=False))


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=_now)
    actor: str
    command: str
    arguments: str = Field(sa_column=Column(Text, nullable=False))
    counts: str = Field(sa_column=Column(Text, nullable=False))


class FindingSet(SQLModel, table=True):
    """The findings the rules made for one contract: a breach, missing data, data quality or
    watch record for a measure-period each, in one JSON document, column by column (see
    compliance.store.packed). A check replaces the contract's set. Its findings are numbered
    from ``first_id`` on, one after the other; the ``finding`` view shows them a row each."""

    __tablename__ = "finding_set"

    contract_id: str = Field(primary_key=True, foreign_key="contract.id", max_length=100)
    first_id: int
    size: int
    findings: str = Field(sa_column=Column(Text, nullable=False))


class Finding(SQLModel):
    """A record a rule made for one measure-period: a breach, missing data, data quality
    or watch (a row of the ``finding`` view)."""

    id: int
    contract_id: str
    measure_id: str
    period: str
    figure_period: str
    type: str
    severity: str
    rule: str
    description: str
    value: float | None = None
    compared_with: float | None = None
    status: str
    settings: str
    facts: str


class EscalationSet(SQLModel, table=True):
    """The escalations of one contract's measures up its ladder, from opening to resolution,
    in one JSON document, column by column (see compliance.store.packed). A check replaces
    the contract's set; the ``escalation`` view shows them a row each."""

    __tablename__ = "escalation_set"

    contract_id: str = Field(primary_key=True, foreign_key="contract.id", max_length=100)
    size: int
    escalations: str = Field(sa_column=Column(Text, nullable=False))


class Escalation(SQLModel):
    """One escalation of a measure up the contract's ladder, from opening to resolution (a
    row of the ``escalation`` view)."""

    contract_id: str
    measure_id: str
    opened: str
    level: int
    forum: str
    status: str
    resolved: str | None = None
    rule: str
    resolved_rule: str | None = None
    description: str
    last_period: str
    history: str
    settings: str
    facts: str
    silenced_until: str | None = None
    silence_reason: str | None = None


class CheckFigure(SQLModel, table=True):
    """Which version of which figure a check used, for checks replaced before assessments
    were kept in sets (migration 0007). A set of assessments is its own evidence, replaced
    or not: each assessment carries its ``figure_version``."""

    __tablename__ = "check_figure"

    check_run_id: int = Field(primary_key=True, foreign_key="check_run.id")
    measure_id: str = Field(primary_key=True, max_length=100)
    figure_period: str = Field(max_length=7)
    version: int
    source: str = ""


class Silence(SQLModel, table=True):
    """New escalations of a measure held back over a run of periods, with the reason."""

    id: int | None = Field(default=None, primary_key=True)
    contract_id: str = Field(foreign_key="contract.id", max_length=100, index=True)
    measure_id: str = Field(max_length=100)
    start: str = Field(max_length=7)
    until: str = Field(max_length=7)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_at: dt.datetime = Field(default_factory=_now)
    created_by: str


class EscalationNote(SQLModel, table=True):
    """An officer's acknowledgement of, or note on, an escalation."""

    __tablename__ = "escalation_note"

    id: int | None = Field(default=None, primary_key=True)
    contract_id: str = Field(foreign_key="contract.id", max_length=100)
    measure_id: str = Field(max_length=100)
    opened: str = Field(max_length=7)
    kind: str = Field(max_length=10)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: dt.datetime = Field(default_factory=_now)
    created_by: str
