"""The public shape of results (SPEC section 6): plain dicts, ready for JSON, tables or CSV."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from compliance.present import missing

if TYPE_CHECKING:
    from compliance.checking import CheckResult

BREACH_TYPES = ("performance", "missing_data", "late_return")


def _num(value: Any) -> float | None:
    return None if missing(value) else float(value)


def _text(value: Any) -> str | None:
    return None if missing(value) or value == "" else str(value)


def check_documents(result: CheckResult) -> Iterator[dict[str, Any]]:
    """One document per contract and period checked, made as they are asked for: a check of
    many contracts and months need not hold every document at once."""
    # The records of every period replayed, of which the documents show the periods checked,
    # each document's found by its contract and period; and each contract's escalations.
    findings, escalations = result.shown_records()
    for cid, period, rows in result.shown_assessments():
        yield _document(result, cid, period, rows, findings, escalations)


def _document(result: CheckResult, cid: str, period: str, rows: list[dict[str, Any]],
              findings: dict[tuple[str, str], list[dict[str, Any]]],
              escalations: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The document of one contract and period from its assessments' rows."""
    from compliance.checking import escalation_as_at

    schedule = result.schedules[cid]
    items = []
    for row in rows:
        in_force = result.versions.get((cid, int(row["schedule_version"])), schedule)
        m = in_force.measure(row["measure"])
        items.append({
            "measure": m.id, "kind": m.kind, "title": m.title, "unit": m.unit,
            "polarity": m.polarity, "period": row["figure_period"],
            "value": _num(row["value"]),
            "target": list(m.target) if isinstance(m.target, tuple) else m.target,
            "tolerance": list(m.tolerance) if isinstance(m.tolerance, tuple)
            else m.tolerance,
            "status": row["status"], "rag": row["rag"], "direction": _text(row["direction"]),
            "previous_value": _num(row["previous_value"]),
            "profiled_target": _num(row["profiled_target"]),
            "compared_with": _num(row["compared_with"]),
            "forecast": _num(row["forecast"]), "forecast_status": _text(row["forecast_status"]),
            "reason": _text(row["reason"]), "source": _text(row["source"]),
            "sources": int(row["sources"]), "source_spread": _num(row["source_spread"]),
            "comparators": dict(m.comparators), "baselines": dict(m.baselines),
            "variation": _text(row.get("variation")),
            "assurance": _text(row.get("assurance")),
            "schedule_version": int(row["schedule_version"]),
            "figure_version": None if missing(row["figure_version"])
            else int(row["figure_version"]),
        })
    mine = findings.get((cid, period), [])

    def shaped(kinds: tuple[str, ...], mine: list[dict[str, Any]] = mine
               ) -> list[dict[str, Any]]:
        return [{"measure": f["measure"], "period": f["period"],
                 "figure_period": f["figure_period"], "type": f["type"],
                 "severity": f["severity"], "rule": f["rule"],
                 "description": f["description"], "value": _num(f["value"]),
                 "compared_with": _num(f["compared_with"])}
                for f in mine if f["type"] in kinds]

    ladder = []
    for row in escalations.get(cid, []):
        state = escalation_as_at(row, period, schedule.contract.forums)
        if state and (state["status"] == "open" or state["resolved"] == period
                      or (state["status"] == "silenced"
                          and period <= str(state["silenced_until"]))):
            ladder.append(state)
    ladder.sort(key=lambda e: (-e["level"], e["opened"], e["measure"]))
    return {"contract": cid, "period": period,
            "provider": schedule.contract.provider, "assessments": items,
            "breaches": shaped(BREACH_TYPES), "data_quality": shaped(("data_quality",)),
            "watch": shaped(("watch",)), "escalations": ladder}


