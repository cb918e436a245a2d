"""The committee report's sentences, written from templates kept in one place.

The register is the seed reports': Sunderland's "Together for Children performance update"
(September 2018) for each measure's paragraph, and Darlington's "Where are we performing
well?" / "Where do we need to improve?" for the exceptions. Every sentence the report prints
is built from ``TEMPLATES`` below; nothing else in the report writes prose.

A *row* is one measure-period of the assessment history (``history_with_features``) as a
mapping: ``status``, ``value``, ``figure_period``, ``compared_with``, ``profiled_target``,
``forecast``, ``forecast_status``, ``previous_value``, ``change``, ``reason``, ``sources``,
``source_spread``, ``source``, ``elapsed`` and so on; and the XmR chart's reading of it:
``variation``, ``spc_rule``, ``assurance``, ``spc_mean``, ``spc_points``, ``spc_trial``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from compliance import present
from compliance.periods import add_months, month_name, months_elapsed
from compliance.schedule import ADDITIVE_UNITS, MeasureSpec, Schedule

TEMPLATES: dict[str, str] = {
    # The figure, and how it has moved since the previous due period.
    "figure.first": "The {subject} in {month} is {figure}.",
    "figure.increased": "The {subject} has increased to {figure} in {month}{previously}.",
    "figure.decreased": "The {subject} has decreased to {figure} in {month}{previously}.",
    "figure.unchanged": "The {subject} has remained at {figure} in {month}.",
    "figure.previously": " (previously {previous})",
    "figure.year_to_date": "The {subject} in the period {span} is {figure}.",
    "figure.none": "No figure has been reported for {month}.",
    # The judgement clause, one per status (a monitor-only measure has none).
    "judge.exceeding": "Performance against this measure is {now}exceeding target.",
    "judge.achieving": "Performance against this measure is {now}achieving target.",
    "judge.in_range": "Performance against this measure is {now}within the target range of "
                      "{target}.",
    "judge.within_tolerance": "Performance against this measure is {side} target but within "
                              "tolerance range.",
    "judge.breach": "Performance against this measure is not meeting target of {target} and is "
                    "outside of tolerance range.",
    "judge.breach_no_tolerance": "Performance against this measure is not meeting target of "
                                 "{target}.",
    "judge.out_of_range": "Performance against this measure is outside the target range of "
                          "{target} and is outside of tolerance range.",
    "judge.out_of_range_no_tolerance": "Performance against this measure is outside the "
                                       "target range of {target}.",
    "judge.on_track": "Performance against this measure is on track to meet the year-end "
                      "target.",
    "judge.behind_profile": "Performance against this measure is behind profile for the "
                            "year-end target but within tolerance.",
    "judge.off_track": "Performance against this measure is not on track to meet the year-end "
                       "target of {target}.",
    "judge.unable": "{provider} are unable to report this measure: {reason}.",
    "judge.unable_until": "{provider} are unable to report this measure {rest}.",
    "judge.year_end_cumulative": "The {subject} is a cumulative figure and the final figure "
                                 "will be known in {final_month}.",
    "judge.year_end": "The {subject} is judged at year end and the final figure will be known "
                      "in {final_month}.",
    "judge.not_due": "This measure is reported {frequency} and is not due for {month}.",
    # What follows the judgement.
    "year_to_date": "The year to date position shows performance at {figure}.",
    "profile": "Against a year-end target of {target}, the profiled target for the {elapsed} "
               "to {month} is {profiled}; at the current rate the year would end at "
               "{forecast}.",
    "forecast.met": "Based on current performance it is anticipated the target of {target} "
                    "would be met by year end.",
    "forecast.within_tolerance": "Based on current performance the year-end figure would be "
                                 "{side} the target of {target} but within tolerance.",
    "forecast.breach": "Based on current performance the target of {target} would not be met "
                       "by year end.",
    "comparators": "This compares with {references}.",
    "not_comparable": "Comparators cannot be directly compared with this figure. {note}",
    "sources": "{count} sources reported this figure and they differ by {spread}; the figure "
               "used is from {source}.",
    "description": "{description}",
    # The exceptions: "Where are we performing well?" and "Where do we need to improve?".
    "well.exceeding": "The {subject} ({ref}) was {figure} in {month}, better than the target "
                      "of {target}{trend}{references}.",
    "well.achieving": "The {subject} ({ref}) was {figure} in {month}, achieving the target of "
                      "{target}{trend}{references}.",
    "well.in_range": "The {subject} ({ref}) was {figure} in {month}, within the target range "
                     "of {target}{trend}{references}.",
    "well.on_track": "The {subject} ({ref}) stands at {figure} for the year to date, on track "
                     "to meet the year-end target of {target}.",
    "well.forecast": "The {subject} ({ref}) stands at {figure} for the year to date; on "
                     "current performance the year-end target of {target} would be met.",
    "well.recovering": "The {subject} ({ref}) was {figure} in {month}: {side} the target of "
                       "{target} but within tolerance{trend}{references}.",
    "improve.breach": "The {subject} ({ref}) was {figure} in {month}, worse than the target of "
                      "{target} and outside of tolerance{trend}{references}.",
    "improve.breach_no_tolerance": "The {subject} ({ref}) was {figure} in {month}, worse than "
                                   "the target of {target}{trend}{references}.",
    "improve.within_tolerance": "The {subject} ({ref}) was {figure} in {month}, {side} the "
                                "target of {target} but within tolerance{trend}{references}.",
    "improve.not_reported": "The {subject} ({ref}) was not reported for {month}: {reason}.",
    "improve.off_track": "The {subject} ({ref}) stands at {figure} for the year to date, not on "
                         "track to meet the year-end target of {target}.",
    "improve.forecast": "The {subject} ({ref}) stands at {figure} for the year to date; on "
                        "current performance the year-end target of {target} would not be met.",
    "improve.watch": "The {subject} ({ref}) was {figure} in {month}, still meeting the target "
                     "of {target}, but has deteriorated for {runs} due periods in a row"
                     "{signal}.",
    "improve.spc": "The {subject} ({ref}) was {figure} in {month}, still meeting the target "
                   "of {target}, but its XmR chart shows special-cause variation of concern.",
    "improve.signal": ", and its XmR chart shows special-cause variation of concern",
    # Statistical process control: the XmR chart read by NHS England's "Making Data Count"
    # rules, for the latest figure, then what its limits say about the target.
    "spc.beyond_limit": "The chart shows the {month} figure {side} the {limit} process limit, "
                        "a signal that {meaning}.",
    "spc.shift": "The chart shows a sustained run of figures {side} the average, a signal "
                 "that {meaning}.",
    "spc.trend": "The chart shows a sustained run of {moving} figures, a signal that "
                 "{meaning}.",
    "spc.two_of_three": "The chart shows recent figures close to the {limit} process limit, "
                        "a signal that {meaning}.",
    "spc.signal": "The chart shows special-cause variation, a signal that {meaning}.",
    "spc.meaning.special_cause_improvement": "performance has changed for the better",
    "spc.meaning.special_cause_concern": "performance has changed for the worse",
    "spc.meaning.special_cause_neither": "performance has changed",
    "assurance.consistently_failing": "On current variation the target will be missed "
                                      "consistently unless the process changes.",
    "assurance.consistently_passing": "On current variation the target will be met "
                                      "consistently.",
    "assurance.inconsistent": "On current variation the target will be met in some periods "
                              "and missed in others.",
    "spc.trial": "The process limits are trial limits, calculated from {count} figures, and "
                 "will settle as more figures are reported.",
    "spc.no_chart": "There is no XmR chart for this measure yet: none of its figures has been "
                    "judged.",
    # The scorecard's words for the same reading.
    "variation.common_cause": "Common cause",
    "variation.special_cause_improvement": "Special cause: improvement",
    "variation.special_cause_concern": "Special cause: concern",
    "variation.special_cause_neither": "Special cause: neither improvement nor concern",
    "assurance.label.consistently_passing": "Assurance: consistently passing",
    "assurance.label.consistently_failing": "Assurance: consistently failing",
    "assurance.label.inconsistent": "Assurance: hit and miss",
    "spc.trial_label": "Trial limits, from {count} figures",
    "trend.improving": ", and has improved from {previous}",
    "trend.declining": ", and has worsened from {previous}",
    "references": " (benchmarks: {references})",
}

COMPARATOR_NAMES = {
    "statistical_neighbours": "statistical neighbours",
    "statistical_neighbour": "statistical neighbours",
    "england": "England average",
    "national": "national average",
    "region": "regional average",
    "regional": "regional average",
    "north_east": "North East average",
}

_FREQUENCY_WORDS = {"monthly": "monthly", "quarterly": "quarterly", "termly": "each term",
                    "annual": "annually"}


def say(key: str, **fields: Any) -> str:
    """One sentence (or clause) from its template."""
    return TEMPLATES[key].format(**fields)


# --- small readers of a row ----------------------------------------------------------------


def _num(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value is None or present.missing(value):
        return None
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(as_float) else as_float


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None or present.missing(value):
        return ""
    return str(value).strip()


def figure(value: float | None, unit: str) -> str:
    """A figure as the report prints it: 29.4%, 83.8, 297, 12 days."""
    text = present.figure(value, unit)
    return f"{text} days" if unit == "days" and value is not None else text


def target_words(spec: MeasureSpec, value: float | None = None) -> str:
    """The target as a phrase: 22%, or 45%–55% for a range."""
    if spec.polarity == "within_range" and isinstance(spec.target, tuple):
        text = present.target_text(spec.target, spec.unit)
        return f"{text} days" if spec.unit == "days" else text
    return figure(value if value is not None else _scalar_target(spec), spec.unit)


def _scalar_target(spec: MeasureSpec) -> float | None:
    if isinstance(spec.target, tuple):
        return spec.target[1]
    return spec.target


def subject(spec: MeasureSpec) -> str:
    """The measure's title as the subject of a sentence: "percentage of all referrals ..."."""
    title = spec.title.strip().rstrip(".")
    if title.startswith("% "):
        return "percentage " + title[2:].lstrip()
    if title.startswith("%"):
        return "percentage of " + title[1:].lstrip()
    words = title.split(" ", 1)
    first = words[0]
    if len(first) > 1 and first[0].isupper() and first[1:].islower():
        return first.lower() + (" " + words[1] if len(words) > 1 else "")
    return title


