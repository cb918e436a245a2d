"""The column-by-column validation of long-form CSV returns against the row-by-row reference.

``compliance.returns`` validates a long-form CSV return column by column when it can vouch for
the result, and row by row otherwise. Both must give the same figures, and a return with any
problem must get exactly the row-by-row messages. Each case below is parsed both ways.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import compliance.returns as returns
from compliance.errors import ReturnError
from compliance.schedule import Schedule, load_schedule
from tests.conftest import DARLINGTON, EXAMPLES, SUNDERLAND, bench_generator

TODAY = dt.date(2026, 1, 1)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Schedule],
                                                                 list[list[str]]]:
    folder = tmp_path_factory.mktemp("generated")
    bench_generator().generate(2500, folder, seed=7)
    schedules = {s.id: s for s in (load_schedule(f)
                                   for f in sorted((folder / "contracts").glob("*.yaml")))}
    with (folder / "returns.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return schedules, rows


def outcome(path: Path, schedules: dict[str, Schedule], fast: bool,
            contract: str | None = None) -> pd.DataFrame | list[str]:
    saved = returns.FAST_PATH
    returns.FAST_PATH = fast
    try:
        return returns.parse_return(path, schedules, contract, today=TODAY)
    except ReturnError as exc:
        return [str(p) for p in exc.problems]
    finally:
        returns.FAST_PATH = saved


def assert_same(path: Path, schedules: dict[str, Schedule],
                contract: str | None = None) -> pd.DataFrame | list[str]:
    fast = outcome(path, schedules, True, contract)
    slow = outcome(path, schedules, False, contract)
    if isinstance(slow, list) or isinstance(fast, list):
        assert fast == slow
    else:
        pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    return fast


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def test_generated_return_takes_the_fast_path(generated: tuple[dict[str, Schedule],
                                                               list[list[str]]],
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    schedules, rows = generated
    path = write_rows(tmp_path / "all.csv", rows)
    calls: list[bool] = []
    original = returns._long_form_fast

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(returns, "_long_form_fast", spy)
    frame = assert_same(path, schedules)
    assert calls == [True]
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(rows) - 1
    assert set(frame["source_rank"]) == {0, 1}


def test_bundled_examples_are_read_alike(tmp_path: Path) -> None:
    sunderland = {"sunderland-tfc": load_schedule(SUNDERLAND)}
    darlington = {"darlington-childrens": load_schedule(DARLINGTON)}
    for path in sorted(EXAMPLES.glob("sunderland-*.csv")):
        assert isinstance(assert_same(path, sunderland), pd.DataFrame)
    for path in sorted(EXAMPLES.glob("darlington-*.csv")):
        assert isinstance(assert_same(path, darlington), pd.DataFrame)


HEADER = {"contract": 0, "measure": 1, "period": 2, "value": 3, "numerator": 4,
          "denominator": 5, "source": 6, "comment": 7}


def _mutations(rows: list[list[str]], schedules: dict[str, Schedule]) -> list[tuple[str, Any]]:
    """Single changes to a good return: some still good, most making one problem."""
    units = {(cid, m.id): m.unit for cid, s in schedules.items() for m in s.measures}
    freq = {(cid, m.id): s.frequency(m) for cid, s in schedules.items() for m in s.measures}

    def where(test: Any) -> int:
        for i, row in enumerate(rows[1:], start=1):
            if test(row):
                return i
        raise AssertionError("no row fits")

    def unit_is(*names: str) -> Any:
        return lambda r: units[(r[0], r[1])] in names and r[3] not in ("", "n/a")

    pct = where(unit_is("percent"))
    count = where(unit_is("count"))
    rate = where(lambda r: r[4] != "")
    quarterly = where(lambda r: freq[(r[0], r[1])] == "quarterly")
    two = where(lambda r: r[6] == "case-system")

    def set_cell(i: int, column: str, value: str) -> Any:
        def change(rs: list[list[str]]) -> None:
            rs[i][HEADER[column]] = value
        return change

    def insert(i: int, row: list[str]) -> Any:
        return lambda rs: rs.insert(i, row)

    def extend_all(value: str) -> Any:
        def change(rs: list[list[str]]) -> None:
            for r in rs:
                r.append(value)
        return change

    def duplicate(i: int) -> Any:
        return lambda rs: rs.insert(i + 1, list(rs[i]))

    def swap(i: int, j: int) -> Any:
        def change(rs: list[list[str]]) -> None:
            rs[i], rs[j] = rs[j], rs[i]
        return change

    def derive(i: int) -> Any:
        def change(rs: list[list[str]]) -> None:
            rs[i][3] = ""
        return change

    def two_cells(i: int, a: tuple[str, str], b: tuple[str, str]) -> Any:
        def change(rs: list[list[str]]) -> None:
            rs[i][HEADER[a[0]]] = a[1]
            rs[i][HEADER[b[0]]] = b[1]
        return change

    def lower_measure_everywhere(rs: list[list[str]]) -> None:
        for r in rs[1:]:
            if r[1] == "KPI1":
                r[1] = "kpi 1"

    pct_measure, pct_period = rows[pct][1], rows[pct][2]
    return [
        # still good
        ("measure in lower case with a space", set_cell(pct, "measure", "kpi 1")),
        ("every KPI1 spelled kpi 1", lower_measure_everywhere),
        ("measure padded", set_cell(pct, "measure", f"  {pct_measure} ")),
        ("period as Mon YYYY", set_cell(pct, "period", _named(pct_period))),
        ("period as Mon-YY", set_cell(pct, "period", _named(pct_period, short=True))),
        ("period padded", set_cell(pct, "period", f" {pct_period} ")),
        ("value padded", set_cell(pct, "value", " 55.5 ")),
        ("value with a percent sign", set_cell(pct, "value", "55.5%")),
        ("value with thousands", set_cell(count, "value", "1,234")),
        ("value n/a", set_cell(pct, "value", "n/a")),
        ("value Not reported", set_cell(pct, "value", "Not reported")),
        ("value blank", set_cell(pct, "value", "")),
        ("value with a non-breaking space", set_cell(count, "value", "1\u00a0234")),
        ("value in exponent form", set_cell(pct, "value", "5.5e1")),
        ("value derived from numerator and denominator", derive(rate)),
        ("blank row", insert(5, ["", "", "", "", "", "", "", ""])),
        ("row of spaces", insert(7, [" ", "", " ", "", "", "", "", ""])),
        ("empty extra column everywhere", extend_all("")),
        ("source padded", set_cell(two, "source", " case-system ")),
        ("rows swapped", swap(1, 2)),
        ("sources swapped", swap(two, two + 1)),
        ("comment padded", set_cell(pct, "comment", "  a note  ")),
        ("contract padded", set_cell(pct, "contract", f" {rows[pct][0]} ")),
        # one problem each
        ("unknown measure", set_cell(pct, "measure", "KPI99")),
        ("blank measure", set_cell(pct, "measure", "")),
        ("unknown contract", set_cell(pct, "contract", "hub-9999")),
        ("blank contract", set_cell(pct, "contract", "")),
        ("month 13", set_cell(pct, "period", "2023-13")),
        ("not a period", set_cell(pct, "period", "sometime")),
        ("future period", set_cell(pct, "period", "2027-01")),
        ("before the contract", set_cell(pct, "period", "2019-01")),
        ("quarterly misdated", set_cell(quarterly, "period", "2023-05")),
        ("not a number", set_cell(pct, "value", "abc")),
        ("infinite", set_cell(pct, "value", "inf")),
        ("percent sign on a count", set_cell(count, "value", "12%")),
        ("percentage above 100", set_cell(pct, "value", "150")),
        ("negative count", set_cell(count, "value", "-5")),
        ("too large", set_cell(count, "value", "1e13")),
        ("negative numerator", set_cell(rate, "numerator", "-3")),
        ("zero denominator", set_cell(rate, "denominator", "0")),
        ("numerator not a number", set_cell(rate, "numerator", "x")),
        ("value does not match its ratio", set_cell(rate, "value", "1.0")),
        ("count does not match its numerator",
         two_cells(count, ("numerator", "3"), ("value", "4"))),
        ("duplicate row", duplicate(pct)),
        ("duplicate source spelled differently",
         lambda rs: rs.insert(two + 2, [*rs[two][:6], " case-system", ""])),
        ("row with an extra cell", lambda rs: rs[pct].append("surplus")),
        ("short row", lambda rs: rs.__setitem__(pct, rs[pct][:3])),
    ]


def _named(period: str, short: bool = False) -> str:
    import calendar

    name = calendar.month_abbr[int(period[5:7])]
    return f"{name}-{period[2:4]}" if short else f"{name} {period[:4]}"


def test_every_mutation_is_read_alike(generated: tuple[dict[str, Schedule], list[list[str]]],
                                      tmp_path: Path) -> None:
    schedules, rows = generated
    good = problems = 0
    for name, change in _mutations(rows, schedules):
        mutated = [list(r) for r in rows]
        change(mutated)
        path = write_rows(tmp_path / "mutated.csv", mutated)
        try:
            result = assert_same(path, schedules)
        except AssertionError as exc:
            raise AssertionError(f"{name}: the two validations differ") from exc
        if isinstance(result, list):
            problems += 1
        else:
            good += 1
    assert good >= 20 and problems >= 20


def test_random_mutations_are_read_alike(generated: tuple[dict[str, Schedule],
                                                          list[list[str]]],
                                         tmp_path: Path) -> None:
    schedules, rows = generated
    rng = random.Random(11)
    cells = ["", " ", "n/a", "-", "abc", "0", "-1", "100", "101", "1,000", "12.345", "5%",
             "KPI1", "kpi1", "SM1.1", "2023-06", "Jun 2023", "2024-13", "hub-0001",
             "case-system", "manual-records", "1e3", "nan"]
    for _ in range(60):
        mutated = [list(r) for r in rows[:400]]
        for _ in range(rng.randint(1, 3)):
            row = rng.randrange(1, len(mutated))
            mutated[row][rng.randrange(8)] = rng.choice(cells)
        path = write_rows(tmp_path / "random.csv", mutated)
        assert_same(path, schedules)


def test_single_contract_return_without_contract_column(tmp_path: Path) -> None:
    sunderland = {"sunderland-tfc": load_schedule(SUNDERLAND)}
    path = tmp_path / "r.csv"
    path.write_text("measure,period,value,source\nKPI1,2018-09,99,\nkpi8,Sep 2018,36.9,a\n"
                    "KPI8,2018-09,78,b\n\nKPI8,2018-08,1,b\n", encoding="utf-8")
    frame = assert_same(path, sunderland)
    assert isinstance(frame, pd.DataFrame)
    assert frame["source_rank"].tolist() == [0, 0, 1, 0]
    assert frame["row"].tolist() == [2, 3, 4, 6]
    assert assert_same(path, sunderland, "sunderland-tfc") is not None
    assert isinstance(assert_same(path, sunderland, "nosuch"), list)


# Texts whose CSV structure is unusual: pandas' C parser reads a text only where its cells are
# provably those of csv.reader, and the return must read alike either way.
_SHAPES = {
    "plain": "measure,period,value\nKPI1,2018-09,99\nKPI8,2018-09,36.9\n",
    "no final newline": "measure,period,value\nKPI1,2018-09,99\nKPI8,2018-09,36.9",
    "quoted thousands": 'measure,period,value\nSM3.2,2018-09,"1,021"\nKPI1,2018-09,99\n',
    "doubled quote": 'measure,period,value,comment\nKPI1,2018-09,99,"say ""hi"""\n',
    "empty quoted cell": 'measure,period,value,comment\nKPI1,2018-09,99,""\n',
    "quoted line break": 'measure,period,value,comment\nKPI1,2018-09,99,"two\nlines"\n'
                         "KPI8,2018-09,36.9,\n",
    "quote inside a cell": 'measure,period,value,comment\nKPI1,2018-09,99,a"b\n',
    "text after a closing quote": 'measure,period,value,comment\nKPI1,2018-09,99,"a"b\n',
    "unclosed quote": 'measure,period,value,comment\nKPI1,2018-09,99,"ab\nKPI8,2018-09,1,\n',
    "carriage returns": "measure,period,value\r\nKPI1,2018-09,99\r\nKPI8,2018-09,36.9\r\n",
    "blank line": "measure,period,value\nKPI1,2018-09,99\n\nKPI8,2018-09,36.9\n",
    "short line": "measure,period,value,comment\nKPI1,2018-09,99\nKPI8,2018-09,36.9,x\n",
    "long line": "measure,period,value\nKPI1,2018-09,99,x\nKPI8,2018-09,36.9\n",
    "short and long lines": "measure,period,value,comment\nKPI1,2018-09,99\n"
                            "KPI8,2018-09,36.9,x,y\n",
    "header further down": "Return,,\n,,\nmeasure,period,value\nKPI1,2018-09,99\n",
    "blank preamble": "\n\nmeasure,period,value\nKPI1,2018-09,99\n",
    "spaces": "measure , period, value\n KPI1 ,2018-09 , 99 \n",
    "missing markers": "measure,period,value,comment\nKPI1,2018-09,NaN,NULL\n"
                       "KPI8,2018-09,#N/A,None\nKPI2,2018-09,n/a,nan\n",
    "numbers as text": "measure,period,value,comment\nKPI1,2018-09,1e1,007\nKPI8,2018-09,.5,1.0\n",
    "only a header": "measure,period,value\n",
    "hash mark": "measure,period,value,comment\nKPI1,2018-09,99,# not a comment\n",
    "tab in a cell": "measure,period,value,comment\nKPI1,2018-09,99,a\tb\n",
}


