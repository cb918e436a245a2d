"""A check of many contracts runs a batch of contracts at a time, with the same result as one
pass over them all: the same assessments, check runs, evidence, records and output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import compliance.checking as checking
from compliance.checking import batches
from compliance.store import Store, Transaction
from tests.conftest import StoreRef, bench_generator, connect
from tests.test_store import cli_on

# The tables a check writes, each in a stable order; the time a check ran is left out.
TABLES = {
    "check_run": "SELECT id, contract_id, period, schedule_version, assessments, run_by "
                 "FROM check_run ORDER BY id",
    "assessment": "SELECT * FROM assessment ORDER BY contract_id, period, measure_id",
    # Every set of assessments, the replaced ones too, as stored.
    "assessment_set": "SELECT * FROM assessment_set ORDER BY check_run_id",
    "finding": "SELECT * FROM finding ORDER BY id",
    "escalation": "SELECT * FROM escalation ORDER BY contract_id, measure_id, opened",
}


def _schedules(sizes: dict[str, int]) -> dict[str, Any]:
    return {cid: SimpleNamespace(measures=[None] * n) for cid, n in sizes.items()}


def test_batches_are_runs_of_the_contracts_in_order_of_about_the_size_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", 100)
    sizes = {f"c{i:02d}": n for i, n in enumerate([3, 5, 1, 4, 2, 6, 3, 3, 5, 1, 2, 4])}
    schedules = _schedules(sizes)
    first = dict.fromkeys(sizes, "2024-01")
    through = dict.fromkeys(sizes, "2024-10")  # 10 months: 10 measure-periods a measure
    runs = batches(schedules, first, through)
    assert [c for run in runs for c in run] == list(sizes)
    # 390 measure-periods: an even share of four runs is 97.5, and no run holds more.
    weights = [sum(sizes[c] * 10 for c in run) for run in runs]
    assert weights == [90, 60, 90, 90, 60]
    # The whole in one run when it fits; a contract is never split.
    monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", 1000)
    assert batches(schedules, first, through) == [list(sizes)]
    monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", 1)
    assert batches(schedules, first, through) == [[c] for c in sizes]
    assert batches({}, {}, {}) == [[]]
    # In order of id, whatever order the schedules come in.
    monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", 100)
    backwards = dict(reversed(list(schedules.items())))
    assert batches(backwards, first, through) == runs


def test_batches_weigh_each_contract_by_the_months_it_spans(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", 200)
    schedules = _schedules({"long": 10, "a": 10, "b": 10, "c": 10})
    first = {"long": "2022-01", "a": "2024-12", "b": "2024-10", "c": "2024-12"}
    through = dict.fromkeys(schedules, "2024-12")
    # 360 measure-periods for "long" alone, 10, 30 and 10 for the others: 410 in all, so
    # runs of at most 136.7, in order of id.
    assert batches(schedules, first, through) == [["a", "b", "c"], ["long"]]


def test_batches_weigh_each_contract_from_its_first_figure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A first check of one month assesses every month before it that has figures: the
    batches weigh the contract by those months too."""
    monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", 250)
    schedules = _schedules(dict.fromkeys(["a", "b", "c", "d"], 10))
    first = dict.fromkeys(schedules, "2024-12")
    through = dict.fromkeys(schedules, "2024-12")
    tx = SimpleNamespace(first_figure_periods=lambda ids: {"a": "2023-01", "b": "2023-01",
                                                           "d": "2025-06"})
    starts = checking._history_from(tx, first)  # type: ignore[arg-type]
    # A figure before the month checked moves the start back; none, or only later, does not.
    assert starts == {"a": "2023-01", "b": "2023-01", "c": "2024-12", "d": "2024-12"}
    # 240 measure-months each for a and b, 10 each for c and d: runs of at most 250.
    assert batches(schedules, starts, through) == [["a"], ["b", "c"], ["d"]]
    assert batches(schedules, first, through) == [["a", "b", "c", "d"]]


