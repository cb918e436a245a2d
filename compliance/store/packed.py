"""Assessments and findings as the store keeps them: one set for each check of a contract
and period, its measures' assessments column by column in one JSON document; and one set of
each contract's findings (see below).

A set reads ``{"measure_id": ["KPI1", "SM1.1", ...], "value": [99.0, 29.4, ...], ...}``: one
list per field of ``FIELDS``, each with one entry per measure, in the order the check gave
them. Missing values are ``null``; floats are written as the shortest text that reads back
as the same number (so they round-trip exactly). The ``assessment`` view of the store shows
the current sets one row per measure, as a table of assessments would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# The fields of an assessment in a set, in the order the ``assessment`` view gives them
# (after contract_id, period, measure_id and check_run_id, which are the set's).
FIELDS = ("measure_id", "schedule_version", "figure_period", "figure_version", "value",
          "source", "sources", "source_spread", "target_low", "target_high", "tolerance_low",
          "tolerance_high", "compared_with", "status", "rag", "direction", "previous_value",
          "change", "forecast", "forecast_status", "reason", "variation", "assurance")
FLOATS = frozenset({"value", "source_spread", "target_low", "target_high", "tolerance_low",
                    "tolerance_high", "compared_with", "previous_value", "change",
                    "forecast"})
INTEGERS = frozenset({"schedule_version", "figure_version", "sources"})
# The columns of assessments read back from the store, in order.
COLUMNS = ("contract_id", "period", "measure_id", "check_run_id", *FIELDS[1:])


# The assessments' columns of the check's frame named otherwise in a set.
_SOURCES = {"measure_id": "measure"}


@dataclass
class AssessmentSets:
    """A check's assessments as the store keeps them: for each (contract, period), in order,
    its number of assessments and its set's document."""

    pairs: list[tuple[str, str]]
    sizes: list[int]
    documents: list[str]
    # Where each row of the sets, set after set, was in the frame they were made of (not
    # stored: it lets a column the sets leave out be put in the same order).
    rows: Any = None


def assessment_sets(assessments: pd.DataFrame) -> AssessmentSets:
    """The sets of a check's assessments (a frame with ``contract``, ``period``,
    ``measure`` and the other fields of ``FIELDS``): one for each (contract, period), the
    measures in the frame's order. Rows without a contract or period belong to none."""
    import numpy as np

    from compliance.store.columns import integers, objects, texts

    if assessments.empty:
        return AssessmentSets([], [], [])
    groups = assessments.groupby(["contract", "period"], sort=True, observed=True)
    number = groups.ngroup().fillna(-1).to_numpy(dtype=np.int64)
    sizes = groups.size()
    order = np.argsort(number, kind="stable")
    order = order[number[order] >= 0]
    columns: dict[str, Any] = {}
    for field in FIELDS:
        column = assessments[_SOURCES.get(field, field)]
        if field in FLOATS:
            columns[field] = column.to_numpy(dtype=np.float64)[order]
        elif field == "sources":  # missing: none
            columns[field] = (
                column.to_numpy(dtype=np.int64) if column.dtype.kind in "iu"
                else np.asarray([int(v or 0) for v in objects(column).tolist()],
                                dtype=np.int64))[order]
        elif field == "schedule_version":
            columns[field] = column.to_numpy(dtype=np.int64)[order]
        elif field == "figure_version":  # the version used, or None
            columns[field] = integers(column)[order].tolist()
        elif field == "reason":  # never missing: ''
            columns[field] = texts(column)[order].tolist()
        else:
            columns[field] = objects(column)[order].tolist()
    counts = sizes.to_numpy(dtype=np.int64).tolist()
    bounds = [0, *np.cumsum(counts).tolist()]
    return AssessmentSets(pairs=[(str(c), str(p)) for c, p in sizes.index], sizes=counts,
                          documents=packed(columns, bounds), rows=order)


