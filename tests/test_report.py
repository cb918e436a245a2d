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
    # SPEC section 7: with no previous figure, the figure is stated with its month. (Without
    # an XmR reading: the chart's sentences follow; see test_narrative_reads_the_xmr_chart.)
    spec = sunderland.schedule.measure("SM1.1")
    row = {**sunderland.rows["SM1.1"], "previous_value": None, "change": None,
           "variation": None, "assurance": None}
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
    history = [t for t in charts if 'id="chart-' in t]
    xmr = [t for t in charts if 'id="xmr-' in t]
    assert len(history) == len(sunderland.schedule.measures) == 20
    # An XmR chart for every point-in-time measure with a judged figure: not SM3.2 and SM5.2,
    # year-to-date figures that rise through the year by construction.
    assert len(xmr) == 18 and len(charts) == 38
    for tag in charts:
        assert 'role="img"' in tag and "aria-labelledby=" in tag
        assert "width=" not in tag.replace("stroke-width", "")
    for spec in sunderland.schedule.measures:
        key = re.sub(r"[^A-Za-z0-9_-]", "-", spec.id)
        idents = ["chart-" + key] + (["xmr-" + key] if spec.id not in ("SM3.2", "SM5.2") else [])
        for ident in idents:
            assert f'<title id="{ident}-title">{html.escape(spec.id)}:' in report
            assert f'<desc id="{ident}-desc">' in report
    assert 'id="xmr-SM5-2"' not in report and 'id="xmr-SM3-2"' not in report
    article = report.split('id="measure-SM5-2"')[1].split("</article>")[0]
    assert TEMPLATES["spc.no_chart"] in html.unescape(article)
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
    # The XmR chart's lines, and each variation's colour: they also colour the scorecard's
    # symbols and the chart's labels, so text contrast.
    for ink in (report_charts.XMR_LINE, report_charts.MEAN_LINE, report_charts.LIMIT_LINE,
                *(style["colour"] for style in report_charts.VARIATION_STYLES.values())):
        assert contrast(ink, "#ffffff") >= 4.5, ink
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
    assert sheet.auto_filter.ref == "A1:R21"
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
    variation_col, assurance_col = header.index("Variation") + 1, header.index("Assurance") + 1
    assert sheet.cell(row=by_ref["SM1.1"], column=variation_col).value == "Common cause"
    assert sheet.cell(row=by_ref["SM1.1"], column=assurance_col).value == \
        "Consistently failing"
    assert sheet.cell(row=by_ref["KPI1"], column=assurance_col).value == "Hit and miss"
    assert sheet.cell(row=by_ref["SM9.1"], column=assurance_col).value is None  # no target


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


# --- statistical process control: the XmR chart and its reading ------------------------------

HOVER_SCHEDULE = """\
contract:
  id: hover
  title: Hovering measure
  commissioner: A Council
  provider: A Provider
  forums: [Group, Board, Panel, Committee]
  starts: 2018-04
  settings: {deteriorating_periods_watch: 12}
measures:
  - id: KPI1
    kind: kpi
    title: Percentage of plans reviewed on time
    unit: percent
    polarity: higher_is_better
    target: 90
    tolerance: [85, 89.9]
"""

# Met every month, but falling for seven months in a row: a trend of concern, and October
# below the lower (trial) process limit.
DRIFT = [("2018-04", 99.0), ("2018-05", 98.6), ("2018-06", 98.1), ("2018-07", 97.0),
         ("2018-08", 95.2), ("2018-09", 93.1), ("2018-10", 91.0)]


