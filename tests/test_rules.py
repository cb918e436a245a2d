"""Escalation rules: the records of the seed month, a four-month history, the ladder, and
durable-rules kept on a short leash."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from compliance import escalation
from compliance.assess import add_features, assess, measure_table
from compliance.escalation import RuleEngineError, run_rules
from compliance.returns import parse_return
from compliance.rulepack import (
    RulesError,
    compile_pack,
    evaluate,
    load_pack,
    validate_pack,
)
from compliance.schedule import load_schedule, validate_schedule
from compliance.yamldoc import plain_nodes
from tests.conftest import (
    EXAMPLES,
    ROOT,
    SUNDERLAND,
    SUNDERLAND_RETURN,
    Result,
    StoreRef,
    connect,
    facts_asserted,
)

MONTHS = ["2018-06", "2018-07", "2018-08", "2018-09"]
RETURNS = [EXAMPLES / f"sunderland-tfc-{m}.csv" for m in MONTHS]


def features_for(paths: list[Path], through: str) -> tuple[pd.DataFrame, Any]:
    schedule = load_schedule(SUNDERLAND)
    figures = pd.concat([parse_return(p, {schedule.id: schedule}) for p in paths],
                        ignore_index=True)
    history = assess(measure_table([schedule]), figures, [through], history=True)
    return add_features(history), schedule


# --- the seed month on its own ------------------------------------------------------------


@pytest.fixture
def september(cli: Callable[..., Result]) -> dict[str, Any]:
    result = cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
                 "--period", "2018-09", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = result.json()
    return doc


def test_september_breach_records(september: dict[str, Any]) -> None:
    breaches = {(b["measure"], b["type"], b["severity"]) for b in september["breaches"]}
    assert breaches == {
        ("KPI2", "performance", "major"), ("KPI5", "performance", "major"),
        ("KPI7", "performance", "major"), ("KPI8", "performance", "major"),
        ("SM1.1", "performance", "minor"), ("SM5.1", "performance", "minor"),
        ("SM7.1", "performance", "minor"), ("SM8.1", "performance", "minor"),
        ("SM6.1", "missing_data", "minor"),
    }
    # Every breach names the rule that made it.
    rules = {b["measure"]: b["rule"] for b in september["breaches"]}
    assert rules["KPI2"] == "kpi-breach" and rules["SM1.1"] == "supporting-breach"
    assert rules["SM6.1"] == "missing-supporting"


def test_september_data_quality_for_kpi8(september: dict[str, Any]) -> None:
    [record] = september["data_quality"]
    assert record["measure"] == "KPI8" and record["rule"] == "sources-disagree-percent"
    assert "more than 5 points" in record["description"]


def test_september_escalations_open_at_level_one(september: dict[str, Any]) -> None:
    ladder = {e["measure"]: e for e in september["escalations"]}
    assert set(ladder) == {b["measure"] for b in september["breaches"]}
    assert {e["level"] for e in ladder.values()} == {1}
    assert {e["forum"] for e in ladder.values()} == {"Operational Commissioning Group"}
    assert september["watch"] == []


# --- a four-month history -----------------------------------------------------------------


def run_months(cli: Callable[..., Result], order: list[str]) -> None:
    assert cli("contract", "load", SUNDERLAND).exit_code == 0
    for path in RETURNS:
        assert cli("submit", "--contract", "sunderland-tfc", path).exit_code == 0
    for month in order:
        result = cli("check", "--contract", "sunderland-tfc", "--period", month,
                     "--format", "json")
        assert result.exit_code == 0, result.stderr


def records_of(db_path: StoreRef) -> dict[str, list[tuple[Any, ...]]]:
    with connect(db_path) as conn:
        return {
            "finding": sorted(conn.execute(
                "select contract_id, measure_id, period, type, severity, rule, settings, facts "
                "from finding").fetchall()),
            "escalation": sorted(conn.execute(
                "select contract_id, measure_id, opened, level, forum, status, resolved, rule, "
                "history from escalation").fetchall()),
        }


def escalation_of(db_path: StoreRef, measure: str) -> tuple[Any, ...]:
    with connect(db_path) as conn:
        rows = conn.execute("select opened, level, status, resolved, history from escalation "
                            "where measure_id = ?", (measure,)).fetchall()
    assert len(rows) == 1, rows
    return tuple(rows[0])


def test_history_in_order(cli: Callable[..., Result], db_path: StoreRef) -> None:
    run_months(cli, MONTHS)
    # KPI2 in breach from July: level 2 after two breaches (August), 3 after three.
    opened, level, status, resolved, history = escalation_of(db_path, "KPI2")
    assert (opened, level, status, resolved) == ("2018-07", 3, "open", None)
    assert [(h["period"], h["level"], h["rule"]) for h in json.loads(history)] == [
        ("2018-07", 1, "kpi-breach"), ("2018-08", 2, "kpi-persistent-breach"),
        ("2018-09", 3, "kpi-sustained-breach")]
    # SM8.1, a supporting measure in breach from June: level 2 after three (August).
    opened, level, status, _, history = escalation_of(db_path, "SM8.1")
    assert (opened, level, status) == ("2018-06", 2, "open")
    assert [(h["period"], h["level"]) for h in json.loads(history)] == [
        ("2018-06", 1), ("2018-08", 2)]
    # KPI9: breached June and July, within tolerance in August, met in September: resolved.
    assert escalation_of(db_path, "KPI9")[:4] == ("2018-06", 2, "resolved", "2018-09")
    # SM6.1 missing in August and September: level 2.
    assert escalation_of(db_path, "SM6.1")[:3] == ("2018-08", 2, "open")
    with connect(db_path) as conn:
        watch = conn.execute("select measure_id, period, rule from finding "
                             "where type = 'watch'").fetchall()
        dq = conn.execute("select period from finding where type = 'data_quality' "
                          "and measure_id = 'KPI8' order by period").fetchall()
    # KPI6 fell three months running while still meeting its target.
    assert watch == [("KPI6", "2018-09", "early-warning")]
    assert [p for (p,) in dq] == MONTHS


def test_history_reverse_order_and_repeat_give_same_records(
        cli: Callable[..., Result], db_path: StoreRef,
        make_store: Callable[[], StoreRef]) -> None:
    run_months(cli, MONTHS)
    in_order = records_of(db_path)
    assert in_order["finding"] and in_order["escalation"]

    from typer.testing import CliRunner

    from compliance.cli import app

    runner = CliRunner()
    for name, order in (("reverse", list(reversed(MONTHS))),
                        ("twice", MONTHS + MONTHS),
                        ("shuffled", ["2018-08", "2018-06", "2018-09", "2018-07"])):
        other = make_store()

        def run(*args: str | Path, other: StoreRef = other) -> Result:
            r = runner.invoke(app, ["--db", other.url, *map(str, args)])
            return Result(r.exit_code, r.stdout, r.stderr)

        run_months(run, order)
        assert records_of(other) == in_order, name


def test_backfill_range_equals_monthly_checks(cli: Callable[..., Result], db_path: StoreRef,
                                              make_store: Callable[[], StoreRef]) -> None:
    run_months(cli, MONTHS)
    from typer.testing import CliRunner

    from compliance.cli import app

    other = make_store()
    runner = CliRunner()
    base = ["--db", other.url]
    runner.invoke(app, [*base, "contract", "load", str(SUNDERLAND)])
    for path in RETURNS:
        runner.invoke(app, [*base, "submit", "--contract", "sunderland-tfc", str(path)])
    result = runner.invoke(app, [*base, "check", "--contract", "sunderland-tfc",
                                 "--from", "2018-06", "--to", "2018-09", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert records_of(other) == records_of(db_path)


def test_check_json_shows_ladder_as_at_each_month(cli: Callable[..., Result]) -> None:
    run_months(cli, MONTHS)
    levels = {}
    for month in MONTHS:
        doc = cli("check", "--contract", "sunderland-tfc", "--period", month,
                  "--format", "json").json()
        levels[month] = {e["measure"]: (e["level"], e["status"]) for e in doc["escalations"]}
    assert "KPI2" not in levels["2018-06"]
    assert levels["2018-07"]["KPI2"] == (1, "open")
    assert levels["2018-08"]["KPI2"] == (2, "open")
    assert levels["2018-09"]["KPI2"] == (3, "open")
    assert levels["2018-07"]["KPI9"] == (2, "open")
    assert levels["2018-09"]["KPI9"] == (2, "resolved")


def test_escalations_command(cli: Callable[..., Result], tmp_path: Path) -> None:
    run_months(cli, MONTHS)
    rows = cli("escalations", "--format", "json").json()
    assert {r["measure"] for r in rows} >= {"KPI2", "KPI9", "SM8.1"}
    open_rows = cli("escalations", "--open", "--format", "json").json()
    assert "KPI9" not in {r["measure"] for r in open_rows}
    kpi2 = next(r for r in open_rows if r["measure"] == "KPI2")
    assert kpi2["forum"] == "Chief Executive's Performance Clinic"
    assert kpi2["opened"] == "2018-07" and kpi2["figure"] == 81.6 and kpi2["target"] == 100
    assert "3 due periods in a row" in kpi2["rule_text"]
    level2 = cli("escalations", "--level", "2", "--format", "json").json()
    assert {r["level"] for r in level2} == {2}
    out = tmp_path / "list.csv"
    result = cli("escalations", "--open", "--format", "csv", "--out", out)
    assert result.exit_code == 0
    text = out.read_text()
    assert text.splitlines()[0].startswith("contract,forum,level,measure")
    assert "People Directorate Management Team" in text
    table = cli("escalations", "--open")
    assert "Chief Executive's Performance" in table.stdout and "July 2018" in table.stdout


def test_explain(cli: Callable[..., Result]) -> None:
    run_months(cli, MONTHS)
    result = cli("explain", "--contract", "sunderland-tfc", "--measure", "KPI2",
                 "--period", "2018-09")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "The figure is 81.6%." in out
    assert "81.6% against 100%: it is outside tolerance, a breach (red)." in out
    assert "It has been in breach for 3 due periods in a row" in out
    assert "now at level 3 (Chief Executive's Performance Clinic)" in out
    assert "kpi-sustained-breach fired" in out
    assert "recovered did not fire: needs good_run >= good_periods_to_resolve = 2 (it is 0)" \
        in out
    doc = cli("explain", "--contract", "sunderland-tfc", "--measure", "SM3.2",
              "--period", "2018-09", "--format", "json").json()
    assert doc["status"] == "met"
    assert any("profiled to 165" in s for s in doc["sentences"])
    lagged = cli("explain", "-c", "sunderland-tfc", "-m", "KPI7", "-p", "2018-09").stdout
    assert "The figure judged is for August 2018" in lagged
    bad = cli("explain", "-c", "sunderland-tfc", "-m", "KPl2", "-p", "2018-09")
    assert bad.exit_code == 1 and "did you mean 'KPI2'?" in bad.stderr


# --- the pack, its settings and its validation --------------------------------------------


def test_standard_pack_validates(cli: Callable[..., Result]) -> None:
    pack, problems = validate_pack(ROOT / "rules" / "standard.yaml")
    assert pack is not None and problems == []
    result = cli("rules", "validate")
    assert result.exit_code == 0
    assert "pack standard, 13 rules, 9 settings" in result.stderr


def test_pack_compiles_to_durable_json() -> None:
    pack = load_pack("standard")
    compiled = compile_pack(pack, pack.settings)
    assert compiled["kpi-persistent-breach"] == {"all": [{"m": {"$and": [
        {"status": "breach"}, {"kind": "kpi"}, {"$gte": {"consecutive_breaches": 2.0}}]}}]}
    assert compiled["sources-disagree"]["all"][0]["m"]["$and"][0] == {
        "$neq": {"unit": "percent"}}


def test_bad_pack_messages_are_located(tmp_path: Path, cli: Callable[..., Result]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("""\
pack: bad
title: Bad
settings:
  runs: 2