def packed(columns: Mapping[str, Any], bounds: Sequence[int]) -> list[str]:
    """The sets' documents: ``columns`` holds each field of ``FIELDS`` for every assessment,
    set after set (numpy arrays of floats or integers, or lists of Python values: None for
    missing); set k is rows ``bounds[k]`` to ``bounds[k + 1]``."""
    return _documents(FIELDS, columns, bounds)


def _documents(names: Sequence[str], columns: Mapping[str, Any], bounds: Sequence[int]
               ) -> list[str]:
    """One JSON document for each run of rows ``bounds[k]`` to ``bounds[k + 1]``: the
    columns ``names``, each as a list of the run's values."""
    import orjson

    option = orjson.OPT_SERIALIZE_NUMPY
    fields = [(name, columns[name]) for name in names]
    return [orjson.dumps({name: values[start:stop] for name, values in fields},
                         option=option).decode()
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def unpacked(sets: Iterable[tuple[str, str, int, str]]) -> pd.DataFrame:
    """Assessments of sets given as (contract, period, check run, document), one row per
    measure, with the columns of ``COLUMNS``: missing floats are NaN, missing texts None."""
    import orjson
    import pandas as pd

    values: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for contract, period, run, document in sets:
        doc = orjson.loads(document)
        count = len(doc["measure_id"])
        values["contract_id"].extend([contract] * count)
        values["period"].extend([period] * count)
        values["check_run_id"].extend([run] * count)
        for name in FIELDS:
            values[name].extend(doc[name])
    return pd.DataFrame({name: pd.Series(column, dtype=_dtype(name, column))
                         for name, column in values.items()})


def _dtype(name: str, column: list[Any]) -> Any:
    """A read-back column's type: floats with NaN for missing, whole numbers as int64 when
    none is missing (as a query's rows would be read), else as floats."""
    if name in FLOATS:
        return "float64"
    if name in INTEGERS or name == "check_run_id":
        return "int64" if None not in column else "float64"
    return object


# --- findings ---------------------------------------------------------------------------------
#
# A contract's findings are kept as one set too: ``{"measure_id": [...], "period": [...],
# ...}``, one list per field of ``FINDING_FIELDS`` with one entry per finding, in the order
# the rules gave them. The set's row holds the id of its first finding; the others follow it
# one by one. The ``finding`` view of the store shows them one row per finding, as the table
# of findings did.

FINDING_FIELDS = ("measure_id", "period", "figure_period", "type", "severity", "rule",
                  "description", "value", "compared_with", "status", "settings", "facts")
FINDING_FLOATS = frozenset({"value", "compared_with"})
# The columns of findings read back from the store (the ``finding`` view's), in order.
STORED_FINDING_COLUMNS = ("id", "contract_id", *FINDING_FIELDS)
# What makes a finding one of its own: no two findings of a contract share all of these.
FINDING_KEY = ("measure_id", "period", "type", "rule")


@dataclass
class FindingSets:
    """The rules' findings as the store keeps them: for each contract that has any, in the
    order of their first finding, the number of its findings and its set's document."""

    contracts: list[str]
    sizes: list[int]
    documents: list[str]


def finding_sets(findings: pd.DataFrame) -> FindingSets:
    """The sets of the rules' findings (a frame with ``contract``, ``measure`` and the other
    fields of ``FINDING_FIELDS``): one for each contract, its findings in the frame's order.

    Raises ValueError when two findings of a contract share their ``FINDING_KEY``."""
    import numpy as np
    import pandas as pd

    from compliance.store.columns import objects

    if findings.empty:
        return FindingSets([], [], [])
    key = ["contract", *(_SOURCES.get(name, name) for name in FINDING_KEY)]
    twice = findings.duplicated(key, keep=False).to_numpy()
    if twice.any():
        first = findings[twice].iloc[0]
        raise ValueError("two findings of one contract share their measure, period, type "
                         f"and rule: {', '.join(str(first[name]) for name in key)}")
    codes, contracts = pd.factorize(findings["contract"])
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(contracts)).tolist()
    columns: dict[str, Any] = {}
    for name in FINDING_FIELDS:
        column = findings[_SOURCES.get(name, name)]
        if name in FINDING_FLOATS:
            columns[name] = column.to_numpy(dtype=np.float64)[order]
        else:
            columns[name] = objects(column)[order].tolist()
    bounds = [0, *np.cumsum(counts).tolist()]
    return FindingSets(contracts=[str(c) for c in contracts], sizes=counts,
                       documents=_documents(FINDING_FIELDS, columns, bounds))


