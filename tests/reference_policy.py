"""A plain, independent reference of the standard escalation policy (SPEC section 4).

Written from the policy text alone, to be checked against the engine (rule pack compiled into
durable-rules, features computed by ``add_features``, the ladder replayed by ``_ladder``). It
uses none of ``compliance.rulepack``, ``compliance.escalation``, durable-rules or the pack's
YAML: only the assessment of each measure-period (status, direction, value, source spread)
and the policy's numbers.

The policy, as implemented here:

- Only judged periods count: a period whose status is ``not_due`` is skipped entirely (it
  neither extends nor breaks a run). Runs are counted over the judged periods of one measure,
  in period order.
- ``breach``: a ``performance`` record, ``major`` for a KPI and ``minor`` for a supporting
  measure; escalation level 1. A KPI in breach for at least
  ``consecutive_kpi_breaches_level_2`` judged periods in a row: level 2; at least
  ``consecutive_kpi_breaches_level_3``: level 3. A supporting measure in breach for at least
  ``consecutive_supporting_breaches_level_2``: level 2.
- ``not_reported``: a ``missing_data`` record (major for a KPI, minor otherwise); level 1;
  missing for at least ``consecutive_missing_level_2`` judged periods in a row: level 2.
- Two sources (a source spread is known): for a percentage, a spread of more than
  ``source_spread_points`` points; for any other unit, a spread of more than
  ``source_spread_fraction`` of the figure's magnitude: a ``data_quality`` record, ``minor``.
  No escalation.
- Met or within tolerance, and the direction of travel ``declining`` for at least
  ``deteriorating_periods_watch`` judged periods in a row: a ``watch`` record, ``minor``.
- Met or within tolerance while the measure's XmR chart (Making Data Count, default
  settings, read with compliance.spc, which is not part of the rules engine) shows
  special-cause concern: a second ``watch`` record, ``minor``.
  No escalation.
- One open escalation per measure. It opens at the first period with a level, at that
  level; while open its level only rises (never above the number of forums of the contract).
  It is resolved at the period where the measure has been met or within tolerance for at
  least ``good_periods_to_resolve`` judged periods in a row. A later level opens a new one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

DEFAULT_SETTINGS: dict[str, float] = {
    "consecutive_kpi_breaches_level_2": 2,
    "consecutive_kpi_breaches_level_3": 3,
    "consecutive_supporting_breaches_level_2": 3,
    "consecutive_missing_level_2": 2,
    "source_spread_points": 5,
    "source_spread_fraction": 0.10,
    "deteriorating_periods_watch": 3,
    "good_periods_to_resolve": 2,
}

Finding = tuple[str, str, str, str, str]  # contract, measure, period, type, severity
Escalation = tuple[str, str, str, int, str | None]  # contract, measure, opened, level, resolved


@dataclass
class ReferenceResult:
    findings: list[Finding] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _sources_disagree(unit: str, value: Any, spread: Any, s: Mapping[str, float]) -> bool:
    """Two sources for the same figure that differ by more than the allowed spread."""
    if _missing(spread):
        return False  # one source only
    gap = float(spread)
    if unit == "percent":
        return gap > s["source_spread_points"]
    if _missing(value):
        return False  # no primary figure to take a fraction of
    if float(value) == 0:
        # A figure of 0 against another source's non-zero figure: they differ by more than
        # any fraction of it (the policy text); an infinite fraction, not an undefined one.
        return gap > 0
    return gap / abs(float(value)) > s["source_spread_fraction"]


def reference_policy(assessments: pd.DataFrame, settings: Mapping[str, float] | None = None,
                     contract_settings: Mapping[str, Mapping[str, float]] | None = None,
                     forums: Mapping[str, int] | None = None) -> ReferenceResult:
    """Findings and escalations of the standard policy over ``assess(..., history=True)``.

    ``settings`` are the pack's numbers (defaults: the standard pack's); ``contract_settings``
    maps a contract id to its overrides; ``forums`` maps a contract id to the number of forums
    of its ladder (default 4), the highest level an escalation can reach.
    """
    base = {**DEFAULT_SETTINGS, **(settings or {})}
    overrides = contract_settings or {}
    ladders = forums or {}
    result = ReferenceResult()

    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for raw in assessments.to_dict("records"):
        row = {str(k): v for k, v in raw.items()}
        rows.setdefault((str(row["contract"]), str(row["measure"])), []).append(row)

    for (contract, measure), history in sorted(rows.items()):
        s = {**base, **overrides.get(contract, {})}
        top = ladders.get(contract, 4)
        history.sort(key=lambda r: str(r["period"]))

        breaches = missing = declining = good = 0
        open_esc: dict[str, Any] | None = None
        for rec in history:
            status = rec["status"]
            if status == "not_due":
                continue
            period = str(rec["period"])
            kind = rec["kind"]
            severity = "major" if kind == "kpi" else "minor"

            breaches = breaches + 1 if status == "breach" else 0
            missing = missing + 1 if status == "not_reported" else 0
            declining = declining + 1 if rec["direction"] == "declining" else 0
            good = good + 1 if status in ("met", "within_tolerance") else 0

            level = 0
            if status == "breach":
                result.findings.append((contract, measure, period, "performance", severity))
                level = 1
                if kind == "kpi":
                    if breaches >= s["consecutive_kpi_breaches_level_3"]:
                        level = 3
                    elif breaches >= s["consecutive_kpi_breaches_level_2"]:
                        level = 2
                elif breaches >= s["consecutive_supporting_breaches_level_2"]:
                    level = 2
            elif status == "not_reported":
                result.findings.append((contract, measure, period, "missing_data", severity))
                level = 1
                if missing >= s["consecutive_missing_level_2"]:
                    level = 2

            if _sources_disagree(str(rec["unit"]), rec["value"], rec["source_spread"], s):
                result.findings.append((contract, measure, period, "data_quality", "minor"))

            if status in ("met", "within_tolerance") and \
                    declining >= s["deteriorating_periods_watch"]:
                result.findings.append((contract, measure, period, "watch", "minor"))

            if level:
                level = min(level, top)
                if open_esc is None:
                    open_esc = {"opened": period, "level": level}
                else:
                    open_esc["level"] = max(open_esc["level"], level)
            elif open_esc is not None and good >= s["good_periods_to_resolve"]:
                result.escalations.append(
                    (contract, measure, open_esc["opened"], open_esc["level"], period))
                open_esc = None
        if open_esc is not None:
            result.escalations.append(
                (contract, measure, open_esc["opened"], open_esc["level"], None))

    result.findings.sort()
    result.escalations.sort(key=lambda e: (e[0], e[1], e[2]))
    from compliance.spc import spc_frame

    charts = spc_frame(assessments)
    for rec in charts.merge(assessments[["contract", "measure", "period", "status"]],
                            on=["contract", "measure", "period"]).to_dict("records"):
        if rec["variation"] == "special_cause_concern" and \
                rec["status"] in ("met", "within_tolerance"):
            result.findings.append((str(rec["contract"]), str(rec["measure"]),
                                    str(rec["period"]), "watch", "minor"))
    result.findings.sort()
    return result