rules:
  - id: one
    description: uses an unknown field
    when: {staus: breach}
    then: {escalate: 1}
  - id: two
    description: uses an unknown setting
    when: {consecutive_breaches: {gte: rnus}}
    then: {escalate: 2}
  - id: two
    description: does nothing
    when: {status: breach}
    then: {}
""")
    _, problems = validate_pack(path)
    messages = {(p.line, p.message) for p in problems}
    assert (8, "rule one: unknown field 'staus' in a condition (did you mean 'status'?)") \
        in messages
    assert (12, "rule two: 'rnus' is not a setting of this pack (did you mean 'runs'?)") \
        in messages
    assert (14, "rule id 'two' is used twice") in messages
    assert (14, "rule two: 'then' does nothing (give record, escalate or resolve)") in messages
    result = cli("rules", "validate", path)
    assert result.exit_code == 1 and f"{path}:8: error" in result.stderr


def test_contract_settings_override_and_validation(tmp_path: Path) -> None:
    text = SUNDERLAND.read_text().replace(
        "  rules: standard\n",
        "  rules: standard\n  settings:\n    consecutive_kpi_breaches_level_2: 3\n")
    path = tmp_path / "override.yaml"
    path.write_text(text)
    schedule = load_schedule(path)
    features, _ = features_for(RETURNS, "2018-09")
    result = run_rules(features, {schedule.id: schedule})
    kpi2 = next(e for e in result.escalations if e.measure == "KPI2")
    # With level 2 only after three breaches, KPI2 reaches level 2 in September (and level
    # 3 at the same time, both needing three).
    assert [(h["period"], h["level"]) for h in kpi2.history] == [("2018-07", 1),
                                                                  ("2018-09", 3)]
    assert result.settings["sunderland-tfc"]["consecutive_kpi_breaches_level_2"] == 3
    # The settings and fact of the rule that set the level, as stored and as read back.
    row = kpi2.row()
    assert kpi2.rule == "kpi-sustained-breach" and kpi2.level == 3
    assert kpi2.settings == json.loads(row["settings"]) == {
        "consecutive_kpi_breaches_level_3": 3}
    assert kpi2.facts == json.loads(row["facts"]) == {
        "consecutive_breaches": 3.0, "id": "sunderland-tfc|KPI2|2018-09", "kind": "kpi",
        "sid": "", "status": "breach"}
    assert row["facts"] == json.dumps(kpi2.facts, sort_keys=True)

    typo = tmp_path / "typo.yaml"
    typo.write_text(text.replace("consecutive_kpi_breaches_level_2: 3",
                                 "consecutive_kpi_breach_level_2: 3"))
    _, problems = validate_schedule(typo)
    [problem] = problems
    assert "'consecutive_kpi_breach_level_2' is not a setting of rule pack 'standard'" \
        in problem.message
    assert "did you mean 'consecutive_kpi_breaches_level_2'" in problem.message
    assert problem.line == text.splitlines().index(
        "    consecutive_kpi_breaches_level_2: 3") + 1

    short = tmp_path / "short.yaml"
    short.write_text(SUNDERLAND.read_text().replace(
        "    - Chief Executive's Performance Clinic\n    - Scrutiny Committee\n", ""))
    _, problems = validate_schedule(short)
    assert [p.message for p in problems] == [
        "rule pack 'standard' escalates up to level 3, but the ladder of forums has 2"]

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(SUNDERLAND.read_text().replace("rules: standard", "rules: strict"))
    _, problems = validate_schedule(unknown)
    assert "rule pack 'strict': no rule pack at" in problems[0].message
    with pytest.raises(RulesError):
        load_pack("strict")


# --- durable-rules on a short leash ---------------------------------------------------------


def test_no_global_registry_no_threads_state_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    import durable.lang

    before = dict(durable.lang._rulesets) if hasattr(durable.lang, "_rulesets") else {}
    threads = threading.active_count()
    deleted: list[str] = []
    real_delete = escalation._delete_ruleset

    def spy(handle: Any) -> None:
        deleted.append("ruleset")
        real_delete(handle)

    monkeypatch.setattr(escalation, "_delete_ruleset", spy)
    features, schedule = features_for(RETURNS, "2018-09")
    result = run_rules(features, {schedule.id: schedule})
    assert len(result.findings) > 0
    assert threading.active_count() == threads
    after = dict(durable.lang._rulesets) if hasattr(durable.lang, "_rulesets") else {}
    assert after == before
    assert deleted == ["ruleset"]


def test_only_candidate_facts_reach_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    asserted = facts_asserted(monkeypatch)
    features, schedule = features_for([SUNDERLAND_RETURN], "2018-09")
    run_rules(features, {schedule.id: schedule})
    pack = load_pack("standard")
    facts = escalation.facts_frame(features)
    can_fire = evaluate(pack, pack.settings, facts).any(axis=1)
    assert sorted(asserted) == sorted(facts.loc[can_fire, "id"])
    assert len(asserted) < len(facts)  # met figures with nothing to say stay out
    # Facts are small: ids and the fields rules read, nothing else.
    payload = escalation.fact_payload(facts.iloc[0].to_dict(), ["status", "kind"])
    assert set(payload) <= {"id", "sid", "status", "kind"}


def test_exception_in_an_action_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rule_id: str, fired: set[tuple[str, str]],
               errors: list[BaseException]) -> Any:
        def action(c: Any) -> None:
            try:
                raise ValueError("boom in " + rule_id)
            except BaseException as exc:
                errors.append(exc)
                raise
        return action

    monkeypatch.setattr(escalation, "_action", broken)
    features, schedule = features_for([SUNDERLAND_RETURN], "2018-09")
    with pytest.raises(RuleEngineError) as info:
        run_rules(features, {schedule.id: schedule})
    assert isinstance(info.value.__cause__, ValueError)


def test_identity_collision_is_recovered(monkeypatch: pytest.MonkeyPatch) -> None:
    from durable import engine

    features, schedule = features_for(RETURNS, "2018-09")
    expected = run_rules(features, {schedule.id: schedule})
    real = engine.Host.assert_fact
    refused: list[str] = []

    def colliding(self: Any, name: str, fact: dict[str, Any], complete: Any = None) -> Any:
        # The first assertion of every third fact is taken for one already seen.
        if "~" not in fact["sid"] and len(refused) < 5 and hash(fact["id"]) % 3 == 0:
            refused.append(fact["id"])
            raise engine.MessageObservedException(fact)
        return real(self, name, fact, complete)

    monkeypatch.setattr(engine.Host, "assert_fact", colliding)
    recovered = run_rules(features, {schedule.id: schedule})
    assert refused
    assert recovered.findings.equals(expected.findings)
    assert [e.row() for e in recovered.escalations] == [e.row() for e in expected.escalations]


def test_persistent_collision_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from durable import engine

    def always(self: Any, name: str, fact: dict[str, Any], complete: Any = None) -> Any:
        raise engine.MessageObservedException(fact)

    monkeypatch.setattr(engine.Host, "assert_fact", always)
    features, schedule = features_for([SUNDERLAND_RETURN], "2018-09")
    with pytest.raises(RuleEngineError, match="keeps refusing"):
        run_rules(features, {schedule.id: schedule})


def test_engine_disagreement_is_never_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    features, schedule = features_for([SUNDERLAND_RETURN], "2018-09")
    real = escalation._fire

    def lossy(*args: Any) -> set[tuple[str, str]]:
        fired = real(*args)
        fired.discard(sorted(fired)[0])
        return fired

    monkeypatch.setattr(escalation, "_fire", lossy)
    with pytest.raises(RuleEngineError, match="missing"):
        run_rules(features, {schedule.id: schedule})


def test_pack_refuses_values_a_fact_never_has(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("""\
pack: typo
title: Typo
rules:
  - id: one
    description: a status that does not exist
    when: {status: breached, kind: KPI}
    then: {escalate: 1}
