"""A catalogue of bad inputs, schedules and returns, each through the real command line.

Every bad input must be refused with exit code 1 and no traceback, by a message that says
where the problem is (the file, and the line for a schedule or the row and column for a
return, exactly as the CLI prints them) and what it is, and must leave the store exactly as it
was (SPEC sections 2, 3 and 5: "bad input never half-lands").

Some inputs that look odd are legitimate and must be accepted: they are in
``test_accepted_inputs`` at the end. Cases where the engine does not yet behave as it should are
kept, asserting the right behaviour, and marked ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DARLINGTON, SUNDERLAND, Result, StoreRef, dump_store

Maker = Callable[[Path], None]

# --- a good schedule to spoil -----------------------------------------------------------------

BASE = """\
contract:
  id: test-contract
  title: Test
  commissioner: A Council
  provider: A Provider
  forums: [Group, Board, Panel, Committee]
measures:
  - id: KPI1
    kind: kpi
    title: A percentage
    unit: percent
    polarity: higher_is_better
    target: 90
    tolerance: [85, 89.9]
  - id: SM1
    kind: supporting
    parent: KPI1
    title: A count
    unit: count
    polarity: higher_is_better
    accumulation: cumulative
    target: 300
"""
# Lines of BASE: 1 contract, 2 id, 6 forums, 7 measures, 8 "- id: KPI1", 11 unit,
# 12 polarity, 13 target, 14 tolerance, 15 "- id: SM1", 17 parent, 18 title, 22 target.

LONG = "measure,period,value,numerator,denominator,source,comment\n"


def spoil(old: str, new: str) -> str:
    """BASE with one passage replaced."""
    assert old in BASE, old
    return BASE.replace(old, new, 1)


# --- file makers --------------------------------------------------------------------------------


def text(content: str, encoding: str = "utf-8") -> Maker:
    def make(path: Path) -> None:
        path.write_bytes(content.encode(encoding))

    return make


def raw(content: bytes) -> Maker:
    def make(path: Path) -> None:
        path.write_bytes(content)

    return make


def directory() -> Maker:
    def make(path: Path) -> None:
        path.mkdir()

    return make


def missing() -> Maker:
    def make(path: Path) -> None:
        assert not path.exists()

    return make


def xlsx(*rows: Sequence[Any], merge: Sequence[str] = (), hidden_rows: Sequence[int] = (),
         hidden_columns: Sequence[str] = (), formats: dict[str, str] | None = None) -> Maker:
    def make(path: Path) -> None:
        from openpyxl import Workbook
        from openpyxl.worksheet.worksheet import Worksheet

        book = Workbook()
        sheet = book.active
        assert isinstance(sheet, Worksheet)
        for row in rows:
            sheet.append(list(row))
        for cells in merge:
            sheet.merge_cells(cells)
        for number in hidden_rows:
            sheet.row_dimensions[number].hidden = True
        for letter in hidden_columns:
            sheet.column_dimensions[letter].hidden = True
        for cell, fmt in (formats or {}).items():
            sheet[cell].number_format = fmt
        book.save(path)

    return make


def nested(depth: int) -> str:
    return "contract: " + "[" * depth + "]" * depth + "\nmeasures: []\n"


def bomb() -> str:
    lines = ["lols:", "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return BASE + "\n".join(lines) + "\n"


def case(id: str, name: str, make: Maker, where: str, words: str, *,
         contract: Path = SUNDERLAND, xfail: str | None = None) -> Any:
    """One bad input: its file name, how to make it, and what the refusal must say.

    ``where`` is the location the CLI prints right after the file path (``:13, measure KPI1``
    or ``, row 2, column 'value', measure KPI1``; empty for the file as a whole), and ``words``
    a key phrase of that same message.
    """
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(name, make, where, words, contract, id=id, marks=marks)


# --- the catalogue: schedules ------------------------------------------------------------------

BAD_SCHEDULES = [
    # Encodings and empty files.
    case("yaml-latin-1", "schedule.yaml", text(spoil("A Council", "Caf\xe9 Council"), "latin-1"),
         ":4", "not UTF-8 text (byte 63); save the schedule as UTF-8"),
    case("yaml-windows-1252-smart-quotes", "schedule.yaml",
         text(spoil("title: A count", "title: \u201cA count\u201d"), "cp1252"),
         ":18", "not UTF-8 text"),
    case("yaml-utf-16-without-bom", "schedule.yaml", text(BASE, "utf-16-le"),
         "", "not valid YAML: unacceptable character #x0000"),
    case("yaml-utf-16-with-bom", "schedule.yaml", text(BASE, "utf-16"),
         ":1", "not UTF-8 text (byte 0)"),
    case("yaml-empty-file", "schedule.yaml", raw(b""), "", "the schedule is empty"),
    case("yaml-whitespace-only", "schedule.yaml", raw(b"  \n\t\n   \n"),
         "", "the schedule is empty"),
    case("yaml-comment-only", "schedule.yaml", text("# to be written\n"),
         ":1", "a schedule must be a mapping with 'contract' and 'measures'"),
    case("yaml-directory-not-file", "schedule.yaml", directory(),
         "", "cannot read the schedule: Is a directory"),
    case("yaml-missing-file", "no-such-schedule.yaml", missing(),
         "", "cannot read the schedule: No such file or directory"),
    case("yaml-bad-content-unicode-path", "contrats été 契約/schedule ü 2018.yaml",
         text(spoil("target: 90", "target: ninety")),
         ":13, measure KPI1", "target: must be a number"),
    # Structure.
    case("yaml-missing-contract-block", "schedule.yaml", text(BASE[BASE.index("measures:"):]),
         ":1", "missing the 'contract' block"),
    case("yaml-measures-is-a-mapping", "schedule.yaml",
         text(spoil("  - id: KPI1\n", "  KPI1:\n    id: KPI1\n").replace(
             "  - id: SM1\n    kind", "  SM1:\n    id: SM1\n    kind")),
         ":7", "'measures' must be a list"),
    case("yaml-measures-left-empty", "schedule.yaml", text(BASE[:BASE.index("  - id: KPI1")]),
         ":7", "the schedule lists no measures"),
    case("yaml-contract-id-with-spaces", "schedule.yaml",
         text(spoil("id: test-contract", "id: test contract")),
         ":2", "id: value error, must be a slug"),
    case("yaml-duplicate-measure-id", "schedule.yaml", text(spoil("- id: SM1\n", "- id: KPI1\n")),
         ":15, measure KPI1", "duplicate measure id 'KPI1' (first at line 8)"),
    case("yaml-repeated-key-in-measure", "schedule.yaml",
         text(spoil("    target: 300\n", "    target: 300\n    target: 330\n")),
         ":23, measure SM1", "'target' is given twice in the same block (first at line 22)"),
    # Measure fields.
    case("yaml-target-is-a-word", "schedule.yaml", text(spoil("target: 90", "target: ninety")),
         ":13, measure KPI1", "target: must be a number, or [low, high]"),
    case("yaml-target-is-nan", "schedule.yaml", text(spoil("target: 90", "target: .nan")),
         ":13, measure KPI1", "targets and tolerances must be finite numbers"),
    case("yaml-tolerance-three-values", "schedule.yaml",
         text(spoil("tolerance: [85, 89.9]", "tolerance: [80, 85, 89.9]")),
         ":14, measure KPI1", "tolerance: must be a number (the far bound) or a band [from, to]"),
    case("yaml-unknown-polarity", "schedule.yaml",
         text(spoil("polarity: higher_is_better", "polarity: upwards")),
         ":12, measure KPI1", "polarity: input should be 'higher_is_better'"),
    case("yaml-unknown-unit", "schedule.yaml", text(spoil("unit: percent", "unit: percentage")),
         ":11, measure KPI1", "unit: input should be 'percent'"),
    case("yaml-kind-in-capitals", "schedule.yaml", text(spoil("kind: kpi", "kind: KPI")),
         ":9, measure KPI1", "kind: input should be 'kpi' or 'supporting'"),
    case("yaml-negative-lag", "schedule.yaml",
         text(spoil("[85, 89.9]\n", "[85, 89.9]\n    lag_months: -1\n")),
         ":15, measure KPI1", "lag_months: input should be greater than or equal to 0"),
    case("yaml-profile-of-11-values", "schedule.yaml",
         text(spoil("target: 300", "target: 300\n    profile: "
                    "[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]")),
         ":23, measure SM1", "a profile needs 12 cumulative fractions, not 11"),
    case("yaml-parent-is-a-supporting-measure", "schedule.yaml",
         text(BASE + "  - id: SM1.1\n    kind: supporting\n    parent: SM1\n    title: Sub\n"
                     "    unit: count\n    polarity: higher_is_better\n"),
         ":25, measure SM1.1", "parent 'SM1' is not a KPI of this schedule"),
    case("yaml-kpi-with-a-parent", "schedule.yaml",
         text(spoil("    kind: kpi\n", "    kind: kpi\n    parent: SM1\n")),
         ":10, measure KPI1", "a KPI has no parent"),
    case("yaml-percentage-target-105", "schedule.yaml", text(spoil("target: 90", "target: 105")),
         ":13, measure KPI1", "target 105.0 is not a percentage (0-100)"),
    case("yaml-within-range-backwards", "schedule.yaml",
         text(spoil("polarity: higher_is_better\n    target: 90\n    tolerance: [85, 89.9]",
                    "polarity: within_range\n    target: [30, 20]")),
         ":13, measure KPI1", "the range [30.0, 20.0] runs backwards"),
    case("yaml-negative-count-target", "schedule.yaml", text(spoil("target: 300", "target: -5")),
         ":22, measure SM1", "a count target or tolerance cannot be negative"),
    case("yaml-comparator-not-a-percentage", "schedule.yaml",
         text(spoil("[85, 89.9]\n", "[85, 89.9]\n    comparators: {england: 120}\n")),
         ":15, measure KPI1", "comparator 'england' = 120.0 is not a percentage"),
    # Contract block.
    case("yaml-contract-ends-before-it-starts", "schedule.yaml",
         text(spoil("  forums:", "  starts: 2018-04\n  ends: 2017-03\n  forums:")),
         ":7", "the contract ends before it starts"),
    case("yaml-unknown-rule-pack", "schedule.yaml",
         text(spoil("  forums:", "  rules: strict\n  forums:")),
         ":6", "rule pack 'strict': no rule pack"),
    case("yaml-unknown-rule-setting", "schedule.yaml",
         text(spoil("  forums:", "  settings: {kpi_breachs_to_level_2: 3}\n  forums:")),
         ":6", "'kpi_breachs_to_level_2' is not a setting of rule pack 'standard'"),
    case("yaml-ladder-shorter-than-pack", "schedule.yaml",
         text(spoil("[Group, Board, Panel, Committee]", "[Group, Board]")),
         ":6", "rule pack 'standard' escalates up to level 3, but the ladder of forums has 2"),
    # YAML syntax, tags, aliases.
    case("yaml-tab-indentation", "schedule.yaml", text(spoil("    kind: kpi", "\tkind: kpi")),
         ":9", "not valid YAML: while scanning for the next token found character '\\t'"),
    case("yaml-unclosed-flow-sequence", "schedule.yaml",
         text(spoil("Panel, Committee]", "Panel, Committee")),
         ":7", "not valid YAML: while parsing a flow sequence"),
    case("yaml-python-object-tag", "schedule.yaml",
         text(spoil("title: A count", "title: !!python/object/apply:os.system [echo pwned]")),
         ":18", "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"),
    case("yaml-custom-tag", "schedule.yaml", text(spoil("target: 300", "target: !percent 300")),
         ":22", "YAML tag '!percent' is not allowed in a schedule"),
    case("yaml-billion-laughs", "schedule.yaml", text(bomb()),
         "", "the document expands to more than 100000 values through its aliases"),
    case("yaml-recursive-alias", "schedule.yaml",
         text(spoil("forums: [Group, Board, Panel, Committee]", "forums: &f [Group, *f]")),
         ":6", "forums: input should be a valid string"),
    case("yaml-deeply-nested", "schedule.yaml", text(nested(2000)),
         "", "nest"),
]


# --- the catalogue: returns --------------------------------------------------------------------

BAD_RETURNS = [
    # Encodings and empty files.
    case("csv-latin-1-pound-sign", "return.csv",
         text(LONG + "KPI1,2018-09,99,,,,\nSM1.1,2018-09,29.4,,,,\nSM3.2,2018-09,297,,,,"
                     "\xa3120 spent\n", "latin-1"),
         ", row 4", "not UTF-8 text: byte 0xa3 cannot be read; save the file as 'CSV UTF-8'"),
    case("csv-windows-1252-smart-quotes", "return.csv",
         text(LONG + "KPI1,2018-09,99,,,,\u201cprovisional\u201d\n", "cp1252"),
         ", row 2", "not UTF-8 text: byte 0x93"),
    case("csv-utf-16-without-bom", "return.csv",
         text(LONG + "KPI1,2018-09,99,,,,\n", "utf-16-le"),
         "", "the file holds NUL bytes: it is not a CSV text file"),
    case("csv-binary-named-csv", "return.csv", raw(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
         ", row 1", "not UTF-8 text: byte 0x89"),
    case("csv-empty-file", "return.csv", raw(b""),
         "", "the return is empty: no header and no figures"),
    case("csv-whitespace-only", "return.csv", raw(b"   \n\t\n \n"),
         "", "the return is empty: no header and no figures"),
    case("csv-wide-header-only", "return.csv", text("measure,2018-08,2018-09\n"),
         ", row 1", "the return has a header but no figures"),
    case("return-directory-not-file", "return.csv", directory(),
         "", "cannot read the return: Is a directory"),
    case("return-missing-file", "no-such-return.csv", missing(),
         "", "cannot read the return: No such file or directory"),
    case("csv-bad-content-unicode-path", "retours été 契約/return ü 2018-09.csv",
         text(LONG + "KPI1,2018-09,abc,,,,\n"),
         ", row 2, column 'value', measure KPI1", "'abc' is not a number"),
    # Workbooks.
    case("xlsx-empty-sheet", "return.xlsx", xlsx(),
         "", "the return is empty: no header and no figures"),
    case("xlsx-header-only", "return.xlsx", xlsx(["Measure", "Period", "Value"]),
         ", row 1", "the return has a header but no figures"),
    case("xlsx-zip-without-workbook", "return.xlsx", raw(
        b"PK\x05\x06" + b"\x00" * 18),
         "", "not a readable XLSX workbook"),
    case("xlsx-merged-measure-cells", "return.xlsx",
         xlsx(["measure", "period", "value"], ["KPI1", "2018-08", 98], [None, "2018-09", 99],
              merge=["A2:A3"]),
         ", row 3, column 'measure'", "the measure is blank"),
    case("xlsx-formula-without-cached-value", "return.xlsx",
         xlsx(["measure", "period", "value"], ["KPI1", "2018-09", "=1+1"]),
         ", row 2, column 'value', measure KPI1", "the formula '=1+1' with no saved value"),
    case("xlsx-excel-error-value", "return.xlsx",
         xlsx(["measure", "period", "value"], ["KPI1", "2018-09", "#DIV/0!"]),
         ", row 2, column 'value', measure KPI1", "'#DIV/0!' is not a number"),
    case("xlsx-date-serial-as-period", "return.xlsx",
         xlsx(["measure", "period", "value"], ["KPI1", 43344, 99]),
         ", row 2, column 'period', measure KPI1", "'43344' is not a month"),
    case("xlsx-date-as-value", "return.xlsx",
         xlsx(["measure", "period", "value"], ["KPI4", "2018-09", dt.datetime(2018, 9, 1)]),
         ", row 2, column 'value', measure KPI4", "2018-09-01 00:00:00 is a date, not a number"),
    case("xlsx-boolean-value", "return.xlsx",
         xlsx(["measure", "period", "value"], ["KPI4", "2018-09", True]),
         ", row 2, column 'value', measure KPI4", "True is not a number"),
    case("xlsx-nan-text-value", "return.xlsx",
         xlsx(["measure", "period", "value"], ["KPI1", "2018-09", "NaN"]),
         ", row 2, column 'value', measure KPI1", "'NaN' is not a number"),
    case("xlsx-duplicate-header", "return.xlsx",
         xlsx(["Measure", "Period", "Value", "VALUE"], ["KPI1", "2018-09", 99, 98]),
         ", row 1, column 'value'", "column 'value' appears twice (columns 3 and 4)"),
    # CSV shape.
    case("csv-duplicate-header-padded", "return.csv",
         text("measure,period,value, Period \nKPI1,2018-09,99,2018-09\n"),
         ", row 1, column 'period'", "column 'period' appears twice (columns 2 and 4)"),
    case("csv-unclosed-quote", "return.csv",
         text(LONG + 'KPI1,2018-09,99,,,,"provisional\nSM1.1,2018-09,29.4,,,,\n'
                     "KPI2,2018-09,81.6,,,,\n"),
         ", row 2", "quote"),
    case("csv-ragged-row-unquoted-thousands", "return.csv",
         text("measure,period,value\nKPI1,2018-09,99\nSM3.2,2018-09,1,297\n"),
         ", row 3", "the row has 4 cells but the header has 3"),
    case("csv-semicolon-separated", "return.csv",
         text("measure;period;value\nKPI1;2018-09;99\n"),
         ", row 1", "no period columns: the return is neither long form"),
    case("csv-no-header-row", "return.csv", text("KPI1,2018-09,99\nSM1.1,2018-09,29.4\n"),
         ", row 1, column '99'", "column '99' is neither a period"),
    # Values.
    case("csv-decimal-comma", "return.csv", text(LONG + 'KPI1,2018-09,"99,5",,,,\n'),
         ", row 2, column 'value', measure KPI1", "'99,5' is not a number"),
    case("csv-formula-text", "return.csv", text(LONG + "KPI1,2018-09,=1+1,,,,\n"),
         ", row 2, column 'value', measure KPI1", "'=1+1' is not a number"),
    case("csv-huge-count", "return.csv", text(LONG + "SM3.2,2018-09,1e300,,,,\n"),
         ", row 2, column 'value', measure SM3.2", "1e+300 is too large to be a figure"),
    case("csv-huge-percentage", "return.csv", text(LONG + "KPI1,2018-09,1e300,,,,\n"),
         ", row 2, column 'value', measure KPI1", "1e+300 is not a percentage (0-100)"),
    case("csv-nan-denominator", "return.csv", text(LONG + "SM2.1,2018-09,83.8,456,NaN,,\n"),
         ", row 2, column 'denominator', measure SM2.1", "'NaN' is not a number"),
    case("csv-overflowing-count", "return.csv", text(LONG + "SM3.2,2018-09,1e309,,,,\n"),
         ", row 2, column 'value', measure SM3.2", "'1e309' is not a finite number"),
    case("csv-wide-negative-count", "return.csv", text("measure,2018-08,Sep-18\nSM3.2,120,-12\n"),
         ", row 2, column 'sep-18', measure SM3.2", "-12 is negative; a count cannot be"),
    case("csv-negative-rate", "return.csv", text(LONG + "SM2.1,2018-09,-3,,,,\n"),
         ", row 2, column 'value', measure SM2.1", "-3 is negative; a rate per 10k cannot be"),
    case("csv-percent-sign-on-a-count", "return.csv", text(LONG + "SM3.2,2018-09,45%,,,,\n"),
         ", row 2, column 'value', measure SM3.2", "'45%' is a percentage but SM3.2 is a count"),
    case("csv-value-disagrees-with-fraction", "return.csv",
         text(LONG + "KPI3,2018-09,80,12,16,,\n"),
         ", row 2, column 'value', measure KPI3",
         "value 80 does not match numerator/denominator: 12/16 x 100 = 75.00"),
    # Periods.
    case("csv-excel-serial-as-period", "return.csv", text(LONG + "KPI1,43344,99,,,,\n"),
         ", row 2, column 'period', measure KPI1", "'43344' is not a month"),
    case("csv-day-first-date-as-period", "return.csv", text(LONG + "KPI1,30/09/2018,99,,,,\n"),
         ", row 2, column 'period', measure KPI1", "'30/09/2018' is not a month"),
    case("csv-period-year-1899", "return.csv", text(LONG + "KPI1,Sep 1899,99,,,,\n"),
         ", row 2, column 'period', measure KPI1", "'Sep 1899' is not a month: year 1899"),
    case("csv-future-period", "return.csv",
         text(LONG + "KPI1,2018-09,99,,,,\nKPI1,2999-12,99,,,,\n"),
         ", row 3, column 'period', measure KPI1", "period 2999-12 is in the future"),
    case("csv-wide-period-before-contract", "return.csv",
         text("measure,Mar-17,Apr-17\nKPI1,97,98\n"),
         ", row 2, column 'mar-17', measure KPI1",
         "period 2017-03 is outside the contract (2017-04 to ...)"),
    case("darlington-quarterly-figure-dated-mid-quarter", "return.csv",
         text("measure,period,value\nCS1,2017-09,98\nCS2,2017-08,1\n"),
         ", row 3, column 'period', measure CS2", "CS2 is a quarterly measure",
         contract=DARLINGTON),
    # Measures and contracts.
    case("csv-blank-measure", "return.csv", text(LONG + ",2018-09,99,,,,\n"),
         ", row 2, column 'measure'", "the measure is blank"),
    case("csv-unknown-measure-kpi10", "return.csv", text(LONG + "KPI10,2018-09,99,,,,\n"),
         ", row 2, column 'measure'",
         "measure 'KPI10' is not in the schedule of sunderland-tfc (did you mean 'KPI1'?)"),
    case("csv-same-figure-twice-in-other-case", "return.csv",
         text(LONG + "KPI1,2018-09,99,,,,\nkpi1 ,2018-09,98,,,,\n"),
         ", row 3, column 'measure', measure KPI1", "KPI1 2018-09 is given twice (first on row 2)"),
    case("csv-row-for-another-contract", "return.csv",
         text("contract,measure,period,value\nsunderland-tfc,KPI1,2018-09,99\n"
              "darlington-childrens,CS1,2017-09,98\n"),
         ", row 3, column 'contract'",
         "this row is for contract 'darlington-childrens' but the return was submitted for "
         "'sunderland-tfc'"),
]


# --- running a case ----------------------------------------------------------------------------


def one_line(output: str) -> str:
    """The CLI's stderr without the terminal renderer's line wrapping."""
    return " ".join(output.split())


def assert_refused(result: Result, path: Path, where: str, words: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    err = one_line(result.stderr)
    name = one_line(str(path))
    messages = [name + rest for rest in err.split(name)[1:]]
    located = [m for m in messages if m.startswith(f"{name}{where}: error: ")]
    assert located, f"no message located at {name}{where}: {result.stderr}"
    assert any(one_line(words) in m for m in located), (words, result.stderr)


def place(tmp_path: Path, name: str, make: Maker) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)
    return path


def test_catalogue_is_large_enough() -> None:
    assert len(BAD_SCHEDULES) + len(BAD_RETURNS) >= 40
    ids = [p.id for p in BAD_SCHEDULES + BAD_RETURNS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("name", "make", "where", "words", "contract"), BAD_SCHEDULES)
def test_bad_schedule_is_refused(cli: Callable[..., Result], db_path: StoreRef, tmp_path: Path,
                                 name: str, make: Maker, where: str, words: str,
                                 contract: Path) -> None:
    assert cli("contract", "load", contract).exit_code == 0
    before = dump_store(db_path)
    assert before, "loading a contract must create the store"
    path = place(tmp_path, name, make)

    validated = cli("contract", "validate", path)
    assert_refused(validated, path, where, words)
    loaded = cli("contract", "load", path)
    assert_refused(loaded, path, where, words)
    assert dump_store(db_path) == before


@pytest.mark.parametrize(("name", "make", "where", "words", "contract"), BAD_RETURNS)
def test_bad_return_is_refused(cli: Callable[..., Result], db_path: StoreRef, tmp_path: Path,
                               name: str, make: Maker, where: str, words: str,
                               contract: Path) -> None:
    assert cli("contract", "load", contract).exit_code == 0
    before = dump_store(db_path)
    assert before, "loading a contract must create the store"
    path = place(tmp_path, name, make)
    contract_id = "darlington-childrens" if contract == DARLINGTON else "sunderland-tfc"

    result = cli("submit", "--contract", contract_id, path)
    assert_refused(result, path, where, words)
    assert dump_store(db_path) == before


# --- faults in how a refusal is worded --------------------------------------------------------


def test_a_bad_kpi_does_not_orphan_its_supporting_measures(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    path = place(tmp_path, "schedule.yaml", text(spoil("target: 90", "target: ninety")))
    result = cli("contract", "validate", path)
    assert_refused(result, path, ":13, measure KPI1", "target: must be a number")
    assert "is not a KPI of this schedule" not in one_line(result.stderr)


@pytest.mark.parametrize("schedule", [
    pytest.param(spoil("  forums:", "  starts: 2017-04-01\n  forums:"), id="date-as-start"),
    pytest.param(spoil("  - id: SM1\n    kind: supporting\n    parent: KPI1\n",
                       "  - &supporting\n    id: SM0\n    kind: supporting\n    parent: KPI1\n"
                       "    title: Base\n    unit: count\n    polarity: higher_is_better\n"
                       "  - <<: *supporting\n    id: SM1\n"), id="merge-key"),
])
def test_untagged_yaml_is_not_blamed_on_a_tag(cli: Callable[..., Result], db_path: StoreRef,
                                               tmp_path: Path, schedule: str) -> None:
    path = place(tmp_path, "schedule.yaml", text(schedule))
    result = cli("contract", "load", path)
    assert "Traceback" not in result.stderr
    assert "tag:yaml.org,2002:" not in result.stderr, result.stderr
    if result.exit_code != 0:
        assert result.exit_code == 1 and one_line(str(path)) in one_line(result.stderr)
        assert dump_store(db_path) == {}


# --- odd but legitimate inputs that must be accepted --------------------------------------------


def accepted(id: str, name: str, make: Maker, stored: str,
             figures: dict[str, tuple[float | None, str]] | None = None) -> Any:
    return pytest.param(name, make, stored, figures or {}, id=id)


ACCEPTED = [
    accepted("yaml-utf-8-bom", "schedule.yaml", raw(b"\xef\xbb\xbf" + BASE.encode()),
             "test-contract: schedule version 1"),
    accepted("yaml-plain-anchors-and-aliases", "schedule.yaml", text(
        spoil("forums: [Group, Board, Panel, Committee]",
              "forums: &ladder [Group, Board, Panel, Committee]\n"
              "  description: &about Monitored quarterly")
        .replace("    target: 90\n", "    target: 90\n    comparators: &peers {england: 88}\n"
                 "    description: *about\n")
        .replace("    target: 300\n", "    target: 300\n    comparators: *peers\n")),
             "test-contract: schedule version 1"),
    accepted("yaml-good-schedule-unicode-path", "contrats été 契約/schedule ü 2018.yaml",
             text(BASE), "test-contract: schedule version 1"),
    accepted("csv-utf-8-bom", "return.csv",
             raw(b"\xef\xbb\xbf" + (LONG + "KPI1,2018-09,99,,,,\n").encode()),
             "1 figure from 1 file stored", {"KPI1": (99.0, "met")}),
    accepted("csv-good-return-unicode-path", "retours été 契約/return ü 2018-09.csv",
             text(LONG + "KPI1,2018-09,99,,,,\n"), "1 figure from 1 file stored",
             {"KPI1": (99.0, "met")}),
    accepted("csv-measure-ids-lower-case-and-padded", "return.csv",
             text(LONG + "kpi1 ,2018-09,99,,,,\n  sm1.1,2018-09,29.4,,,,\n"),
             "2 figures from 1 file stored", {"KPI1": (99.0, "met"), "SM1.1": (29.4, "breach")}),
    # By design a percentage is read as written: 0.294 is 0.294%, not 29.4%. A fraction
    # passed off as a percentage is therefore judged as a tiny figure, silently.
    accepted("csv-percentage-written-as-fraction", "return.csv",
             text(LONG + "SM1.1,2018-09,0.294,,,,\nKPI1,2018-09,0.99,,,,\n"),
             "2 figures from 1 file stored", {"SM1.1": (0.294, "met"), "KPI1": (0.99, "breach")}),
    # Hidden rows and columns are read like any other: the hidden figure is imported.
    accepted("xlsx-hidden-row-and-column", "return.xlsx",
             xlsx(["measure", "period", "value", "comment"], ["KPI1", "2018-09", 99, "shown"],
                  ["SM1.1", "2018-09", 29.4, "hidden row"], hidden_rows=[3],
                  hidden_columns=["D"]),
             "2 figures from 1 file stored", {"KPI1": (99.0, "met"), "SM1.1": (29.4, "breach")}),
    # A value merged across two period columns belongs to the first; the second is blank,
    # and a blank cell of the wide form gives no figure.
    accepted("xlsx-value-merged-across-periods", "return.xlsx",
             xlsx(["measure", "2018-08", "2018-09"], ["KPI1", 98, None], merge=["B2:C2"]),
             "1 figure from 1 file stored", {"KPI1": (None, "not_reported")}),
    # A row shorter than the header: its missing value cell is a blank figure, not reported.
    accepted("csv-short-row", "return.csv", text("measure,period,value,comment\nKPI1,2018-09\n"),
             "1 figure from 1 file stored", {"KPI1": (None, "not_reported")}),
]


@pytest.mark.parametrize(("name", "make", "stored", "figures"), ACCEPTED)
def test_accepted_inputs(cli: Callable[..., Result], db_path: StoreRef, tmp_path: Path,
                         name: str, make: Maker, stored: str,
                         figures: dict[str, tuple[float | None, str]]) -> None:
    path = place(tmp_path, name, make)
    if path.suffix == ".yaml":
        result = cli("contract", "load", path)
    else:
        assert cli("contract", "load", SUNDERLAND).exit_code == 0
        result = cli("submit", "--contract", "sunderland-tfc", path)
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert stored in one_line(result.stderr)
    if path.suffix == ".yaml":
        assert cli("contract", "list").stdout.startswith("test-contract\tv1\t2 measures")
    if figures:
        checked = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                      "--format", "json")
        assert checked.exit_code == 0, checked.stderr
        got = {a["measure"]: (a["value"], a["status"]) for a in checked.json()["assessments"]}
        for measure, expected in figures.items():
            assert got[measure] == expected, (measure, got[measure])