def _store_with_returns(make_store: Callable[[], StoreRef], data: Path) -> tuple[StoreRef, Any]:
    ref = make_store()
    run = cli_on(ref.url)
    assert run("init").exit_code == 0
    loaded = run("contract", "load", *sorted((data / "contracts").glob("*.yaml")))
    assert loaded.exit_code == 0, loaded.stderr
    submitted = run("submit", data / "returns.csv")
    assert submitted.exit_code == 0, submitted.stderr
    return ref, run


def _rows(ref: StoreRef) -> dict[str, list[tuple[Any, ...]]]:
    with connect(ref) as conn:
        return {table: conn.execute(query).fetchall() for table, query in TABLES.items()}


def _outputs(ref: StoreRef, run: Any) -> dict[str, Any]:
    """What a user sees and the store keeps after a first check of the last month (whose
    history goes back to the first figures), a check of every month, a second check of some
    of them, and a re-derivation of every contract's records."""
    seen: dict[str, Any] = {}
    for name, args in (("latest", ("--period", "2024-12")),
                       ("all", ("--from", "2022-12", "--to", "2024-12")),
                       ("again", ("--from", "2024-06", "--to", "2024-09"))):
        checked = run("check", *args, "--format", "json")
        assert checked.exit_code == 0, checked.stderr
        seen[name] = checked.json()
    seen["rows"] = _rows(ref)
    store = Store(ref.url)
    try:
        with store.transaction("tester") as tx:
            # Records gone, to be made again from the figures.
            for table in ("escalation_set", "finding_set"):
                tx.session.connection().exec_driver_sql(f"DELETE FROM {table}")
            seen["rederived"] = checking.rederive(tx, tx.schedules())
    finally:
        store.dispose()
    seen["rows after rederive"] = _rows(ref)
    escalations = run("escalations", "--format", "json")
    assert escalations.exit_code == 0, escalations.stderr
    seen["escalations"] = escalations.json()
    return seen