def _figure_month(row: Mapping[str, Any], period: str) -> str:
    return month_name(_text(row, "figure_period") or period)


def _period(row: Mapping[str, Any]) -> str:
    return _text(row, "period")


def _is_profiled(spec: MeasureSpec) -> bool:
    return spec.accumulation == "cumulative" and spec.unit in ADDITIVE_UNITS


def final_month(period: str, year_start_month: int) -> str:
    """The last month of the financial year ``period`` falls in: March 2019."""
    elapsed = months_elapsed(period, year_start_month)
    return month_name(add_months(period, 12 - elapsed))


def year_span(period: str, year_start_month: int) -> str:
    """The year to date as the seed writes it: "April – September 2018"."""
    elapsed = months_elapsed(period, year_start_month)
    start = add_months(period, 1 - elapsed)
    if start == period:
        return month_name(period)
    if start[:4] == period[:4]:
        return f"{month_name(start).split()[0]} – {month_name(period)}"
    return f"{month_name(start)} – {month_name(period)}"


def _worse_side(spec: MeasureSpec) -> str:
    return {"higher_is_better": "below", "lower_is_better": "above"}.get(
        spec.polarity, "outside")


def _met(spec: MeasureSpec, value: float, target: float) -> bool:
    if spec.polarity == "higher_is_better":
        return value >= target
    if spec.polarity == "lower_is_better":
        return value <= target
    if isinstance(spec.target, tuple):
        return spec.target[0] <= value <= spec.target[1]
    return value == target