def escalation_rows(escalations: list[dict[str, Any]], schedules: dict[str, Any],
                    assessments: dict[tuple[str, str], dict[str, Any]],
                    notes: dict[tuple[str, str, str], list[Any]] | None = None
                    ) -> list[dict[str, Any]]:
    """The escalation list for the group: forum, measure, since when, figure, target, rule."""
    from compliance import present

    rows = []
    for e in escalations:
        schedule = schedules[e["contract_id"]]
        m = schedule.measure(e["measure_id"])
        latest = assessments.get((e["contract_id"], e["measure_id"]), {})
        rows.append({
            "contract": e["contract_id"], "forum": e["forum"], "level": e["level"],
            "measure": m.id, "title": m.title, "kind": m.kind, "opened": e["opened"],
            "status": e["status"], "resolved": e["resolved"],
            "period": latest.get("period"),
            "figure": _num(latest.get("value")),
            "figure_text": present.figure(latest.get("value"), m.unit)
            if latest else "",
            "current_status": latest.get("status"),
            "target": list(m.target) if isinstance(m.target, tuple) else m.target,
            "target_text": present.target_text(m.target, m.unit),
            "rule": e["rule"], "rule_text": e["description"],
            "silenced_until": e.get("silenced_until"), "silence_reason": e.get("silence_reason"),
            **notes_of((notes or {}).get((e["contract_id"], e["measure_id"], e["opened"]), [])),
        })
    rows.sort(key=lambda r: (r["contract"], -r["level"], r["opened"], r["measure"]))
    return rows


def notes_of(notes: list[Any]) -> dict[str, Any]:
    """Who acknowledged an escalation and when, and the latest note on it."""
    acks = [n for n in notes if n["kind"] == "ack"]
    texts = [n for n in notes if n["text"]]
    return {
        "acknowledged_by": acks[-1]["created_by"] if acks else None,
        "acknowledged_at": acks[-1]["created_at"].isoformat(timespec="minutes")
        if acks else None,
        "latest_note": texts[-1]["text"] if texts else None,
        "latest_note_by": texts[-1]["created_by"] if texts else None,
        "notes": len(notes),
    }