""")
    _, problems = validate_pack(path)
    messages = [p.message for p in problems]
    assert any("status is never 'breached'" in m and "did you mean 'breach'" in m
               for m in messages)
    assert any("kind is never 'KPI'" in m for m in messages)
    assert {p.line for p in problems} == {6}


def test_explain_refuses_a_month_never_checked(cli: Callable[..., Result]) -> None:
    run_months(cli, MONTHS)
    for month in ("2018-12", "2017-05"):
        result = cli("explain", "-c", "sunderland-tfc", "-m", "KPI2", "-p", month)
        assert result.exit_code == 1
        assert f"has not been checked for {month}" in result.stderr
        assert "Traceback" not in result.stderr
    kpi6 = cli("explain", "-c", "sunderland-tfc", "-m", "KPI6", "-p", "2018-09").stdout
    assert "recovered fired (its condition holds, but there was no open escalation to " \
        "resolve)" in kpi6


def test_a_comparison_figure_does_not_make_other_measures_missing(
        cli: Callable[..., Result]) -> None:
    from tests.conftest import DARLINGTON, DARLINGTON_RETURN

    doc = cli("check", "--contract", DARLINGTON, "--returns", DARLINGTON_RETURN, "--period",
              "2017-09", "--format", "json").json()
    # The return carries June figures for CS6 and CS8 only (the report's comparisons).
    assert {(e["measure"], e["opened"]) for e in doc["escalations"]} == {
        ("CS6", "2017-06"), ("CS7", "2017-09"), ("CS9", "2017-09")}
    assert [b["measure"] for b in doc["breaches"] if b["type"] == "missing_data"] == ["CS9"]


# --- the batch path, the evaluator and the pack cache ---------------------------------------


def test_batch_path_equals_durable_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the batch threshold the evaluated conditions are what fired, without
    durable-rules; the records are exactly those durable-rules makes."""
    features, schedule = features_for(RETURNS, "2018-09")
    schedules = {schedule.id: schedule}
    monkeypatch.setattr(escalation, "BATCH_THRESHOLD", 10**9)
    durable = run_rules(features, schedules)

    def refused(*args: Any) -> set[tuple[str, str]]:
        raise AssertionError("durable-rules was asked on the batch path")

    monkeypatch.setattr(escalation, "BATCH_THRESHOLD", 0)
    monkeypatch.setattr(escalation, "_fire", refused)
    batch = run_rules(features, schedules)
    assert len(durable.fired) > 0
    pd.testing.assert_frame_equal(batch.fired, durable.fired)
    pd.testing.assert_frame_equal(batch.findings, durable.findings)
    assert [e.row() for e in batch.escalations] == [e.row() for e in durable.escalations]


