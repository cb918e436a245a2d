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

from compliance.batch import collector_paused, texts_in_order
from compliance.errors import Problem, ReturnError
from compliance.periods import TERM_END_MONTHS, PeriodError, months_elapsed, parse_period
from compliance.schedule import ADDITIVE_UNITS, UNIT_SCALE, MeasureSpec, Schedule

if TYPE_CHECKING:
    import pandas as pd

    from compliance.progress import Progress

FIGURE_COLUMNS = ["contract", "measure", "period", "value", "numerator", "denominator", "source",
                  "source_rank", "comment", "row", "file"]
LONG_REQUIRED = ("measure", "period", "value")
LONG_OPTIONAL = ("numerator", "denominator", "source", "comment", "contract")
WIDE_EXTRA = ("contract", "source", "comment")
MISSING_MARKERS = frozenset({"", "n/a", "na", "-", "--", "unavailable", "not available",
                             "not reported", "null", "none", "."})
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
MAX_ERRORS_SHOWN = 200


def read_table(path: Path) -> tuple[list[list[Any]], int]:
    """Rows of a CSV or the first sheet of an XLSX, and the spreadsheet number of the first."""
    file = str(path)
    data = _read_bytes(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(data, file), 1
    if path.suffix.lower() == ".xls":
        raise ReturnError(Problem("old .xls workbooks are not read; save it as .xlsx or .csv",
                                  file=file))
    return _read_csv(data, file), 1


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ReturnError(Problem(f"cannot read the return: {exc.strerror or exc}",
                                  file=str(path))) from None


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() not in (".xlsx", ".xlsm", ".xls")


# The first rows of a table read by columns, in which its header is looked for.
HEAD_ROWS = 50
# Lines with quotes are checked one by one; a file with more (beyond a tenth of its lines) is
# read by csv.reader alone.
_MOST_QUOTED_LINES = 1000


def _csv_columns(text: str, raw: bytes | None = None) -> list[_Column] | None:
    """Every column of a CSV, factorised, read by Arrow's CSV reader (``_arrow_columns``);
    None unless that reading is provably the one ``csv.reader`` makes of the text.

    Without quotes, both split each line at every comma. So the text is taken only when it
    has no carriage return and no blank line (``csv.reader`` gives those as rows of no cells,
    which the column-wise validation does not read), every line holding a quote is one whole
    record that ``csv.reader`` reads (strictly) to the very cells Arrow gives, and every
    line has as many cells as the first. ``raw``, when given, is the text as UTF-8 bytes,
    which Arrow reads without encoding the text again.
    """
    if not text or "\r" in text or text.startswith("\n") or "\n\n" in text:
        return None
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    quoted: dict[int, list[str]] = {}  # line index -> its cells, for lines with a quote
    commas_in_quoted = 0
    line_index, counted_to = 0, 0
    at = text.find('"')
    while at != -1:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        end = len(text) if end == -1 else end
        line_index += text.count("\n", counted_to, start)
        counted_to = start
        line = text[start:end]
        try:
            records = list(csv.reader([line], strict=True))
        except csv.Error:
            return None
        if len(records) != 1:
            return None
        quoted[line_index] = records[0]
        if len(quoted) > _MOST_QUOTED_LINES + lines // 10:
            return None  # quotes throughout: csv.reader reads such a file as fast
        commas_in_quoted += line.count(",")
        at = text.find('"', end)
    columns = _arrow_columns(text.encode("utf-8") if raw is None else raw)
    if columns is None:
        return None
    width = len(columns)
    if not width or len(columns[0].codes) != lines:
        return None
    if text.count(",") - commas_in_quoted != (lines - len(quoted)) * (width - 1):
        return None  # some line has fewer cells than the first
    for index, record in quoted.items():
        if len(record) != width or [c.uniques[c.codes[index]] for c in columns] != record:
            return None
    return columns


def _arrow_columns(raw: bytes) -> list[_Column] | None:
    """Every column of a CSV's UTF-8 bytes as Arrow's reader makes them (on all processors),
    factorised, its texts in order as pandas' would be; None where the reader refuses the
    text (a line with more or fewer cells than the first, say). Each cell is a text, empty
    ones too: nothing is read as missing."""
    import numpy as np
    import pyarrow as pa
    from pyarrow import csv as arrow_csv

    first = raw.split(b"\n", 1)[0]
    try:
        width = len(next(csv.reader([first.decode("utf-8")])))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    names = [f"f{i}" for i in range(width)]
    try:
        table = arrow_csv.read_csv(
            pa.py_buffer(raw),
            read_options=arrow_csv.ReadOptions(column_names=names, use_threads=True),
            parse_options=arrow_csv.ParseOptions(
                delimiter=",", quote_char='"', double_quote=True, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=False),
            convert_options=arrow_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.dictionary(pa.int32(), pa.string())),
                null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowException, UnicodeDecodeError):  # the reader refuses the text
        return None
    table = table.unify_dictionaries()
    columns = []
    for chunked in table.columns:
        texts = chunked.chunk(0).dictionary.to_pylist() if chunked.num_chunks else []
        indices = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in chunked.chunks]
        codes = np.concatenate(indices) if indices else np.empty(0, dtype=np.intp)
        columns.append(_Column(*texts_in_order(codes, texts)))
    return columns


