"""Provider returns (SPEC section 3): long and wide form, CSV and XLSX, and every located error."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compliance.errors import Problem, ReturnError
from compliance.returns import parse_return, parse_returns, read_table
from compliance.schedule import Schedule, load_schedule
from tests.conftest import (
    DARLINGTON,
    SUNDERLAND,
    SUNDERLAND_RETURN,
    Result,
    StoreRef,
    connect,
    dump_store,
)

TODAY = dt.date(2019, 1, 1)
LONG_HEADER = "measure,period,value,numerator,denominator,source,comment\n"


@pytest.fixture(scope="module")
def sunderland() -> dict[str, Schedule]:
    return {"sunderland-tfc": load_schedule(SUNDERLAND)}


@pytest.fixture(scope="module")
def both() -> dict[str, Schedule]:
    return {"sunderland-tfc": load_schedule(SUNDERLAND),
            "darlington-childrens": load_schedule(DARLINGTON)}


def write(tmp_path: Path, text: str | bytes, name: str = "return.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, schedules: dict[str, Schedule], **kwargs: Any) -> list[Problem]:
    with pytest.raises(ReturnError) as info:
        parse_return(path, schedules, **kwargs)
    problems = info.value.problems
    assert problems, "a ReturnError must carry at least one problem"
    for problem in problems:
        assert problem.file == str(path)
        assert problem.severity == "error"
    return problems


def one_problem(path: Path, schedules: dict[str, Schedule], **kwargs: Any) -> Problem:
    problems = problems_of(path, schedules, **kwargs)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def by_key(frame: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["measure"], r["period"]): r for r in frame.to_dict("records")}


def flat(text: str) -> str:
    """stderr without the line wrapping of the terminal renderer."""
    return "".join(text.split())


# --- 1. the bundled example ---------------------------------------------------------------


def test_example_return_parses(sunderland: dict[str, Schedule]) -> None:
    frame = parse_return(SUNDERLAND_RETURN, sunderland)
    assert len(frame) == 21
    assert list(frame.columns) == ["contract", "measure", "period", "value", "numerator",
                                   "denominator", "source", "source_rank", "comment", "row",
                                   "file"]
    assert set(frame["contract"]) == {"sunderland-tfc"}
    assert set(frame["file"]) == {str(SUNDERLAND_RETURN)}
    # Rows as a spreadsheet numbers them: the header is row 1.
    assert frame["row"].tolist() == list(range(2, 23))

    kpi8 = frame[frame["measure"] == "KPI8"].sort_values("source_rank")
    assert kpi8["source"].tolist() == ["case-system", "virtual-school-records"]
    assert kpi8["source_rank"].tolist() == [0, 1]
    assert kpi8["value"].tolist() == [36.9, 78.0]
    assert set(kpi8["period"]) == {"2018-09"}

    rows = {r["measure"]: r for r in frame[frame["measure"] != "KPI8"].to_dict("records")}
    assert rows["KPI1"]["value"] == 99.0           # "99%": the % is stripped
    assert rows["SM1.1"]["value"] == 29.4
    assert rows["KPI9"]["value"] == 14.55
    assert rows["SM3.2"]["value"] == 297.0
    assert rows["KPI7"]["period"] == "2018-08"     # a lagged figure keeps its own month
    assert rows["KPI7"]["comment"] == "August figure"

    sm61 = rows["SM6.1"]
    assert math.isnan(sm61["value"])
    assert sm61["comment"] == ("Unable to report until all pathway plans have been added onto "
                               "the system with the review dates")

    sm21 = rows["SM2.1"]
    assert (sm21["value"], sm21["numerator"], sm21["denominator"]) == (83.8, 456.0, 54415.0)
    kpi3 = rows["KPI3"]
    assert (kpi3["value"], kpi3["numerator"], kpi3["denominator"]) == (80.0, 12.0, 15.0)
    assert math.isnan(rows["KPI1"]["numerator"]) and math.isnan(rows["KPI1"]["denominator"])
    assert rows["KPI1"]["source"] == "" and rows["KPI1"]["source_rank"] == 0


def test_read_table_gives_raw_rows() -> None:
    rows, first = read_table(SUNDERLAND_RETURN)
    assert first == 1
    assert rows[0] == ["measure", "period", "value", "numerator", "denominator", "source",
                       "comment"]
    assert rows[1] == ["KPI1", "2018-09", "99%", "", "", "", ""]
    assert len(rows) == 22


def test_header_names_are_case_insensitive(tmp_path: Path,
                                            sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, "Measure,PERIOD,Value,Comment\nKPI1,2018-09,99%,fine\n")
    frame = parse_return(path, sunderland)
    assert frame[["measure", "period", "value", "comment"]].values.tolist() == [
        ["KPI1", "2018-09", 99.0, "fine"]]


def test_utf8_bom_and_utf16_are_read(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    text = "measure,period,value,comment\nKPI1,2018-09,99,café\n"
    for name, data in (("bom.csv", text.encode("utf-8-sig")), ("u16.csv", text.encode("utf-16"))):
        frame = parse_return(write(tmp_path, data, name), sunderland)
        assert frame[["measure", "value", "comment"]].values.tolist() == [["KPI1", 99.0, "café"]]


# --- 2. wide form -------------------------------------------------------------------------


def test_wide_form_melts_into_long_rows(tmp_path: Path,
                                        sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, (
        "Measure,2018-07,Aug 2018,Sep-18\n"
        "KPI1,97%,n/a,99%\n"
        'SM3.2,"1,234",,"2,001"\n'
        "SM1.1,30.1,29.9,29.4\n"))
    frame = parse_return(path, sunderland)
    # A blank cell of the wide form gives no figure (so a resubmitted sheet with blank
    # earlier months does not overwrite them); "n/a" says the figure is not reported.
    assert len(frame) == 8
    got = by_key(frame)
    assert set(got) == {(m, p) for m in ("KPI1", "SM3.2", "SM1.1")
                        for p in ("2018-07", "2018-08", "2018-09")} - {("SM3.2", "2018-08")}
    assert got[("KPI1", "2018-07")]["value"] == 97.0
    assert math.isnan(got[("KPI1", "2018-08")]["value"])       # "n/a": missing
    assert got[("KPI1", "2018-09")]["value"] == 99.0
    assert got[("SM3.2", "2018-07")]["value"] == 1234.0         # thousands separator
    assert got[("SM3.2", "2018-09")]["value"] == 2001.0
    assert [got[("SM1.1", p)]["value"] for p in ("2018-07", "2018-08", "2018-09")] == [
        30.1, 29.9, 29.4]
    # Every figure of a row keeps the row it came from.
    assert {got[("KPI1", p)]["row"] for p in ("2018-07", "2018-08", "2018-09")} == {2}
    assert {got[("SM3.2", p)]["row"] for p in ("2018-07", "2018-09")} == {3}
    assert {got[("SM1.1", p)]["row"] for p in ("2018-07", "2018-08", "2018-09")} == {4}


def test_long_form_thousands_and_missing_markers(tmp_path: Path,
                                                 sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + (
        'SM3.2,2018-09,"1,234",,,,\n'
        "KPI1,2018-09,n/a,,,,not yet\n"
        "SM1.1,2018-09,,,,,\n"
        "KPI2,2018-09,N/A,,,,\n"))
    got = by_key(parse_return(path, sunderland))
    assert got[("SM3.2", "2018-09")]["value"] == 1234.0
    assert math.isnan(got[("KPI1", "2018-09")]["value"])
    assert got[("KPI1", "2018-09")]["comment"] == "not yet"
    assert math.isnan(got[("SM1.1", "2018-09")]["value"])
    assert math.isnan(got[("KPI2", "2018-09")]["value"])


def test_wide_form_bad_cell_is_located_by_its_period_column(
        tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, "Measure,2018-08,Sep-18\nKPI1,98,99\nSM1.1,29.9,abc\n")
    problem = one_problem(path, sunderland)
    assert "'abc' is not a number" in problem.message
    assert problem.row == 3
    assert (problem.column or "").lower() == "sep-18"
    assert problem.measure == "SM1.1"


def test_wide_form_header_that_is_not_a_period(tmp_path: Path,
                                               sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, "measure,2018-09,total\nKPI1,99,99\n")
    problem = one_problem(path, sunderland)
    assert "'total' is neither a period" in problem.message
    assert problem.row == 1 and problem.column == "total"


def test_wide_form_unknown_measure_is_one_problem(tmp_path: Path,
                                                  sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, "measure,2018-07,2018-08,2018-09\nKPI99,1,2,3\n")
    problem = one_problem(path, sunderland)
    assert "'KPI99' is not in the schedule" in problem.message
    assert problem.row == 2 and problem.column == "measure"


# --- 3. XLSX ------------------------------------------------------------------------------


def test_xlsx_long_form_with_percent_formatted_cell(tmp_path: Path,
                                                    sunderland: dict[str, Schedule]) -> None:
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.append(["Measure", "Period", "Value", "Numerator", "Denominator", "Comment"])
    sheet.append(["SM1.1", "2018-09", 0.294, None, None, "formatted as a percentage"])
    sheet["C2"].number_format = "0.0%"
    sheet.append(["KPI1", dt.datetime(2018, 9, 1), 99, None, None, None])
    sheet.append(["SM2.1", "Sep 2018", 83.8, 456, 54415, None])
    sheet.append(["SM3.2", "2018-09", "1,234", None, None, None])
    path = tmp_path / "return.xlsx"
    book.save(path)

    frame = parse_return(path, sunderland)
    got = by_key(frame)
    assert set(got) == {("SM1.1", "2018-09"), ("KPI1", "2018-09"), ("SM2.1", "2018-09"),
                        ("SM3.2", "2018-09")}
    assert got[("SM1.1", "2018-09")]["value"] == pytest.approx(29.4, abs=1e-9)
    assert got[("SM1.1", "2018-09")]["comment"] == "formatted as a percentage"
    assert got[("SM1.1", "2018-09")]["row"] == 2
    assert got[("KPI1", "2018-09")]["value"] == 99.0          # a datetime period cell
    assert got[("KPI1", "2018-09")]["row"] == 3
    assert (got[("SM2.1", "2018-09")]["numerator"],
            got[("SM2.1", "2018-09")]["denominator"]) == (456.0, 54415.0)
    assert got[("SM3.2", "2018-09")]["value"] == 1234.0


def test_xlsx_wide_form_with_datetime_headers(tmp_path: Path,
                                              sunderland: dict[str, Schedule]) -> None:
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.append(["Measure", dt.datetime(2018, 8, 1), dt.datetime(2018, 9, 1)])
    sheet.append(["KPI1", 98, 99])
    sheet.append(["SM1.1", 0.3, 0.294])
    sheet["B3"].number_format = "0.0%"
    sheet["C3"].number_format = "0.0%"
    path = tmp_path / "wide.xlsx"
    book.save(path)

    got = by_key(parse_return(path, sunderland))
    assert set(got) == {("KPI1", "2018-08"), ("KPI1", "2018-09"), ("SM1.1", "2018-08"),
                        ("SM1.1", "2018-09")}
    assert got[("KPI1", "2018-08")]["value"] == 98.0
    assert got[("KPI1", "2018-09")]["value"] == 99.0
    assert got[("SM1.1", "2018-08")]["value"] == pytest.approx(30.0, abs=1e-9)
    assert got[("SM1.1", "2018-09")]["value"] == pytest.approx(29.4, abs=1e-9)


def test_xlsx_errors_are_located(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet["A3"], sheet["B3"], sheet["C3"] = "measure", "period", "value"   # header on row 3
    sheet["A4"], sheet["B4"], sheet["C4"] = "KPI1", "2018-09", "abc"
    path = tmp_path / "offset.xlsx"
    book.save(path)
    problem = one_problem(path, sunderland)
    assert "'abc' is not a number" in problem.message
    assert (problem.row, problem.column) == (4, "value")


def test_unreadable_workbooks_are_refused(tmp_path: Path,
                                          sunderland: dict[str, Schedule]) -> None:
    problem = one_problem(write(tmp_path, b"not a zip file", "broken.xlsx"), sunderland)
    assert "not a readable XLSX workbook" in problem.message
    problem = one_problem(write(tmp_path, b"\xd0\xcf\x11\xe0", "old.xls"), sunderland)
    assert "old .xls workbooks are not read" in problem.message


# --- 4. numerator / denominator -----------------------------------------------------------


def test_rate_per_10k_matches_its_numerator_and_denominator(
        tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "SM2.1,2018-09,83.8,456,54415,,\n")
    got = by_key(parse_return(path, sunderland))
    assert got[("SM2.1", "2018-09")]["value"] == 83.8


def test_rate_per_10k_that_does_not_match_is_refused(tmp_path: Path,
                                                    sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "SM2.1,2018-09,90.0,456,54415,,\n")
    problem = one_problem(path, sunderland)
    assert "value 90 does not match numerator/denominator" in problem.message
    assert "456/54415" in problem.message
    assert "83.80" in problem.message                     # the value expected
    assert (problem.row, problem.column, problem.measure) == (2, "value", "SM2.1")


def test_percent_matches_its_numerator_and_denominator(tmp_path: Path,
                                                      sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "KPI3,2018-09,80,12,15,,\nKPI3,2018-08,80%,12,15,,\n")
    got = by_key(parse_return(path, sunderland))
    assert got[("KPI3", "2018-09")]["value"] == 80.0
    assert got[("KPI3", "2018-08")]["value"] == 80.0

    path = write(tmp_path, LONG_HEADER + "KPI3,2018-09,70,12,15,,\n")
    problem = one_problem(path, sunderland)
    assert "value 70 does not match numerator/denominator" in problem.message
    assert "80.00" in problem.message
    assert (problem.row, problem.column, problem.measure) == (2, "value", "KPI3")


def test_blank_value_is_derived_from_numerator_and_denominator(
        tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "SM2.1,2018-09,,456,54415,,\nKPI3,2018-09,,12,15,,\n")
    got = by_key(parse_return(path, sunderland))
    assert got[("SM2.1", "2018-09")]["value"] == pytest.approx(456 / 54415 * 10_000)
    assert got[("KPI3", "2018-09")]["value"] == pytest.approx(80.0)
    assert got[("KPI3", "2018-09")]["numerator"] == 12.0


def test_zero_denominator_is_refused(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "KPI3,2018-09,80,12,0,,\n")
    problem = one_problem(path, sunderland)
    assert "denominator is 0" in problem.message
    assert (problem.row, problem.column) == (2, "denominator")


def test_negative_numerator_is_one_problem(tmp_path: Path,
                                           sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "KPI3,2018-09,80,-12,15,,\n")
    problem = one_problem(path, sunderland)
    assert "numerator -12 is negative" in problem.message
    assert (problem.row, problem.column) == (2, "numerator")


# --- 5. the bad-row case of the spec ------------------------------------------------------

BAD_RETURN = LONG_HEADER + (
    "KPI1,2018-09,99%,,,,\n"          # row 2: fine
    "KPI99,2018-09,50,,,,\n"          # row 3: unknown measure
    "SM1.1,2018-09,abc,,,,\n"         # row 4: not a number
    "SM1.2,2018-09,140,,,,\n"         # row 5: percentage above 100
    "KPI2,2018-13,81.6,,,,\n"         # row 6: no such month
    "KPl1,2018-08,95,,,,\n")          # row 7: a typo for KPI1 (lower-case L)


def test_bad_rows_give_one_located_problem_each(tmp_path: Path,
                                                sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, BAD_RETURN)
    problems = problems_of(path, sunderland)
    assert [(p.row, p.column) for p in problems] == [
        (3, "measure"), (4, "value"), (5, "value"), (6, "period"), (7, "measure")]
    unknown, not_number, percent, month, typo = problems
    assert "measure 'KPI99' is not in the schedule of sunderland-tfc" in unknown.message
    assert "'abc' is not a number" in not_number.message
    assert not_number.measure == "SM1.1"
    assert "140 is not a percentage (0-100)" in percent.message
    assert percent.measure == "SM1.2"
    assert "'2018-13' is not a month" in month.message
    assert "month 13 is outside 1-12" in month.message
    assert month.measure == "KPI2"
    assert "'KPl1' is not in the schedule" in typo.message
    assert "did you mean 'KPI1'?" in typo.message
    # The whole return is rejected: parse_returns too raises, with the same problems.
    with pytest.raises(ReturnError) as info:
        parse_returns([path], sunderland)
    assert info.value.problems == problems


def test_measure_ids_are_matched_ignoring_case_and_spaces(
        tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "kpi1,2018-09,99,,,,\nsm 1.1,2018-09,29.4,,,,\n")
    assert sorted(parse_return(path, sunderland)["measure"]) == ["KPI1", "SM1.1"]


def test_typo_suggestion_for_l_instead_of_1(tmp_path: Path,
                                            sunderland: dict[str, Schedule]) -> None:
    problem = one_problem(write(tmp_path, LONG_HEADER + "SM1.l,2018-09,29.4,,,,\n"), sunderland)
    assert "did you mean 'SM1.1'?" in problem.message


def test_bad_return_through_cli_changes_nothing(cli: Callable[..., Result], db_path: StoreRef,
                                                tmp_path: Path) -> None:
    assert cli("contract", "load", SUNDERLAND).exit_code == 0
    before = dump_store(db_path)
    assert before, "loading a contract must create the store"
    path = write(tmp_path, BAD_RETURN)

    result = cli("submit", "--contract", "sunderland-tfc", path)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    err = flat(result.stderr)
    for words in ("row3,column'measure'", "'KPI99'isnotintheschedule",
                  "row4,column'value'", "'abc'isnotanumber",
                  "row5,column'value'", "140isnotapercentage(0-100)",
                  "row6,column'period'", "'2018-13'isnotamonth",
                  "row7,column'measure'", "didyoumean'KPI1'?",
                  "5errors;nothingwaswritten"):
        assert words in err, (words, result.stderr)
    assert "row 2" not in result.stderr
    assert flat(str(path)) in err
    assert dump_store(db_path) == before


# --- 6. other located errors --------------------------------------------------------------


def test_duplicate_row_names_the_first(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + (
        "KPI1,2018-09,99,,,,\n"
        "SM1.1,2018-09,29.4,,,,\n"
        "KPI1,2018-09,98,,,,\n"
        "KPI8,2018-09,36.9,,,case-system,\n"
        "KPI8,2018-09,78,,,virtual-school-records,\n"
        "KPI8,2018-09,37,,,case-system,\n"))
    problems = problems_of(path, sunderland)
    assert [(p.row, p.column, p.measure) for p in problems] == [
        (4, "measure", "KPI1"), (7, "measure", "KPI8")]
    assert "KPI1 2018-09 is given twice (first on row 2)" in problems[0].message
    assert "from source 'case-system'" in problems[1].message
    assert "first on row 5" in problems[1].message


def test_same_figure_in_two_files_of_one_submission(tmp_path: Path,
                                                   sunderland: dict[str, Schedule]) -> None:
    first = write(tmp_path, LONG_HEADER + "KPI1,2018-09,99,,,,\n", "a.csv")
    second = write(tmp_path, LONG_HEADER + "SM1.1,2018-09,29.4,,,,\nKPI1,2018-09,98,,,,\n",
                   "b.csv")
    with pytest.raises(ReturnError) as info:
        parse_returns([first, second], sunderland)
    located = sorted((p.file, p.row) for p in info.value.problems)
    assert located == [(str(first), 2), (str(second), 3)]
    assert all("also given by another file" in p.message for p in info.value.problems)


def test_negative_count_is_refused(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    problem = one_problem(write(tmp_path, LONG_HEADER + "SM3.2,2018-09,-5,,,,\n"), sunderland)
    assert "-5 is negative" in problem.message and "count" in problem.message
    assert (problem.row, problem.column, problem.measure) == (2, "value", "SM3.2")


def test_duplicate_header_column(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, "measure,period,value,Value\nKPI1,2018-09,99,98\n")
    problem = one_problem(path, sunderland)
    assert "column 'value' appears twice (columns 3 and 4)" in problem.message
    assert (problem.row, problem.column) == (1, "value")


def test_unknown_long_form_column_suggests_the_likely_one(
        tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, "measure,period,value,commnet\nKPI1,2018-09,99,x\n")
    problem = one_problem(path, sunderland)
    assert "unknown column 'commnet'" in problem.message
    assert "did you mean 'comment'?" in problem.message
    assert (problem.row, problem.column) == (1, "commnet")


def test_empty_file(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    for name, data in (("empty.csv", b""), ("blank.csv", b"\n,,\n\n")):
        problem = one_problem(write(tmp_path, data, name), sunderland)
        assert "the return is empty" in problem.message
        assert problem.row is None


def test_header_only_file(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    problem = one_problem(write(tmp_path, LONG_HEADER), sunderland)
    assert "a header but no figures" in problem.message
    assert problem.row == 1


def test_row_longer_than_header(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, "measure,period,value\nKPI1,2018-09,99\nSM1.1,2018-09,29.4,extra\n")
    problem = one_problem(path, sunderland)
    assert "the row has 4 cells but the header has 3" in problem.message
    assert problem.row == 3


def test_row_for_another_contract(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, "contract,measure,period,value\n"
                           "sunderland-tfc,KPI1,2018-09,99\n"
                           "darlington-childrens,CS1,2017-09,98\n")
    problem = one_problem(path, sunderland, contract="sunderland-tfc")
    assert "this row is for contract 'darlington-childrens'" in problem.message
    assert "submitted for 'sunderland-tfc'" in problem.message
    assert (problem.row, problem.column) == (3, "contract")


def test_period_before_the_contract_starts(tmp_path: Path,
                                           sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "KPI1,2017-04,99,,,,\nKPI1,2017-03,99,,,,\n")
    problem = one_problem(path, sunderland)
    assert "period 2017-03 is outside the contract (2017-04 to ...)" in problem.message
    assert (problem.row, problem.column, problem.measure) == (3, "period", "KPI1")


def test_future_period(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "KPI1,2019-01,99,,,,\nKPI1,2019-06,99,,,,\n")
    problem = one_problem(path, sunderland, today=TODAY)
    assert "period 2019-06 is in the future" in problem.message
    assert (problem.row, problem.column, problem.measure) == (3, "period", "KPI1")
    # The same through parse_returns, which passes today on.
    with pytest.raises(ReturnError) as info:
        parse_returns([path], sunderland, today=TODAY)
    assert [(p.row, p.column) for p in info.value.problems] == [(3, "period")]


def test_wide_form_future_period_names_its_column(tmp_path: Path,
                                                  sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, "measure,Dec 2018,Jun 2019\nKPI1,99,98\n")
    problem = one_problem(path, sunderland, today=TODAY)
    assert "period 2019-06 is in the future" in problem.message
    assert problem.row == 2 and (problem.column or "").lower() == "jun 2019"


def test_non_utf8_bytes(tmp_path: Path, sunderland: dict[str, Schedule]) -> None:
    text = "measure,period,value,comment\nKPI1,2018-09,99,fine\nSM1.1,2018-09,29.4,caf\xe9\n"
    problem = one_problem(write(tmp_path, text.encode("latin-1")), sunderland)
    assert "not UTF-8" in problem.message and "0xe9" in problem.message
    assert problem.row == 3


def test_non_utf8_row_after_multiline_cell(tmp_path: Path,
                                           sunderland: dict[str, Schedule]) -> None:
    text = ('measure,period,value,comment\nKPI1,2018-09,99,"line one\nline two"\n'
            "SM1.1,2018-09,29.4,caf\xe9\n")
    problem = one_problem(write(tmp_path, text.encode("latin-1")), sunderland)
    assert problem.row == 3      # as a spreadsheet shows it; the byte is on physical line 4


def test_multiline_cell_keeps_spreadsheet_rows(tmp_path: Path,
                                               sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, 'measure,period,value,comment\nKPI1,2018-09,99,"line one\n'
                           'line two"\nSM1.1,2018-09,abc,x\n')
    problem = one_problem(path, sunderland)
    assert (problem.row, problem.column) == (3, "value")


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_non_finite_values_are_refused(tmp_path: Path, sunderland: dict[str, Schedule],
                                       raw: str) -> None:
    problem = one_problem(write(tmp_path, LONG_HEADER + f"KPI4,2018-09,{raw},,,,\n"), sunderland)
    assert "not a" in problem.message and "number" in problem.message
    assert repr(raw) in problem.message
    assert (problem.row, problem.column, problem.measure) == (2, "value", "KPI4")


def test_non_finite_numerator_is_refused(tmp_path: Path,
                                         sunderland: dict[str, Schedule]) -> None:
    problem = one_problem(write(tmp_path, LONG_HEADER + "KPI3,2018-09,80,inf,15,,\n"), sunderland)
    assert "'inf' is not a number" in problem.message
    assert (problem.row, problem.column) == (2, "numerator")


def test_percentages_in_range_are_accepted_even_small(tmp_path: Path,
                                                      sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + ("SM1.1,2018-09,0.294,,,,\nSM1.2,2018-09,1.5,,,,\n"
                                          "KPI1,2018-09,0,,,,\nKPI2,2018-09,100,,,,\n"))
    got = by_key(parse_return(path, sunderland))
    assert got[("SM1.1", "2018-09")]["value"] == 0.294
    assert got[("SM1.2", "2018-09")]["value"] == 1.5
    assert got[("KPI1", "2018-09")]["value"] == 0.0
    assert got[("KPI2", "2018-09")]["value"] == 100.0


def test_percentages_outside_0_100_are_refused(tmp_path: Path,
                                               sunderland: dict[str, Schedule]) -> None:
    path = write(tmp_path, LONG_HEADER + "SM1.1,2018-09,100.1,,,,\nSM1.2,2018-09,-3,,,,\n")
    problems = problems_of(path, sunderland)
    assert [(p.row, p.column) for p in problems] == [(2, "value"), (3, "value")]
    assert "100.1 is not a percentage (0-100)" in problems[0].message
    assert "-3 is not a percentage (0-100)" in problems[1].message


def test_negative_percentage_gets_no_fraction_hint(tmp_path: Path,
                                                   sunderland: dict[str, Schedule]) -> None:
    problem = one_problem(write(tmp_path, LONG_HEADER + "SM1.1,2018-09,-0.5,,,,\n"), sunderland)
    assert "-0.5 is not a percentage (0-100)" in problem.message
    assert "fraction" not in problem.message


def test_every_problem_of_every_file_is_reported(tmp_path: Path,
                                                 sunderland: dict[str, Schedule]) -> None:
    good = write(tmp_path, LONG_HEADER + "KPI1,2018-09,99,,,,\n", "good.csv")
    bad1 = write(tmp_path, LONG_HEADER + "KPI1,2018-08,abc,,,,\n", "bad1.csv")
    bad2 = write(tmp_path, LONG_HEADER + "KPI99,2018-08,1,,,,\n", "bad2.csv")
    with pytest.raises(ReturnError) as info:
        parse_returns([good, bad1, bad2], sunderland)
    assert [(p.file, p.row, p.column) for p in info.value.problems] == [
        (str(bad1), 2, "value"), (str(bad2), 2, "measure")]


def test_return_without_contract_for_many_schedules(tmp_path: Path,
                                                    both: dict[str, Schedule]) -> None:
    problem = one_problem(write(tmp_path, LONG_HEADER + "KPI1,2018-09,99,,,,\n"), both)
    assert "no 'contract' column" in problem.message


# --- 7. combined returns ------------------------------------------------------------------


def test_combined_return_with_contract_column(tmp_path: Path, both: dict[str, Schedule]) -> None:
    path = write(tmp_path, "contract,measure,period,value,comment\n"
                           "sunderland-tfc,KPI1,2018-09,99%,\n"
                           "darlington-childrens,CS1,2017-09,98%,\n"
                           "darlington-childrens,CS7,2017-09,23.1%,133 re-referrals\n"
                           "sunderland-tfc,SM1.1,2018-09,29.4%,\n")
    frame = parse_return(path, both)
    got = {(r["contract"], r["measure"], r["period"]): (r["value"], r["row"])
           for r in frame.to_dict("records")}
    assert got == {("sunderland-tfc", "KPI1", "2018-09"): (99.0, 2),
                   ("darlington-childrens", "CS1", "2017-09"): (98.0, 3),
                   ("darlington-childrens", "CS7", "2017-09"): (23.1, 4),
                   ("sunderland-tfc", "SM1.1", "2018-09"): (29.4, 5)}


def test_combined_return_checks_each_row_against_its_own_contract(
        tmp_path: Path, both: dict[str, Schedule]) -> None:
    path = write(tmp_path, "contract,measure,period,value\n"
                           "sunderland-tfc,CS1,2018-09,99\n"
                           "darlington-childrens,CS1,2017-09,98\n"
                           "darlingtn-childrens,CS2,2017-09,1\n")
    problems = problems_of(path, both)
    assert [(p.row, p.column) for p in problems] == [(2, "measure"), (4, "contract")]
    assert "measure 'CS1' is not in the schedule of sunderland-tfc" in problems[0].message
    assert "unknown contract 'darlingtn-childrens'" in problems[1].message
    assert "did you mean 'darlington-childrens'?" in problems[1].message


def test_combined_return_with_blank_contract_cell(tmp_path: Path,
                                                  both: dict[str, Schedule]) -> None:
    path = write(tmp_path, "contract,measure,period,value\n"
                           "sunderland-tfc,KPI1,2018-09,99\n"
                           ",CS1,2017-09,98\n")
    problem = one_problem(path, both)
    assert (problem.row, problem.column) == (3, "contract")


def test_combined_return_with_blank_contract_cell_through_cli(
        cli: Callable[..., Result], db_path: StoreRef, tmp_path: Path) -> None:
    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    before = dump_store(db_path)
    path = write(tmp_path, "contract,measure,period,value\n"
                           "sunderland-tfc,KPI1,2018-09,99\n"
                           ",CS1,2017-09,98\n")
    result = cli("submit", path)
    assert result.exit_code == 1
    assert "row 3" in result.stderr and "contract" in result.stderr
    assert dump_store(db_path) == before


def test_combined_return_through_cli(cli: Callable[..., Result], db_path: StoreRef,
                                     tmp_path: Path) -> None:
    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    path = write(tmp_path, "contract,measure,period,value\n"
                           "sunderland-tfc,KPI1,2018-09,99\n"
                           "darlington-childrens,CS1,2017-09,98\n")
    result = cli("submit", path)
    assert result.exit_code == 0, result.stderr
    with connect(db_path) as conn:
        rows = sorted(conn.execute("select contract_id, measure_id, period, value, version "
                                   "from figure"))
    assert rows == [("darlington-childrens", "CS1", "2017-09", 98.0, 1),
                    ("sunderland-tfc", "KPI1", "2018-09", 99.0, 1)]


# --- 8. resubmission ----------------------------------------------------------------------


def _statuses(cli: Callable[..., Result]) -> dict[str, str]:
    result = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                 "--format", "json")
    assert result.exit_code == 0, result.stderr
    return {a["measure"]: a["status"] for a in result.json()["assessments"]}


def _figure_versions(db_path: StoreRef, measure: str) -> list[tuple[int, float | None]]:
    with connect(db_path) as conn:
        return sorted(conn.execute(
            "select version, value from figure where contract_id = 'sunderland-tfc' and "
            "measure_id = ? and period = '2018-09'", (measure,)))


def test_resubmission_makes_versions_and_latest_wins(cli: Callable[..., Result], db_path: StoreRef,
                                                     tmp_path: Path) -> None:
    assert cli("contract", "load", SUNDERLAND).exit_code == 0
    assert cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
    first = _statuses(cli)
    assert first["KPI1"] == "met"
    assert first["SM6.1"] == "not_reported"

    again = cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN)
    assert again.exit_code == 0, again.stderr
    assert "21figuresfrom1filestored;21replaceearlierversions" in flat(again.stderr)
    assert _statuses(cli) == first
    assert _figure_versions(db_path, "KPI1") == [(1, 99.0), (2, 99.0)]

    changed = write(tmp_path, SUNDERLAND_RETURN.read_text(encoding="utf-8").replace(
        "KPI1,2018-09,99%", "KPI1,2018-09,50%"), "resubmitted.csv")
    assert "KPI1,2018-09,50%" in changed.read_text(encoding="utf-8")
    result = cli("submit", "--contract", "sunderland-tfc", changed)
    assert result.exit_code == 0, result.stderr
    latest = _statuses(cli)
    assert latest["KPI1"] == "breach"
    assert {m: s for m, s in latest.items() if m != "KPI1"} == {
        m: s for m, s in first.items() if m != "KPI1"}
    # Every version is kept.
    assert _figure_versions(db_path, "KPI1") == [(1, 99.0), (2, 99.0), (3, 50.0)]
    with connect(db_path) as conn:
        kpi8 = sorted(conn.execute(
            "select version, source, source_rank, value from figure "
            "where measure_id = 'KPI8' and period = '2018-09'"))
    assert kpi8 == [(v, s, r, x) for v in (1, 2, 3)
                    for s, r, x in (("case-system", 0, 36.9),
                                    ("virtual-school-records", 1, 78.0))]


def test_quarterly_figure_must_be_dated_by_quarter_end(tmp_path: Path) -> None:
    darlington = load_schedule(DARLINGTON)
    path = tmp_path / "q.csv"
    path.write_text("measure,period,value\nCS1,2017-08,98\nCS2,2017-09,1\n")
    with pytest.raises(ReturnError) as info:
        parse_return(path, {darlington.id: darlington}, today=dt.date(2019, 1, 1))
    [problem] = info.value.problems
    assert problem.row == 2 and problem.column == "period" and problem.measure == "CS1"
    assert "quarterly measure: date its figure by the last month of the quarter" in \
        problem.message
