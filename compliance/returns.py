"""Provider returns: CSV or XLSX, long or wide, read into one validated DataFrame of figures.

A return with any error is rejected whole: every problem is collected first, each naming the
file, the row as a spreadsheet shows it (the header is row 1) and the column.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import hashlib
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compliance.errors import Problem, ReturnError
from compliance.periods import PeriodError, months_elapsed, parse_period
from compliance.schedule import ADDITIVE_UNITS, UNIT_SCALE, Schedule

if TYPE_CHECKING:
    import pandas as pd

FIGURE_COLUMNS = ["contract", "measure", "period", "value", "numerator", "denominator", "source",
                  "source_rank", "comment", "row", "file"]
LONG_REQUIRED = ("measure", "period", "value")
LONG_OPTIONAL = ("numerator", "denominator", "source", "comment", "contract")
WIDE_EXTRA = ("contract", "source", "comment")
TERM_END_MONTHS = (12, 4, 7)  # autumn, spring and summer terms end
MISSING_MARKERS = frozenset({"", "n/a", "na", "-", "--", "unavailable", "not available",
                             "not reported", "null", "none", "."})
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
MAX_ERRORS_SHOWN = 200


def read_table(path: Path) -> tuple[list[list[Any]], int]:
    """Rows of a CSV or the first sheet of an XLSX, and the spreadsheet number of the first."""
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReturnError(Problem(f"cannot read the return: {exc.strerror or exc}",
                                  file=file)) from None
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(data, file), 1
    if path.suffix.lower() == ".xls":
        raise ReturnError(Problem("old .xls workbooks are not read; save it as .xlsx or .csv",
                                  file=file))
    return _read_csv(data, file), 1


def _read_csv(data: bytes, file: str) -> list[list[Any]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = _row_of_byte(data, exc.start)
            raise ReturnError(Problem(
                f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be read; save the file "
                "as 'CSV UTF-8'", file=file, row=line)) from None
    if "\x00" in text:
        raise ReturnError(Problem("the file holds NUL bytes: it is not a CSV text file",
                                  file=file))
    rows: list[list[Any]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), strict=True):
            rows.append(row)
    except csv.Error as exc:
        where = len(rows) + 1
        if "unexpected end of data" in str(exc):
            raise ReturnError(Problem(
                "a quoted cell is never closed (a missing \" ?): the rest of the file would "
                "be read as one cell", file=file, row=where)) from None
        raise ReturnError(Problem(f"not a readable CSV: {exc}", file=file, row=where)) from None
    return rows


_LOOKALIKES = str.maketrans({"l": "1", "I": "1", "O": "0", "o": "0"})


def _row_of_byte(data: bytes, offset: int) -> int:
    """The spreadsheet row holding a byte, counting quoted line breaks as one row."""
    text = data[:offset].decode("utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text + "\x00", newline="")))
    return max(len(rows), 1)


def closest(word: str, choices: list[str]) -> str | None:
    """The likeliest intended choice; of equally close ones, the one differing in fewest places."""
    lookalike = word.translate(_LOOKALIKES)
    if lookalike in choices:
        return lookalike
    matches = difflib.get_close_matches(word, choices, n=5, cutoff=0.6)
    if not matches:
        return None

    def score(choice: str) -> tuple[float, int]:
        ratio = difflib.SequenceMatcher(None, word, choice).ratio()
        same = sum(a == b for a, b in zip(word, choice, strict=False))
        same -= abs(len(word) - len(choice))
        return (-ratio, -same)

    return min(matches, key=score)


def _read_xlsx(data: bytes, file: str) -> list[list[Any]]:
    import zipfile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        formulas = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ReturnError(Problem(f"not a readable XLSX workbook: {exc}", file=file)) from None
    try:
        sheet = book.worksheets[0]
        rows: list[list[Any]] = []
        written = formulas.worksheets[0].iter_rows(values_only=True)
        for cells in sheet.iter_rows():
            as_written = next(written, ())
            row: list[Any] = []
            for index, cell in enumerate(cells):
                value = getattr(cell, "value", None)
                formula = as_written[index] if index < len(as_written) else None
                if value is None and isinstance(formula, str) and formula.startswith("="):
                    value = UnsavedFormula(formula)
                fmt = str(getattr(cell, "number_format", "") or "")
                # A cell formatted as a percentage holds the fraction (0.294 shows as 29.4%).
                if isinstance(value, int | float) and not isinstance(value, bool) and "%" in fmt:
                    value = round(value * 100, 10)
                row.append(value)
            rows.append(row)
        return rows
    finally:
        book.close()
        formulas.close()


class UnsavedFormula(str):
    """A workbook cell holding a formula whose result was never saved."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _number(value: Any) -> tuple[float | None, str | None]:
    """(number, None), (None, None) for a blank, or (None, reason) when it is not a number."""
    if isinstance(value, UnsavedFormula):
        return None, (f"the cell holds the formula {str(value)!r} with no saved value: open the "
                      "workbook in a spreadsheet program and save it, or paste values")
    if isinstance(value, bool):
        return None, f"{value!r} is not a number"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None, f"{value!r} is not a finite number"
        return float(value), None
    if isinstance(value, dt.date | dt.datetime):
        return None, f"{value} is a date, not a number"
    text = _text(value)
    if text.lower() in MISSING_MARKERS:
        return None, None
    cleaned = text.replace("\u00a0", "").replace(" ", "")
    if cleaned.endswith("%"):
        cleaned = cleaned[:-1]
    if _THOUSANDS.match(cleaned):
        cleaned = cleaned.replace(",", "")
    if not _NUMBER.match(cleaned):
        return None, f"{text!r} is not a number"
    number = float(cleaned)
    if not math.isfinite(number):
        return None, f"{text!r} is not a finite number"
    return number, None


