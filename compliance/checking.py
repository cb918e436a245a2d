"""The monthly check: assess, record, run the rules, keep the records. No printing here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compliance.batch import collector_paused

if TYPE_CHECKING:
    import pandas as pd

    from compliance.escalation import RulesResult
    from compliance.progress import Progress
    from compliance.schedule import Schedule
    from compliance.store import Transaction


@dataclass
class CheckResult:
    schedules: dict[str, Schedule]
    periods: list[str]
    assessments: pd.DataFrame
    rules: RulesResult
    counts: dict[str, int]
    versions: dict[tuple[str, int], Schedule]


def spc_settings(schedules: Mapping[str, Schedule]) -> dict[str, Any]:
    """Each contract's XmR chart settings (its schedule's ``spc`` block over the defaults)."""
    from compliance.spc import SpcSettings

    return {cid: SpcSettings(**s.contract.spc)  # type: ignore[arg-type]
            for cid, s in schedules.items()
            if s.contract.spc}


def history_with_features(tx: Transaction, schedules: Mapping[str, Schedule],
                          through: Mapping[str, str],
                          first: Mapping[str, str] | None = None, *,
                          in_force: Sequence[tuple[Schedule, int, str | None]] | None = None
                          ) -> pd.DataFrame:
    """Every measure-period of the contracts up to ``through``, with the rules' features.

    A measure's history starts at its first figure or at the contract's first checked
    period (or ``first``), whichever is earlier. ``in_force`` is
    ``tx.schedule_versions(list(schedules))`` when the caller already holds it.
    """
    from compliance.assess import add_features, assess, measure_table

    figures = tx.latest_figures(list(schedules), up_to=max(through.values()), parts=False)
    if in_force is None:
        in_force = tx.schedule_versions(list(schedules))
    given = first or {}
    unknown = [cid for cid in through if not given.get(cid)]
    checked = tx.checked_periods(unknown) if unknown else {}
    spans = {}
    for cid, last in through.items():
        start = given.get(cid) or checked.get(cid, (None,))[0] or last
        spans[cid] = [min(start, last), last]
    measures = measure_table(in_force)
    history = assess(measures, figures, spans, history=True)
    del figures, measures
    history = _lateness(history, schedules, tx.returns_received(list(schedules)))
    return add_features(history, spc_settings(schedules))


def _lateness(history: pd.DataFrame, schedules: Mapping[str, Schedule],
              received: Mapping[tuple[str, str], Any]) -> pd.DataFrame:
    """Days after its due date that each figure's return arrived (``return_due_day``).

    The column is added to ``history`` itself, which is returned.
    """
    import numpy as np
    import pandas as pd

    from compliance.periods import return_due

    if history.empty:
        return history
    days_due = {cid: s.contract.return_due_day for cid, s in schedules.items()
                if s.contract.return_due_day}
    late = np.full(len(history), np.nan)
    if days_due and received:
        # Each distinct contract, period and figure period is looked up once.
        contract_code, contracts = pd.factorize(history["contract"])
        period_code, periods = pd.factorize(history["period"])
        figure_code, figure_periods = pd.factorize(history["figure_period"])
        day = np.array([days_due.get(c, 0) for c in contracts], dtype=np.int64)[contract_code]
        # The date each row's return was due, as days since the epoch (0 when none is set).
        combo, combo_code = np.unique(period_code * 32 + day, return_inverse=True)
        due = np.array([0 if c % 32 == 0 else
                        (return_due(str(periods[c // 32]), int(c % 32))
                         - dt.date(1970, 1, 1)).days for c in combo.tolist()],
                       dtype=np.int64)[combo_code.reshape(-1)]
        # The day each figure period's return arrived (-1 when it is not known).
        arrived = np.full(len(contracts) * len(figure_periods), -1, dtype=np.int64)
        where_contract = {c: i for i, c in enumerate(contracts)}
        where_figure = {f: i for i, f in enumerate(figure_periods)}
        for (cid, figure_period), at in received.items():
            c = where_contract.get(cid, -1)
            f = where_figure.get(figure_period, -1)
            if c >= 0 and f >= 0:
                when = pd.Timestamp(at)
                when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert(
                    "UTC")
                arrived[c * len(figure_periods) + f] = (when.date() - dt.date(1970, 1, 1)).days
        row_arrived = arrived[contract_code * len(figure_periods) + figure_code]
        known = (row_arrived >= 0) & (day > 0) & (figure_code >= 0)
        late[known] = (row_arrived - due)[known]
    history["days_late"] = late
    return history


@collector_paused()
def run_check(tx: Transaction, schedules: dict[str, Schedule], periods: Sequence[str],
              *, progress: Progress | None = None) -> CheckResult:
    """Assess the periods, store the assessments, and re-derive the contracts' records.

    Records (breaches, escalations) are a function of the figures up to the latest period any
    check of the contract has covered, replayed in period order: checking again, or checking
    months out of order, leaves the same records as checking them in order. One assessment
    of the whole history serves both the periods checked and the rules.

    ``progress`` hears of the stages: assessing, storing the assessments, running the rules,
    writing the records (see compliance.progress).
    """
    import pandas as pd

    from compliance.progress import no_progress, offset

    report = progress or no_progress
    report("assessing", 0, 4)
    ids = list(schedules)
    tx.lock(ids)
    checked = tx.checked_periods(ids)
    through = {cid: max(max(periods), checked[cid][1] if cid in checked else "")
               for cid in schedules}
    first = {cid: min(min(periods), checked[cid][0] if cid in checked else "9999-12")
             for cid in schedules}
    in_force = tx.schedule_versions(ids)
    history = history_with_features(tx, schedules, through, first, in_force=in_force)
    if history.empty:
        assessments = history
    else:
        wanted = history["period"].isin(list(periods)).to_numpy()
        if wanted.all():
            # Every period of the history checked: the assessments share its columns.
            assessments = history.copy(deep=False)
            assessments.index = pd.RangeIndex(len(assessments))
        else:
            assessments = history[wanted].reset_index(drop=True)
    versions = tx.current_versions(ids)
    report("storing the assessments", 1, 4)
    counts = tx.save_assessments(assessments, versions)

    rules, written = _derive(tx, schedules, history, progress=offset(progress, 2))
    counts.update(written)
    report("done", 4, 4)
    return CheckResult(schedules=schedules, periods=list(periods), assessments=assessments,
                       rules=rules, counts=counts,
                       versions={(s.id, v): s for s, v, _ in in_force})


def _derive(tx: Transaction, schedules: Mapping[str, Schedule], history: pd.DataFrame,
            *, progress: Progress | None = None) -> tuple[RulesResult, dict[str, int]]:
    from compliance.escalation import run_rules

    if progress:
        progress("running the rules", 0, 2)
    rules = run_rules(history, schedules, tx.silences(list(schedules)))
    if progress:
        progress("writing the records", 1, 2)
    # Every contract's records replaced at once, contract by contract in the schedules' order.
    findings = rules.findings
    if len(findings):
        findings = findings[findings["contract"].isin(list(schedules)).to_numpy()]
    escalations: dict[str, list[dict[str, Any]]] = {cid: [] for cid in schedules}
    for e in rules.escalations:
        if e.contract in escalations:
            escalations[e.contract].append(e.row())
    written = tx.replace_records(list(schedules), findings,
                                 [row for rows in escalations.values() for row in rows])
    return rules, {"findings": written["findings"], "escalations": written["escalations"]}


@collector_paused()
def rederive(tx: Transaction, schedules: Mapping[str, Schedule]) -> dict[str, int]:
    """Records again from the figures, after something they depend on changed (a silence)."""
    checked = tx.checked_periods(list(schedules))
    if not checked:
        return {"findings": 0, "escalations": 0}
    mine = {cid: schedules[cid] for cid in schedules if cid in checked}
    tx.lock(list(mine))
    through = {cid: checked[cid][1] for cid in mine}
    first = {cid: checked[cid][0] for cid in mine}
    return _derive(tx, mine, history_with_features(tx, mine, through, first))[1]


def escalation_as_at(row: Mapping[str, Any], period: str, forums: Sequence[str]
                     ) -> dict[str, Any] | None:
    """A stored escalation as it stood at the end of ``period`` (None before it opened)."""
    import json

    if row["opened"] > period:
        return None
    history = row["history"]
    steps = [h for h in (json.loads(history) if isinstance(history, str) else history)
             if h["period"] <= period]
    last = steps[-1]
    resolved = row["resolved"] if row["resolved"] and row["resolved"] <= period else None
    until = row.get("silenced_until")
    status = "silenced" if until else "resolved" if resolved else "open"
    return {
        "measure": row["measure_id"], "level": last["level"],
        "forum": forums[last["level"] - 1], "opened": row["opened"],
        "status": status, "resolved": resolved, "silenced_until": until,
        "silence_reason": row.get("silence_reason"),
        "rule": last["rule"], "description": last["description"],
    }
