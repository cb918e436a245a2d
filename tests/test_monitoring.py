"""Beyond RAG: SPC in the check, hysteresis, silences with expiry, acknowledgements and notes,
late returns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Result

HOVER = [("2018-04", 84.0), ("2018-05", 86.0), ("2018-06", 84.5), ("2018-07", 86.5),
         ("2018-08", 84.0), ("2018-09", 86.0), ("2018-10", 84.2), ("2018-11", 86.1)]


def schedule_with(tmp_path: Path, settings: str = "", measure_extra: str = "") -> Path:
    """A one-measure contract: higher is better, target 90, tolerance down to 85."""
    path = tmp_path / "hover.yaml"
    path.write_text(f"""\
contract:
  id: hover
  title: Hovering measure
  commissioner: A Council
  provider: A Provider
  forums: [Group, Board, Panel, Committee]
  starts: 2018-04
{settings}
measures:
  - id: KPI1
    kind: kpi
    title: A percentage that hovers at its tolerance bound
    unit: percent
    polarity: higher_is_better
    target: 90
    tolerance: [85, 89.9]
{measure_extra}""")
    return path


def run_history(cli: Callable[..., Result], schedule: Path, tmp_path: Path,
                series: list[tuple[str, float]]) -> list[dict[str, Any]]:
    ret = tmp_path / "figures.csv"
    ret.write_text("measure,period,value\n" + "".join(f"KPI1,{p},{v}\n" for p, v in series))
    assert cli("contract", "load", schedule).exit_code == 0
    assert cli("submit", "--contract", "hover", ret).exit_code == 0
    result = cli("check", "--contract", "hover", "--from", series[0][0], "--to",
                 series[-1][0], "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, Any]] = cli("escalations", "--format", "json").json()
    return rows


def test_hovering_measure_without_hysteresis_opens_and_resolves_monthly(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    schedule = schedule_with(tmp_path, "  settings: {good_periods_to_resolve: 1}")
    rows = run_history(cli, schedule, tmp_path, HOVER)
    assert [(r["opened"], r["status"], r["resolved"]) for r in rows] == [
        ("2018-04", "resolved", "2018-05"), ("2018-06", "resolved", "2018-07"),
        ("2018-08", "resolved", "2018-09"), ("2018-10", "resolved", "2018-11")]


def test_hovering_measure_with_hysteresis_holds_steady(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    schedule = schedule_with(
        tmp_path, "  settings: {good_periods_to_resolve: 1, recovery_margin: 1}")
    rows = run_history(cli, schedule, tmp_path, HOVER)
    assert [(r["opened"], r["status"]) for r in rows] == [("2018-04", "open")]
    # Back above the target by the margin: recovered.
    rows = run_history(cli, schedule, tmp_path, [*HOVER, ("2018-12", 91.5)])
    assert [(r["opened"], r["status"], r["resolved"]) for r in rows] == [
        ("2018-04", "resolved", "2018-12")]


def test_hysteresis_per_measure(cli: Callable[..., Result], tmp_path: Path) -> None:
    schedule = schedule_with(tmp_path, "  settings: {good_periods_to_resolve: 1}",
                             "    recovery_margin: 0.5\n")
    rows = run_history(cli, schedule, tmp_path, [*HOVER, ("2018-12", 90.2)])
    assert [(r["opened"], r["status"]) for r in rows] == [("2018-04", "open")]


def test_a_drifting_measure_within_tolerance_gets_a_watch_record(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    # Met every month, but falling for seven months in a row: a trend of concern.
    drift = [("2018-04", 99.0), ("2018-05", 98.6), ("2018-06", 98.1), ("2018-07", 97.0),
             ("2018-08", 95.2), ("2018-09", 93.1), ("2018-10", 91.0)]
    schedule = schedule_with(tmp_path, "  settings: {deteriorating_periods_watch: 12}")
    run_history(cli, schedule, tmp_path, drift)
    doc = cli("check", "--contract", "hover", "--period", "2018-10", "--format", "json").json()
    [kpi1] = doc["assessments"]
    assert kpi1["status"] == "met"
    assert kpi1["variation"] == "special_cause_concern"
    assert [(w["measure"], w["rule"]) for w in doc["watch"]] == [("KPI1", "spc-concern")]
    assert doc["escalations"] == []
    explained = cli("explain", "-c", "hover", "-m", "KPI1", "-p", "2018-10").stdout
    # The latest point is also below the lower limit: the strongest signal names the rule.
    assert "(7 points, trial limits, mean 96, process limits 92.45 to 99.55) the figure " \
        "shows special-cause variation of concern (a point beyond a process limit)." \
        in explained
