"""The public shape of results (SPEC section 6): plain dicts, ready for JSON, tables or CSV."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compliance.present import missing

if TYPE_CHECKING:
    from compliance.checking import CheckResult

BREACH_TYPES = ("performance", "missing_data")


def _num(value: Any) -> float | None:
    return None if missing(value) else float(value)


def check_documents(result: CheckResult) -> list[dict[str, Any]]:
    """One document per contract and period checked."""
    from compliance.checking import escalation_as_at
    from compliance.escalation import records

    findings = records(result.rules.findings)
    escalations = [e.row() for e in result.rules.escalations]
    docs = []
    for (cid, period), group in result.assessments.groupby(["contract", "period"], sort=True):
        cid, period = str(cid), str(period)
        schedule = result.schedules[cid]
        items = []
        for row in records(group):
            m = schedule.measure(row["measure"])
            items.append({
                "measure": m.id, "kind": m.kind, "title": m.title, "unit": m.unit,
                "polarity": m.polarity, "period": row["figure_period"],
                "value": _num(row["value"]),
                "target": list(m.target) if isinstance(m.target, tuple) else m.target,
                "tolerance": list(m.tolerance) if isinstance(m.tolerance, tuple)
                else m.tolerance,
                "status": row["status"], "rag": row["rag"], "direction": row["direction"],
                "previous_value": _num(row["previous_value"]),
                "profiled_target": _num(row["profiled_target"]),
                "compared_with": _num(row["compared_with"]),
                "forecast": _num(row["forecast"]), "forecast_status": row["forecast_status"],
                "reason": row["reason"] or None, "source": row["source"] or None,
                "sources": int(row["sources"]), "source_spread": _num(row["source_spread"]),
                "comparators": dict(m.comparators), "baselines": dict(m.baselines),
            })
        mine = [f for f in findings if f["contract"] == cid and f["period"] == period]

        def shaped(kinds: tuple[str, ...], mine: list[dict[str, Any]] = mine
                   ) -> list[dict[str, Any]]:
            return [{"measure": f["measure"], "period": f["period"],
                     "figure_period": f["figure_period"], "type": f["type"],
                     "severity": f["severity"], "rule": f["rule"],
                     "description": f["description"], "value": _num(f["value"]),
                     "compared_with": _num(f["compared_with"])}
                    for f in mine if f["type"] in kinds]

        ladder = []
        for row in escalations:
            if row["contract_id"] != cid:
                continue
            state = escalation_as_at(row, period, schedule.contract.forums)
            if state and (state["status"] == "open" or state["resolved"] == period):
                ladder.append(state)
        ladder.sort(key=lambda e: (-e["level"], e["opened"], e["measure"]))
        docs.append({"contract": cid, "period": period,
                     "provider": schedule.contract.provider, "assessments": items,
                     "breaches": shaped(BREACH_TYPES), "data_quality": shaped(("data_quality",)),
                     "watch": shaped(("watch",)), "escalations": ladder})
    return docs