def reference_names(spec: MeasureSpec) -> list[tuple[str, float]]:
    """Comparators then baselines, each named as a sentence names it."""
    names = []
    for key, value in spec.comparators.items():
        name = COMPARATOR_NAMES.get(key, key.replace("_", " "))
        names.append((f"the {name}" if name.endswith("average") else name, value))
    names += [(f"the {key.replace('_', ' ')}", value) for key, value in spec.baselines.items()]
    return names


def references(spec: MeasureSpec, compact: bool = False) -> str:
    """Comparators then baselines: "statistical neighbours (20%) and the England average
    (22%)", or compact: "statistical neighbours 20% and the England average 22%"."""
    parts = [f"{name} {figure(value, spec.unit)}" if compact
             else f"{name} ({figure(value, spec.unit)})"
             for name, value in reference_names(spec)]
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def _reason(row: Mapping[str, Any]) -> str:
    reason = _text(row, "reason") or "no figure in the return"
    reason = reason.rstrip(". ")
    if len(reason) > 1 and reason[0].isupper() and not reason[1].isupper():
        reason = reason[0].lower() + reason[1:]
    return reason


# --- the judgement clause --------------------------------------------------------------------


def judgement(spec: MeasureSpec, row: Mapping[str, Any], schedule: Schedule) -> str:
    """The sentence that states the measure's judgement; empty for a monitor-only measure."""
    status = _text(row, "status")
    period = _period(row) or _text(row, "figure_period")
    target = _num(row, "compared_with")
    value = _num(row, "value")
    if status == "monitor":
        return ""
    if status == "not_reported":
        reason = _reason(row)
        match = re.match(r"(?i)^(?:we are |they are |tfc are )?unable to report "
                         r"(?:this (?:measure|indicator|figure) )?(.+)$", reason)
        if match:
            return say("judge.unable_until", provider=schedule.contract.provider,
                       rest=match.group(1))
        return say("judge.unable", provider=schedule.contract.provider, reason=reason)
    if status == "not_due":
        if spec.judged == "year_end":
            key = ("judge.year_end_cumulative" if spec.accumulation == "cumulative"
                   else "judge.year_end")
            month = _text(row, "figure_period") or period
            return say(key, subject=subject(spec),
                       final_month=final_month(month, schedule.contract.year_start_month))
        return say("judge.not_due", month=_figure_month(row, period),
                   frequency=_FREQUENCY_WORDS.get(schedule.frequency(spec),
                                                  schedule.frequency(spec)))
    if _is_profiled(spec):
        key = {"met": "judge.on_track", "within_tolerance": "judge.behind_profile"}.get(
            status, "judge.off_track")
        return say(key, target=target_words(spec))
    if status == "met":
        previous = _num(row, "previous_value")
        now = ("now " if previous is not None and target is not None
               and not _met(spec, previous, target) else "")
        if spec.polarity == "within_range":
            return say("judge.in_range", now=now, target=target_words(spec))
        exceeding = (spec.polarity == "higher_is_better" and value is not None
                     and target is not None and value > target)
        return say("judge.exceeding" if exceeding else "judge.achieving", now=now)
    if status == "within_tolerance":
        return say("judge.within_tolerance", side=_worse_side(spec))
    if status == "breach":
        key = "judge.breach" if spec.polarity != "within_range" else "judge.out_of_range"
        if spec.tolerance is None:
            key += "_no_tolerance"
        return say(key, target=target_words(spec, target))
    return ""