class _Answers:
    """Counts the batches a check's helper processes judge (``count``), and the helpers that
    read batches from the store themselves (``reads``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from compliance.helper import Helper

        self.count = 0
        self.reads = 0
        real = Helper.receive

        def receive(helper: Helper) -> Any:
            answer = real(helper)
            if isinstance(answer, float):  # the seconds a helper took to read its batches
                self.reads += 1
            else:
                self.count += 1
            return answer

        monkeypatch.setattr(Helper, "receive", receive)


@pytest.mark.parametrize(("helper", "limit", "runs"), [
    ("0", 2500, 3), ("1", 2500, 3), ("1", 1000, 6)], ids=["here", "helpers", "six batches"])
def test_a_check_in_batches_is_a_check_of_all_at_once(
        make_store: Callable[[], StoreRef], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, helper: str, limit: int, runs: int) -> None:
    """In batches, each judged in the checking process or (but the first) in a helper
    process while the last is written: the same as one pass. Of six batches, the five after
    the first do not share out evenly between two helpers: the last is judged here too."""
    data = tmp_path / "data"
    bench_generator().generate(6000, data, seed=3)  # 6 contracts, 25 months
    whole, whole_run = _store_with_returns(make_store, data)
    parts, parts_run = _store_with_returns(make_store, data)

    stages: list[tuple[str, int, int]] = []
    helped: list[int] = []
    real_run_check = checking.run_check

    def spied(*args: Any, **kwargs: Any) -> Any:
        kwargs["progress"] = lambda *call: stages.append(call)
        result = real_run_check(*args, **kwargs)
        helped.append(result.helped)
        return result

    monkeypatch.setenv(checking.HELPER_VARIABLE, helper)
    answers = _Answers(monkeypatch)
    behind: list[bool] = []
    real_write_behind = Transaction.write_behind

    def write_behind(tx: Transaction) -> bool:
        behind.append(real_write_behind(tx))
        return behind[-1]

    monkeypatch.setattr(Transaction, "write_behind", write_behind)
    expected = _outputs(whole, whole_run)
    assert answers.count == 0 and behind == []  # one batch: no helper
    # About two contracts a batch, or one.
    monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", limit)
    monkeypatch.setattr(checking, "run_check", spied)
    got = _outputs(parts, parts_run)
    # Three checks and a re-derivation (never in a helper), of three or six batches each:
    # the helpers (two each time) read their batches from the store themselves, and judge
    # all but the first (and, of six, the last).
    assert answers.count == {("0", 3): 0, ("1", 3): 3 * 2, ("1", 6): 3 * 4}[helper, runs]
    assert answers.reads == (6 if helper == "1" else 0)
    assert helped == [answers.count // 3] * 3  # the check's own account of it
    # With helpers, each batch's writes but the last went to the disk while they worked
    # (the commit takes the last); on PostgreSQL there is nothing to do.
    sqlite = whole.url.startswith("sqlite")
    assert behind == ([sqlite] * 3 * (runs - 1) if helper == "1" else [])

    for name in ("latest", "all", "again", "rederived", "escalations"):
        assert got[name] == expected[name], name
    for name in ("rows", "rows after rederive"):
        for table in TABLES:
            assert got[name][table] == expected[name][table], (name, table)
    assert len(expected["all"]) == 6 * 25 and expected["rows"]["finding"]
    assert expected["rows"]["escalation"]
    # The checks again replaced sets, which stay.
    assert any(row[3] is not None for row in expected["rows"]["assessment_set"])
    assert json.dumps(got["all"]) == json.dumps(expected["all"])

    # The first check ran in batches, each reporting its stages; progress only rises.
    first = stages[:stages.index(("done", stages[-1][2], stages[-1][2])) + 1]
    assert [s for s, _, _ in first].count("assessing and running the rules") == runs
    done = [d for _, d, _ in first]
    assert done == sorted(done) and len({t for _, _, t in first}) == 1
    assert done[-1] == first[-1][2] == 3 * runs


@pytest.mark.parametrize("helper", ["0", "1"], ids=["here", "helper"])
def test_a_batch_of_contracts_without_figures_checks_as_in_one_pass(
        make_store: Callable[[], StoreRef], monkeypatch: pytest.MonkeyPatch,
        helper: str) -> None:
    """The seed contracts, one with its return and one with none yet: a batch of each gives
    what one pass over both gives."""
    from tests.conftest import DARLINGTON, SUNDERLAND, SUNDERLAND_RETURN

    def outputs() -> tuple[Any, dict[str, list[tuple[Any, ...]]]]:
        ref = make_store()
        run = cli_on(ref.url)
        assert run("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
        assert run("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
        checked = run("check", "--from", "2018-04", "--to", "2018-09", "--format", "json")
        assert checked.exit_code == 0, checked.stderr
        return checked.json(), _rows(ref)

    monkeypatch.setenv(checking.HELPER_VARIABLE, helper)
    answers = _Answers(monkeypatch)
    whole = outputs()
    monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", 1)  # a batch for each contract
    assert outputs() == whole
    assert answers.count == (1 if helper == "1" else 0)
    docs, rows = whole
    assert {d["contract"] for d in docs} == {"darlington-childrens", "sunderland-tfc"}
    assert all(a["status"] == "not_reported" for d in docs
               if d["contract"] == "darlington-childrens" for a in d["assessments"]
               if a["status"] != "not_due")
    assert rows["finding"]


@pytest.mark.parametrize(("setting", "cores", "runs", "reading", "helpers"), [
    (None, 2, 1, True, 0), (None, 2, 2, True, 0), (None, 2, 3, True, 2),
    (None, 2, 3, False, 1), (None, 1, 3, True, 0), ("0", 2, 5, True, 0),
    ("1", 1, 2, True, 1), ("1", 1, 2, False, 1), ("1", 2, 1, True, 0), (" 1 ", 2, 2, False, 1),
    ("1", 2, 3, True, 2),
])
def test_helper_processes_are_used_when_there_are_enough_batches_and_processors(
        monkeypatch: pytest.MonkeyPatch, setting: str | None, cores: int, runs: int,
        reading: bool, helpers: int) -> None:
    """One helper judges what this process reads; two read for themselves when they can, but
    never more than there are batches after the first."""
    import compliance.helper

    class Started:
        def __init__(self, target: Any, preload: tuple[str, ...]) -> None:
            assert target is checking._work
            assert "compliance.checking" in preload

        def __enter__(self) -> Started:
            return self

        def __exit__(self, *_: object) -> None:
            pass

    monkeypatch.setattr(compliance.helper, "Helper", Started)
    monkeypatch.setattr(compliance.helper, "cores", lambda: cores)
    if setting is None:
        monkeypatch.delenv(checking.HELPER_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(checking.HELPER_VARIABLE, setting)
    with checking._helpers(runs, reading) as started:
        assert len(started) == helpers
        assert all(isinstance(helper, Started) for helper in started)


def test_helpers_start_before_the_schedules_are_read_when_the_check_is_sure_to_use_them(
        cli: Callable[..., Any], db_path: StoreRef, monkeypatch: pytest.MonkeyPatch) -> None:
    """``start_helpers`` starts the fork server only when the measures in force times the
    periods checked already make three batches (with a processor to spare); the command line
    calls it before it reads the schedules."""
    import compliance.helper
    from compliance.schedule import load_schedule
    from tests.conftest import DARLINGTON, SUNDERLAND

    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    sunderland = len(load_schedule(SUNDERLAND).measures)
    darlington = len(load_schedule(DARLINGTON).measures)
    events: list[str] = []
    monkeypatch.setattr(compliance.helper, "warm", lambda preload: events.append("warm"))
    monkeypatch.setattr(compliance.helper, "cores", lambda: 2)
    monkeypatch.delenv(checking.HELPER_VARIABLE, raising=False)
    periods = ["2018-07", "2018-08", "2018-09"]
    both = 3 * (sunderland + darlington)
    store = Store(db_path.url)
    try:
        with store.transaction("tester") as tx:
            assert tx.measure_count() == sunderland + darlington
            assert tx.measure_count(["sunderland-tfc"]) == sunderland
            assert tx.measure_count(["no-such"]) == 0
            # Two batches' worth at most: no helpers, nothing started.
            monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", -(-both // 2))
            assert not checking.start_helpers(tx, None, periods) and events == []
            # Three batches' worth: started.
            monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", both // 3)
            assert checking.start_helpers(tx, None, periods) and events == ["warm"]
            assert not checking.start_helpers(tx, ["sunderland-tfc"], periods)
            monkeypatch.setenv(checking.HELPER_VARIABLE, "0")
            assert not checking.start_helpers(tx, None, periods)
            monkeypatch.delenv(checking.HELPER_VARIABLE)
            monkeypatch.setattr(compliance.helper, "cores", lambda: 1)
            assert not checking.start_helpers(tx, None, periods) and events == ["warm"]
    finally:
        store.dispose()

    # The command line starts them before it reads the schedules (and the check runs as
    # usual, here without helpers).
    events.clear()
    monkeypatch.setattr(compliance.helper, "cores", lambda: 2)
    monkeypatch.setenv(checking.HELPER_VARIABLE, "0")
    read = Transaction.schedules

    def schedules(self: Transaction, *args: Any, **kwargs: Any) -> Any:
        events.append("schedules")
        return read(self, *args, **kwargs)

    monkeypatch.setattr(Transaction, "schedules", schedules)
    monkeypatch.setattr(checking, "start_helpers", lambda tx, contracts, periods: bool(
        events.append(f"start {contracts} {len(periods)}")))
    assert cli("check", "--from", "2018-07", "--to", "2018-09").exit_code == 0
    assert events[:2] == ["start None 3", "schedules"]


def test_a_check_with_its_returns_judges_in_the_helper_what_it_has_just_submitted(
        make_store: Callable[[], StoreRef], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`check --returns` submits and checks in one transaction: the figures are not yet
    committed when the batches are read, and the helper must judge them all the same."""
    data = tmp_path / "data"
    bench_generator().generate(6000, data, seed=5)

    def checked() -> tuple[Any, dict[str, list[tuple[Any, ...]]]]:
        ref = make_store()
        run = cli_on(ref.url)
        assert run("contract", "load", *sorted((data / "contracts").glob("*.yaml"))).exit_code \
            == 0
        result = run("check", "--from", "2022-12", "--to", "2024-12", "--returns",
                     data / "returns.csv", "--format", "json")
        assert result.exit_code == 0, result.stderr
        return result.json(), _rows(ref)

    whole = checked()
    monkeypatch.setenv(checking.HELPER_VARIABLE, "1")
    monkeypatch.setattr(checking, "_BATCH_MEASURE_PERIODS", 2500)
    answers = _Answers(monkeypatch)
    assert checked() == whole
    # Read here, judged in one helper: its figures are not committed for a helper to read.
    assert answers.count == 2 and answers.reads == 0 and whole[1]["finding"]


