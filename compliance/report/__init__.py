"""The committee report: one self-contained HTML document (and an XLSX scorecard).

``render_report`` takes what the store holds for a contract and month (the assessment history
with its features, the escalations as they stood at the end of the month, and the rules'
findings) and returns HTML with inline styles and inline SVG charts (each measure's history and
its XmR chart): nothing is fetched when it is opened, and it prints on A4.

Nothing heavy is imported with this package: pandas, jinja2 and matplotlib are imported when
a report is rendered.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compliance import present
from compliance.periods import financial_year, month_name
from compliance.report import narrative as words
from compliance.schedule import ADDITIVE_UNITS, MeasureSpec, Schedule

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STATUS_COLOURS", "TEMPLATE", "exceptions", "render_report", "scorecard_rows"]

TEMPLATE = Path(__file__).resolve().parent / "template.html.j2"

# Fill, border and text of each status. Text is near-black on light fills: every pair has a
# contrast ratio well above the 4.5:1 of WCAG 2.2 AA, and the border (the status's strong
# colour) at least 3:1 against white. Status is always also given by word and symbol.
STATUS_COLOURS: dict[str, dict[str, str]] = {
    "met": {"fill": "#cce8d4", "border": "#00703c", "text": "#0b0c0c"},
    "within_tolerance": {"fill": "#ffe9a8", "border": "#8a5a00", "text": "#0b0c0c"},
    "breach": {"fill": "#f6c8c8", "border": "#b10e1e", "text": "#0b0c0c"},
    "not_reported": {"fill": "#f6c8c8", "border": "#b10e1e", "text": "#0b0c0c"},
    "not_due": {"fill": "#e3e5e8", "border": "#505a5f", "text": "#0b0c0c"},
    "monitor": {"fill": "#e3e5e8", "border": "#505a5f", "text": "#0b0c0c"},
}

_COMPARATOR_HEADINGS = {"statistical_neighbours": "Statistical neighbours",
                        "statistical_neighbour": "Statistical neighbours",
                        "england": "England", "national": "National", "region": "Region",
                        "regional": "Region"}
_POLARITY_WORDS = {"higher_is_better": "higher is better", "lower_is_better": "lower is better",
                   "within_range": "within a range is better"}


def _num(value: Any) -> float | None:
    if value is None or present.missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _str(value: Any) -> str:
    if value is None or present.missing(value):
        return ""
    return str(value).strip()


def _anchor(measure_id: str) -> str:
    return "measure-" + re.sub(r"[^A-Za-z0-9_-]", "-", measure_id)


def _finding_measure(finding: Mapping[str, Any]) -> str:
    return str(finding.get("measure") or finding.get("measure_id") or "")


def _rows_at(history: pd.DataFrame, schedule: Schedule, period: str) -> dict[str, dict[str, Any]]:
    frame = history
    if "contract" in frame.columns:
        frame = frame[frame["contract"] == schedule.id]
    frame = frame[frame["period"] == period]
    rows: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    return {str(r["measure"]): {str(k): v for k, v in r.items()} for r in rows}


def _figure_cell(spec: MeasureSpec, row: Mapping[str, Any] | None, period: str
                 ) -> tuple[str, str]:
    """The figure as the scorecard prints it, and a note under it (its month, or "year to
    date")."""
    if row is None:
        return "—", "no assessment"
    value = _num(row.get("value"))
    note = ""
    figure_period = _str(row.get("figure_period")) or period
    if figure_period != period:
        note = month_name(figure_period)
    if spec.accumulation == "cumulative" and value is not None:
        note = (note + ", " if note else "") + "year to date"
    if value is None:
        return "—", note or ("not reported" if row.get("status") == "not_reported" else "")
    return words.figure(value, spec.unit), note


def _target_cell(spec: MeasureSpec, row: Mapping[str, Any] | None) -> tuple[str, str]:
    if spec.target is None:
        return "—", "monitor only"
    text = present.target_text(spec.target, spec.unit)
    note = ""
    if spec.accumulation == "cumulative" and spec.unit in ADDITIVE_UNITS:
        text += " a year"
        profiled = _num(row.get("compared_with")) if row else None
        if profiled is not None:
            note = f"{words.figure(profiled, spec.unit)} to date"
    elif spec.judged == "year_end":
        note = "judged at year end"
    return text, note


def scorecard_rows(schedule: Schedule, rows: Mapping[str, Mapping[str, Any]], period: str,
                   escalations: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """One scorecard line per measure of the schedule, in schedule order, as plain text."""
    open_by_measure = {str(e["measure"]): e for e in escalations if e.get("status") == "open"}
    held_by_measure = {str(e["measure"]): e for e in escalations if _held(e, period)}
    lines = []
    for spec in schedule.measures:
        row = rows.get(spec.id)
        status = _str(row.get("status")) if row else "not_reported"
        figure, figure_note = _figure_cell(spec, row, period)
        target, target_note = _target_cell(spec, row)
        direction = _str(row.get("direction")) if row else ""
        escalation = open_by_measure.get(spec.id)
        held = held_by_measure.get(spec.id)
        spc = words.spc_reading(row or {})
        lines.append({
            "ref": spec.id, "title": spec.title, "kind": spec.kind, "parent": spec.parent,
            "anchor": _anchor(spec.id), "unit": spec.unit,
            "figure": figure, "figure_note": figure_note,
            "target": target, "target_note": target_note,
            "tolerance": present.tolerance_text(spec.tolerance, spec.unit, spec.polarity),
            "status": status, "status_word": present.STATUS_WORDS.get(status, status),
            "status_symbol": present.STATUS_SYMBOLS.get(status, ""),
            "rag": _str(row.get("rag")) if row else "red",
            "direction": direction,
            "direction_word": direction or "first figure",
            "direction_arrow": present.DIRECTION_ARROWS.get(direction, "").split(" ")[0],
            "comparators": [(_COMPARATOR_HEADINGS.get(k, k.replace("_", " ").capitalize()),
                             words.figure(v, spec.unit)) for k, v in spec.comparators.items()]
            + [(k[0].upper() + k[1:], words.figure(v, spec.unit))
               for k, v in spec.baselines.items()],
            "escalation": (f"Level {escalation['level']}: {escalation['forum']}"
                           if escalation else ""),
            "held": (f"Escalation held back until {month_name(str(held['silenced_until']))}"
                     if held else ""),
            "variation": spc["variation"], "variation_word": spc["variation_word"],
            "variation_symbol": spc["symbol"], "assurance": spc["assurance"],
            "assurance_word": spc["assurance_word"], "spc_trial": spc["trial"],
        })
    return lines


def exceptions(schedule: Schedule, rows: Mapping[str, Mapping[str, Any]],
               findings: Sequence[Mapping[str, Any]], period: str
               ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The measures for "Where are we performing well?" and "Where do we need to improve?".

    Performing well: met (a cumulative count on track), within tolerance and improving, or
    a year-end measure forecast to meet its target. Needing to improve: in breach, not
    reported, within tolerance and not improving, met but on an early-warning watch (several
    periods of deterioration), or a year-end measure forecast to miss. Monitor-only measures
    are in neither.
    """
    watch = {_finding_measure(f): f for f in findings
             if f.get("type") == "watch" and f.get("period") == period}
    well: list[dict[str, str]] = []
    improve: list[dict[str, str]] = []
    for spec in schedule.measures:
        row = rows.get(spec.id)
        if row is None:
            continue
        status = _str(row.get("status"))
        direction = _str(row.get("direction"))
        runs = int(_num(row.get("consecutive_deteriorating")) or 0)
        section = ""
        if status == "met":
            section = "improve" if spec.id in watch else "well"
        elif status == "within_tolerance":
            section = "well" if direction == "improving" else "improve"
        elif status in ("breach", "not_reported"):
            section = "improve"
        elif status == "not_due" and _str(row.get("forecast_status")):
            section = "well" if row.get("forecast_status") in ("met", "within_tolerance") \
                else "improve"
        if not section:
            continue
        item = {"ref": spec.id, "anchor": _anchor(spec.id), "status": status,
                "text": words.exception(spec, row, schedule, section,
                                        watch_runs=runs if spec.id in watch else 0)}
        (well if section == "well" else improve).append(item)
    return well, improve


def _history_rows(history: pd.DataFrame, schedule: Schedule, period: str
                  ) -> dict[str, list[dict[str, Any]]]:
    frame = history
    if "contract" in frame.columns:
        frame = frame[frame["contract"] == schedule.id]
    frame = frame[frame["period"] <= period]
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    by_measure: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_measure.setdefault(str(record["measure"]), []).append(
            {str(k): v for k, v in record.items()})
    return by_measure


def _produced_text(produced: dt.datetime) -> str:
    zone = f" {produced.tzname()}" if produced.tzinfo is not None and produced.tzname() else ""
    return f"{produced.day} {produced:%B %Y} at {produced:%H:%M}{zone}"


_NOTE_KINDS = {"data_quality": "Data quality", "watch": "Early warning",
               "late_return": "Late return"}


def _notes(schedule: Schedule, findings: Sequence[Mapping[str, Any]], period: str
           ) -> list[dict[str, str]]:
    """The data quality, early-warning and late-return records of the month."""
    notes = []
    ids = {m.id for m in schedule.measures}
    for finding in findings:
        measure = _finding_measure(finding)
        if finding.get("period") != period or measure not in ids:
            continue
        kind = str(finding.get("type") or "")
        if kind not in _NOTE_KINDS:
            continue
        notes.append({"ref": measure, "anchor": _anchor(measure), "kind": _NOTE_KINDS[kind],
                      "text": _str(finding.get("description")),
                      "rule": _str(finding.get("rule"))})
    return notes


def _held(escalation: Mapping[str, Any], period: str) -> bool:
    """Whether an escalation is held back by a silence still in force at ``period``."""
    until = _str(escalation.get("silenced_until"))
    return escalation.get("status") == "silenced" and bool(until) and until >= period


def _when(value: Any) -> str:
    """When a note was made, as the report prints it: 12 October 2018 at 09:30."""
    if value is None or present.missing(value):
        return ""
    moment = value
    if not isinstance(moment, dt.datetime):
        try:
            moment = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            return _str(value)
    return f"{moment.day} {moment:%B %Y} at {moment:%H:%M}"


def _response(escalation: Mapping[str, Any]) -> dict[str, str]:
    """Who acknowledged an escalation and the latest note on it, in words (empty if none)."""
    who = _str(escalation.get("acknowledged_by"))
    acknowledged = ""
    if who:
        when = _when(escalation.get("acknowledged_at"))
        acknowledged = f"Acknowledged by {who}" + (f" on {when}" if when else "")
    note = _str(escalation.get("latest_note"))
    by = _str(escalation.get("latest_note_by"))
    return {"acknowledged": acknowledged, "note": note,
            "note_by": f"Latest note ({by})" if by else "Latest note"}


def _escalation_rows(schedule: Schedule, escalations: Sequence[Mapping[str, Any]],
                     rows: Mapping[str, Mapping[str, Any]], period: str
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                list[dict[str, Any]]]:
    """The escalations open at the end of ``period``, those held back by a silence in force,
    and those resolved in ``period``. Each escalation mapping needs measure, level, forum,
    opened and status (open, resolved or silenced); resolved, rule, description,
    silenced_until, silence_reason, acknowledged_by, acknowledged_at, latest_note and
    latest_note_by are read when present."""
    ids = {m.id for m in schedule.measures}
    opened: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    for e in escalations:
        measure = str(e["measure"])
        if measure not in ids:
            continue
        spec = schedule.measure(measure)
        row = rows.get(measure, {})
        status = _str(row.get("status"))
        item: dict[str, Any] = {
            "ref": measure, "title": spec.title, "anchor": _anchor(measure),
            "level": int(e["level"]), "forum": str(e["forum"]),
            "since": month_name(str(e["opened"])), "opened": str(e["opened"]),
            "rule": _str(e.get("rule")), "description": _str(e.get("description")),
            "status": status, "status_word": present.STATUS_WORDS.get(status, ""),
            "status_symbol": present.STATUS_SYMBOLS.get(status, ""), **_response(e)}
        if e.get("status") == "open":
            opened.append(item)
        elif _held(e, period):
            item["until"] = month_name(str(e["silenced_until"]))
            item["reason"] = _str(e.get("silence_reason"))
            held.append(item)
        elif e.get("status") != "silenced" and e.get("resolved") == period:
            item["resolved"] = month_name(period)
            resolved.append(item)
    opened.sort(key=lambda r: (-r["level"], r["opened"], r["ref"]))
    held.sort(key=lambda r: (-r["level"], r["opened"], r["ref"]))
    resolved.sort(key=lambda r: r["ref"])
    return opened, held, resolved


def _comment(row: Mapping[str, Any] | None) -> str:
    """The provider's comment, unless the narrative already gives it as the reason."""
    if row is None:
        return ""
    comment = _str(row.get("comment"))
    if row.get("status") == "not_reported" and comment == _str(row.get("reason")):
        return ""
    return comment


def _measure_meta(spec: MeasureSpec, schedule: Schedule) -> str:
    parts = []
    if spec.target is not None:
        target = present.target_text(spec.target, spec.unit)
        if spec.accumulation == "cumulative" and spec.unit in ADDITIVE_UNITS:
            target += " a year"
        parts.append(f"Target {target}")
    else:
        parts.append("No target: monitored only")
    if spec.tolerance is not None:
        parts.append("Tolerance " + present.tolerance_text(spec.tolerance, spec.unit,
                                                           spec.polarity))
    parts.append(_POLARITY_WORDS[spec.polarity].capitalize())
    frequency = schedule.frequency(spec)
    parts.append(frequency.capitalize())
    if spec.lag_months:
        parts.append(f"figures lag {spec.lag_months} month{'s' if spec.lag_months > 1 else ''}")
    return " · ".join(parts)


def _spc_styles() -> dict[str, str]:
    """The colour of each variation's symbol, as the XmR chart marks its points."""
    from compliance.report.charts import VARIATION_STYLES

    return {name: str(style["colour"]) for name, style in VARIATION_STYLES.items()}


def render_report(schedule: Schedule, history: pd.DataFrame,
                  escalations: Sequence[Mapping[str, Any]],
                  findings: Sequence[Mapping[str, Any]], period: str, months: int = 12,
                  produced: dt.datetime | None = None) -> str:
    """The committee report for a contract and month, as one self-contained HTML document.

    ``history`` is ``compliance.checking.history_with_features`` for the contract through
    ``period``: its ``spc_*``, ``variation`` and ``assurance`` columns give each measure's XmR
    chart and its reading in the scorecard and the narrative (a history without them gives
    neither). ``escalations`` are the contract's escalations as they stood at the end of
    ``period`` (``compliance.checking.escalation_as_at`` of each stored row): open ones are
    listed, silenced ones while their silence holds ("held back until ...: reason"), and
    those resolved in ``period``; the optional keys ``acknowledged_by``, ``acknowledged_at``,
    ``latest_note`` and ``latest_note_by`` (``compliance.views``) add who acknowledged each
    open escalation and its latest note. ``findings`` are the rules' records
    (``Transaction.findings`` rows as dicts). ``months`` is how much history each chart
    shows; ``produced`` is printed in the header (default: now).
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from markupsafe import Markup

    from compliance.report.charts import measure_chart, xmr_chart

    if months < 1:
        raise ValueError("a chart needs at least one month of history")
    produced = produced or dt.datetime.now().astimezone()
    rows = _rows_at(history, schedule, period)
    series = _history_rows(history, schedule, period)
    lines = scorecard_rows(schedule, rows, period, escalations)
    well, improve = exceptions(schedule, rows, findings, period)
    opened, held, resolved = _escalation_rows(schedule, escalations, rows, period)
    has_responses = any(key in e for e in escalations
                        for key in ("acknowledged_by", "latest_note"))

    has_comparators = any(spec.comparators or spec.baselines for spec in schedule.measures)

    counts: dict[str, int] = {}
    for line in lines:
        counts[line["status"]] = counts.get(line["status"], 0) + 1
    summary = [{"status": s, "word": present.STATUS_WORDS[s],
                "symbol": present.STATUS_SYMBOLS[s], "count": counts[s]}
               for s in present.STATUS_WORDS if counts.get(s)]

    details = []
    for spec, line in zip(schedule.measures, lines, strict=True):
        row = rows.get(spec.id)
        key = line["anchor"][len("measure-"):]
        chart = measure_chart(spec, series.get(spec.id, []), period, months,
                              chart_id=f"chart-{key}")
        xmr = xmr_chart(spec, series.get(spec.id, []), period, months, chart_id=f"xmr-{key}")
        details.append({
            **line, "meta": _measure_meta(spec, schedule),
            "chart": Markup(chart), "xmr": Markup(xmr),
            "xmr_note": "" if xmr else words.say("spc.no_chart"),
            "narrative": words.narrative(spec, row, schedule) if row is not None
            else words.say("figure.none", month=month_name(period)),
            "comment": _comment(row),
        })

    environment = Environment(loader=FileSystemLoader(str(TEMPLATE.parent)), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)
    template = environment.get_template(TEMPLATE.name)
    contract = schedule.contract
    return template.render(
        contract=contract, period=period, period_text=month_name(period),
        financial_year=financial_year(period, contract.year_start_month),
        produced=_produced_text(produced), produced_iso=produced.isoformat(timespec="minutes"),
        summary=summary, total=len(lines), lines=lines, has_comparators=has_comparators,
        well=well, improve=improve, opened=opened, held=held, has_responses=has_responses,
        resolved=resolved, notes=_notes(schedule, findings, period), details=details,
        months=months, colours=STATUS_COLOURS, spc_styles=_spc_styles(),
    )