def test_small_runs_go_through_durable_rules() -> None:
    """The monthly check of one contract stays well under the threshold."""
    features, schedule = features_for(RETURNS, "2018-09")
    facts = escalation.facts_frame(features)
    assert len(facts) < escalation.BATCH_THRESHOLD


def _condition_by_hand(pack: Any, facts: list[dict[str, Any]]) -> list[list[bool]]:
    from compliance.rulepack import explain_terms

    return [[all(ok for _, ok in explain_terms(rule, pack.settings, fact))
             for rule in pack.rules] for fact in facts]


def test_evaluate_agrees_with_each_term_read_by_hand() -> None:
    """The column-wise evaluator against ``explain_terms``, a fact at a time, over facts with
    every value of every field, absent values (None and NaN) and numbers on the thresholds."""
    import random

    from compliance.rulepack import FIELDS, VALUES

    pack = load_pack("standard")
    rng = random.Random(7)
    numbers = [None, float("nan"), 0.0, 0.05, 0.1, 0.11, 1.0, 2.0, 3.0, 4.9, 5.0, 5.1, -1.0]
    facts = []
    for _ in range(3000):
        fact: dict[str, Any] = {}
        for name, kind in FIELDS.items():
            if kind is float:
                fact[name] = rng.choice(numbers)
            else:
                fact[name] = rng.choice([None, *sorted(VALUES.get(name, {"x"}))])
        facts.append(fact)
    frame = pd.DataFrame(facts)
    got = evaluate(pack, pack.settings, frame)
    assert list(got.columns) == [r.id for r in pack.rules]
    assert got.to_numpy().tolist() == _condition_by_hand(pack, facts)
    # The same with whole-number columns, and with a field absent from every fact.
    counts = frame.drop(columns=["variation"]).assign(
        good_run=[i % 4 for i in range(len(frame))])
    hand = [{**f, "variation": None, "good_run": float(i % 4)} for i, f in enumerate(facts)]
    assert evaluate(pack, pack.settings, counts).to_numpy().tolist() == \
        _condition_by_hand(pack, hand)


