"""Differential test: the engine's escalation (rule pack + durable-rules + ladder) against a
plain reference written from SPEC section 4 (tests/reference_policy.py).

Seeded histories of several contracts (KPIs and supporting measures, percent/count/rate
units, every polarity, monthly and quarterly, lags, with and without tolerance, contract
setting overrides) with runs of breaches, recoveries, missing figures (blank rows and absent
rows), second sources and slow declines go through ``assess`` -> ``add_features`` ->
``run_rules``; the findings and escalations must equal the reference's exactly.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from compliance import escalation
from compliance.assess import add_features, assess, measure_table
from compliance.escalation import RulesResult, run_rules
from compliance.periods import from_index, month_index
from compliance.rulepack import evaluate, load_pack
from compliance.schedule import ContractSpec, MeasureSpec, Schedule
from tests.conftest import facts_asserted
from tests.reference_policy import DEFAULT_SETTINGS, ReferenceResult, reference_policy

FORUMS = ["Operational Commissioning Group", "Directorate Management Team",
          "Chief Executive's Performance Clinic", "Scrutiny Committee"]
FIGURE_COLUMNS = ["contract", "measure", "period", "value", "numerator", "denominator",
                  "source", "source_rank", "comment"]
SEEDS = range(60)

# --- building schedules and figures in code -----------------------------------------------


def make_schedule(cid: str, measures: list[dict[str, Any]], forums: int = 4,
                  settings: dict[str, float] | None = None, **contract: Any) -> Schedule:
    return Schedule(
        contract=ContractSpec(id=cid, title=cid, commissioner="Council", provider="Provider",
                              forums=FORUMS[:forums], settings=settings or {}, **contract),
        measures=[MeasureSpec.model_validate(m) for m in measures])


def kpi(mid: str = "M1", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(id=mid, kind="kpi", title=mid, unit="percent",
                                polarity="higher_is_better", target=90, tolerance=[85, 89.9])
    return {**base, **kw}


def supporting(mid: str, parent: str = "M1", **kw: Any) -> dict[str, Any]:
    return kpi(mid, kind="supporting", parent=parent, **kw)


def figure(contract: str, measure: str, period: str, value: float | None,
           source: str = "return", rank: int = 0, comment: str = "") -> dict[str, Any]:
    return {"contract": contract, "measure": measure, "period": period,
            "value": np.nan if value is None else float(value), "numerator": np.nan,
            "denominator": np.nan, "source": source, "source_rank": rank, "comment": comment}


def months(start: str, count: int) -> list[str]:
    return [from_index(month_index(start) + i) for i in range(count)]


def series(contract: str, measure: str, start: str, values: list[float | None]
           ) -> list[dict[str, Any]]:
    return [figure(contract, measure, p, v) for p, v in zip(months(start, len(values)), values,
                                                              strict=True)]


# --- running both sides --------------------------------------------------------------------


def assessed(schedules: list[Schedule], rows: list[dict[str, Any]], last: dict[str, str]
             ) -> pd.DataFrame:
    figures = pd.DataFrame(rows, columns=FIGURE_COLUMNS)
    return assess(measure_table(schedules), figures, {c: [p] for c, p in last.items()},
                  history=True)


@contextlib.contextmanager
def batch_threshold(value: float) -> Iterator[None]:
    """Run the rules with another batch threshold: 0 takes the evaluated conditions as what
    fired for every run with a candidate; infinity asserts every candidate into
    durable-rules."""
    saved = escalation.BATCH_THRESHOLD
    escalation.BATCH_THRESHOLD = value  # type: ignore[assignment]
    try:
        yield
    finally:
        escalation.BATCH_THRESHOLD = saved


PATHS = {"durable-rules": math.inf, "batch": 0}


def run_path(features: pd.DataFrame, schedules: list[Schedule], path: str) -> RulesResult:
    with batch_threshold(PATHS[path]):
        return run_rules(features, {s.id: s for s in schedules})


def assert_paths_agree(durable: RulesResult, batch: RulesResult) -> None:
    """The two ways of deciding what fired make exactly the same records."""
    pd.testing.assert_frame_equal(batch.fired, durable.fired)
    pd.testing.assert_frame_equal(batch.findings, durable.findings)
    assert [e.row() for e in batch.escalations] == [e.row() for e in durable.escalations]
    assert batch.settings == durable.settings


def engine(history: pd.DataFrame, schedules: list[Schedule]) -> RulesResult:
    """The engine's result, after checking that both of its paths give the same records."""
    features = add_features(history)
    durable = run_path(features, schedules, "durable-rules")
    assert_paths_agree(durable, run_path(features, schedules, "batch"))
    return durable


