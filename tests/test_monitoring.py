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


# --- silences with expiry -----------------------------------------------------------------

FAILING = [("2018-04", 95.0), ("2018-05", 80.0), ("2018-06", 79.0), ("2018-07", 78.0),
           ("2018-08", 77.0), ("2018-09", 76.0)]


def test_a_silence_holds_back_an_escalation_until_it_expires(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    schedule = schedule_with(tmp_path)
    run_history(cli, schedule, tmp_path, FAILING[:1])  # April checked: all well
    result = cli("silence", "--contract", "hover", "--measure", "KPI1", "--until", "2018-07",
                 "--reason", "remedial plan agreed at OCG 12/10")
    assert result.exit_code == 0, result.stderr
    assert "held back from 2018-05 to 2018-07" in result.stderr

    rows = run_history(cli, schedule, tmp_path, FAILING)
    # Breaches from May to July are held back as one silenced record, never lost; in
    # August, the silence over and the measure still failing, it escalates.
    assert [(r["opened"], r["status"], r["level"], r["silenced_until"]) for r in rows] == [
        ("2018-05", "silenced", 3, "2018-07"), ("2018-08", "open", 3, None)]
    july = cli("check", "--contract", "hover", "--period", "2018-07", "--format",
               "json").json()
    assert [(e["status"], e["silenced_until"]) for e in july["escalations"]] == [
        ("silenced", "2018-07")]
    assert [b["type"] for b in july["breaches"]] == ["performance"]  # still recorded
    august = cli("check", "--contract", "hover", "--period", "2018-08", "--format",
                 "json").json()
    # Four months in breach by then: it goes straight to the level that deserves.
    assert [(e["status"], e["opened"], e["level"]) for e in august["escalations"]] == [
        ("open", "2018-08", 3)]
    assert rows[0]["silence_reason"] == "remedial plan agreed at OCG 12/10"
    table = " ".join(cli("escalations").stdout.split())
    assert "silenced until July" in table
    audit = cli("audit", "--format", "json").json()
    assert any(e["command"] == "silence" and e["arguments"]["until"] == "2018-07"
               for e in audit)


def test_silence_refusals(cli: Callable[..., Result], tmp_path: Path) -> None:
    run_history(cli, schedule_with(tmp_path), tmp_path, FAILING)
    backwards = cli("silence", "-c", "hover", "-m", "KPI1", "--until", "2018-05", "--reason",
                    "x")
    assert backwards.exit_code == 1
    assert "would end (2018-05) before it begins (2018-10)" in backwards.stderr
    unknown = cli("silence", "-c", "hover", "-m", "KPI9", "--until", "2019-03", "--reason",
                  "x")
    assert unknown.exit_code == 1 and "is not in the schedule of hover" in unknown.stderr
    assert cli("silence", "-c", "hover", "-m", "KPI1", "--until", "2019-03").exit_code == 2


# --- acknowledgement and notes ------------------------------------------------------------


def test_acknowledge_and_note_an_escalation(cli: Callable[..., Result],
                                            tmp_path: Path) -> None:
    run_history(cli, schedule_with(tmp_path), tmp_path, FAILING)
    assert cli("--user", "j.smith", "ack", "-c", "hover", "-m", "KPI1").exit_code == 0
    assert cli("--user", "a.jones", "note", "-c", "hover", "-m", "KPI1", "--text",
               "Provider to present a recovery plan at the November OCG").exit_code == 0
    [row] = cli("escalations", "--format", "json").json()
    assert row["acknowledged_by"] == "j.smith" and row["acknowledged_at"]
    assert row["latest_note"] == "Provider to present a recovery plan at the November OCG"
    assert row["latest_note_by"] == "a.jones"
    table = " ".join(cli("escalations").stdout.split())
    assert "Acknowledged by j.smith" in table and "Note (a.jones)" in table
    # Notes stay with the escalation when the records are derived again.
    cli("check", "--contract", "hover", "--period", "2018-09")
    [again] = cli("escalations", "--format", "json").json()
    assert again["acknowledged_by"] == "j.smith"
    empty = cli("note", "-c", "hover", "-m", "KPI1", "--text", "  ")
    assert empty.exit_code == 1 and "the note is empty" in empty.stderr


def test_acknowledging_needs_an_open_escalation(cli: Callable[..., Result],
                                                tmp_path: Path) -> None:
    run_history(cli, schedule_with(tmp_path), tmp_path, FAILING[:1])
    result = cli("ack", "-c", "hover", "-m", "KPI1")
    assert result.exit_code == 1 and "hover KPI1 has no open escalation" in result.stderr


# --- late returns -------------------------------------------------------------------------


def test_overdue_returns(cli: Callable[..., Result], tmp_path: Path) -> None:
    schedule = tmp_path / "due.yaml"
    schedule.write_text(schedule_with(tmp_path).read_text().replace(
        "  starts: 2018-04\n", "  starts: 2018-04\n  return_due_day: 15\n"))
    run_history(cli, schedule, tmp_path, FAILING[:3])  # April to June received
    rows = cli("overdue", "--as-of", "2018-08-20", "--format", "json").json()
    # July's return was due on 15 August; August's is not due until 15 September.
    assert rows == [{"contract": "hover", "provider": "A Provider", "period": "2018-07",
                     "due": "2018-08-15", "days_late": 5}]
    assert cli("overdue", "--as-of", "2018-08-15", "--format", "json").json() == []
    later = cli("overdue", "--as-of", "2018-10-31", "--format", "json").json()
    assert [r["period"] for r in later] == ["2018-07", "2018-08", "2018-09"]
    assert "Return for" in cli("overdue", "--as-of", "2018-10-31").stdout
    bad = cli("overdue", "--as-of", "31/10/2018")
    assert bad.exit_code == 1 and "is not a date" in bad.stderr


def test_a_rule_can_escalate_a_late_return(cli: Callable[..., Result], tmp_path: Path) -> None:
    pack = tmp_path / "late.yaml"
    pack.write_text((Path(__file__).resolve().parent.parent / "rules" / "standard.yaml")
                    .read_text().replace("pack: standard", "pack: late")
                    .replace("  good_periods_to_resolve: 2\n",
                             "  good_periods_to_resolve: 2\n  late_return_days: 10\n")
                    + """
  - id: late-return
    description: >-
      A return that arrives more than late_return_days days after its due date makes a
      late-return record for the first forum.
    when: {days_late: {gt: late_return_days}}
    then: {record: late_return, severity: minor, escalate: 1}
""")
    schedule = tmp_path / "due.yaml"
    schedule.write_text(schedule_with(tmp_path).read_text().replace(
        "  starts: 2018-04\n", f"  starts: 2018-04\n  return_due_day: 15\n  rules: {pack}\n"))
    rows = run_history(cli, schedule, tmp_path, [("2018-04", 95.0)])
    doc = cli("check", "--contract", "hover", "--period", "2018-04", "--format", "json").json()
    # The return for April 2018 was due on 15 May 2018 and arrived today: very late.
    [record] = doc["breaches"]
    assert (record["type"], record["rule"]) == ("late_return", "late-return")
    assert [(r["opened"], r["rule"]) for r in rows] == [("2018-04", "late-return")]
    plain = tmp_path / "plain.yaml"
    plain.write_text(schedule.read_text().replace(f"  rules: {pack}\n", ""))
    assert cli("contract", "load", plain).exit_code == 0
    again = cli("check", "--contract", "hover", "--period", "2018-04", "--format",
                "json").json()
    assert again["breaches"] == []  # the standard pack does not judge lateness
