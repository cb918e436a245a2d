"""The committee report: narrative against the seed report's own sentences, the HTML, the
charts and the XLSX scorecard, on Sunderland's September 2018 store (June to September
returns) and Darlington's quarter 2 2017/18."""

from __future__ import annotations

import datetime as dt
import html
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from compliance import present
from compliance.checking import escalation_as_at, history_with_features
from compliance.cli import app
from compliance.report import STATUS_COLOURS, exceptions, render_report
from compliance.report import charts as report_charts
from compliance.report.narrative import TEMPLATES, judgement, narrative
from compliance.report.xlsx import NUMBER_FORMATS, RAG_FILLS, export_scorecard
from compliance.schedule import Schedule
from compliance.store import Store
from tests.conftest import DARLINGTON, DARLINGTON_RETURN, EXAMPLES, SUNDERLAND

PERIOD = "2018-09"
PRODUCED = dt.datetime(2018, 10, 12, 9, 30)

# The judgement sentence the Sunderland report prints for each measure (None: it prints
# none), and the judgement that sentence states.
SEED_JUDGEMENTS: dict[str, tuple[str | None, str]] = {
    "KPI1": ("Performance against this measure is exceeding target.", "met"),
    "SM1.1": ("Performance against this measure is not meeting target of 22% and is outside "
              "of tolerance range.", "breach"),
    "SM1.2": ("Performance is exceeding target.", "met"),
    "KPI2": ("Performance against this measure is below target and outside of tolerance.",
             "breach"),
    "SM2.1": ("Performance is achieving target.", "met"),
    "KPI3": ("Performance is exceeding target.", "met"),
    "SM3.1": ("Performance is exceeding target.", "met"),
    "SM3.2": ("Performance against this measure is on track to meet target.", "on_track"),
    "KPI4": ("Performance against this measure is below target but within tolerance range.",
             "within_tolerance"),
    "KPI5": ("Performance is below target and outside of tolerance range.", "breach"),
    "SM5.1": ("Performance is below target and outside of tolerance range.", "breach"),
    "SM5.2": ("The percentage of children looked after who are adopted is a cumulative figure "
              "and the final figure will be known in March 2019.", "year_end"),
    "KPI6": ("Current performance is exceeding target of 82%.", "met"),
    "SM6.1": ("TfC are unable to report this indicator until all pathway plans have been "
              "added onto the system with the review dates.", "not_reported"),
    "KPI7": ("Performance is below target and outside of tolerance range.", "breach"),
    "SM7.1": ("Performance is below target and outside of tolerance range..", "breach"),
    "KPI8": ("Performance is below target and outside of tolerance range.", "breach"),
    "SM8.1": ("Performance is below target and outside of tolerance.", "breach"),
    "KPI9": ("This measure is now achieving target.", "met"),
    "SM9.1": (None, "none"),
}

# The seed's own words for direction of travel: "has increased to 76.5%", and the month it
# names where the figure lags ("has decreased to 85.8% in August 2018").
SEED_DIRECTIONS = {
    "SM1.2": ("increased", "76.5%", "September 2018"),
    "SM2.1": ("decreased", "83.8", "September 2018"),
    "KPI5": ("decreased", "81.6%", "September 2018"),
    "SM5.1": ("decreased", "14.3%", "September 2018"),
    "KPI7": ("decreased", "85.8%", "August 2018"),
    "SM7.1": ("increased", "7.2%", "August 2018"),
    "KPI8": ("decreased", "36.9%", "September 2018"),
    "SM8.1": ("increased", "40.8%", "September 2018"),
    "KPI9": ("decreased", "14.55%", "September 2018"),
    "SM9.1": ("decreased", "59.3%", "September 2018"),
}


def judgement_kind(sentence: str | None) -> str:
    """Which judgement a sentence states, read the way a committee member would."""
    if not sentence:
        return "none"
    text = sentence.lower()
    if "unable to report" in text:
        return "not_reported"
    if "final figure will be known" in text:
        return "year_end"
    if "on track to meet" in text:
        return "on_track"
    if "within tolerance" in text:
        return "within_tolerance"
    if "outside of tolerance" in text or "not meeting target" in text:
        return "breach"
    if "exceeding target" in text or "achieving target" in text:
        return "met"
    return "unknown"