def test_pack_is_read_once_and_again_when_it_changes(tmp_path: Path) -> None:
    from compliance import rulepack

    path = tmp_path / "mine.yaml"
    text = (ROOT / "rules" / "standard.yaml").read_text()
    path.write_text(text)
    first = load_pack(str(path))
    assert load_pack(str(path)) is first
    assert first == validate_pack(path)[0]

    # Same size and, possibly, the same modification time: the content decides.
    path.write_text(text.replace("good_periods_to_resolve: 2", "good_periods_to_resolve: 3"))
    changed = load_pack(str(path))
    assert changed.settings["good_periods_to_resolve"] == 3
    assert first.settings["good_periods_to_resolve"] == 2

    # A pack that became invalid is refused with the located messages of validate_pack.
    path.write_text(text.replace("when: {status: breach, kind: kpi}\n",
                                 "when: {staus: breach, kind: kpi}\n", 1))
    with pytest.raises(RulesError) as info:
        load_pack(str(path))
    assert info.value.problems == validate_pack(path)[1]
    assert [p.line for p in info.value.problems] == [
        text.splitlines().index("  - id: kpi-breach") + 3]

    path.write_text(text)
    assert load_pack(str(path)) == first
    assert rulepack._PACKS  # noqa: SLF001 - the cache itself


