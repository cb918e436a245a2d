"""The scorecard as an Excel workbook, for officers who keep their own trackers.

One sheet, one row per measure. Figures are stored as numbers with number formats by unit
(a percentage is stored as given, 0-100, and shown with a "%" suffix, so 29.4 stays 29.4),
the status cells carry the RAG fill, the XmR chart's variation and assurance are given in
words, the header row is frozen and filtered, and every text that came from a provider is
stored as text that a spreadsheet will never run as a formula.
The file is written to a temporary file and moved into place, so a reader never sees half a
workbook.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from compliance import present
from compliance.files import replaced_whole
from compliance.periods import month_name
from compliance.report.narrative import spc_reading
from compliance.schedule import MeasureSpec, Schedule

# Fill and text colour per RAG (ARGB). Dark text on light fills: each pair has a contrast
# ratio of at least 4.5:1 (WCAG 2.2 AA), and the status is also written in words.
RAG_FILLS: dict[str, tuple[str, str]] = {
    "green": ("FFC6EFCE", "FF0B3D1A"),
    "amber": ("FFFFEB9C", "FF4A2E00"),
    "red": ("FFFFC7CE", "FF6B0010"),
    "grey": ("FFE3E5E8", "FF0B0C0C"),
}
_RAG_OF_STATUS = {"met": "green", "within_tolerance": "amber", "breach": "red",
                  "not_reported": "red", "not_due": "grey", "monitor": "grey"}

NUMBER_FORMATS: dict[str, str] = {
    "percent": '0.0#"%"',
    "rate_per_1k": "#,##0.0",
    "rate_per_10k": "#,##0.0",
    "rate_per_100k": "#,##0.0",
    "count": "#,##0",
    "days": "#,##0.0",
    "number": "#,##0.##",
}

COLUMNS: tuple[tuple[str, int], ...] = (
    ("Ref", 9), ("Kind", 11), ("Measure", 58), ("Figure for", 15), ("Figure", 11),
    ("Target", 11), ("Compared with", 14), ("Tolerance", 15), ("Status", 17), ("RAG", 8),
    ("Direction of travel", 18), ("Variation", 26), ("Assurance", 20),
    ("Previous figure", 15), ("Year-end forecast", 16),
    ("Reason", 42), ("Provider comment", 48), ("Source", 20),
)

# A text that a spreadsheet would read as a formula or a command (CWE-1236).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _num(value: Any) -> float | None:
    if value is None or present.missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _text(value: Any) -> str:
    if value is None or present.missing(value):
        return ""
    return _ILLEGAL.sub("", str(value))


def is_formula_like(text: str) -> bool:
    """Would a spreadsheet treat this text as a formula (or DDE command) if typed in?"""
    return text.startswith(_FORMULA_START)


def _safe_text(cell: Any, text: str) -> None:
    """Store ``text`` as a string, never a formula: forced to the string type, and for a
    formula-like text with Excel's quote prefix (the leading apostrophe, not shown)."""
    cell.value = text
    cell.data_type = "s"
    if is_formula_like(text):
        cell.quotePrefix = True


def _target(spec: MeasureSpec) -> float | None:
    if spec.target is None:
        return None
    if isinstance(spec.target, tuple):
        return None
    return float(spec.target)


def export_scorecard(schedule: Schedule, assessments_rows: Sequence[Mapping[str, Any]],
                     period: str, path: str | os.PathLike[str]) -> Path:
    """Write the scorecard of ``period`` to ``path`` (an .xlsx file); return the path.

    ``assessments_rows`` are the month's assessments as dicts, either rows of
    ``history_with_features`` for the period (``compliance.escalation.records``) or the
    ``assessments`` of the check's JSON document. Measures of the schedule with no row are
    written as not reported.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties

    target_path = Path(path)
    by_measure = {str(r["measure"]): r for r in assessments_rows}
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Scorecard"

    header_font = Font(bold=True, color="FFFFFFFF")
    header_fill = PatternFill("solid", fgColor="FF1D3F6E")
    thin = Side(style="thin", color="FFB1B4B6")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")

    cell: Any
    for index, (name, width) in enumerate(COLUMNS, start=1):
        cell = sheet.cell(row=1, column=index, value=name)
        cell.font = header_font
        cell.fill = header_fill
        cell.border = border
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.row_dimensions[1].height = 30

    for offset, spec in enumerate(schedule.measures):
        line = offset + 2
        row = by_measure.get(spec.id, {})
        status = _text(row.get("status")) or "not_reported"
        rag = _text(row.get("rag")) or _RAG_OF_STATUS.get(status, "grey")
        number_format = NUMBER_FORMATS.get(spec.unit, "General")
        figure_period = _text(row.get("figure_period")) or _text(row.get("period")) or period
        direction = _text(row.get("direction"))
        spc = spc_reading(row)
        values: list[tuple[Any, str | None]] = [
            (spec.id, None), ("KPI" if spec.kind == "kpi" else "Supporting", None),
            (spec.title, None), (month_name(figure_period), None),
            (_num(row.get("value")), number_format), (_target(spec), number_format),
            (_num(row.get("compared_with")), number_format),
            (present.tolerance_text(spec.tolerance, spec.unit, spec.polarity)
             if spec.tolerance is not None else "", None),
            (present.STATUS_WORDS.get(status, status), None), (rag.capitalize(), None),
            (present.DIRECTION_ARROWS.get(direction, "").split(" ", 1)[-1] if direction
             else "", None),
            (spc["variation_word"], None),
            (spc["assurance_word"].removeprefix("Assurance: ").capitalize(), None),
            (_num(row.get("previous_value")) if spec.accumulation != "cumulative"
             else None, number_format),
            (_num(row.get("forecast")), number_format),
            (_text(row.get("reason")), None), (_text(row.get("comment")), None),
            (_text(row.get("source")), None),
        ]
        if isinstance(spec.target, tuple):
            values[5] = (present.target_text(spec.target, spec.unit), None)
        for column, (value, fmt) in enumerate(values, start=1):
            cell = sheet.cell(row=line, column=column)
            if isinstance(value, str):
                _safe_text(cell, value)
                cell.alignment = wrap
            else:
                cell.value = value
                cell.alignment = top
                if fmt is not None:
                    cell.number_format = fmt
            cell.border = border
        fill, ink = RAG_FILLS.get(rag, RAG_FILLS["grey"])
        for column in (9, 10):
            cell = sheet.cell(row=line, column=column)
            cell.fill = PatternFill("solid", fgColor=fill)
            cell.font = Font(bold=True, color=ink)
        if spec.kind == "kpi":
            for column in (1, 3):
                sheet.cell(row=line, column=column).font = Font(bold=True)

    last = len(schedule.measures) + 1
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{last}"
    sheet.print_title_rows = "1:1"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    contract = schedule.contract
    workbook.properties.title = f"{contract.provider} scorecard, {month_name(period)}"
    workbook.properties.subject = contract.title
    workbook.properties.creator = contract.commissioner

    with replaced_whole(target_path) as temporary:
        workbook.save(temporary)
    return target_path