def _after_sunderland_check(cli: Callable[..., Any], db_path: StoreRef,
                            read: Callable[[Transaction, dict[str, Any]], Any]
                            ) -> tuple[dict[str, Any], Any]:
    """Sunderland's return checked from June to September 2018 by the command line; then
    the store's schedules, and what ``read`` reads with them in a transaction."""
    from tests.conftest import SUNDERLAND, SUNDERLAND_RETURN

    assert cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
               "--from", "2018-06", "--to", "2018-09").exit_code == 0
    store = Store(db_path.url)
    try:
        with store.transaction("tester") as tx:
            schedules = tx.schedules()
            return schedules, read(tx, schedules)
    finally:
        store.dispose()


def test_the_records_a_check_stores_give_back_the_rules_findings_and_escalations(
        cli: Callable[..., Any], db_path: StoreRef) -> None:
    """A check keeps the rules' findings and escalations as the store takes them (and a
    helper sends only those back); what its output shows is read from them, as the rules
    gave it."""
    import numpy as np

    from compliance.escalation import records as as_rows
    from compliance.escalation import run_rules
    from compliance.store.packed import FINDING_FIELDS, AssessmentSets, unpacked_escalations

    def judged(tx: Transaction, schedules: dict[str, Any]) -> Any:
        history = checking.history_with_features(
            tx, schedules, dict.fromkeys(schedules, "2018-09"))
        return run_rules(history, schedules, tx.silences(list(schedules)))

    schedules, rules = _after_sunderland_check(cli, db_path, judged)
    assert len(rules.findings) and rules.escalations and len(rules.fired)
    records = checking._records(schedules, rules)
    assert sum(records.findings.sizes) == len(rules.findings)
    assert unpacked_escalations(zip(records.escalations.contracts,
                                    records.escalations.documents, strict=True)) == [
        e.row() for e in rules.escalations]
    assert records.escalations.sizes == [len(rules.escalations)]

    # What the output shows of them, read from the records as stored: the findings of the
    # periods checked and every escalation, as made from the rules' own results.
    periods = ["2018-07", "2018-09"]
    result = checking.CheckResult(schedules=schedules, periods=periods, counts={},
                                  versions={}, parts=[(AssessmentSets([], [], []),
                                                       np.empty(0), records)])
    assert list(result.shown_assessments()) == []
    findings, escalations = result.shown_records()
    expected: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in as_rows(rules.findings[rules.findings["period"].isin(periods)]):
        expected.setdefault((f["contract"], f["period"]), []).append(
            {k: None if isinstance(v, float) and v != v else v for k, v in f.items()
             if k in ("contract", "measure", *FINDING_FIELDS)})
    assert findings == expected and sorted({p for _, p in findings}) == periods
    assert escalations == {"sunderland-tfc": [
        {"measure_id": e.measure, "opened": e.opened, "history": e.history,
         "resolved": e.resolved, "silenced_until": e.silenced_until,
         "silence_reason": e.silence_reason} for e in rules.escalations]}