def _read_csv(data: bytes, file: str) -> list[list[Any]]:
    return _csv_rows(_csv_text(data, file), file)


def _csv_text(data: bytes, file: str) -> str:
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
    return text


def _csv_rows(text: str, file: str) -> list[list[Any]]:
    rows: list[list[Any]] = []
    try:
        with collector_paused():
            rows.extend(csv.reader(io.StringIO(text, newline=""), strict=True))
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
    with collector_paused():
        return _parse_return(Path(path), schedules, contract, today)


# Whether a CSV return in long form is validated column by column (see _long_form_fast).
# The row-by-row validation below stays the reference: it runs whenever the fast path
# cannot vouch for a return, and always for one with any problem.
FAST_PATH = True


def _parse_return(path: Path, schedules: Mapping[str, Schedule],
                  contract: str | None, today: dt.date | None) -> pd.DataFrame:
    import pandas as pd

    file = str(path)
    out = _Collector(file)
    columns: list[_Column] | None = None
    text = ""
    if FAST_PATH and _is_csv(path):
        data = _read_bytes(path)
        text = _csv_text(data, file)
        utf8 = not data.startswith((b"\xff\xfe", b"\xfe\xff"))  # read as UTF-8 text
        columns = _csv_columns(text, data.removeprefix(b"\xef\xbb\xbf") if utf8 else None)
    if columns is not None:
        count = len(columns[0].codes)
        rows = [[c.uniques[c.codes[i]] for c in columns] for i in range(min(count, HEAD_ROWS))]
        if count > HEAD_ROWS and not any(_text(v) for row in rows for v in row):
            columns, rows = None, _csv_rows(text, file)  # a header further down
        first_row = 1
    elif text:
        rows, first_row = _csv_rows(text, file), 1
    else:
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

    records: list[dict[str, Any]] = []
    if all(name in seen for name in LONG_REQUIRED):
        for name in names:
            if name and name not in LONG_REQUIRED + LONG_OPTIONAL:
                match = difflib.get_close_matches(name, LONG_REQUIRED + LONG_OPTIONAL, n=1)
                hint = f" (did you mean {match[0]!r}?)" if match else ""
                out.add(f"unknown column {name!r}{hint}", row=header_row, column=name)
        if FAST_PATH and not out.problems and _is_csv(path):
            body_columns = (_columns_of_rows(rows[header_index + 1:]) if columns is None else
                            [_Column(c.codes[header_index + 1:], c.uniques) for c in columns])
            fast = None if body_columns is None else _long_form_fast(
                names, seen, body_columns, header_row, schedules, contract, file,
                today or dt.date.today())
            if fast is not None:
                assert list(fast.columns) == FIGURE_COLUMNS
                return fast
    if columns is not None:
        rows = _csv_rows(text, file)
    body = rows[header_index + 1:]
    if all(name in seen for name in LONG_REQUIRED):
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


class _Column:
    """One column of a CSV return, factorised: each distinct cell is read once."""

    def __init__(self, codes: Any, uniques: list[str]) -> None:
        self.codes = codes
        self.uniques = uniques
        self.text = [u.strip() for u in uniques]  # _text() of a CSV cell

    def used(self) -> list[int]:
        """The distinct cells that some row holds."""
        import numpy as np

        counts = np.bincount(self.codes, minlength=len(self.uniques))
        return np.flatnonzero(counts).tolist()