class _Collector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._seen: set[Problem] = set()

    def add(self, message: str, row: int | None = None, column: str | None = None,
            measure: str | None = None) -> None:
        problem = Problem(message, file=self.file, row=row, column=column, measure=measure)
        # A wide-form row is checked once per period column; say its problem once.
        if problem not in self._seen:
            self._seen.add(problem)
            self.problems.append(problem)


def _header(rows: list[list[Any]], first_row: int, out: _Collector) -> tuple[int, list[str]]:
    for index, row in enumerate(rows):
        if any(_text(v) for v in row):
            names = [_text(v).lower() for v in row]
            while names and not names[-1]:
                names.pop()
            return index, names
    out.add("the return is empty: no header and no figures")
    raise ReturnError(out.problems)


def parse_return(path: str | Path, schedules: Mapping[str, Schedule],
                 contract: str | None = None, today: dt.date | None = None) -> pd.DataFrame:
    """Read and validate one provider return; raise ReturnError listing every problem."""
    import pandas as pd

    path = Path(path)
    file = str(path)
    out = _Collector(file)
    rows, first_row = read_table(path)
    header_index, names = _header(rows, first_row, out)
    header_row = first_row + header_index
    seen: dict[str, int] = {}
    for col, name in enumerate(names):
        if name and name in seen:
            out.add(f"column {name!r} appears twice (columns {seen[name] + 1} and {col + 1})",
                    row=header_row, column=name)
        seen.setdefault(name, col)
    if out.problems:
        raise ReturnError(out.problems)

    body = rows[header_index + 1:]
    records: list[dict[str, Any]] = []
    if all(name in seen for name in LONG_REQUIRED):
        for name in names:
            if name and name not in LONG_REQUIRED + LONG_OPTIONAL:
                match = difflib.get_close_matches(name, LONG_REQUIRED + LONG_OPTIONAL, n=1)
                hint = f" (did you mean {match[0]!r}?)" if match else ""
                out.add(f"unknown column {name!r}{hint}", row=header_row, column=name)
        for offset, row in enumerate(body):
            if not any(_text(v) for v in row):
                continue
            row_number = header_row + 1 + offset
            cell = {name: (row[i] if i < len(row) else None) for name, i in seen.items() if name}
            extra = [v for v in row[len(names):] if _text(v)]
            if extra:
                out.add(f"the row has {len(names) + len(extra)} cells but the header has "
                        f"{len(names)}", row=row_number)
            cell["period_column"] = "period"
            records.append({"row": row_number, **cell})
    else:
        records = _wide_records(names, seen, body, header_row, out)
    if out.problems:
        raise ReturnError(out.problems)
    if not records:
        out.add("the return has a header but no figures", row=header_row)
        raise ReturnError(out.problems)
    frame = _validate(records, schedules, contract, out, today or dt.date.today())
    if out.problems:
        if len(out.problems) > MAX_ERRORS_SHOWN:
            more = len(out.problems) - MAX_ERRORS_SHOWN
            out.problems = out.problems[:MAX_ERRORS_SHOWN]
            out.add(f"... and {more} more problems")
        raise ReturnError(out.problems)
    return frame.reindex(columns=FIGURE_COLUMNS) if len(frame) else pd.DataFrame(
        columns=FIGURE_COLUMNS)