def engine_tuples(result: RulesResult) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    f = result.findings
    findings = sorted(zip(f["contract"], f["measure"], f["period"], f["type"], f["severity"],
                          strict=True))
    escalations = sorted(((e.contract, e.measure, e.opened, e.level, e.resolved)
                          for e in result.escalations), key=lambda e: (e[0], e[1], e[2]))
    return findings, escalations


def reference(history: pd.DataFrame, schedules: list[Schedule]) -> ReferenceResult:
    return reference_policy(
        history, DEFAULT_SETTINGS,
        contract_settings={s.id: dict(s.contract.settings) for s in schedules},
        forums={s.id: len(s.contract.forums) for s in schedules})


def both(schedules: list[Schedule], rows: list[dict[str, Any]], last: dict[str, str]
         ) -> tuple[ReferenceResult, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
                    pd.DataFrame]:
    history = assessed(schedules, rows, last)
    return reference(history, schedules), engine_tuples(engine(history, schedules)), history


def _trace(history: pd.DataFrame, contract: str, measure: str) -> str:
    rows = history[(history["contract"] == contract) & (history["measure"] == measure)]
    rows = rows.sort_values("period")
    return "\n".join(f"    {r.period} {r.status:<16} value={r.value!r:<8} "
                     f"direction={r.direction} spread={r.source_spread!r}"
                     for r in rows.itertuples())


def assert_same(ref: ReferenceResult, got: tuple[list[Any], list[Any]], history: pd.DataFrame,
                label: str) -> None:
    """Engine == reference, or a message naming what differs and the history behind it."""
    findings, escalations = got
    for what, expected, actual in (("findings", ref.findings, findings),
                                   ("escalations", ref.escalations, escalations)):
        if Counter(expected) == Counter(actual):
            continue
        missing = sorted((Counter(expected) - Counter(actual)).elements(), key=repr)
        extra = sorted((Counter(actual) - Counter(expected)).elements(), key=repr)
        first = (missing or extra)[0]
        pytest.fail(
            f"{label}: engine {what} differ from the reference policy\n"
            f"  expected by reference, not made by engine: {missing[:8]}\n"
            f"  made by engine, not expected by reference: {extra[:8]}\n"
            f"  history of {first[0]} {first[1]}:\n{_trace(history, first[0], first[1])}")


# --- the generator -------------------------------------------------------------------------

UNITS = ["percent", "percent", "count", "rate_per_10k"]


def _clause(rng: random.Random, unit: str) -> dict[str, Any]:
    """Target, tolerance and the size of one 'step' of goodness for a random measure."""
    polarity = rng.choices(["higher_is_better", "lower_is_better", "within_range"],
                           weights=[5, 4, 1])[0]
    if unit == "percent":
        target = float(rng.randint(20, 80))
        width = float(rng.choice([2, 5, 8]))
        step = 0.1
    elif unit == "count":
        target = float(rng.randint(40, 200))
        width = float(max(4, round(target * rng.choice([0.1, 0.2]))))
        step = 1.0
    else:
        target = float(rng.randint(100, 600))
        width = round(target * rng.choice([0.05, 0.1, 0.2]), 1)
        step = 0.1
    has_tolerance = rng.random() < 0.75
    clause: dict[str, Any] = {"unit": unit, "polarity": polarity, "width": width}
    if polarity == "within_range":
        low, high = target - width, target + width
        clause["target"] = [low, high]
        clause["range"] = (low, high)
        if has_tolerance:
            clause["tolerance"] = [low - width, high + width]
        return clause
    clause["target"] = target
    if has_tolerance:
        far = target - width if polarity == "higher_is_better" else target + width
        near = target - step if polarity == "higher_is_better" else target + step
        clause["tolerance"] = rng.choice([far, sorted([far, near])])
    return clause