@pytest.mark.parametrize("document", [
    "settings: {a: 1e3, b: .5, c: 0o17, d: 0x1F, e: -2, f: 1_000, g: +3.5, h: .inf}",
    "when: {status: 'breach', kind: \"kpi\", unit: percent}",
    "values: [yes, no, on, off, true, false, ~, null, 2017-04-01, 2017-04-01 10:00:00]",
    "text: >\n  folded\n  lines\nliteral: |\n  kept\n  lines\n",
    "unicode: \"caf\\u00e9 \u2713\"\nempty: ''\nnested: {a: [1, [2, {b: c}]]}",
])
def test_quick_read_of_a_pack_equals_the_located_read(document: str, tmp_path: Path) -> None:
    """The safe loader used for a clean pack or schedule (its C parser where installed)
    reads plain YAML as the round-trip loader does."""
    from ruamel.yaml import YAML

    from compliance.yamldoc import _plain, read_plain, read_yaml

    path = tmp_path / "doc.yaml"
    path.write_text(document, encoding="utf-8")
    loaded = read_yaml(path, "rule pack")
    assert not isinstance(loaded, list)
    # The C parser refuses some YAML 1.2 the round-trip loader reads (a timestamp with a
    # colon inside a flow sequence): such a text is left to the located read.
    assert read_plain(document.encode()) in (None, loaded[1])
    loader = YAML(typ="safe", pure=True)
    root = loader.compose(document)
    assert plain_nodes(root)
    assert _plain(loader.constructor.construct_document(root)) == loaded[1]


def test_quick_read_of_every_bundled_document_equals_the_located_read() -> None:
    from compliance.yamldoc import read_plain, read_yaml

    paths = sorted([*ROOT.glob("contracts/*.yaml"), *ROOT.glob("rules/*.yaml"),
                    *ROOT.glob("tests/data/*.yaml"), *EXAMPLES.glob("**/*.yaml")])
    assert len(paths) >= 4
    quick = 0
    for path in paths:
        loaded = read_yaml(path, "document")
        assert not isinstance(loaded, list), path
        plain = read_plain(path.read_bytes())
        assert plain in (None, loaded[1]), path
        quick += plain is not None
    assert quick >= len(paths) - 1  # only a file with repeated keys is left to the other


@pytest.mark.parametrize("document", [
    "a: &x 1\nb: *x\n", "a: 1\na: 2\n", "a: !custom 1\n", "? [1, 2]\n: x\n", "1: x\n",
])
def test_quick_read_leaves_anything_unusual_to_the_located_read(document: str) -> None:
    from ruamel.yaml import YAML

    from compliance.yamldoc import read_plain

    assert not plain_nodes(YAML(typ="safe", pure=True).compose(document))
    assert read_plain(document.encode()) is None


@pytest.mark.parametrize("document", [
    "%YAML 1.1\n---\na: yes\n", "a: line\u2028separator\n", "a: next\x85line\n",
])
def test_quick_read_leaves_what_yaml_1_1_reads_otherwise_to_the_located_read(
        document: str) -> None:
    from compliance.yamldoc import read_plain

    assert read_plain(document.encode()) is None