@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_unusual_csv_shapes_are_read_alike(shape: str, tmp_path: Path) -> None:
    sunderland = {"sunderland-tfc": load_schedule(SUNDERLAND)}
    path = tmp_path / "r.csv"
    path.write_bytes(_SHAPES[shape].encode("utf-8"))
    assert_same(path, sunderland)


@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_columns_read_by_pandas_are_those_of_csv_reader(shape: str) -> None:
    text = _SHAPES[shape]
    columns = returns._csv_columns(text)
    if columns is None:
        return
    rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    read = [[c.uniques[c.codes[i]] for c in columns] for i in range(len(columns[0].codes))]
    assert read == rows


def test_pandas_reads_the_usual_shapes() -> None:
    """The shapes a spreadsheet program writes are read by columns; the others are not."""
    taken = {shape for shape, text in _SHAPES.items() if returns._csv_columns(text) is not None}
    assert {"plain", "no final newline", "quoted thousands", "doubled quote",
            "empty quoted cell", "spaces", "missing markers", "numbers as text",
            "header further down", "hash mark", "tab in a cell",
            "quote inside a cell"} <= taken
    assert not taken & {"quoted line break", "text after a closing quote", "unclosed quote",
                        "carriage returns",
                        "blank line", "short line", "long line", "short and long lines",
                        "blank preamble"}