def test_the_assessments_a_check_shows_are_read_from_their_sets_as_the_frame_gave_them(
        cli: Callable[..., Any], db_path: StoreRef) -> None:
    """A check keeps each batch's assessments as their sets (and a helper sends only those
    back, with the profiled targets the sets leave out): what its output shows of them is
    the assessments' frame, (contract, period) after (contract, period) in order, whatever
    the order of the batches."""
    import copy
    import math


    schedules, inputs = _after_sunderland_check(
        cli, db_path, lambda tx, schedules: checking._read(
            tx, schedules, dict.fromkeys(schedules, "2018-09"), silences=True))
    # Two batches, the later months' first.
    batches_of = [["2018-08", "2018-09"], ["2018-06", "2018-07"]]
    judged = [checking._judge(copy.deepcopy(inputs), periods) for periods in batches_of]
    result = checking.CheckResult(schedules=schedules, periods=["2018-06", "2018-09"],
                                  counts={}, versions={},
                                  parts=[(sets, profiled, records)
                                         for _, sets, profiled, records in judged])
    shown = list(result.shown_assessments())

    history = checking._history(copy.deepcopy(inputs))
    frame = checking._checked(history, ["2018-06", "2018-07", "2018-08", "2018-09"])
    expected = []
    for (cid, period), rows in frame.groupby(["contract", "period"], sort=True, observed=True):
        expected.append((cid, period, [
            {("measure" if name == "measure_id" else name):
             None if (isinstance(row[name_in_frame], float) and math.isnan(row[name_in_frame]))
             or row[name_in_frame] is None else row[name_in_frame]
             for name, name_in_frame in _SHOWN}
            for row in rows.to_dict("records")]))
    assert [(c, p, len(r)) for c, p, r in shown] == [(c, p, len(r)) for c, p, r in expected]
    assert [c for c, _, _ in shown] == ["sunderland-tfc"] * 4
    assert shown == expected
    assert any(row["profiled_target"] is not None for _, _, rows in shown for row in rows)