def random_schedule(rng: random.Random, cid: str) -> tuple[Schedule, dict[str, dict[str, Any]]]:
    count = rng.randint(4, 8)
    measures: list[dict[str, Any]] = []
    clauses: dict[str, dict[str, Any]] = {}
    kpis: list[str] = []
    for i in range(count):
        mid = f"M{i + 1}"
        kind = "kpi" if i == 0 or rng.random() < 0.5 else "supporting"
        clause = _clause(rng, rng.choice(UNITS))
        spec: dict[str, Any] = dict(id=mid, kind=kind, title=mid, unit=clause["unit"],
                                    polarity=clause["polarity"], target=clause["target"],
                                    tolerance=clause.get("tolerance"))
        if kind == "supporting":
            spec["parent"] = rng.choice(kpis)
        else:
            kpis.append(mid)
        if rng.random() < 0.25:
            spec["frequency"] = "quarterly"
        if rng.random() < 0.12:
            spec["lag_months"] = 1
        if rng.random() < 0.04:  # monitor only
            spec["target"], spec["tolerance"] = None, None
            clause["monitor"] = True
        measures.append(spec)
        clauses[mid] = clause
    settings: dict[str, float] = {}
    if rng.random() < 0.3:
        settings = rng.choice([
            {"consecutive_kpi_breaches_level_2": 3, "consecutive_kpi_breaches_level_3": 4},
            {"good_periods_to_resolve": 3, "deteriorating_periods_watch": 2},
            {"consecutive_supporting_breaches_level_2": 2, "consecutive_missing_level_2": 3},
            {"source_spread_points": 3, "source_spread_fraction": 0.05},
            {"good_periods_to_resolve": 1},
        ])
    return make_schedule(cid, measures, forums=rng.choice([3, 4, 4]), settings=settings,
                         year_start_month=rng.choice([4, 4, 1])), clauses


def _value(clause: dict[str, Any], goodness: float) -> float:
    """A figure ``goodness`` steps of the tolerance width on the good side of the target.

    >= 0 meets the target, in [-1, 0) is within a tolerance band of one width, < -1 breaches.
    """
    width = float(clause["width"])
    if clause["polarity"] == "within_range":
        low, high = clause["range"]
        # met: inside the range (goodness 1 is the middle), otherwise above it.
        value = high - goodness * (high - low) / 2 if goodness >= 0 else high - goodness * width
    elif clause["polarity"] == "higher_is_better":
        value = clause["target"] + goodness * width
    else:
        value = clause["target"] - goodness * width
    if clause["unit"] == "count":
        value = float(max(1, round(value)))
    else:
        value = round(value, 1)
    if clause["unit"] == "percent":
        value = min(100.0, max(0.0, value))
    return float(value)


SEGMENTS = ["met", "within", "breach", "missing", "decline", "flat"]
SEGMENT_WEIGHTS = [4, 2, 4, 2, 2, 1]