def _wide_records(names: list[str], seen: dict[str, int], body: list[list[Any]],
                  header_row: int, out: _Collector) -> list[dict[str, Any]]:
    """The spreadsheet form: a measure column, then one column per period."""
    if not names:
        out.add("the header row is empty", row=header_row)
        return []
    periods: dict[int, str] = {}
    measure_col = 0
    for col, name in enumerate(names):
        if col == measure_col or name in WIDE_EXTRA:
            continue
        try:
            periods[col] = parse_period(name)
        except PeriodError:
            missing = [n for n in LONG_REQUIRED if n not in seen]
            out.add(f"column {name!r} is neither a period (such as 2018-09 or Sep-18) nor a "
                    f"known column; a long-form return needs {', '.join(missing)} columns",
                    row=header_row, column=name or f"#{col + 1}")
    if not periods and not out.problems:
        out.add("no period columns: the return is neither long form (measure, period, value) "
                "nor wide form (a measure column, then one column per period)", row=header_row)
    records: list[dict[str, Any]] = []
    for offset, row in enumerate(body):
        if not any(_text(v) for v in row):
            continue
        row_number = header_row + 1 + offset
        base = {"row": row_number, "measure": row[measure_col] if row else None}
        for extra in WIDE_EXTRA:
            if extra in seen:
                i = seen[extra]
                base[extra] = row[i] if i < len(row) else None
        for col, period in periods.items():
            value = row[col] if col < len(row) else None
            if not _text(value):
                continue  # a blank cell gives no figure; "n/a" and the like are not-reported
            records.append({**base, "period": period, "value": value,
                            "period_column": names[col], "value_column": names[col]})
    return records