# --- the paragraph ---------------------------------------------------------------------------


def figure_sentence(spec: MeasureSpec, row: Mapping[str, Any], schedule: Schedule) -> str:
    """The figure, named by its own month, and how it moved since the previous due period."""
    period = _period(row) or _text(row, "figure_period")
    month = _figure_month(row, period)
    value = _num(row, "value")
    if value is None:
        return say("figure.none", month=month)
    shown = figure(value, spec.unit)
    if spec.accumulation == "cumulative":
        span = year_span(_text(row, "figure_period") or period,
                         schedule.contract.year_start_month)
        return say("figure.year_to_date", subject=subject(spec), span=span, figure=shown)
    previous = _num(row, "previous_value")
    if previous is None:
        return say("figure.first", subject=subject(spec), month=month, figure=shown)
    before = say("figure.previously", previous=figure(previous, spec.unit))
    if math.isclose(value, previous):
        return say("figure.unchanged", subject=subject(spec), month=month, figure=shown)
    key = "figure.increased" if value > previous else "figure.decreased"
    return say(key, subject=subject(spec), month=month, figure=shown, previously=before)


def narrative(spec: MeasureSpec, row: Mapping[str, Any], schedule: Schedule) -> str:
    """The measure's paragraph in the seed's register: figure, judgement, then context."""
    status = _text(row, "status")
    value = _num(row, "value")
    sentences: list[str] = []
    clause = judgement(spec, row, schedule)
    if status == "not_reported":
        sentences.append(clause)
    elif status == "not_due" and spec.judged == "year_end":
        sentences.append(clause)
        if value is not None:
            sentences.append(say("year_to_date", figure=figure(value, spec.unit)))
        sentences.extend(_forecast(spec, row))
    elif status == "not_due":
        sentences.append(clause)
    else:
        sentences.append(figure_sentence(spec, row, schedule))
        if _is_profiled(spec) and value is not None:
            sentences.append(_profile(spec, row, schedule))
        if clause:
            sentences.append(clause)
        if _is_profiled(spec):
            sentences.extend(_forecast(spec, row))
    if status not in ("not_reported", "not_due"):
        sentences.extend(spc_sentences(spec, row))
    refs = references(spec)
    if refs and status not in ("not_reported", "not_due"):
        sentences.append(say("comparators", references=refs))
    if spec.not_comparable:
        sentences.append(say("not_comparable", note=_sentence(spec.not_comparable)))
    sources = int(_num(row, "sources") or 0)
    spread = _num(row, "source_spread")
    if sources > 1 and spread is not None:
        unit_spread = (f"{present.number(spread)} percentage points" if spec.unit == "percent"
                       else figure(spread, spec.unit))
        sentences.append(say("sources", count=_count_word(sources).capitalize(),
                             spread=unit_spread, source=_text(row, "source") or "the first"))
    if spec.description:
        sentences.append(say("description", description=_sentence(spec.description)))
    return " ".join(s for s in sentences if s)