def test_generated_return_is_read_by_columns(generated: tuple[dict[str, Schedule],
                                                              list[list[str]]]) -> None:
    _, rows = generated
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    columns = returns._csv_columns(buffer.getvalue())
    assert columns is not None
    assert [[c.uniques[c.codes[i]] for c in columns] for i in range(len(rows))] == rows


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-8"])
def test_encodings_are_read_alike(encoding: str, tmp_path: Path) -> None:
    sunderland = {"sunderland-tfc": load_schedule(SUNDERLAND)}
    path = tmp_path / "r.csv"
    path.write_bytes('measure,period,value,comment\nKPI1,2018-09,99,"caf\u00e9, 1"\n'
                     "KPI8,2018-09,36.9,\u00a3\n".encode(encoding))
    frame = assert_same(path, sunderland)
    assert isinstance(frame, pd.DataFrame)
    assert frame["comment"].tolist() == ["caf\u00e9, 1", "\u00a3"]


def test_a_return_quoted_throughout_is_read_alike(generated: tuple[dict[str, Schedule],
                                                                   list[list[str]]],
                                                  tmp_path: Path) -> None:
    schedules, rows = generated
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(rows)
    assert returns._csv_columns(buffer.getvalue()) is None  # left to csv.reader
    path = tmp_path / "quoted.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    frame = assert_same(path, schedules)
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(rows) - 1


def test_occurrences_are_a_grouped_cumulative_count() -> None:
    """Each figure's source rank: how many rows of its figure came before it; and whether
    any key repeats at all."""
    import numpy as np

    rng = random.Random(5)
    cases = [
        [rng.randrange(0, 300) for _ in range(2000)],  # keys that repeat, counted by position
        [rng.randrange(-10**9, 10**12) for _ in range(500)] + [7, 7, 7],  # far apart
        list(range(50)),  # nothing repeats
        [3, 3, 1, 3, 1, 0],
        [],
    ]
    for keys in cases:
        array = np.asarray(keys, dtype=np.int64)
        expected = pd.Series(array).groupby(array, sort=False).cumcount().to_numpy()
        assert returns._occurrence(array).tolist() == expected.tolist()
        assert returns._repeats(array) == bool(pd.Series(array).duplicated().any())