# The fields of a shown assessment, and the columns of the check's frame they come from.
_SHOWN = [(name, "measure" if name == "measure_id" else name) for name in (
    "measure_id", "schedule_version", "figure_period", "figure_version", "value", "source",
    "sources", "source_spread", "target_low", "target_high", "tolerance_low", "tolerance_high",
    "compared_with", "status", "rag", "direction", "previous_value", "change", "forecast",
    "forecast_status", "reason", "variation", "assurance", "profiled_target")]


def test_the_batches_after_the_first_are_shared_out_and_an_odd_last_is_judged_here() -> None:
    assert checking._shared(3, 2) == ([[1], [2]], None)
    assert checking._shared(12, 2) == ([[1, 3, 5, 7, 9], [2, 4, 6, 8, 10]], 11)
    assert checking._shared(6, 1) == ([[1, 2, 3, 4, 5]], None)
    assert checking._shared(2, 1) == ([[1]], None)


_HELPER_SCRIPT = """
import json, pickle, sys
from compliance import checking
for name in checking._HELPERS_IMPORT:
    __import__(name)
loaded = set(sys.modules)
url, periods = sys.argv[1], json.loads(sys.argv[2])
with open(sys.argv[3], "rb") as file:
    plan = pickle.load(file)  # as a job's arguments reach the helper
terms, until, since, measures = plan
assert checking._work("read", url, [(1, until, since)]) >= 0
judged = checking._work("judge", 1, periods, terms, measures)
assert len(judged[1].pairs) and len(judged[3].findings.contracts)
print(json.dumps(sorted(set(sys.modules) - loaded)))
print(json.dumps(sorted(loaded)))
"""