# --- statistical process control ---------------------------------------------------------

VARIATION_SYMBOLS = {"special_cause_improvement": "▲", "special_cause_concern": "▼",
                     "special_cause_neither": "◆", "common_cause": ""}
"""The symbol of each variation label, as the XmR chart marks its points (and as the
command line prints them): the label is never given by colour alone."""

_SPECIAL = ("special_cause_improvement", "special_cause_concern", "special_cause_neither")
_ASSURANCES = ("consistently_passing", "consistently_failing", "inconsistent")


def _flag(row: Mapping[str, Any], key: str) -> bool:
    value = row.get(key)
    if value is None or present.missing(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def spc_reading(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row's XmR reading in words for the scorecard: ``variation`` and ``assurance``
    labels (empty when there is none), the variation's ``symbol``, and ``trial`` (the words
    for trial limits, or empty)."""
    variation = _text(row, "variation")
    assurance = _text(row, "assurance")
    points = int(_num(row, "spc_points") or 0)
    known = variation in (*_SPECIAL, "common_cause")
    return {
        "variation": variation if known else "",
        "variation_word": say(f"variation.{variation}") if known else "",
        "symbol": VARIATION_SYMBOLS.get(variation, ""),
        "assurance": assurance if assurance in _ASSURANCES else "",
        "assurance_word": say(f"assurance.label.{assurance}")
        if assurance in _ASSURANCES else "",
        "trial": say("spc.trial_label", count=points)
        if known and _flag(row, "spc_trial") and points else "",
    }


def _spc_high(spec: MeasureSpec, row: Mapping[str, Any], variation: str, rule: str
              ) -> bool | None:
    """Whether the signal is on the high side of the chart (a rising trend), or None."""
    value, mean = _num(row, "value"), _num(row, "spc_mean")
    if rule == "trend":
        good = {"higher_is_better": True, "lower_is_better": False}.get(spec.polarity)
        if good is not None and variation != "special_cause_neither":
            return good if variation == "special_cause_improvement" else not good
        previous = _num(row, "previous_value")
        if value is not None and previous is not None and value != previous:
            return value > previous
    if value is not None and mean is not None and value != mean:
        return value > mean
    return None


def spc_sentences(spec: MeasureSpec, row: Mapping[str, Any]) -> list[str]:
    """What the XmR chart says of the latest figure (special-cause variation, if any) and
    what its limits say about the target (assurance), with a caution for trial limits."""
    sentences = []
    variation = _text(row, "variation")
    rule = _text(row, "spc_rule")
    if variation in _SPECIAL:
        meaning = say(f"spc.meaning.{variation}")
        high = _spc_high(spec, row, variation, rule)
        key = f"spc.{rule}"
        if high is not None and key in TEMPLATES:
            sentences.append(say(
                key, month=_figure_month(row, _period(row)), meaning=meaning,
                side="above" if high else "below", limit="upper" if high else "lower",
                moving="rising" if high else "falling"))
        else:
            sentences.append(say("spc.signal", meaning=meaning))
    assurance = _text(row, "assurance")
    if assurance in _ASSURANCES:
        sentences.append(say(f"assurance.{assurance}"))
    points = int(_num(row, "spc_points") or 0)
    if sentences and _flag(row, "spc_trial") and points:
        sentences.append(say("spc.trial", count=_count_word(points)))
    return sentences


def _count_word(n: int) -> str:
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
             9: "nine", 10: "ten", 11: "eleven"}
    return words.get(n, str(n))


def _profile(spec: MeasureSpec, row: Mapping[str, Any], schedule: Schedule) -> str:
    period = _text(row, "figure_period") or _period(row)
    elapsed = months_elapsed(period, schedule.contract.year_start_month)
    return say("profile", target=target_words(spec),
               elapsed=f"{elapsed} month{'s' if elapsed != 1 else ''}",
               month=month_name(period), profiled=figure(_num(row, "compared_with"), spec.unit),
               forecast=figure(_num(row, "forecast"), spec.unit))


def _forecast(spec: MeasureSpec, row: Mapping[str, Any]) -> list[str]:
    status = _text(row, "forecast_status")
    if _num(row, "forecast") is None or status not in ("met", "within_tolerance", "breach"):
        return []
    return [say(f"forecast.{status}", target=target_words(spec), side=_worse_side(spec))]


# --- the exceptions ----------------------------------------------------------------------------


def exception(spec: MeasureSpec, row: Mapping[str, Any], schedule: Schedule, section: str,
              watch_runs: int = 0) -> str:
    """One line of "Where are we performing well?" (``well``) or "... improve?" (``improve``)."""
    status = _text(row, "status")
    period = _period(row) or _text(row, "figure_period")
    value = _num(row, "value")
    target = _num(row, "compared_with")
    fields: dict[str, Any] = {
        "subject": subject(spec), "ref": spec.id, "month": _figure_month(row, period),
        "figure": figure(value, spec.unit), "target": target_words(spec, target),
        "side": _worse_side(spec), "reason": _reason(row), "runs": watch_runs,
    }
    refs = references(spec, compact=True)
    fields["references"] = say("references", references=refs) if refs else ""
    fields["trend"] = _trend(spec, row)
    if _is_profiled(spec) and status not in ("not_reported", "not_due"):
        fields["target"] = target_words(spec)
        return say("well.on_track" if status == "met" else "improve.off_track", **fields)
    if status == "not_due":
        fields["target"] = target_words(spec)
        good = _text(row, "forecast_status") in ("met", "within_tolerance")
        return say("well.forecast" if good else "improve.forecast", **fields)
    if status == "not_reported":
        return say("improve.not_reported", **fields)
    if status == "monitor":
        return figure_sentence(spec, row, schedule)
    concern = _text(row, "variation") == "special_cause_concern"
    if section == "improve" and status == "met" and concern and watch_runs < 2:
        return say("improve.spc", **fields)
    if section == "improve" and watch_runs and status == "met":
        return say("improve.watch", signal=say("improve.signal") if concern else "", **fields)
    if status == "met":
        exceeding = (spec.polarity == "higher_is_better" and value is not None
                     and target is not None and value > target) or (
            spec.polarity == "lower_is_better" and value is not None and target is not None
            and value < target)
        key = ("well.in_range" if spec.polarity == "within_range"
               else "well.exceeding" if exceeding else "well.achieving")
        return say(key, **fields)
    if status == "within_tolerance":
        return say("well.recovering" if section == "well" else "improve.within_tolerance",
                   **fields)
    key = "improve.breach" if spec.tolerance is not None else "improve.breach_no_tolerance"
    return say(key, **fields)


def _trend(spec: MeasureSpec, row: Mapping[str, Any]) -> str:
    direction = _text(row, "direction")
    previous = _num(row, "previous_value")
    if previous is None or _is_profiled(spec) or direction not in ("improving", "declining"):
        return ""
    return say(f"trend.{direction}", previous=figure(previous, spec.unit))