def test_a_validated_pack_is_kept_for_later_commands(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from compliance import rulepack

    monkeypatch.setenv("COMPLIANCE_CACHE_DIR", str(tmp_path / "cache"))
    pack = tmp_path / "mine.yaml"
    pack.write_text((ROOT / "rules" / "standard.yaml").read_text(encoding="utf-8"),
                    encoding="utf-8")
    first = rulepack.load_pack(str(pack))
    assert len(list((tmp_path / "cache" / "packs").glob("*.json"))) == 1

    # A later command (a fresh process: nothing in memory) reads the kept pack, not the YAML.
    rulepack._PACKS.clear()

    def unread(*_: Any) -> None:
        raise AssertionError("the pack was parsed again")

    monkeypatch.setattr(rulepack, "_quick_pack", unread)
    monkeypatch.setattr(rulepack, "validate_pack", unread)
    assert rulepack.load_pack(str(pack)) == first
    monkeypatch.undo()
    monkeypatch.setenv("COMPLIANCE_CACHE_DIR", str(tmp_path / "cache"))

    # A changed pack is read afresh and kept under another name.
    rulepack._PACKS.clear()
    text = pack.read_text(encoding="utf-8")
    changed = text.replace("good_periods_to_resolve: 2", "good_periods_to_resolve: 4")
    assert changed != text
    pack.write_text(changed, encoding="utf-8")
    second = rulepack.load_pack(str(pack))
    assert second.settings["good_periods_to_resolve"] == 4
    assert len(list((tmp_path / "cache" / "packs").glob("*.json"))) == 2

    # A damaged entry is ignored (and replaced); an invalid pack is never kept.
    for kept in (tmp_path / "cache" / "packs").glob("*.json"):
        kept.write_text("{not json", encoding="utf-8")
    rulepack._PACKS.clear()
    assert rulepack.load_pack(str(pack)) == second
    pack.write_text(changed.replace("good_periods_to_resolve: 4",
                                    "good_periods_to_resolve: nope"), encoding="utf-8")
    rulepack._PACKS.clear()
    with pytest.raises(rulepack.RulesError):
        rulepack.load_pack(str(pack))
    assert len(list((tmp_path / "cache" / "packs").glob("*.json"))) == 2


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from compliance import rulepack

    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("COMPLIANCE_CACHE_DIR", str(blocker / "cache"))
    rulepack._PACKS.clear()
    assert rulepack.load_pack("standard").pack == "standard"


@pytest.mark.parametrize("numbers_as_objects", [False, True])
def test_stored_facts_are_the_json_of_each_fact(numbers_as_objects: bool) -> None:
    """The facts a record keeps, written a field at a time over many facts, are each fact's
    ``json.dumps(fact_payload(...), sort_keys=True)``, edge values included."""
    values = [1.5, -0.0, 0.0, float("inf"), float("-inf"), float("nan"), 1e-300, 2.0, 1.5]
    n = len(values)
    features = pd.DataFrame({
        "contract": ['hub-"é"', "hub-2", "hub-2", "h\\3", "hub-2", "hub-2", "hub-2", "x", "x"],
        "measure": ["KPI1", "SM1.1", "KPI1", "KPI☃", "KPI2", "KPI3", "KPI4", "K", "K"],
        "period": ["2024-01"] * n, "figure_period": ["2024-01"] * n,
        "value": pd.Series(values, dtype=object if numbers_as_objects else float),
        "compared_with": [None] * n,
        "status": ["breach", "met", "within_tolerance", "breach", "not_reported", "breach",
                   "met", "breach", "not_due"],
        "direction": ["declining", None, "improving", float("nan"), "declining", None,
                      "unchanged", "declining", None],
        "days_late": [0, 3, 12, -1, 0, 7, 3, 0, 1],
        "consecutive_breaches": [1, 0, 0, 2, 0, 1, 0, 3, 0],
    })
    if numbers_as_objects:
        features.loc[2, "value"] = None
    used = ["value", "direction", "days_late", "status", "consecutive_breaches", "kind"]
    facts = escalation._Facts(features)
    facts.add(used)
    positions = np.arange(len(facts))
    written = escalation._facts_json(facts, positions, facts.ids(positions), used)
    expected = [json.dumps(escalation.fact_payload(facts.row(p, used), used), sort_keys=True)
                for p in positions.tolist()]
    assert len(written) == n - 1  # a period not due is no fact
    assert written == expected
    assert '"value": -0.0' in written[1] and '"value": Infinity' in written[3]
    # Some of the facts, in another order, are written as they are alone.
    some = np.array([5, 0, 3])
    assert escalation._facts_json(facts, some, facts.ids(some), used) == [
        expected[5], expected[0], expected[3]]


def test_fact_ids_are_made_once_as_each_fact_id_is_written() -> None:
    """``_Facts.ids`` gives ``_fact_id`` of each fact, however the facts are picked; and
    so for a fact missing its measure (each id then written whole)."""
    rows = [("c1", "KPI1", "2024-01"), ("c1", "KPI1.1", "2024-01"), ("c2", "KPI1", "2024-02"),
            ("c1", "KPI1", "2024-02"), ("c|2", "m", "2024-01"), ("c2", "KPI1", "2024-01")]
    for measures in ([m for _, m, _ in rows], [None, *[m for _, m, _ in rows[1:]]]):
        features = pd.DataFrame({
            "contract": [c for c, _, _ in rows], "measure": measures,
            "period": [p for _, _, p in rows], "status": ["breach"] * len(rows)})
        facts = escalation._Facts(features)
        expected = [escalation._fact_id(c, m, p) for (c, _, p), m
                    in zip(rows, measures, strict=True)]
        assert facts.ids(np.arange(len(rows))) == expected
        some = np.array([4, 0, 4, 2])
        assert facts.ids(some) == [expected[k] for k in some.tolist()]
        assert facts.ids(np.array([], dtype=np.int64)) == []


def test_a_history_is_written_as_json_dumps_writes_it() -> None:
    """``history_json`` gives exactly ``json.dumps``' text, awkward texts included, and
    falls back to it for a step of another shape."""
    import random

    awkward = ["", "plain", 'quote " and \\ back', "tab\tnew\nline\x00\x1f", "Café £5 — ✓",
               "emoji \U0001F600", "\u2028\u2029", "{, : ]", "x" * 300]
    chooser = random.Random(7)
    histories: list[list[dict[str, object]]] = [[]]
    for _ in range(300):
        histories.append([{"period": chooser.choice(["2024-01", "2024-12", "x\"y"]),
                           "level": chooser.choice([1, 2, 3, 4, 0, -1, 10**20]),
                           "rule": chooser.choice(awkward),
                           "description": chooser.choice(awkward)}
                          for _ in range(chooser.randint(1, 4))])
    histories += [
        [{"period": "2024-01", "level": 1, "rule": "r", "description": "d"}],
        [{"level": 1, "period": "2024-01", "rule": "r", "description": "d"}],  # other order
        [{"period": "2024-01", "level": True, "rule": "r", "description": "d"}],
        [{"period": "2024-01", "level": 1.0, "rule": "r", "description": "d"}],
        [{"period": "2024-01", "level": 1, "rule": None, "description": "d"}],
        [{"period": "2024-01", "level": 1, "rule": "r", "description": "d", "extra": 1}],
        [{"period": "2024-01", "level": 1, "rule": "r"}],
    ]
    for history in histories:
        assert escalation.history_json(history) == json.dumps(history), history
    # Histories written one after another keep each step's text for the next: a step of
    # the same values but another type (True or 1.0 for 1) is still written as itself.
    written: dict[tuple[object, ...], str] = {}
    for history in [*histories, *histories[::-1]]:
        assert escalation.history_json(history, written) == json.dumps(history), history
    assert written


def test_escalation_columns_are_the_rows_column_by_column() -> None:
    records = [escalation.EscalationRecord(
        contract=f"c{k % 3}", measure=f"m{k}", opened="2024-01", level=1 + k % 3,
        forum=f"forum {k}", rule=f"r{k}", description=f"d{k}", last_period="2024-02",
        resolved="2024-03" if k % 2 else None, resolved_rule="recovered" if k % 2 else None,
        silenced_until="2024-06" if k == 4 else None,
        silence_reason="agreed" if k == 4 else None,
        history=[{"period": "2024-01", "level": 1, "rule": f"r{k}", "description": "d"}],
        settings_text=f'{{"n": {k}}}', facts_text=f'{{"id": "{k}"}}') for k in range(6)]
    columns = escalation.escalation_columns(records)
    assert tuple(columns) == escalation.ESCALATION_COLUMNS == tuple(records[0].row())
    assert [dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)] == [e.row() for e in records]
    assert {e.status for e in records} == {"open", "resolved", "silenced"}