def explain(schedule: Any, measure_id: str, period: str, row: dict[str, Any],
            pack: Any, settings: dict[str, float], findings: list[dict[str, Any]],
            escalations: list[dict[str, Any]]) -> dict[str, Any]:
    """Why a measure has its status in a period, and which rules fired or did not."""
    from compliance import present
    from compliance.checking import escalation_as_at
    from compliance.periods import month_name
    from compliance.rulepack import describe, explain_terms

    m = schedule.measure(measure_id)
    unit = m.unit
    fig = present.figure
    status = row["status"]
    sentences = [f"{m.id} ({m.title}), {month_name(period)}."]
    if row["figure_period"] != period:
        sentences.append(
            f"The figure judged is for {month_name(row['figure_period'])}: this measure's "
            f"figures arrive {m.lag_months} month{'s' if m.lag_months != 1 else ''} late.")
    value = row["value"]
    if status == "not_reported":
        sentences.append(f"No figure was reported: {row['reason']}. A due figure that is "
                         "missing counts as not reported (red).")
    elif status == "not_due":
        sentences.append(f"The measure is not due: {row['reason']}.")
        if not missing(row["forecast"]):
            sentences.append(f"The figure so far is {fig(value, unit)}; the year-end forecast "
                             f"is {fig(row['forecast'], unit)}, which would be "
                             f"{present.STATUS_WORDS[row['forecast_status']].lower()}.")
    elif status == "monitor":
        sentences.append(f"The figure is {fig(value, unit)}. The schedule sets no target for "
                         "this measure, so it is monitored, not judged (grey).")
    else:
        target = row["compared_with"]
        if not missing(row["profiled_target"]):
            sentences.append(
                f"This is a cumulative count: {fig(value, unit)} so far in the financial year, "
                f"against the annual target {fig(m.target, unit)} profiled to "
                f"{fig(target, unit)} for the months elapsed. At this rate the year would end "
                f"at {fig(row['forecast'], unit)}.")
        else:
            sentences.append(f"The figure is {fig(value, unit)}.")
        if m.polarity == "within_range":
            clause = f"The target range is {present.target_text(m.target, unit)}"
        else:
            better = "higher" if m.polarity == "higher_is_better" else "lower"
            clause = (f"The target is {fig(target, unit)} ({better} is better)")
        if m.tolerance is not None:
            band = present.tolerance_text(m.tolerance, unit, m.polarity)
            clause += f"; the tolerance band is {band}"
        sentences.append(clause + ".")
        verdict = {
            "met": "it meets the target (green)",
            "within_tolerance": "it misses the target but is within tolerance (amber)",
            "breach": "it is outside tolerance, a breach (red)" if m.tolerance is not None
            else "with no tolerance band, anything short of the target is a breach (red)",
        }[status]
        sentences.append(f"{fig(value, unit)} against {fig(target, unit)}: {verdict}.")
    if int(row.get("sources") or 0) > 1:
        sentences.append(
            f"{int(row['sources'])} sources gave this figure; the one used is "
            f"{row['source'] or 'the first'}, and they differ by "
            f"{present.number(row['source_spread'])}.")
    if row.get("direction"):
        change = "up" if row["change"] > 0 else "down" if row["change"] < 0 else "level"
        sentences.append(
            f"Against the previous due period ({fig(row['previous_value'], unit)}) it is "
            f"{change}: {row['direction']} for a measure where "
            f"{m.polarity.replace('_', ' ')}.")
    if not missing(row.get("spc_mean")):
        limits = ("" if missing(row.get("spc_lower")) else
                  f", process limits {row['spc_lower']:.4g} to {row['spc_upper']:.4g}")
        trial = ", trial limits" if row.get("spc_trial") else ""
        reading = {
            "special_cause_concern": "special-cause variation of concern",
            "special_cause_improvement": "special-cause variation of improvement",
            "special_cause_neither": "special-cause variation",
            "common_cause": "common-cause variation only",
        }.get(str(row.get("variation")), "no reading")
        rule_words = {"beyond_limit": "a point beyond a process limit",
                      "shift": "a run of points on one side of the mean",
                      "trend": "a run of points each higher or lower than the last",
                      "two_of_three": "two of three points near a limit"}
        how = f" ({rule_words[str(row['spc_rule'])]})" if row.get("spc_rule") in rule_words \
            else ""
        sentences.append(
            f"On its XmR chart ({int(row['spc_points'])} points{trial}, mean "
            f"{row['spc_mean']:.4g}{limits}) the figure shows {reading}{how}.")
        assurance = {
            "consistently_passing": "the process limits lie on the passing side of the "
                                    "target: it will be met consistently unless the process "
                                    "changes",
            "consistently_failing": "the process limits lie on the failing side of the "
                                    "target: it will be missed consistently unless the "
                                    "process changes",
            "inconsistent": "the target lies within the process limits: it will be met "
                            "some months and missed in others",
        }.get(str(row.get("assurance")))
        if assurance:
            sentences.append(f"Assurance: {assurance}.")
    runs = []
    for key, words in (("consecutive_breaches", "in breach"),
                       ("consecutive_missing", "not reported"),
                       ("consecutive_deteriorating", "deteriorating"),
                       ("good_run", "met or within tolerance")):
        n = int(row.get(key) or 0)
        if n:
            runs.append(f"{words} for {n} due period{'s' if n != 1 else ''} in a row")
    if runs:
        sentences.append("It has been " + "; ".join(runs) + ".")

    rules = []
    for rule in pack.rules:
        terms = explain_terms(rule, settings, row)
        fired = all(ok for _, ok in terms) and status != "not_due"
        note = None
        if fired and rule.then.resolve and not any(
                e.get("resolved") == period for e in escalations):
            note = "its condition holds, but there was no open escalation to resolve"
        rules.append({"rule": rule.id, "fired": fired, "description": describe(rule, settings),
                      "note": note,
                      "conditions": [{"condition": text, "met": ok} for text, ok in terms]})
    ladder = [s for s in (escalation_as_at(e, period, schedule.contract.forums)
                          for e in escalations) if s]
    for state in ladder:
        if state["status"] == "open":
            sentences.append(
                f"An escalation has been open since {month_name(state['opened'])}, now at "
                f"level {state['level']} ({state['forum']}), by rule {state['rule']}.")
        else:
            sentences.append(
                f"The escalation opened in {month_name(state['opened'])} was resolved in "
                f"{month_name(state['resolved'])}.")
    return {"contract": schedule.id, "measure": m.id, "period": period, "status": status,
            "rag": row["rag"], "value": _num(value), "sentences": sentences,
            "records": [{"type": f["type"], "severity": f["severity"], "rule": f["rule"],
                         "description": f["description"]} for f in findings],
            "rules": rules, "escalations": ladder}