def test_what_a_helper_reads_and_judges_with_is_imported_once_by_the_fork_server(
        tmp_path: Path) -> None:
    """Every module a helper's jobs use is among those the fork server imports before it
    forks the helpers (``_HELPERS_IMPORT``): none is imported again in each helper; and a
    helper reading a SQLite store imports neither SQLAlchemy nor sqlmodel."""
    import pickle
    import subprocess
    import sys

    data = tmp_path / "data"
    bench_generator().generate(2000, data, seed=3)
    ref = StoreRef(f"sqlite:///{tmp_path / 'store.db'}")
    run = cli_on(ref.url)
    assert run("contract", "load", *sorted((data / "contracts").glob("*.yaml"))).exit_code == 0
    assert run("submit", data / "returns.csv").exit_code == 0
    periods = bench_generator().periods()
    store = Store(ref.url, reading=True)
    try:
        with store.reading() as tx:
            schedules = tx.schedules(None)
            ids = list(schedules)
            plan = checking._plan(schedules, {c: max(periods) for c in ids},
                                  {c: min(periods) for c in ids}, tx.schedule_versions(ids))
    finally:
        store.dispose()
    (tmp_path / "plan.pickle").write_bytes(pickle.dumps(plan))
    done = subprocess.run([sys.executable, "-c", _HELPER_SCRIPT, ref.url, json.dumps(periods),
                           str(tmp_path / "plan.pickle")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    *_, imported, preloaded = (json.loads(line) for line in done.stdout.strip().splitlines())
    # (The database's driver and durable-rules, a few milliseconds each, are left to each.)
    assert [name for name in imported if name.split(".")[0] in (
        "compliance", "orjson", "pandas", "numpy", "pyarrow", "adbc_driver_sqlite",
        "adbc_driver_manager")] == []
    # A SQLite store is read through ADBC's driver: the store's engine is not imported at
    # all.
    assert [name for name in imported + preloaded
            if name.split(".")[0] in ("sqlalchemy", "sqlmodel", "alembic")
            or name == "compliance.store.db"] == []
    assert "compliance.store.reads" in preloaded and "adbc_driver_sqlite.dbapi" in preloaded


def test_days_late_read_each_arrival_time_however_it_is_given() -> None:
    """``_lateness``: days after the due date each figure's return arrived, whether the
    arrival time is given aware, naive (UTC) or as text, and one time shared by several
    periods (one return's) counted for each."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    schedule = SimpleNamespace(contract=SimpleNamespace(return_due_day=15))
    one = dt.datetime(2018, 8, 20, 23, 30, tzinfo=dt.UTC)  # shared by two periods
    history = pd.DataFrame({
        "contract": ["a", "a", "a", "a", "b"],
        "period": ["2018-07", "2018-07", "2018-08", "2018-09", "2018-07"],
        "figure_period": ["2018-07", "2018-06", "2018-08", "2018-09", "2018-07"]})
    received = {
        ("a", "2018-07"): one, ("a", "2018-06"): one,
        # 01:30 on 16 September in London is 00:30 UTC: a day late.
        ("a", "2018-08"): dt.datetime(2018, 9, 16, 1, 30,
                                      tzinfo=dt.timezone(dt.timedelta(hours=1))),
        ("a", "2018-09"): "2018-10-14 12:00:00",  # naive text, UTC
        ("b", "2018-07"): dt.datetime(2018, 8, 1),
    }
    schedules: dict[str, Any] = {"a": schedule, "b": SimpleNamespace(
        contract=SimpleNamespace(return_due_day=None))}
    late = checking._lateness(history, schedules, received)["days_late"].to_numpy()
    # July's return was due 15 August, August's 15 September, September's 15 October.
    np.testing.assert_array_equal(late, [5, 5, 1, -1, np.nan])