def _columns_of_rows(body: list[list[Any]]) -> list[_Column] | None:
    """The columns of rows read by ``csv.reader``, factorised; None if the rows are ragged."""
    import numpy as np
    import pandas as pd

    n = len(body)
    if n == 0:
        return None
    width = len(body[0])
    lengths = np.fromiter(map(len, body), dtype=np.int64, count=n)
    if width == 0 or bool((lengths != width).any()):
        return None
    grid = np.empty((n, width), dtype=object)
    grid[:] = body
    columns: list[_Column] = []
    for i in range(width):
        cells_of = grid[:, i]
        empty = cells_of == ""
        if bool(empty.all()):
            codes, uniques = np.zeros(n, dtype=np.intp), [""]
        elif float(empty.mean()) > 0.5:  # a mostly empty column: hash only the others
            codes = np.zeros(n, dtype=np.intp)
            given, found = pd.factorize(cells_of[~empty])
            codes[~empty] = given + 1
            uniques = ["", *found]
        else:
            codes, found = pd.factorize(cells_of)
            uniques = list(found)
        columns.append(_Column(codes, uniques))
    return columns


def _long_form_fast(names: list[str], seen: dict[str, int], columns: list[_Column],
                    header_row: int, schedules: Mapping[str, Schedule], contract: str | None,
                    file: str, today: dt.date) -> pd.DataFrame | None:
    """A long-form CSV return validated column by column; None if it cannot vouch for it.

    Each distinct cell is read by the same functions as the row-by-row validation
    (``_number``, ``parse_period``, ``_half_step``, ...), and the checks between cells run
    over whole columns. The result is the frame ``_validate`` makes of a return with no
    problem. Whenever any check could find a problem, or the file has a shape this path does
    not read (rows of different lengths, rows shorter than the header), it gives up and the
    row-by-row validation runs instead, so that every message stays exactly as it is there.
    """
    import numpy as np
    import pandas as pd

    n = len(columns[0].codes) if columns else 0
    if n == 0 or len(columns) < len(names):
        return None
    blank_row = np.ones(n, dtype=bool)
    for i, column in enumerate(columns):
        blank = np.array([not t for t in column.text], dtype=bool)
        if i >= len(names) and not bool(blank[column.codes].all()):
            return None  # a cell beyond the header: a problem
        blank_row &= blank[column.codes] if len(blank) else True
    keep = np.flatnonzero(~blank_row)
    if len(keep) == 0:
        return None
    if len(keep) < n:
        for column in columns:
            column.codes = column.codes[keep]
    rows = header_row + 1 + keep

    def col(name: str) -> _Column | None:
        return columns[seen[name]] if name in seen and name else None

    def cells(column: _Column | None, values: list[Any], default: Any) -> Any:
        """Each row's value of a function of its cell, from one value per distinct cell."""
        if column is None:
            return np.full(len(keep), default, dtype=object if isinstance(default, str)
                           else type(default))
        return np.asarray(values, dtype=object if isinstance(default, str)
                          else type(default))[column.codes]

    # Contracts: named in the row, or the contract the return was submitted for.
    contract_col = col("contract")
    used_contract = contract_col.used() if contract_col is not None else []
    has_contract_column = contract_col is not None and any(
        contract_col.text[i] for i in used_contract)
    if contract is None and not has_contract_column:
        if len(schedules) != 1:
            return None
        contract = next(iter(schedules))
    if contract is not None and contract not in schedules:
        return None
    ids: list[str] = []  # the contracts of the return, by code
    if contract_col is None:
        assert contract is not None
        ids = [contract]
        contract_code = np.zeros(len(keep), dtype=np.int64)
    else:
        position: dict[str, int] = {}
        per_unique = np.full(len(contract_col.uniques), -1, dtype=np.int64)
        for i in used_contract:
            row_contract = contract_col.text[i] or contract
            if row_contract is None or (contract is not None and row_contract != contract) \
                    or row_contract not in schedules:
                return None
            per_unique[i] = position.setdefault(row_contract, len(position))
        ids = list(position)
        contract_code = per_unique[contract_col.codes]

    # Measures: the pair (contract, measure cell) decides the measure.
    measure_col = col("measure")
    assert measure_col is not None
    pair = contract_code * len(measure_col.uniques) + measure_col.codes
    pair_code, pairs = pd.factorize(pair, sort=True)  # as np.unique, by hashing
    measure_ids: list[str] = []
    units: list[str] = []
    frequencies: list[str] = []
    figure_of: dict[tuple[int, str], int] = {}  # (contract, measure id) -> its code
    same_figure: list[int] = []
    by_id: dict[str, dict[str, MeasureSpec]] = {}
    for value in pairs.tolist():
        schedule = schedules[ids[value // len(measure_col.uniques)]]
        measure_id = measure_col.text[value % len(measure_col.uniques)]
        known = by_id.get(schedule.id)
        if known is None:
            known = by_id[schedule.id] = {}
            for m in schedule.measures:
                known.setdefault(m.id, m)  # the first of an id, as Schedule.measure finds
        if not measure_id:
            return None
        if measure_id not in known:
            folded = {i.replace(" ", "").lower(): i for i in known}
            key = measure_id.replace(" ", "").lower()
            if key not in folded:
                return None
            measure_id = folded[key]
        measure = known[measure_id]
        same_figure.append(figure_of.setdefault((value // len(measure_col.uniques),
                                                 measure_id), len(figure_of)))
        measure_ids.append(measure_id)
        units.append(measure.unit)
        frequencies.append(schedule.frequency(measure))
    pair_contract = pairs // len(measure_col.uniques)

    def per_pair(flags: list[bool]) -> Any:
        """Each row's flag, from one flag per (contract, measure) pair."""
        return np.asarray(flags, dtype=bool)[pair_code]

    # Periods.
    period_col = col("period")
    assert period_col is not None
    period_names: list[str] = [""] * len(period_col.uniques)
    period_index = np.zeros(len(period_col.uniques), dtype=np.int64)
    for i in period_col.used():
        try:
            period_names[i] = parse_period(period_col.uniques[i])
        except PeriodError:
            return None
        period_index[i] = int(period_names[i][:4]) * 12 + int(period_names[i][5:7]) - 1
    pidx = period_index[period_col.codes]
    if bool((pidx > today.year * 12 + today.month - 1).any()):
        return None  # a period in the future
    starts = np.array([_index_or(schedules[c].contract.starts, -1) for c in ids])
    ends = np.array([_index_or(schedules[c].contract.ends, 10**9) for c in ids])
    if bool(((pidx < starts[contract_code]) | (pidx > ends[contract_code])).any()):
        return None  # outside the contract
    month = pidx % 12 + 1
    year_start = np.array([schedules[c].contract.year_start_month for c in ids])
    elapsed = (month - year_start[contract_code]) % 12 + 1
    misdated = ((per_pair([f == "quarterly" for f in frequencies]) & (elapsed % 3 != 0))
                | (per_pair([f == "annual" for f in frequencies]) & (elapsed != 12))
                | (per_pair([f == "termly" for f in frequencies])
                   & ~np.isin(month, TERM_END_MONTHS)))
    if bool(misdated.any()):
        return None

    # Numbers: each distinct cell read once, as the row-by-row validation reads it.
    def numbers(column: _Column | None) -> tuple[Any, bool]:
        if column is None:
            return np.full(len(keep), np.nan), True
        parsed = np.full(len(column.uniques), np.nan)
        for i in column.used():
            number, why = _number(column.uniques[i])
            if why:
                return None, False
            if number is not None:
                parsed[i] = number
        return parsed[column.codes], True

    value_col = col("value")
    value, ok = numbers(value_col)
    numerator, ok_n = numbers(col("numerator"))
    denominator, ok_d = numbers(col("denominator"))
    if not (ok and ok_n and ok_d):
        return None
    assert value_col is not None
    percent_sign = cells(value_col, [t.endswith("%") for t in value_col.text], False)
    is_percent = per_pair([u == "percent" for u in units])
    if bool((percent_sign & ~is_percent).any()):
        return None
    has_num, has_den = ~np.isnan(numerator), ~np.isnan(denominator)
    with np.errstate(invalid="ignore"):
        if bool(((has_num & (numerator < 0)) | (has_den & (denominator < 0))).any()):
            return None
        if bool((has_den & (denominator == 0) & has_num).any()):
            return None
    scale = np.array([UNIT_SCALE.get(u, np.nan) for u in units])[pair_code]
    scaled = ~np.isnan(scale)
    ratio = has_num & has_den & (denominator != 0) & scaled
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = numerator / denominator * scale
    value = np.where(np.isnan(value) & ratio, expected, value)
    has_value = ~np.isnan(value)
    with np.errstate(invalid="ignore"):
        bad = has_value & (
            (is_percent & ~((value >= 0) & (value <= 100)))
            | (per_pair([u != "number" for u in units]) & (value < 0))
            | (np.abs(value) > 1e12))
        half = cells(value_col, [_half_step(u) for u in value_col.uniques], 0.0)
        bad |= has_value & ratio & (np.abs(expected - value) > half + 1e-9)
        bad |= has_value & per_pair([u == "count" for u in units]) & has_num & ~has_den & (
            np.abs(numerator - value) > 1e-9)
    if bool(bad.any()):
        return None

    # Sources: the same measure and period twice from one source is a problem; otherwise
    # each source of a figure ranks by its first row. Cells are compared as read (stripped),
    # and measures and periods as resolved ("kpi1" is KPI1, "Sep 2018" is 2018-09).
    source_col = col("source")
    source_code = np.zeros(len(keep), dtype=np.int64)
    source_text = np.full(len(keep), "", dtype=object)
    n_sources = 1
    if source_col is not None:
        canonical: dict[str, int] = {}
        remap = np.array([canonical.setdefault(t, len(canonical)) for t in source_col.text],
                         dtype=np.int64)
        source_code = remap[source_col.codes]
        source_text = np.asarray(source_col.text, dtype=object)[source_col.codes]
        n_sources = max(len(canonical), 1)
    first_period = int(pidx.min())
    periods_spanned = int(pidx.max()) - first_period + 1
    figure_key = (np.asarray(same_figure, dtype=np.int64)[pair_code] * periods_spanned
                  + (pidx - first_period))
    if _repeats(figure_key * n_sources + source_code):
        return None
    rank = _occurrence(figure_key)

    # The text columns are made in one block, so that pandas need not copy them into one.
    comment_col = col("comment")
    text = np.empty((len(keep), 6), dtype=object, order="F")
    np.take(np.asarray(ids, dtype=object)[pair_contract], pair_code, out=text[:, 0])
    np.take(np.asarray(measure_ids, dtype=object), pair_code, out=text[:, 1])
    np.take(np.asarray(period_names, dtype=object), period_col.codes, out=text[:, 2])
    text[:, 3] = source_text
    if comment_col is not None:
        np.take(np.asarray(comment_col.text, dtype=object), comment_col.codes, out=text[:, 4])
    else:
        text[:, 4] = ""
    text[:, 5] = file
    frame = pd.DataFrame(text, columns=["contract", "measure", "period", "source", "comment",
                                        "file"], copy=False)
    frame.insert(3, "value", value.astype("float64"))
    frame.insert(4, "numerator", numerator.astype("float64"))
    frame.insert(5, "denominator", denominator.astype("float64"))
    frame.insert(7, "source_rank", rank)
    frame.insert(9, "row", rows.astype("int64"))
    return frame


def _key_counts(keys: Any) -> Any:
    """How many times each key comes, at each key (integer keys)."""
    import numpy as np

    if int(keys.min()) >= 0 and int(keys.max()) < 4 * len(keys) + 1024:
        return np.bincount(keys)[keys]  # keys few enough to count by position
    _, codes, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[codes]


def _repeats(keys: Any) -> bool:
    """Whether any integer key comes more than once."""
    return bool(len(keys)) and bool((_key_counts(keys) > 1).any())


def _occurrence(keys: Any) -> Any:
    """For each key, how many times it came before (0 the first time), as a grouped cumulative
    count gives it; only the keys that come more than once are counted row by row."""
    import numpy as np
    import pandas as pd

    rank = np.zeros(len(keys), dtype=np.int64)
    if not len(keys):
        return rank
    again = np.flatnonzero(_key_counts(keys) > 1)
    if len(again):
        rank[again] = pd.Series(keys[again]).groupby(keys[again], sort=False).cumcount()
    return rank


def _index_or(period: str | None, default: int) -> int:
    return default if not period else int(period[:4]) * 12 + int(period[5:7]) - 1


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


@collector_paused()  # the files read, and the figures made of them
def parse_returns(paths: Sequence[str | Path], schedules: Mapping[str, Schedule],
                  contract: str | None = None, today: dt.date | None = None, *,
                  progress: Progress | None = None) -> pd.DataFrame:
    """Read several returns; every problem of every file is reported before any is accepted.

    ``progress`` hears of each file as it is read (see compliance.progress).
    """
    import pandas as pd

    frames: list[pd.DataFrame] = []
    problems: list[Problem] = []
    for number, path in enumerate(paths):
        if progress:
            progress(f"reading {Path(path).name}", number, len(paths))
        try:
            frames.append(parse_return(path, schedules, contract, today))
        except ReturnError as exc:
            problems.extend(exc.problems)
    if progress:
        progress("returns read", len(paths), len(paths))
    if problems:
        raise ReturnError(problems)
    if not frames:
        return pd.DataFrame(columns=FIGURE_COLUMNS)
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    figures = pd.concat(frames, ignore_index=True)
    dups = figures.duplicated(["contract", "measure", "period", "source"], keep=False)
    if dups.any():
        for rec in figures[dups].to_dict("records"):
            problems.append(Problem(f"{rec['measure']} {rec['period']} is also given by another "
                                    "file of this submission", file=str(rec["file"]),
                                    row=int(rec["row"]), column="measure",
                                    measure=str(rec["measure"])))
        raise ReturnError(problems)
    return figures
