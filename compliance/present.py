"""How figures, targets and statuses are written for people: one place for every output."""

from __future__ import annotations

import math
from typing import Any

from compliance.periods import month_name

STATUS_WORDS = {
    "met": "Met",
    "within_tolerance": "Within tolerance",
    "breach": "Breach",
    "not_reported": "Not reported",
    "not_due": "Not due",
    "monitor": "Monitor only",
}
STATUS_SYMBOLS = {"met": "✓", "within_tolerance": "~", "breach": "✗", "not_reported": "?",
                  "not_due": "·", "monitor": "○"}
STATUS_STYLES = {"met": "bold green", "within_tolerance": "bold yellow", "breach": "bold red",
                 "not_reported": "bold red", "not_due": "dim", "monitor": "cyan"}
DIRECTION_ARROWS = {"improving": "▲ improving", "declining": "▼ declining",
                    "unchanged": "► unchanged"}
VARIATION_WORDS = {"special_cause_concern": "▼ concern", "special_cause_improvement":
                   "▲ improvement", "special_cause_neither": "◆ special cause",
                   "common_cause": "common cause"}
ASSURANCE_WORDS = {"consistently_passing": "passes", "consistently_failing": "fails",
                   "inconsistent": "hit and miss"}
UNIT_SUFFIX = {"percent": "%", "rate_per_1k": " per 1k", "rate_per_10k": " per 10k",
               "rate_per_100k": " per 100k", "days": " days", "count": "", "number": ""}


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: Any) -> str:
    """A figure as the provider wrote it: no trailing zeros, no rounding away of precision."""
    if missing(value):
        return ""
    as_float = float(value)
    if as_float.is_integer():
        return f"{int(as_float):,}" if abs(as_float) >= 10_000 else str(int(as_float))
    return f"{round(as_float, 4):g}" if abs(as_float) < 1e6 else f"{as_float:,.2f}"


def figure(value: Any, unit: str) -> str:
    if missing(value):
        return "—"
    return f"{number(value)}{'%' if unit == 'percent' else ''}"


def target_text(target: Any, unit: str) -> str:
    if target is None:
        return "—"
    if isinstance(target, list | tuple):
        return f"{figure(target[0], unit)}–{figure(target[1], unit)}"
    return figure(target, unit)


def tolerance_text(tolerance: Any, unit: str, polarity: str) -> str:
    if tolerance is None:
        return "—"
    if isinstance(tolerance, list | tuple):
        return f"{number(tolerance[0])}–{figure(tolerance[1], unit)}"
    side = "down to" if polarity == "higher_is_better" else "up to"
    return f"{side} {figure(tolerance, unit)}"


def period_text(period: str) -> str:
    return month_name(period)
