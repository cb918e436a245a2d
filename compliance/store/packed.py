"""Assessments as the store keeps them: one set for each check of a contract and period,
its measures' assessments column by column in one JSON document.

A set reads ``{"measure_id": ["KPI1", "SM1.1", ...], "value": [99.0, 29.4, ...], ...}``: one
list per field of ``FIELDS``, each with one entry per measure, in the order the check gave
them. Missing values are ``null``; floats are written as the shortest text that reads back
as the same number (so they round-trip exactly). The ``assessment`` view of the store shows
the current sets one row per measure, as a table of assessments would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def packed(columns: Mapping[str, Any], bounds: Sequence[int]) -> list[str]:
    """The sets' documents: ``columns`` holds each field of ``FIELDS`` for every assessment,
    set after set (numpy arrays of floats or integers, or lists of Python values: None for
    missing); set k is rows ``bounds[k]`` to ``bounds[k + 1]``."""
    import orjson

    option = orjson.OPT_SERIALIZE_NUMPY
    fields = [(name, columns[name]) for name in FIELDS]
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
    frame = pd.DataFrame({name: pd.Series(column, dtype=_dtype(name, column))
                          for name, column in values.items()})
    return frame


def _dtype(name: str, column: list[Any]) -> Any:
    """A read-back column's type: floats with NaN for missing, whole numbers as int64 when
    none is missing (as a query's rows would be read), else as floats."""
    if name in FLOATS:
        return "float64"
    if name in INTEGERS or name == "check_run_id":
        return "int64" if None not in column else "float64"
    return object