def _validate(records: list[dict[str, Any]], schedules: Mapping[str, Schedule],
              contract: str | None, out: _Collector, today: dt.date) -> pd.DataFrame:
    import pandas as pd

    has_contract_column = any(_text(r.get("contract")) for r in records)
    if contract is None and not has_contract_column:
        if len(schedules) == 1:
            contract = next(iter(schedules))
        else:
            out.add("the return has no 'contract' column: say which contract it is for "
                    "(--contract)")
            return pd.DataFrame()
    if contract is not None and contract not in schedules:
        out.add(f"unknown contract {contract!r}")
        return pd.DataFrame()

    this_month = f"{today.year:04d}-{today.month:02d}"
    period_cache: dict[str, str | PeriodError] = {}
    first_seen: dict[tuple[str, str, str, str], int] = {}
    rank: dict[tuple[str, str, str], dict[str, int]] = {}
    clean: list[dict[str, Any]] = []
    for rec in records:
        row = rec["row"]
        value_col = rec.get("value_column", "value")
        row_contract = _text(rec.get("contract")) or contract
        if row_contract is None:
            out.add("the contract is blank (other rows name theirs)", row=row,
                    column="contract")
            continue
        if contract is not None and row_contract != contract:
            out.add(f"this row is for contract {row_contract!r} but the return was submitted "
                    f"for {contract!r}", row=row, column="contract")
            continue
        schedule = schedules.get(row_contract)
        if schedule is None:
            match = difflib.get_close_matches(row_contract, list(schedules), n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            out.add(f"unknown contract {row_contract!r}{hint}", row=row, column="contract")
            continue
        measure_id = _text(rec.get("measure"))
        ids = [m.id for m in schedule.measures]
        if not measure_id:
            out.add("the measure is blank", row=row, column="measure")
            continue
        if measure_id not in ids:
            folded = {i.replace(" ", "").lower(): i for i in ids}
            key = measure_id.replace(" ", "").lower()
            if key in folded:
                measure_id = folded[key]
            else:
                likely = closest(measure_id, ids)
                hint = f" (did you mean {likely!r}?)" if likely else ""
                out.add(f"measure {measure_id!r} is not in the schedule of {row_contract}{hint}",
                        row=row, column="measure")
                continue
        measure = schedule.measure(measure_id)
        raw_period = rec.get("period")
        key_text = _text(raw_period) if not isinstance(raw_period, dt.date) else str(raw_period)
        parsed = period_cache.get(key_text)
        if parsed is None:
            try:
                parsed = parse_period(raw_period)
            except PeriodError as exc:
                parsed = exc
            period_cache[key_text] = parsed
        if isinstance(parsed, PeriodError):
            out.add(str(parsed), row=row, column=rec.get("period_column", "period"),
                    measure=measure_id)
            continue
        period = parsed
        spec = schedule.contract
        if period > this_month:
            out.add(f"period {period} is in the future", row=row,
                    column=rec.get("period_column", "period"), measure=measure_id)
        if (spec.starts and period < spec.starts) or (spec.ends and period > spec.ends):
            span = f"{spec.starts or '...'} to {spec.ends or '...'}"
            out.add(f"period {period} is outside the contract ({span})", row=row,
                    column=rec.get("period_column", "period"), measure=measure_id)

        frequency = schedule.frequency(measure)
        elapsed = months_elapsed(period, spec.year_start_month)
        misdated = ((frequency == "quarterly" and elapsed % 3)
                    or (frequency == "annual" and elapsed != 12)
                    or (frequency == "termly" and int(period[5:]) not in TERM_END_MONTHS))
        if misdated:
            out.add(f"{measure_id} is a {frequency} measure: date its figure by the last month "
                    f"of the {'quarter' if frequency == 'quarterly' else 'period'}, not "
                    f"{period}", row=row, column=rec.get("period_column", "period"),
                    measure=measure_id)
        value, why = _number(rec.get("value"))
        if not why and measure.unit != "percent" and _text(rec.get("value")).endswith("%"):
            why = f"{_text(rec.get('value'))!r} is a percentage but {measure_id} is a " \
                  f"{measure.unit.replace('_', ' ')}"
        if why:
            out.add(why, row=row, column=value_col, measure=measure_id)
            continue
        numerator, why_n = _number(rec.get("numerator"))
        denominator, why_d = _number(rec.get("denominator"))
        if why_n:
            out.add(why_n, row=row, column="numerator", measure=measure_id)
        if why_d:
            out.add(why_d, row=row, column="denominator", measure=measure_id)
        if why_n or why_d:
            continue
        unit = measure.unit
        negative = False
        for name, number in (("numerator", numerator), ("denominator", denominator)):
            if number is not None and number < 0:
                out.add(f"{name} {number:g} is negative", row=row, column=name,
                        measure=measure_id)
                negative = True
        if negative:
            continue
        if denominator is not None and denominator == 0 and numerator is not None:
            out.add("denominator is 0", row=row, column="denominator", measure=measure_id)
            continue
        if (value is None and numerator is not None and denominator
                and unit in UNIT_SCALE):
            value = numerator / denominator * UNIT_SCALE[unit]
        if value is not None:
            if unit == "percent" and not 0 <= value <= 100:
                out.add(f"{value:g} is not a percentage (0-100)", row=row,
                        column=value_col, measure=measure_id)
            elif unit != "number" and value < 0:
                out.add(f"{value:g} is negative; a {unit.replace('_', ' ')} cannot be",
                        row=row, column=value_col, measure=measure_id)
            elif abs(value) > 1e12:
                out.add(f"{value:g} is too large to be a figure", row=row, column=value_col,
                        measure=measure_id)
            if (numerator is not None and denominator and unit in UNIT_SCALE):
                expected = numerator / denominator * UNIT_SCALE[unit]
                if abs(expected - value) > _half_step(rec.get("value")) + 1e-9:
                    out.add(f"value {value:g} does not match numerator/denominator: "
                            f"{numerator:g}/{denominator:g} x {UNIT_SCALE[unit]:,.0f} = "
                            f"{expected:.2f}", row=row, column=value_col, measure=measure_id)
            if unit in ADDITIVE_UNITS and numerator is not None and denominator is None \
                    and abs(numerator - value) > 1e-9 and unit == "count":
                out.add(f"value {value:g} does not match numerator {numerator:g}", row=row,
                        column=value_col, measure=measure_id)
        source = _text(rec.get("source"))
        dup_key = (row_contract, measure_id, period, source)
        if dup_key in first_seen:
            named = f" from source {source!r}" if source else ""
            out.add(f"{measure_id} {period}{named} is given twice (first on row "
                    f"{first_seen[dup_key]})", row=row, column="measure", measure=measure_id)
            continue
        first_seen[dup_key] = row
        ranks = rank.setdefault((row_contract, measure_id, period), {})
        ranks.setdefault(source, len(ranks))
        comment = _text(rec.get("comment"))
        clean.append({"contract": row_contract, "measure": measure_id, "period": period,
                      "value": value, "numerator": numerator, "denominator": denominator,
                      "source": source, "source_rank": ranks[source], "comment": comment,
                      "row": row, "file": out.file})
    frame = pd.DataFrame.from_records(clean, columns=FIGURE_COLUMNS)
    return frame.astype({"value": "float64", "numerator": "float64", "denominator": "float64",
                         "source_rank": "int64", "row": "int64"})


def _half_step(raw: Any) -> float:
    """Half a unit in the last place the provider wrote: 83.8 may stand for 83.75 to 83.85."""
    text = _text(raw).rstrip("%").replace(",", "")
    if "." in text and not isinstance(raw, float):
        decimals = len(text.split(".", 1)[1])
    elif isinstance(raw, float):
        decimals = len(repr(raw).split(".", 1)[1]) if "." in repr(raw) else 0
    else:
        decimals = 0
    return 0.5 * 10.0 ** -decimals


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def parse_returns(paths: Sequence[str | Path], schedules: Mapping[str, Schedule],
                  contract: str | None = None, today: dt.date | None = None) -> pd.DataFrame:
    """Read several returns; every problem of every file is reported before any is accepted."""
    import pandas as pd

    frames: list[pd.DataFrame] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            frames.append(parse_return(path, schedules, contract, today))
        except ReturnError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ReturnError(problems)
    if not frames:
        return pd.DataFrame(columns=FIGURE_COLUMNS)
    figures = pd.concat(frames, ignore_index=True)
    dups = figures.duplicated(["contract", "measure", "period", "source"], keep=False)
    if dups.any() and len(frames) > 1:
        for rec in figures[dups].to_dict("records"):
            problems.append(Problem(f"{rec['measure']} {rec['period']} is also given by another "
                                    "file of this submission", file=str(rec["file"]),
                                    row=int(rec["row"]), column="measure",
                                    measure=str(rec["measure"])))
        raise ReturnError(problems)
    return figures