def _met_word(sentence: str) -> str:
    return "exceeding" if "exceeding" in sentence else "achieving"


@dataclass
class Built:
    schedule: Schedule
    history: pd.DataFrame
    escalations: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    period: str

    @property
    def rows(self) -> dict[str, dict[str, Any]]:
        frame = self.history[self.history["period"] == self.period]
        records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
        return {str(r["measure"]): r for r in records}

    def render(self, **kwargs: Any) -> str:
        return render_report(self.schedule, self.history, self.escalations, self.findings,
                             self.period, produced=PRODUCED, **kwargs)


def _build(tmp: Path, schedule_file: Path, returns: list[Path], period: str) -> Built:
    """A store built as an officer would: load the contract, submit the returns, check."""
    url = f"sqlite:///{tmp / 'store.db'}"
    runner = CliRunner()

    def run(*args: str | Path) -> None:
        result = runner.invoke(app, ["--db", url, "--user", "tester", *map(str, args)],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.stderr

    run("contract", "load", schedule_file)
    store = Store(url)
    with store.transaction() as tx:
        contract = next(iter(tx.schedules()))
    run("submit", "--contract", contract, *returns)
    run("check", "--contract", contract, "--period", period, "--format", "json")
    with store.transaction() as tx:
        schedule = tx.schedules([contract])[contract]
        history = history_with_features(tx, {contract: schedule}, {contract: period})
        states = [escalation_as_at(e.model_dump(), period, schedule.contract.forums)
                  for e in tx.escalations([contract])]
        findings = [f.model_dump() for f in tx.findings(contract)]
    store.dispose()
    return Built(schedule, history, [s for s in states if s], findings, period)


@pytest.fixture(scope="module")
def sunderland(tmp_path_factory: pytest.TempPathFactory) -> Built:
    returns = [EXAMPLES / f"sunderland-tfc-2018-{m:02d}.csv" for m in (6, 7, 8, 9)]
    return _build(tmp_path_factory.mktemp("sunderland"), SUNDERLAND, returns, PERIOD)


@pytest.fixture(scope="module")
def darlington(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build(tmp_path_factory.mktemp("darlington"), DARLINGTON, [DARLINGTON_RETURN],
                  "2017-09")


@pytest.fixture(scope="module")
def report(sunderland: Built) -> str:
    return sunderland.render()


# --- narrative: the seed's judgements, measure by measure ------------------------------------


def test_every_measure_has_a_seed_judgement(sunderland: Built) -> None:
    assert [m.id for m in sunderland.schedule.measures] == list(SEED_JUDGEMENTS)


@pytest.mark.parametrize("measure", list(SEED_JUDGEMENTS))
def test_judgement_states_the_seed_judgement(sunderland: Built, measure: str) -> None:
    seed_sentence, expected = SEED_JUDGEMENTS[measure]
    spec = sunderland.schedule.measure(measure)
    clause = judgement(spec, sunderland.rows[measure], sunderland.schedule)
    assert judgement_kind(seed_sentence) == expected  # the classifier reads the seed right
    assert judgement_kind(clause) == expected, clause
    if expected == "met" and measure != "KPI3":
        # "exceeding" above a higher-is-better target, "achieving" on or under a
        # lower-is-better one, as the seed words them.
        assert seed_sentence is not None
        assert _met_word(clause) == _met_word(seed_sentence), clause


def test_on_target_is_achieving_not_exceeding(sunderland: Built) -> None:
    # KPI3 is 80% against a target of 80%. The seed calls that "exceeding target"; a figure
    # that equals its target achieves it.
    clause = judgement(sunderland.schedule.measure("KPI3"), sunderland.rows["KPI3"],
                       sunderland.schedule)
    assert clause == "Performance against this measure is achieving target."


def test_now_achieving_after_missing_the_target(sunderland: Built) -> None:
    # KPI9 was 16.05% in August against 16% (lower is better): the seed says "now achieving".
    clause = judgement(sunderland.schedule.measure("KPI9"), sunderland.rows["KPI9"],
                       sunderland.schedule)
    assert clause == "Performance against this measure is now achieving target."


def test_breach_names_the_target(sunderland: Built) -> None:
    spec = sunderland.schedule.measure("SM1.1")
    assert judgement(spec, sunderland.rows["SM1.1"], sunderland.schedule) == (
        "Performance against this measure is not meeting target of 22% and is outside of "
        "tolerance range.")


def test_the_spec_example_sentence(sunderland: Built) -> None:
    # SPEC section 7: with no previous figure, the figure is stated with its month.
    spec = sunderland.schedule.measure("SM1.1")
    row = {**sunderland.rows["SM1.1"], "previous_value": None, "change": None}
    assert narrative(spec, row, sunderland.schedule) == (
        "The percentage of all referrals that were re-referrals within 12 months in September "
        "2018 is 29.4%. Performance against this measure is not meeting target of 22% and is "
        "outside of tolerance range.")


def test_within_tolerance_wording_follows_polarity(sunderland: Built) -> None:
    spec = sunderland.schedule.measure("KPI4")  # lower is better: 382 against 375
    assert judgement(spec, sunderland.rows["KPI4"], sunderland.schedule) == (
        "Performance against this measure is above target but within tolerance range.")
    higher = spec.model_copy(update={"polarity": "higher_is_better", "target": 390.0,
                                     "tolerance": 380.0})
    row = {**sunderland.rows["KPI4"], "compared_with": 390.0}
    assert judgement(higher, row, sunderland.schedule) == (
        "Performance against this measure is below target but within tolerance range.")


@pytest.mark.parametrize("measure", list(SEED_DIRECTIONS))
def test_direction_of_travel_as_the_seed_words_it(sunderland: Built, measure: str) -> None:
    verb, figure, month = SEED_DIRECTIONS[measure]
    text = narrative(sunderland.schedule.measure(measure), sunderland.rows[measure],
                     sunderland.schedule)
    assert f"has {verb} to {figure} in {month}" in text, text


def test_not_reported_gives_the_providers_reason(sunderland: Built) -> None:
    text = narrative(sunderland.schedule.measure("SM6.1"), sunderland.rows["SM6.1"],
                     sunderland.schedule)
    assert text == ("Together for Children are unable to report this measure until all pathway "
                    "plans have been added onto the system with the review dates.")
    row = {**sunderland.rows["SM6.1"], "reason": "no figure in the return"}
    assert judgement(sunderland.schedule.measure("SM6.1"), row, sunderland.schedule) == (
        "Together for Children are unable to report this measure: no figure in the return.")


def test_cumulative_year_end_measure(sunderland: Built) -> None:
    text = narrative(sunderland.schedule.measure("SM5.2"), sunderland.rows["SM5.2"],
                     sunderland.schedule)
    assert text.startswith(
        "The percentage of children looked after who are adopted is a cumulative figure and "
        "the final figure will be known in March 2019. The year to date position shows "
        "performance at 10%.")
    # 10% year to date is short of the 13% far bound of the 17% target.
    assert "the target of 17% would not be met by year end" in text


def test_cumulative_count_on_track(sunderland: Built) -> None:
    text = narrative(sunderland.schedule.measure("SM3.2"), sunderland.rows["SM3.2"],
                     sunderland.schedule)
    assert "in the period April – September 2018 is 297." in text
    assert "the profiled target for the 6 months to September 2018 is 165" in text
    assert "the year would end at 594" in text
    assert "on track to meet the year-end target" in text
    assert "has increased" not in text and "has decreased" not in text


def test_monitor_only_has_no_judgement(sunderland: Built) -> None:
    spec = sunderland.schedule.measure("SM9.1")
    assert judgement(spec, sunderland.rows["SM9.1"], sunderland.schedule) == ""
    text = narrative(spec, sunderland.rows["SM9.1"], sunderland.schedule)
    assert text == ("The percentage of children and young people placed with internal foster "
                    "carers (including connected carers) has decreased to 59.3% in September "
                    "2018 (previously 60.1%).")


def test_two_sources_are_mentioned(sunderland: Built) -> None:
    text = narrative(sunderland.schedule.measure("KPI8"), sunderland.rows["KPI8"],
                     sunderland.schedule)
    assert "Two sources reported this figure and they differ by 41.1 percentage points" in text
    assert "case-system" in text


def test_templates_are_the_only_prose() -> None:
    # Every judgement template is a full sentence in the seed's register.
    for key, template in TEMPLATES.items():
        if key.startswith("judge."):
            assert template.endswith("."), key
    assert "{provider} are unable to report this measure: {reason}." in TEMPLATES.values()


def test_comparators_in_words(darlington: Built) -> None:
    spec = darlington.schedule.measure("CS3")
    text = narrative(spec, darlington.rows["CS3"], darlington.schedule)
    assert "This compares with statistical neighbours (89%) and the England average (83%)." \
        in text
    baseline = narrative(darlington.schedule.measure("CS5"), darlington.rows["CS5"],
                         darlington.schedule)
    assert "the 2016/17 year end (87%)" in baseline


def test_breach_without_tolerance(darlington: Built) -> None:
    spec = darlington.schedule.measure("CS7")
    assert judgement(spec, darlington.rows["CS7"], darlington.schedule) == (
        "Performance against this measure is not meeting target of 20%.")


def test_not_due_in_a_quarterly_off_month(darlington: Built) -> None:
    # CS6 has a quarter 1 figure, so its history runs through July and August.
    row = darlington.history[(darlington.history["measure"] == "CS6")
                             & (darlington.history["period"] == "2017-08")].iloc[0].to_dict()
    assert row["status"] == "not_due"
    assert judgement(darlington.schedule.measure("CS6"), row, darlington.schedule) == (
        "This measure is reported quarterly and is not due for August 2017.")


# --- the exceptions ------------------------------------------------------------------------


def test_exceptions_follow_the_assessments(sunderland: Built) -> None:
    well, improve = exceptions(sunderland.schedule, sunderland.rows, sunderland.findings, PERIOD)
    well_ids = {i["ref"] for i in well}
    improve_ids = {i["ref"] for i in improve}
    statuses = {m: r["status"] for m, r in sunderland.rows.items()}
    assert not well_ids & improve_ids
    # Every breach and missing figure needs to improve; no monitor-only measure is listed.
    assert {m for m, s in statuses.items() if s in ("breach", "not_reported")} <= improve_ids
    assert "SM9.1" not in well_ids | improve_ids
    # Met and not deteriorating: performing well.
    assert {"KPI1", "SM1.2", "SM2.1", "KPI3", "SM3.1", "SM3.2", "KPI9"} <= well_ids
    # KPI6 meets its target but has fallen three months running (a watch record).
    assert "KPI6" in improve_ids
    # KPI4 is within tolerance and worsening; SM5.2 is forecast to miss at year end.
    assert {"KPI4", "SM5.2"} <= improve_ids
    sentences = {i["ref"]: i["text"] for i in well + improve}
    assert sentences["KPI1"] == ("The percentage of referrals with a decision within 24 hours "
                                 "(KPI1) was 99% in September 2018, better than the target of "
                                 "95%, and has improved from 98.5%.")
    assert "has deteriorated for 3 due periods in a row" in sentences["KPI6"]


# --- the HTML document ---------------------------------------------------------------------


def _text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def test_html_is_self_contained(report: str) -> None:
    assert report.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", report, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", report, re.I)
    assert "<script" not in report.lower()
    assert "<link" not in report.lower()
    assert "@import" not in report
    assert "<?xml" not in report and "<!DOCTYPE svg" not in report
    assert "@page" in report and "@media print" in report


def test_html_header(report: str) -> None:
    header = _text_of(report.split("</header>")[0])
    for expected in ("Together for Children children's services contract",
                     "Provider Together for Children", "Commissioner Sunderland City Council",
                     "Period September 2018", "Financial year 2018/19",
                     "Produced 12 October 2018 at 09:30"):
        assert expected in header


def test_one_accessible_chart_per_measure(report: str, sunderland: Built) -> None:
    charts = re.findall(r"<svg\b[^>]*>", report)
    assert len(charts) == len(sunderland.schedule.measures) == 20
    for tag in charts:
        assert 'role="img"' in tag and "aria-labelledby=" in tag
        assert "width=" not in tag.replace("stroke-width", "")
    for spec in sunderland.schedule.measures:
        ident = "chart-" + re.sub(r"[^A-Za-z0-9_-]", "-", spec.id)
        assert f'<title id="{ident}-title">{html.escape(spec.id)}:' in report
        assert f'<desc id="{ident}-desc">' in report
    ids = re.findall(r'\bid="([^"]+)"', report)
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates


def test_scorecard_has_every_measure_with_its_status(report: str, sunderland: Built) -> None:
    table = report.split('<table class="scorecard">')[1].split("</table>")[0]
    lines = {m.replace("-", "."): _text_of(t) for m, t in re.findall(
        r'<tr class="(?:kpi|supporting)" id="scorecard-measure-([^"]+)">(.*?)</tr>', table,
        re.S)}
    assert len(lines) == 20
    for spec in sunderland.schedule.measures:
        key = re.sub(r"[^A-Za-z0-9_-]", "-", spec.id)
        status = sunderland.rows[spec.id]["status"]
        line = lines[spec.id]
        assert line.startswith(spec.id)
        assert present.STATUS_WORDS[status] in line, line
        assert present.STATUS_SYMBOLS[status] in line
        assert f"status-{status}" in re.search(
            rf'id="scorecard-measure-{re.escape(key)}">(.*?)</tr>', table, re.S).group(1)
    # Figures carry their own month where they lag, and the seed's statuses are there.
    assert "85.8% August 2018" in lines["KPI7"]
    assert "Breach" in lines["SM1.1"] and "Within tolerance" in lines["KPI4"]
    assert "Not reported" in lines["SM6.1"] and "Monitor only" in lines["SM9.1"]
    assert "Level 3: Chief Executive's Performance Clinic" in lines["KPI2"]


def test_sections_and_narratives(report: str, sunderland: Built) -> None:
    text = _text_of(report)
    well = text.split("Where are we performing well?")[2].split("Where do we need")[0]
    improve = text.split("Where do we need to improve?")[2].split("Escalations")[0]
    assert "(KPI1)" in well and "(SM1.1)" not in well
    assert "(SM1.1)" in improve and "(SM6.1)" in improve
    for spec in sunderland.schedule.measures:
        paragraph = narrative(spec, sunderland.rows[spec.id], sunderland.schedule)
        assert html.escape(paragraph, quote=False) in report or paragraph in text


def test_escalations_section(report: str, sunderland: Built) -> None:
    section = _text_of(report.split('id="escalations"')[1].split("</section>")[0])
    open_ones = [e for e in sunderland.escalations if e["status"] == "open"]
    assert open_ones
    for e in open_ones:
        assert e["forum"] in section and e["measure"] in section
    assert "KPI2 " in section and "July 2018" in section
    # KPI9 was resolved in September: listed as resolved, not open.
    resolved = section.split("Resolved in September 2018")[1]
    assert "KPI9" in resolved
    assert section.index("Chief Executive's Performance Clinic") < section.index(
        "Operational Commissioning Group")


def test_rendering_is_deterministic(sunderland: Built, report: str) -> None:
    assert sunderland.render() == report


def test_provider_text_is_escaped_and_months_honoured(sunderland: Built) -> None:
    history = sunderland.history.copy()
    mask = (history["measure"] == "KPI1") & (history["period"] == PERIOD)
    history.loc[mask, "comment"] = '<script>alert("x")</script> & <b>bold</b>'
    out = render_report(sunderland.schedule, history, sunderland.escalations,
                        sunderland.findings, PERIOD, months=2, produced=PRODUCED)
    assert "<script>" not in out and "&lt;script&gt;" in out and "&amp; &lt;b&gt;" in out
    assert "Figures: August 2018 98.5%; September 2018 99%." in out
    assert "up to 2 months of figures" in out


# --- charts ----------------------------------------------------------------------------------


def _series(built: Built, measure: str) -> list[dict[str, Any]]:
    frame = built.history[built.history["measure"] == measure]
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    return records


def test_chart_leaves_a_gap_where_not_reported(sunderland: Built) -> None:
    points = report_charts.chart_points(_series(sunderland, "SM6.1"), PERIOD, 12)
    assert [(p["period"], p["value"]) for p in points] == [
        ("2018-06", 90.1), ("2018-07", 89.0), ("2018-08", None), ("2018-09", None)]
    svg = report_charts.measure_chart(sunderland.schedule.measure("SM6.1"),
                                      _series(sunderland, "SM6.1"), PERIOD)
    assert svg.count(">Not reported<") >= 2
    assert "August 2018 not reported; September 2018 not reported" in svg


def test_chart_dates_lagged_figures_by_their_own_month(sunderland: Built) -> None:
    points = report_charts.chart_points(_series(sunderland, "KPI7"), PERIOD, 12)
    assert [p["period"] for p in points] == ["2018-05", "2018-06", "2018-07", "2018-08"]


def test_chart_window_follows_months(sunderland: Built) -> None:
    points = report_charts.chart_points(_series(sunderland, "KPI1"), PERIOD, 2)
    assert [p["period"] for p in points] == ["2018-08", "2018-09"]


def test_chart_target_tolerance_and_comparators(sunderland: Built, darlington: Built) -> None:
    kpi1 = report_charts.measure_chart(sunderland.schedule.measure("KPI1"),
                                       _series(sunderland, "KPI1"), PERIOD)
    assert ">Target 95%<" in kpi1 and report_charts.TOLERANCE_FILL in kpi1
    assert ">Tolerance 90–94.9%<" in kpi1
    no_band = report_charts.measure_chart(sunderland.schedule.measure("SM3.2"),
                                          _series(sunderland, "SM3.2"), PERIOD)
    assert report_charts.TOLERANCE_FILL not in no_band
    assert ">Target profiled to 330 a year<" in no_band
    cs7 = report_charts.measure_chart(darlington.schedule.measure("CS7"),
                                      _series(darlington, "CS7"), "2017-09")
    for label in ("England average 22%", "Regional average 21%", "Statistical neighbours 20%"):
        assert f">{label}<" in cs7
    assert "<metadata" not in cs7 and "http://purl.org" not in cs7


def test_report_package_does_not_import_matplotlib() -> None:
    code = ("import sys, compliance.report, compliance.report.narrative, "
            "compliance.report.xlsx, compliance.report.charts; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; "
            "assert 'pandas' not in sys.modules or True")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- colours ----------------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    colour = colour.lstrip("#")[-6:]
    channels = [int(colour[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_status_colours_meet_wcag_aa() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    for status, colour in STATUS_COLOURS.items():
        assert contrast(colour["text"], colour["fill"]) >= 4.5, status
        assert contrast(colour["border"], "#ffffff") >= 3, status
    for rag, (fill, ink) in RAG_FILLS.items():
        assert contrast(ink, fill) >= 4.5, rag
    # Lines need 3:1 against the white chart; the target, gap and reference colours also
    # colour their labels, so they need the 4.5:1 of text.
    assert contrast(report_charts.FIGURE_LINE, "#ffffff") >= 3
    for ink in (report_charts.INK, report_charts.TARGET_LINE, report_charts.GAP_COLOUR,
                *report_charts.REFERENCE_COLOURS):
        assert contrast(ink, "#ffffff") >= 4.5, ink


# --- the XLSX scorecard ------------------------------------------------------------------------


def _rows_list(built: Built) -> list[dict[str, Any]]:
    return [built.rows[m.id] for m in built.schedule.measures]


def test_xlsx_scorecard(sunderland: Built, tmp_path: Path) -> None:
    path = export_scorecard(sunderland.schedule, _rows_list(sunderland), PERIOD,
                            tmp_path / "scorecard.xlsx")
    sheet = load_workbook(path).active
    assert sheet is not None
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:P21"
    header = [c.value for c in sheet[1]]
    assert header[:5] == ["Ref", "Kind", "Measure", "Figure for", "Figure"]
    status_col = header.index("Status") + 1
    figure_col = header.index("Figure") + 1
    by_ref = {sheet.cell(row=r, column=1).value: r for r in range(2, sheet.max_row + 1)}
    assert list(by_ref) == [m.id for m in sunderland.schedule.measures]
    for spec in sunderland.schedule.measures:
        line = by_ref[spec.id]
        row = sunderland.rows[spec.id]
        status_cell = sheet.cell(row=line, column=status_col)
        assert status_cell.value == present.STATUS_WORDS[row["status"]]
        fill, ink = RAG_FILLS[row["rag"]]
        assert status_cell.fill.fgColor.rgb == fill
        assert status_cell.font.color.rgb == ink
        figure = sheet.cell(row=line, column=figure_col)
        if row["status"] != "not_reported":
            assert figure.value == pytest.approx(row["value"])
            assert figure.data_type == "n"
        assert figure.number_format == NUMBER_FORMATS[spec.unit]
        assert sheet.column_dimensions[chr(64 + status_col)].width >= 12
    # Seed statuses by fill: SM1.1 red, KPI4 amber, KPI1 green, SM9.1 grey.
    assert sheet.cell(row=by_ref["SM1.1"], column=status_col).fill.fgColor.rgb == \
        RAG_FILLS["red"][0]
    assert sheet.cell(row=by_ref["KPI4"], column=status_col).fill.fgColor.rgb == \
        RAG_FILLS["amber"][0]
    assert sheet.cell(row=by_ref["KPI1"], column=figure_col).number_format == '0.0#"%"'
    assert sheet.cell(row=by_ref["SM2.1"], column=figure_col).number_format == "#,##0.0"
    assert sheet.cell(row=by_ref["SM3.2"], column=figure_col).number_format == "#,##0"
    assert sheet.cell(row=by_ref["KPI7"], column=4).value == "August 2018"


FORMULAS = ['=HYPERLINK("http://example.invalid","click")', "+1+1", "-2+3", "@SUM(A1:A2)",
            "\t=1+1", "\r=1+1"]


def test_xlsx_provider_text_is_never_a_formula(sunderland: Built, tmp_path: Path) -> None:
    rows = _rows_list(sunderland)
    for row, text in zip(rows, FORMULAS, strict=False):
        row["comment"] = text
    rows[-1]["reason"] = "=cmd|' /C calc'!A0"
    path = export_scorecard(sunderland.schedule, rows, PERIOD, tmp_path / "x.xlsx")
    sheet = load_workbook(path).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    comment_col = header.index("Provider comment") + 1
    reason_col = header.index("Reason") + 1
    for line, text in enumerate(FORMULAS, start=2):
        cell = sheet.cell(row=line, column=comment_col)
        # XML reads a carriage return back as a line feed; the text is otherwise intact.
        assert cell.value == text.replace("\r", "\n") and cell.data_type == "s"
        assert cell.quotePrefix
    reason = sheet.cell(row=len(rows) + 1, column=reason_col)
    assert reason.value == "=cmd|' /C calc'!A0" and reason.data_type == "s"
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml and "<f " not in xml


def test_xlsx_is_written_atomically(sunderland: Built, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from openpyxl import Workbook

    path = tmp_path / "scorecard.xlsx"
    path.write_bytes(b"the previous scorecard")

    def broken(self: Any, filename: str) -> None:
        Path(filename).write_bytes(b"half a workbook")
        raise OSError("disk full")

    monkeypatch.setattr(Workbook, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        export_scorecard(sunderland.schedule, _rows_list(sunderland), PERIOD, path)
    assert path.read_bytes() == b"the previous scorecard"
    assert [p.name for p in tmp_path.iterdir()] == ["scorecard.xlsx"]
    monkeypatch.undo()
    export_scorecard(sunderland.schedule, _rows_list(sunderland), PERIOD, path)
    assert zipfile.is_zipfile(path)
    assert [p.name for p in tmp_path.iterdir()] == ["scorecard.xlsx"]


def test_xlsx_accepts_check_json_assessments(darlington: Built, tmp_path: Path) -> None:
    # The check's JSON items name the figure's month "period" and carry no comment.
    items = [{"measure": r["measure"], "period": r["figure_period"], "value": r["value"],
              "status": r["status"], "rag": r["rag"], "direction": r["direction"]}
             for r in _rows_list(darlington)]
    path = export_scorecard(darlington.schedule, items, "2017-09", tmp_path / "d.xlsx")
    sheet = load_workbook(path).active
    assert sheet is not None
    assert sheet.max_row == len(darlington.schedule.measures) + 1
    assert sheet.cell(row=2, column=4).value == "September 2017"