def test_an_escalation_record_is_stored_with_its_history_as_text() -> None:
    """A record's row holds its history as JSON text (the text the store keeps), read back
    as it was; a record pickles whole."""
    import pickle

    history = [{"period": "2024-01", "level": 1, "rule": "esc-1", "description": "Café £5 \"x\""},
               {"period": "2024-02", "level": 2, "rule": "esc-2", "description": "up"}]
    record = escalation.EscalationRecord(
        contract="c", measure="m", opened="2024-01", level=2, forum="DMT", rule="esc-2",
        description="up", last_period="2024-02", history=[dict(h) for h in history],
        settings_text='{"n": 3}', facts_text='{"id": "c|m|2024-02"}')
    stored = record.row()
    assert stored["history"] == json.dumps(history)
    assert json.loads(stored["history"]) == history
    copy = pickle.loads(pickle.dumps(record))
    assert copy == record and copy.row() == stored and copy.status == "open"
    copy.history.append({"period": "2024-03", "level": 3, "rule": "esc-3",
                         "description": "higher"})
    assert json.loads(copy.row()["history"])[-1]["level"] == 3


def test_features_of_a_history_in_any_order_are_those_of_it_in_order() -> None:
    """``add_features`` lays its rows out by contract, period and the schedule's order of
    measures: a history already so laid out (as a check's is) is taken as it is, and one in
    any other order comes out the same."""
    schedule = load_schedule(SUNDERLAND)
    figures = pd.concat([parse_return(p, {schedule.id: schedule}) for p in RETURNS],
                        ignore_index=True)
    history = assess(measure_table([schedule]), figures, ["2018-09"], history=True)
    in_order = add_features(history)
    assert len(in_order) == len(history) > 50
    for seed in (1, 2):
        shuffled = history.sample(frac=1, random_state=seed).reset_index(drop=True)
        pd.testing.assert_frame_equal(add_features(shuffled), in_order)
    assert in_order["consecutive_breaches"].max() >= 2


@pytest.mark.parametrize("bar", ["", "|"])
def test_facts_are_ranked_as_their_ids_sort(bar: str) -> None:
    """The rules' records are put in order of fact id by numbers ranked part by part (the
    contract and measure, then the period); ids with a "|" of their own are sorted whole."""
    contracts = ["a", "a-b", "ab", "b", f"a{bar}z"]
    measures = ["M1", "M1.1", "M10", "M2", f"K{bar}"]
    periods = ["2024-01", "2023-12", "2024-10"]
    rows = [(c, m, p) for c in contracts for m in measures for p in periods]
    np.random.default_rng(3).shuffle(rows)
    features = pd.DataFrame(rows, columns=["contract", "measure", "period"])
    features["status"] = "met"
    facts = escalation._Facts(features)
    ids = facts.all_ids()
    assert ids.tolist() == [f"{c}|{m}|{p}" for c, m, p in rows]
    some = np.array([0, 5, 7, 11, 20, 33, 41, 50, 59, 62, 70], dtype=np.int64)
    keys = facts.id_keys(some)
    assert [ids[k] for k in some[np.argsort(keys)]] == sorted(ids[some].tolist())
    everything = np.arange(len(rows))
    assert [ids[k] for k in np.argsort(facts.id_keys(everything))] == sorted(ids.tolist())