@pytest.fixture(scope="module")
def drift(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("drift")
    schedule = tmp / "hover.yaml"
    schedule.write_text(HOVER_SCHEDULE)
    figures = tmp / "figures.csv"
    figures.write_text("measure,period,value\n" + "".join(f"KPI1,{p},{v}\n" for p, v in DRIFT))
    return _build(tmp, schedule, [figures], "2018-10")


@pytest.fixture(scope="module")
def drift_report(drift: Built) -> str:
    return drift.render()


def _xmr_points_of(svg: str, variation: str) -> list[str]:
    """The <use> elements (the markers) of one variation's points in an XmR chart."""
    match = re.search(rf'<g id="[^"]*-points-{variation}">(.*?)</g>', svg, re.S)
    return re.findall(r"<use [^>]*>", match.group(1)) if match else []


def _marker_vertices(svg: str, use: str) -> int:
    """How many vertices the marker a <use> element draws (a circle is drawn with curves)."""
    href = re.search(r'xlink:href="#([^"]+)"', use)
    assert href
    path = re.search(rf'<path id="{re.escape(href.group(1))}" d="([^"]+)"', svg)
    assert path
    if re.search(r"(?:^|\s)C\s", path.group(1)):
        return 0
    return len(re.findall(r"[ML] ", path.group(1)))


def test_xmr_chart_marks_concern_points_by_colour_and_shape(drift: Built) -> None:
    spec = drift.schedule.measure("KPI1")
    svg = report_charts.xmr_chart(spec, _series(drift, "KPI1"), "2018-10")
    concern = _xmr_points_of(svg, "special_cause_concern")
    assert len(concern) == 7  # every point of the trend, the last also beyond the limit
    colour = report_charts.VARIATION_STYLES["special_cause_concern"]["colour"]
    assert all(f"fill: {colour}" in use for use in concern)
    assert _marker_vertices(svg, concern[0]) == 3  # a triangle (pointing down), not a dot
    assert not _xmr_points_of(svg, "common_cause")
    assert ">Special cause: concern<" in svg  # the legend says it in words
    # The mean, the dashed process limits, labelled as trial limits, and the target.
    assert ">XmR chart: trial limits, from 7 figures<" in svg
    assert ">Mean 96%<" in svg and ">Target 90%<" in svg
    assert ">Upper trial limit 99.55%<" in svg and ">Lower trial limit 92.45%<" in svg
    assert ">Process limits (trial)<" in svg and "stroke-dasharray" in svg
    # Screen readers get the same: each point's variation and the rule that flagged it.
    assert ("October 2018 91% (special cause: concern, beyond a process limit)." in svg)
    assert "May 2018 98.6% (special cause: concern, a trend)" in svg
    assert "Process limits 92.45% to 99.55% (trial limits, from 7 figures)." in svg
    assert "Assurance: the target is consistently passed." in svg


def test_xmr_chart_of_common_cause(sunderland: Built) -> None:
    svg = report_charts.xmr_chart(sunderland.schedule.measure("KPI1"),
                                  _series(sunderland, "KPI1"), PERIOD)
    assert len(_xmr_points_of(svg, "common_cause")) == 4
    assert _marker_vertices(svg, _xmr_points_of(svg, "common_cause")[0]) == 0  # a circle
    for variation in ("improvement", "concern", "neither"):
        assert not _xmr_points_of(svg, f"special_cause_{variation}")
    assert ">XmR chart: trial limits, from 4 figures<" in svg
    assert ">Upper trial limit 100.28%<" in svg and ">Target 95%<" in svg
    # A gap where a due figure was not reported; nothing at all for a year-end measure.
    sm61 = report_charts.xmr_chart(sunderland.schedule.measure("SM6.1"),
                                   _series(sunderland, "SM6.1"), PERIOD)
    assert sm61.count(">Not reported<") >= 2 and "from 2 figures" in sm61
    assert report_charts.xmr_chart(sunderland.schedule.measure("SM5.2"),
                                   _series(sunderland, "SM5.2"), PERIOD) == ""
    # A history without its XmR reading draws no XmR chart, and the report still renders.
    bare = sunderland.history.drop(columns=["variation", "spc_rule", "assurance", "spc_mean",
                                            "spc_lower", "spc_upper", "spc_points",
                                            "spc_trial"])
    kpi1 = bare[bare["measure"] == "KPI1"].to_dict("records")
    assert report_charts.xmr_chart(sunderland.schedule.measure("KPI1"), kpi1, PERIOD) == ""
    out = render_report(sunderland.schedule, bare, sunderland.escalations,
                        sunderland.findings, PERIOD, produced=PRODUCED)
    assert 'id="xmr-' not in out and "Variation and assurance" in out


def _synthetic(values: list[float], start: str = "2017-04", polarity: str = "higher_is_better",
               target: float = 95.0, **settings: Any) -> list[dict[str, Any]]:
    """A measure's history read on its XmR chart as the check reads it (``add_spc``)."""
    from compliance.assess import add_spc
    from compliance.periods import add_months
    from compliance.spc import SpcSettings

    periods = [add_months(start, i) for i in range(len(values))]
    frame = pd.DataFrame({
        "contract": "c", "measure": "KPI1", "period": periods, "figure_period": periods,
        "value": values, "status": "met", "polarity": polarity, "compared_with": target,
        "target_low": target, "target_high": target})
    records: list[dict[str, Any]] = add_spc(frame, {"c": SpcSettings(**settings)}).to_dict(
        "records")  # type: ignore[assignment]
    return records


STEADY_THEN_LOWER = [97.2, 98.1, 97.5, 96.9, 97.8, 98.4, 97.1, 97.6, 98.0, 97.3, 97.9, 97.4,
                     95.9, 96.2, 95.6, 96.0, 95.8, 96.1, 95.7]


def test_xmr_chart_with_enough_figures_has_no_trial_limits(sunderland: Built) -> None:
    rows = _synthetic(STEADY_THEN_LOWER)
    assert rows[-1]["variation"] == "special_cause_concern" and not rows[-1]["spc_trial"]
    svg = report_charts.xmr_chart(sunderland.schedule.measure("KPI1"), rows, "2018-10",
                                  months=24)
    assert "trial" not in svg.lower()
    assert ">Upper limit " in svg and ">Process limits<" in svg
    assert len(_xmr_points_of(svg, "special_cause_concern")) >= 7  # the shift below the mean


def test_xmr_chart_shows_recalculated_limits(sunderland: Built) -> None:
    rows = _synthetic(STEADY_THEN_LOWER, baseline_from="2018-04")
    svg = report_charts.xmr_chart(sunderland.schedule.measure("KPI1"), rows, "2018-10",
                                  months=24)
    desc = re.search(r"<desc [^>]*>(.*?)</desc>", svg, re.S)
    assert desc and "From April 2018: Mean 95.9%." in html.unescape(desc.group(1))
    # Two stretches: two means, each drawn over its own months.
    assert desc.group(1).count("Mean ") == 2
    assert ">Mean 95.9%<" in svg  # the latest stretch is labelled


def test_long_histories_stay_legible(sunderland: Built) -> None:
    spec = sunderland.schedule.measure("KPI1")
    rows = _synthetic(STEADY_THEN_LOWER)  # 19 months
    for svg in (report_charts.measure_chart(spec, rows, "2018-10", months=24),
                report_charts.xmr_chart(spec, rows, "2018-10", months=24)):
        # Past a year of points: the month alone, its year under the first and each January.
        assert ">Apr 2017<" not in svg and ">May<" in svg
        assert svg.count(">2017<") == 1 and svg.count(">2018<") == 1
    history = report_charts.measure_chart(spec, rows, "2018-10", months=24)
    assert ">95.7%<" in history and ">97.2%<" not in history  # only the latest value labelled
    months = r">(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)<"
    long = _synthetic(STEADY_THEN_LOWER * 3, start="2014-01")  # 57 months
    svg = report_charts.xmr_chart(spec, long, "2018-09", months=60)
    assert 12 < len(re.findall(months, svg)) <= 24  # every third month labelled


def test_scorecard_shows_variation_and_assurance(drift_report: str, report: str) -> None:
    table = _text_of(drift_report.split('<table class="scorecard">')[1].split("</table>")[0])
    assert "Variation and assurance" in table
    assert "▼ Special cause: concern Assurance: consistently passing " \
           "Trial limits, from 7 figures" in table
    assert "variation-special_cause_concern" in drift_report
    sunderland = report.split('<table class="scorecard">')[1].split("</table>")[0]
    lines = {m: _text_of(t) for m, t in re.findall(
        r'id="scorecard-measure-([^"]+)">(.*?)</tr>', sunderland, re.S)}
    assert "Common cause Assurance: consistently failing Trial limits, from 4 figures" \
        in lines["SM1-1"]
    assert "Assurance: hit and miss" in lines["KPI1"]
    assert lines["SM5-2"].endswith("—")  # judged at year end: no XmR reading yet
    assert "Assurance" not in lines["SM9-1"]  # monitor only: no target to assure


def test_narrative_reads_the_xmr_chart(drift: Built, sunderland: Built) -> None:
    text = narrative(drift.schedule.measure("KPI1"), drift.rows["KPI1"], drift.schedule)
    assert ("Performance against this measure is exceeding target. The chart shows the "
            "October 2018 figure below the lower process limit, a signal that performance "
            "has changed for the worse. On current variation the target will be met "
            "consistently. The process limits are trial limits, calculated from seven "
            "figures, and will settle as more figures are reported.") in text
    sm11 = narrative(sunderland.schedule.measure("SM1.1"), sunderland.rows["SM1.1"],
                     sunderland.schedule)
    assert sm11.endswith("outside of tolerance range. On current variation the target will be "
                         "missed consistently unless the process changes. The process limits "
                         "are trial limits, calculated from four figures, and will settle as "
                         "more figures are reported.")
    # Common cause and no target: nothing to add.
    assert "chart" not in narrative(sunderland.schedule.measure("SM9.1"),
                                    sunderland.rows["SM9.1"], sunderland.schedule)


SIGNALS = [
    # rule, polarity, variation, value, previous, expected sentence
    ("shift", "higher_is_better", "special_cause_concern", 80.0, 81.0,
     "The chart shows a sustained run of figures below the average, a signal that "
     "performance has changed for the worse."),
    ("shift", "lower_is_better", "special_cause_concern", 90.0, 89.0,
     "The chart shows a sustained run of figures above the average, a signal that "
     "performance has changed for the worse."),
    ("shift", "lower_is_better", "special_cause_improvement", 80.0, 81.0,
     "The chart shows a sustained run of figures below the average, a signal that "
     "performance has changed for the better."),
    ("trend", "higher_is_better", "special_cause_improvement", 84.0, 83.0,
     "The chart shows a sustained run of rising figures, a signal that performance has "
     "changed for the better."),
    ("trend", "within_range", "special_cause_neither", 84.0, 86.0,
     "The chart shows a sustained run of falling figures, a signal that performance has "
     "changed."),
    ("beyond_limit", "higher_is_better", "special_cause_improvement", 95.0, 85.0,
     "The chart shows the September 2018 figure above the upper process limit, a signal "
     "that performance has changed for the better."),
    ("two_of_three", "higher_is_better", "special_cause_concern", 80.0, 85.0,
     "The chart shows recent figures close to the lower process limit, a signal that "
     "performance has changed for the worse."),
]


@pytest.mark.parametrize(("rule", "polarity", "variation", "value", "previous", "expected"),
                         SIGNALS)
def test_narrative_names_the_signal(sunderland: Built, rule: str, polarity: str,
                                    variation: str, value: float, previous: float,
                                    expected: str) -> None:
    from compliance.report.narrative import spc_sentences

    spec = sunderland.schedule.measure("KPI1").model_copy(update={"polarity": polarity})
    row = {**sunderland.rows["KPI1"], "value": value, "previous_value": previous,
           "variation": variation, "spc_rule": rule, "spc_mean": 85.0, "spc_lower": 81.0,
           "spc_upper": 89.0, "assurance": None, "spc_trial": False, "spc_points": 14}
    assert spc_sentences(spec, row) == [expected]


def test_exceptions_name_the_signal(drift: Built, sunderland: Built) -> None:
    _, improve = exceptions(drift.schedule, drift.rows, drift.findings, "2018-10")
    [item] = improve
    assert item["text"].endswith("but has deteriorated for 6 due periods in a row, and its "
                                 "XmR chart shows special-cause variation of concern.")
    # A signal without a run of deterioration (a shift, one point beyond a limit).
    rows = {**drift.rows, "KPI1": {**drift.rows["KPI1"], "consecutive_deteriorating": 1}}
    _, improve = exceptions(drift.schedule, rows, drift.findings, "2018-10")
    assert improve[0]["text"] == (
        "The percentage of plans reviewed on time (KPI1) was 91% in October 2018, still "
        "meeting the target of 90%, but its XmR chart shows special-cause variation of "
        "concern.")


def test_watch_record_and_xmr_chart_in_the_report(drift_report: str) -> None:
    text = _text_of(drift_report)
    assert "1 measure in the performance schedule" in text
    records = text.split("Data quality and early warnings")[2].split("Measures in detail")[0]
    assert "Early warning" in records and "(rule spc-concern)" in records
    assert "A measure not yet in breach whose XmR chart shows special-cause variation of " \
           "concern" in records
    assert 'id="xmr-KPI1"' in drift_report
    assert "XmR chart of KPI1: special cause: concern; assurance: consistently passing " \
           "(trial limits, from 7 figures)." in text


# --- escalations: silenced, acknowledged, noted ---------------------------------------------


def test_escalation_extras_are_optional(report: str) -> None:
    # Without acknowledgement keys the table has no column for them.
    assert "Acknowledgement and notes" not in report
    assert "held back" not in _text_of(report.split('id="escalations"')[1].split(
        "</section>")[0])


def test_acknowledged_and_noted_escalations(sunderland: Built) -> None:
    escalations = [dict(e) for e in sunderland.escalations]
    for e in escalations:
        e.update(acknowledged_by=None, acknowledged_at=None, latest_note=None,
                 latest_note_by=None, notes=0)
    kpi8 = next(e for e in escalations if e["measure"] == "KPI8")
    kpi8.update(acknowledged_by="j.smith", acknowledged_at="2018-10-12T09:30",
                latest_note="Provider to present a recovery plan at the November OCG",
                latest_note_by="a.jones")
    kpi2 = next(e for e in escalations if e["measure"] == "KPI2")
    kpi2.update(latest_note="Awaiting <b>data</b> & a plan", latest_note_by="tester")
    out = render_report(sunderland.schedule, sunderland.history, escalations,
                        sunderland.findings, PERIOD, produced=PRODUCED)
    section = out.split('id="escalations"')[1].split("</section>")[0]
    assert "Acknowledgement and notes" in section
    rows = {re.search(r'href="#measure-([^"]+)"', r).group(1): _text_of(r)  # type: ignore[union-attr]
            for r in re.findall(r"<tr>(.*?)</tr>", section, re.S) if "href" in r}
    assert rows["KPI8"].endswith("Acknowledged by j.smith on 12 October 2018 at 09:30 Latest "
                                 "note (a.jones): Provider to present a recovery plan at the "
                                 "November OCG")
    assert rows["KPI2"].endswith("Not acknowledged Latest note (tester): Awaiting <b>data</b> "
                                 "& a plan")
    assert "Awaiting &lt;b&gt;data&lt;/b&gt; &amp; a plan" in section  # escaped
    assert rows["SM1-1"].endswith("Not acknowledged")
    # A datetime, as the store holds it, reads the same.
    kpi8["acknowledged_at"] = dt.datetime(2018, 10, 12, 9, 30)
    again = render_report(sunderland.schedule, sunderland.history, escalations,
                          sunderland.findings, PERIOD, produced=PRODUCED)
    assert "Acknowledged by j.smith on 12 October 2018 at 09:30" in again


def test_silenced_escalation_in_the_report(sunderland: Built) -> None:
    escalations = [dict(e) for e in sunderland.escalations]
    escalations.append({"measure": "SM8.1", "level": 3, "forum": "Chief Executive's "
                        "Performance Clinic", "opened": "2018-09", "status": "silenced",
                        "resolved": None, "silenced_until": "2019-03",
                        "silence_reason": "Remedial plan agreed at OCG 12/10",
                        "rule": "supporting-sustained-breach", "description": "x"})
    escalations.append({"measure": "KPI4", "level": 1, "forum": "Operational Commissioning "
                        "Group", "opened": "2018-06", "status": "silenced", "resolved": None,
                        "silenced_until": "2018-08", "silence_reason": "over",
                        "rule": "r", "description": "y"})
    out = render_report(sunderland.schedule, sunderland.history, escalations,
                        sunderland.findings, PERIOD, produced=PRODUCED)
    section = _text_of(out.split('id="escalations"')[1].split("</section>")[0])
    held = section.split("Escalations held back (silenced)")[1]
    assert "SM8.1" in held and "Escalation held back until March 2019: Remedial plan agreed " \
        "at OCG 12/10" in held
    assert "KPI4" not in held  # its silence ended in August
    scorecard = _text_of(out.split('<table class="scorecard">')[1].split("</table>")[0])
    assert "Escalation held back until March 2019" in scorecard


def test_silence_through_the_command_line(cli: Any, tmp_path: Path) -> None:
    schedule = tmp_path / "hover.yaml"
    schedule.write_text(HOVER_SCHEDULE.replace("  settings: {deteriorating_periods_watch: 12}\n",
                                               ""))
    failing = [("2018-04", 95.0), ("2018-05", 80.0), ("2018-06", 79.0), ("2018-07", 78.0),
               ("2018-08", 77.0)]
    figures = tmp_path / "figures.csv"
    figures.write_text("measure,period,value\n"
                       + "".join(f"KPI1,{p},{v}\n" for p, v in failing))
    assert cli("contract", "load", schedule).exit_code == 0
    assert cli("submit", "--contract", "hover", figures).exit_code == 0
    assert cli("check", "--contract", "hover", "--period", "2018-04").exit_code == 0
    assert cli("silence", "--contract", "hover", "--measure", "KPI1", "--until", "2018-07",
               "--reason", "remedial plan agreed at OCG 12/10").exit_code == 0
    assert cli("check", "--contract", "hover", "--from", "2018-05", "--to",
               "2018-08").exit_code == 0
    june = tmp_path / "june.html"
    assert cli("report", "--contract", "hover", "--period", "2018-06", "--out",
               june).exit_code == 0
    section = _text_of(june.read_text().split('id="escalations"')[1].split("</section>")[0])
    assert "No escalation is open at the end of June 2018." in section
    assert "Escalation held back until July 2018: remedial plan agreed at OCG 12/10" in section
    august = tmp_path / "august.html"
    assert cli("report", "--contract", "hover", "--period", "2018-08", "--out",
               august).exit_code == 0
    section = _text_of(august.read_text().split('id="escalations"')[1].split("</section>")[0])
    # The silence over and the measure still failing: open again, and no longer held back.
    assert "Open escalations at the end of August 2018" in section
    assert "held back" not in section