def unpacked_findings(sets: Iterable[tuple[str, int, str]]) -> list[dict[str, Any]]:
    """The findings of sets given as (contract, first id, document), one dict per finding
    with the keys of ``STORED_FINDING_COLUMNS``, in order of id."""
    rows: list[dict[str, Any]] = []
    for contract, first, document in sets:
        rows.extend({"id": first + k, "contract_id": contract, **row}
                    for k, row in enumerate(_rows(document, FINDING_FIELDS)))
    return rows


def _rows(document: str | bytes, names: Sequence[str]) -> Iterator[dict[str, Any]]:
    """A set's document (see ``_documents``) a row at a time: the fields ``names`` of each."""
    import orjson

    doc = orjson.loads(document)
    for values in zip(*(doc[name] for name in names), strict=True):
        yield dict(zip(names, values, strict=True))


# --- escalations ------------------------------------------------------------------------------
#
# A contract's escalations are kept as one set too: ``{"measure_id": [...], "opened": [...],
# ...}``, one list per field of ``ESCALATION_FIELDS`` with one entry per escalation, in the
# order the rules gave them. The ``escalation`` view of the store shows them one row each, as
# the table of escalations did.

ESCALATION_FIELDS = ("measure_id", "opened", "level", "forum", "status", "resolved", "rule",
                     "resolved_rule", "description", "last_period", "history", "settings",
                     "facts", "silenced_until", "silence_reason")
# The columns of escalations read back from the store (the ``escalation`` view's), in order.
STORED_ESCALATION_COLUMNS = ("contract_id", *ESCALATION_FIELDS)


@dataclass
class EscalationSets:
    """The rules' escalations as the store keeps them: for each contract that has any, in the
    order they come, the number of its escalations and its set's document."""

    contracts: list[str]
    sizes: list[int]
    documents: list[str]


def escalation_sets(columns: Mapping[str, Sequence[Any]]) -> EscalationSets:
    """The sets of escalations given column by column (``STORED_ESCALATION_COLUMNS``, as
    ``escalation.escalation_columns`` gives them), each contract's together: one set for each
    contract, its escalations in the order given.

    Raises ValueError when a contract's escalations are not together, or two of them share
    their measure and opening."""
    contracts = list(columns.get("contract_id", ()))
    bounds = [k for k in range(len(contracts)) if k == 0 or contracts[k] != contracts[k - 1]]
    runs = [contracts[k] for k in bounds]
    if len(set(runs)) != len(runs):
        raise ValueError("the escalations of a contract are not together")
    keys = set(zip(contracts, columns.get("measure_id", ()), columns.get("opened", ()),
                   strict=True))
    if len(keys) != len(contracts):
        raise ValueError("two escalations of one contract share their measure and opening")
    bounds.append(len(contracts))
    return EscalationSets(contracts=runs,
                          sizes=[b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
                          documents=_documents(ESCALATION_FIELDS, columns, bounds))


def unpacked_escalations(sets: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """The escalations of sets given as (contract, document), one dict per escalation with
    the keys of ``STORED_ESCALATION_COLUMNS``, set after set."""
    rows: list[dict[str, Any]] = []
    for contract, document in sets:
        rows.extend({"contract_id": contract, **row}
                    for row in _rows(document, ESCALATION_FIELDS))
    return rows