def goodness_path(rng: random.Random, length: int) -> list[float | None | str]:
    """Per due period: a goodness, or None (a blank row) or 'absent' (no row at all)."""
    path: list[float | None | str] = []
    while len(path) < length:
        segment = rng.choices(SEGMENTS, weights=SEGMENT_WEIGHTS)[0]
        if segment == "met":
            path += [rng.uniform(0, 1.5) for _ in range(rng.randint(1, 4))]
        elif segment == "within":
            path += [rng.uniform(-0.9, -0.1) for _ in range(rng.randint(1, 3))]
        elif segment == "breach":
            path += [rng.uniform(-4, -1.3) for _ in range(rng.randint(1, 6))]
        elif segment == "missing":
            path += [rng.choice([None, "absent"]) for _ in range(rng.randint(1, 3))]
        elif segment == "decline":
            start, drop = rng.uniform(1.2, 2.0), rng.uniform(0.15, 0.3)
            path += [start - drop * k for k in range(rng.randint(3, 6))]
        else:
            flat = rng.uniform(-2, 1.5)
            path += [flat] * rng.randint(2, 3)
    return path[:length]


def _due_month(month: int, year_start: int, frequency: str) -> bool:
    return frequency == "monthly" or ((month - year_start) % 12 + 1) % 3 == 0


def random_history(seed: int, contracts: int = 3) -> tuple[list[Schedule], list[dict[str, Any]],
                                                           dict[str, str]]:
    rng = random.Random(seed)
    schedules: list[Schedule] = []
    rows: list[dict[str, Any]] = []
    last: dict[str, str] = {}
    for c in range(contracts):
        cid = f"s{seed}-c{c}"
        schedule, clauses = random_schedule(rng, cid)
        schedules.append(schedule)
        start = month_index("2017-01") + rng.randint(0, 30)
        length = rng.randint(12, 24)
        last[cid] = from_index(start + length - 1)
        year_start = schedule.contract.year_start_month
        for m in schedule.measures:
            clause = clauses[m.id]
            frequency = schedule.frequency(m)
            # Figure periods whose figure is due by the last check period.
            periods = [from_index(i) for i in range(start, start + length - m.lag_months)]
            due = [p for p in periods if _due_month(int(p[5:]), year_start, frequency)]
            path = goodness_path(rng, len(due))
            for period, goodness in zip(due, path, strict=True):
                if goodness == "absent":
                    continue
                if goodness is None:
                    rows.append(figure(cid, m.id, period, None, comment="not available"))
                    if rng.random() < 0.1:  # a second source has it although the first not
                        rows.append(figure(cid, m.id, period, _value(clause, 0.5), "audit", 1))
                    continue
                assert isinstance(goodness, float)
                value = _value(clause, goodness)
                if rng.random() < 0.05:  # only a secondary source reports it
                    rows.append(figure(cid, m.id, period, value, "audit", 1))
                    continue
                rows.append(figure(cid, m.id, period, value))
                if rng.random() < 0.2:
                    rows.append(figure(cid, m.id, period, _second(rng, clause, value),
                                       "audit", 1))
            if frequency == "quarterly" and rng.random() < 0.3:
                # A stray figure for a month in which the measure is not due: never judged.
                stray = [p for p in periods if p not in due]
                if stray:
                    rows.append(figure(cid, m.id, rng.choice(stray), _value(clause, -3)))
    return schedules, rows, last


def _second(rng: random.Random, clause: dict[str, Any], value: float) -> float:
    """Another source's figure: close to the first, on the threshold, or well apart."""
    sign = rng.choice([-1, 1])
    if clause["unit"] == "percent":
        spread = rng.choice([0.0, 1.5, 3.0, 4.9, 5.0, 5.1, 7.0, 15.0])
        other = value + sign * spread
        if not 0 <= other <= 100:
            other = value - sign * spread
        return round(min(100.0, max(0.0, other)), 1)
    share = rng.choice([0.0, 0.03, 0.05, 0.08, 0.1, 0.12, 0.2, 0.5])
    other = value + sign * share * abs(value)
    other = float(max(1, round(other))) if clause["unit"] == "count" else round(other, 1)
    return other if other > 0 else value


# --- the differential test -----------------------------------------------------------------

@functools.cache
def generated(seed: int) -> tuple[list[Schedule], pd.DataFrame, ReferenceResult]:
    schedules, rows, last = random_history(seed)
    history = assessed(schedules, rows, last)
    return schedules, history, reference(history, schedules)


