"""Calendar months as periods, financial years and the spellings providers use for them."""

from __future__ import annotations

import calendar
import datetime as dt
import re

TERM_END_MONTHS = (12, 4, 7)  # autumn, spring and summer terms end

MONTH_NAMES = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
MONTH_NAMES.update({name.lower(): i for i, name in enumerate(calendar.month_name) if name})
MONTH_NAMES["sept"] = 9

_ISO = re.compile(r"^(\d{4})-(\d{1,2})$")
_ISO_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00)?)?$")
_NAMED = re.compile(r"^([A-Za-z]+)[\s\-/']*(\d{2}|\d{4})$")


class PeriodError(ValueError):
    """A period that cannot be read as a calendar month."""


def format_period(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def parse_period(value: object) -> str:
    """Read a period as ``YYYY-MM``: accepts 2018-09, Sep 2018, Sep-18, September 2018 and dates."""
    if isinstance(value, dt.datetime | dt.date):
        return format_period(value.year, value.month)
    text = str(value).strip()
    match = _ISO.match(text) or _ISO_DAY.match(text)
    if match:
        year, month = int(match.group(1)), int(match.group(2))
    else:
        named = _NAMED.match(text)
        if not named or named.group(1).lower() not in MONTH_NAMES:
            raise PeriodError(f"{text!r} is not a month (use YYYY-MM, e.g. 2018-09, or Sep 2018)")
        month = MONTH_NAMES[named.group(1).lower()]
        year = int(named.group(2))
        if year < 100:
            year += 2000
    if not 1 <= month <= 12:
        raise PeriodError(f"{text!r} is not a month: month {month} is outside 1-12")
    if not 1900 <= year <= 2999:
        raise PeriodError(f"{text!r} is not a month: year {year} is out of range")
    return format_period(year, month)


def month_index(period: str) -> int:
    """Months since year 0, so that periods can be subtracted."""
    year, month = int(period[:4]), int(period[5:7])
    return year * 12 + month - 1


def from_index(index: int) -> str:
    return format_period(index // 12, index % 12 + 1)


def add_months(period: str, months: int) -> str:
    return from_index(month_index(period) + months)


def period_range(start: str, end: str) -> list[str]:
    first, last = month_index(start), month_index(end)
    if last < first:
        raise PeriodError(f"the range {start} to {end} runs backwards")
    return [from_index(i) for i in range(first, last + 1)]


def months_elapsed(period: str, year_start_month: int = 4) -> int:
    """How many months of the financial year have ended with ``period`` (1 to 12)."""
    month = int(period[5:7])
    return (month - year_start_month) % 12 + 1


def financial_year(period: str, year_start_month: int = 4) -> str:
    """The financial year a period falls in, written as councils write it: 2018/19."""
    year, month = int(period[:4]), int(period[5:7])
    start = year if month >= year_start_month else year - 1
    if year_start_month == 1:
        return str(start)
    return f"{start}/{(start + 1) % 100:02d}"


def month_name(period: str) -> str:
    """September 2018."""
    return f"{calendar.month_name[int(period[5:7])]} {period[:4]}"


def return_due(period: str, day: int) -> dt.date:
    """The date a period's return is due: that day of the following month (or its last)."""
    following = add_months(period, 1)
    year, month = int(following[:4]), int(following[5:7])
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def overdue_returns(first: str, day: int, today: dt.date) -> list[tuple[str, dt.date]]:
    """Every period from ``first`` whose return was due before ``today``, with its due date."""
    out = []
    period = first
    while (due := return_due(period, day)) < today:
        out.append((period, due))
        period = add_months(period, 1)
    return out