@pytest.mark.parametrize("seed", SEEDS)
def test_engine_matches_reference(seed: int) -> None:
    schedules, history, ref = generated(seed)
    assert_same(ref, engine_tuples(engine(history, schedules)), history, f"seed {seed}")


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("seed", SEEDS[:20])
def test_each_path_matches_reference(seed: int, path: str, monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    """Each path on its own: durable-rules never consulted on the batch path, and asserted
    every candidate on the other."""
    schedules, history, ref = generated(seed)
    asserted = facts_asserted(monkeypatch)
    result = run_path(add_features(history), schedules, path)
    assert_same(ref, engine_tuples(result), history, f"seed {seed}, {path} path")
    if path == "batch":
        assert asserted == []
    else:
        assert len(set(asserted)) == result.fired["id"].nunique() > 0


@pytest.mark.parametrize("seed", SEEDS[:30])
def test_the_ladder_over_arrays_equals_the_ladder_event_by_event(seed: int) -> None:
    """A measure with silences has its escalations replayed one event at a time, the others
    over arrays: silences never in force change nothing, so a run with such a silence on
    every measure, or on every other one, makes exactly the escalations (every stored
    column, in order) of a run with none."""
    schedules, history, _ = generated(seed)
    features = add_features(history)
    by_id = {s.id: s for s in schedules}
    pairs = sorted(set(zip(features["contract"].astype(str), features["measure"].astype(str),
                           strict=True)))
    never = [{"id": 1, "start": "1990-01", "until": "1990-12", "reason": "long ago"}]
    arrays = run_rules(features, by_id).table
    assert arrays["contract_id"] and {"open", "resolved"} <= set(arrays["status"])
    assert any(h.count('"period"') > 1 for h in arrays["history"])  # raised as well as opened
    for silenced in (pairs, pairs[::2]):
        events = run_rules(features, by_id, dict.fromkeys(silenced, never)).table
        assert events == arrays


def test_whole_generated_run_on_both_paths() -> None:
    """All the seeded contracts in one run (over the default threshold): the batch path is
    taken by default, and equals durable-rules fact for fact."""
    schedules: list[Schedule] = []
    histories: list[pd.DataFrame] = []
    ref_findings: list[Any] = []
    ref_escalations: list[Any] = []
    for seed in SEEDS:
        these, history, ref = generated(seed)
        schedules += these
        histories.append(history)
        ref_findings += ref.findings
        ref_escalations += ref.escalations
    features = add_features(pd.concat(histories, ignore_index=True))
    candidates = int(evaluate_standard(features).sum())
    assert candidates > escalation.BATCH_THRESHOLD
    durable = run_path(features, schedules, "durable-rules")
    default = run_rules(features, {s.id: s for s in schedules})
    assert_paths_agree(durable, default)
    history = pd.concat(histories, ignore_index=True)
    assert_same(ReferenceResult(findings=sorted(ref_findings),
                                escalations=sorted(ref_escalations,
                                                   key=lambda e: (e[0], e[1], e[2]))),
                engine_tuples(default), history, "all seeds in one run")


def evaluate_standard(features: pd.DataFrame) -> pd.Series:
    """Which judged facts can fire a rule of the standard pack (contract settings aside)."""
    pack = load_pack("standard")
    facts = escalation.facts_frame(features)
    return evaluate(pack, pack.settings, facts).any(axis=1)


def test_generator_is_not_vacuous() -> None:
    """The seeded histories make every kind of record the policy has, in numbers."""
    tally: Counter[str] = Counter()
    for seed in SEEDS:
        _, history, ref = generated(seed)
        tally["measure_periods"] += len(history)
        tally["judged"] += int((history["status"] != "not_due").sum())
        tally.update(f"status:{s}" for s in history["status"])
        tally.update(f"finding:{f[3]}:{f[4]}" for f in ref.findings)
        tally.update(f"level:{e[3]}" for e in ref.escalations)
        tally.update("resolved" if e[4] else "open" for e in ref.escalations)
        per_measure = Counter((e[0], e[1]) for e in ref.escalations)
        tally["reopened"] += sum(1 for n in per_measure.values() if n > 1)
    assert tally["measure_periods"] >= 15000, tally
    assert tally["judged"] >= 12000, tally
    for kind in ("finding:performance:major", "finding:performance:minor",
                 "finding:missing_data:major", "finding:missing_data:minor",
                 "finding:data_quality:minor", "finding:watch:minor",
                 "level:1", "level:2", "level:3", "resolved", "open", "reopened",
                 "status:met", "status:within_tolerance", "status:breach",
                 "status:not_reported", "status:not_due", "status:monitor"):
        assert tally[kind] >= 5, f"the generator made too few {kind}: {tally}"


# --- hand-written histories with exact expected records ------------------------------------


def check(schedules: list[Schedule], rows: list[dict[str, Any]], last: dict[str, str],
          findings: list[tuple[Any, ...]], escalations: list[tuple[Any, ...]]) -> None:
    """The reference makes exactly these records, and so does the engine."""
    ref, got, history = both(schedules, rows, last)
    assert ref.findings == sorted(findings), ref.findings
    assert ref.escalations == sorted(escalations, key=lambda e: (e[0], e[1], e[2])), \
        ref.escalations
    assert_same(ref, got, history, "hand-written history")


def test_kpi_breached_three_months_then_met_two() -> None:
    sched = make_schedule("c1", [kpi()])
    rows = series("c1", "M1", "2018-04", [80, 80, 80, 95, 95])
    check([sched], rows, {"c1": "2018-08"},
          findings=[("c1", "M1", p, "performance", "major")
                    for p in ("2018-04", "2018-05", "2018-06")],
          escalations=[("c1", "M1", "2018-04", 3, "2018-08")])


def test_kpi_recovers_for_one_month_only_keeps_the_escalation_open() -> None:
    sched = make_schedule("c1", [kpi()])
    # breach, breach (level 2), met, breach (run restarts: level 1, stays 2), within, met
    rows = series("c1", "M1", "2018-04", [80, 80, 95, 80, 87, 91])
    check([sched], rows, {"c1": "2018-09"},
          findings=[("c1", "M1", p, "performance", "major")
                    for p in ("2018-04", "2018-05", "2018-07")],
          escalations=[("c1", "M1", "2018-04", 2, "2018-09")])


def test_supporting_breaches_and_missing_figures() -> None:
    sched = make_schedule("c1", [kpi("K1"), supporting("S1", parent="K1", unit="count",
                                                       polarity="lower_is_better", target=10,
                                                       tolerance=12)])
    rows = series("c1", "S1", "2018-04", [13, 14, 15, 16, 9, 9])
    # K1: blank, absent (missing twice: level 2), met, met (resolved), breach (a new one)
    rows += [figure("c1", "K1", "2018-04", None, comment="system down"),
             figure("c1", "K1", "2018-06", 91), figure("c1", "K1", "2018-07", 92),
             figure("c1", "K1", "2018-08", 70), figure("c1", "K1", "2018-09", 90)]
    check([sched], rows, {"c1": "2018-09"},
          findings=[("c1", "K1", "2018-04", "missing_data", "major"),
                    ("c1", "K1", "2018-05", "missing_data", "major"),
                    ("c1", "K1", "2018-08", "performance", "major")]
          + [("c1", "S1", p, "performance", "minor")
             for p in ("2018-04", "2018-05", "2018-06", "2018-07")],
          escalations=[("c1", "K1", "2018-04", 2, "2018-07"),
                       ("c1", "K1", "2018-08", 1, None),
                       ("c1", "S1", "2018-04", 2, "2018-09")])


def test_quarterly_runs_count_due_periods_only() -> None:
    sched = make_schedule("c1", [kpi(frequency="quarterly")])
    rows = [figure("c1", "M1", p, v) for p, v in
            [("2018-06", 70), ("2018-09", 75), ("2018-12", 95), ("2019-03", 96)]]
    check([sched], rows, {"c1": "2019-03"},
          findings=[("c1", "M1", "2018-06", "performance", "major"),
                    ("c1", "M1", "2018-09", "performance", "major")],
          escalations=[("c1", "M1", "2018-06", 2, "2019-03")])


def test_sources_that_disagree() -> None:
    sched = make_schedule("c1", [kpi("P"), kpi("N", unit="count", target=100, tolerance=90)])
    rows = [figure("c1", "P", "2018-04", 90), figure("c1", "P", "2018-04", 95, "audit", 1),
            figure("c1", "P", "2018-05", 90), figure("c1", "P", "2018-05", 95.5, "audit", 1),
            figure("c1", "N", "2018-04", 100), figure("c1", "N", "2018-04", 110, "audit", 1),
            figure("c1", "N", "2018-05", 100), figure("c1", "N", "2018-05", 111, "audit", 1)]
    check([sched], rows, {"c1": "2018-05"},
          findings=[("c1", "P", "2018-05", "data_quality", "minor"),
                    ("c1", "N", "2018-05", "data_quality", "minor")],
          escalations=[])


def test_slow_decline_while_met_is_watched() -> None:
    sched = make_schedule("c1", [kpi(polarity="lower_is_better", target=20, tolerance=25)])
    rows = series("c1", "M1", "2018-04", [10, 11, 12, 13, 14, 22, 26])
    # Three declines in a row (July on) make early-warning watches; the seven rising points
    # are also a trend of concern on the XmR chart, which watches every point of the run
    # still met or within tolerance (April to September).
    spc = [("c1", "M1", p, "watch", "minor")
           for p in ("2018-04", "2018-05", "2018-06", "2018-07", "2018-08", "2018-09")]
    check([sched], rows, {"c1": "2018-10"},
          findings=sorted([("c1", "M1", "2018-07", "watch", "minor"),
                           ("c1", "M1", "2018-08", "watch", "minor"),
                           ("c1", "M1", "2018-09", "watch", "minor"),
                           ("c1", "M1", "2018-10", "performance", "major"), *spc]),
          escalations=[("c1", "M1", "2018-10", 1, None)])


def test_contract_settings_override_the_pack() -> None:
    sched = make_schedule("c1", [kpi()], forums=3,
                          settings={"consecutive_kpi_breaches_level_2": 3,
                                    "good_periods_to_resolve": 3})
    rows = series("c1", "M1", "2018-04", [80, 80, 95, 95, 95])
    check([sched], rows, {"c1": "2018-08"},
          findings=[("c1", "M1", "2018-04", "performance", "major"),
                    ("c1", "M1", "2018-05", "performance", "major")],
          escalations=[("c1", "M1", "2018-04", 1, "2018-08")])


def test_zero_figure_with_two_sources() -> None:
    """A count of 0 from one source and 6 from another differ by more than 10% of it.

    SPEC 4.4: two sources that differ by more than 10% (non-percent units) make a data_quality
    record. The engine computes the spread as a fraction of the primary figure and drops an
    infinite fraction (``add_features``: ``fraction.where(np.isfinite(fraction))``), so a
    primary figure of 0 never makes a data-quality record however far the other source is.
    """
    sched = make_schedule("c1", [kpi(unit="count", polarity="lower_is_better", target=3,
                                     tolerance=5)])
    rows = [figure("c1", "M1", "2018-04", 0), figure("c1", "M1", "2018-04", 6, "audit", 1)]
    ref, (findings, escalations), history = both([sched], rows, {"c1": "2018-04"})
    assert ref.findings == [("c1", "M1", "2018-04", "data_quality", "minor")]
    assert findings == ref.findings, (
        "ENGINE DISAGREES WITH SPEC 4.4: sources 0 (primary) and 6 (audit) for count measure "
        f"M1 in 2018-04 differ by more than 10%, expected a data_quality record, engine made "
        f"{findings}")
