"""Assessment: statuses, cumulative targets, frequency, lag, direction; band properties."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.assess import assess, judge, measure_table
from compliance.periods import from_index, month_index
from compliance.schedule import ContractSpec, MeasureSpec, Schedule


def schedule(*measures: MeasureSpec, reporting: str = "monthly", cid: str = "c1") -> Schedule:
    return Schedule(contract=ContractSpec(id=cid, title="T", commissioner="C", provider="P",
                                          forums=["Group"], reporting=reporting),  # type: ignore[arg-type]
                    measures=list(measures))


def measure(mid: str = "M1", **kw: Any) -> MeasureSpec:
    base: dict[str, Any] = dict(id=mid, kind="kpi", title=mid, unit="percent",
                                polarity="higher_is_better", target=90, tolerance=[85, 89.9])
    base.update(kw)
    return MeasureSpec.model_validate(base)


def figures(rows: list[tuple[str, str, float | None]], contract: str = "c1",
            source: str = "", comment: str = "") -> pd.DataFrame:
    return pd.DataFrame([
        {"contract": contract, "measure": m, "period": p,
         "value": np.nan if v is None else v, "numerator": np.nan, "denominator": np.nan,
         "source": source, "source_rank": 0, "comment": comment}
        for m, p, v in rows])


def run(sched: Schedule, rows: list[tuple[str, str, float | None]], periods: list[str],
        **kw: Any) -> pd.DataFrame:
    return assess(measure_table([sched]), figures(rows, **kw), periods)


def status_of(frame: pd.DataFrame, mid: str = "M1", period: str | None = None) -> str:
    rows = frame[frame["measure"] == mid]
    if period:
        rows = rows[rows["period"] == period]
    return str(rows["status"].iloc[0])


@pytest.mark.parametrize(("polarity", "target", "tolerance", "value", "expected"), [
    ("higher_is_better", 90, [85, 89.9], 90, "met"),
    ("higher_is_better", 90, [85, 89.9], 89.95, "within_tolerance"),  # never rounded first
    ("higher_is_better", 90, [85, 89.9], 85, "within_tolerance"),
    ("higher_is_better", 90, [85, 89.9], 84.99, "breach"),
    ("higher_is_better", 90, None, 89.99, "breach"),
    ("lower_is_better", 22, [22.1, 28.9], 22, "met"),
    ("lower_is_better", 22, [22.1, 28.9], 28.9, "within_tolerance"),
    ("lower_is_better", 22, [22.1, 28.9], 29.4, "breach"),
    ("lower_is_better", 375, 402.9, 382, "within_tolerance"),
    ("within_range", [20, 30], [15, 35], 25, "met"),
    ("within_range", [20, 30], [15, 35], 16, "within_tolerance"),
    ("within_range", [20, 30], [15, 35], 34, "within_tolerance"),
    ("within_range", [20, 30], [15, 35], 36, "breach"),
    ("within_range", [20, 30], None, 31, "breach"),
])
def test_status_table(polarity: str, target: Any, tolerance: Any, value: float,
                      expected: str) -> None:
    sched = schedule(measure(polarity=polarity, target=target, tolerance=tolerance))
    result = run(sched, [("M1", "2018-09", value)], ["2018-09"])
    assert status_of(result) == expected
    assert result["rag"].iloc[0] == {"met": "green", "within_tolerance": "amber",
                                     "breach": "red"}[expected]


def test_missing_and_monitor() -> None:
    sched = schedule(measure("A"), measure("B"), measure("C", target=None, tolerance=None))
    result = run(sched, [("A", "2018-09", None), ("C", "2018-09", 12.0)], ["2018-09"],
                 comment="system down")
    assert status_of(result, "A") == "not_reported"
    assert result.set_index("measure").loc["A", "reason"] == "system down"
    assert status_of(result, "B") == "not_reported"
    assert result.set_index("measure").loc["B", "reason"] == "no figure in the return"
    assert status_of(result, "C") == "monitor"
    assert set(result["rag"]) == {"red", "grey"}


def test_cumulative_count_against_profile() -> None:
    sched = schedule(measure(unit="count", accumulation="cumulative", target=330,
                             tolerance=300))
    result = run(sched, [("M1", "2018-09", 160), ("M1", "2018-06", 90)],
                 ["2018-06", "2018-09"])
    by_period = result.set_index("period")
    # June: 3 months elapsed, 330 x 3/12 = 82.5, met; September: 165 against 160 short.
    assert by_period.loc["2018-06", "profiled_target"] == pytest.approx(82.5)
    assert by_period.loc["2018-06", "status"] == "met"
    assert by_period.loc["2018-09", "profiled_target"] == pytest.approx(165)
    # Tolerance is profiled too: 300 x 6/12 = 150 <= 160.
    assert by_period.loc["2018-09", "status"] == "within_tolerance"
    assert by_period.loc["2018-09", "forecast"] == pytest.approx(320)
    assert by_period.loc["2018-09", "forecast_status"] == "within_tolerance"


def test_cumulative_custom_profile() -> None:
    profile = [0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    sched = schedule(measure(unit="count", accumulation="cumulative", target=100,
                             tolerance=None, profile=profile))
    result = run(sched, [("M1", "2018-09", 41)], ["2018-09"])
    assert result["profiled_target"].iloc[0] == pytest.approx(40)
    assert result["status"].iloc[0] == "met"


def test_cumulative_rate_is_not_profiled() -> None:
    sched = schedule(measure(accumulation="cumulative", target=17, tolerance=13))
    result = run(sched, [("M1", "2018-09", 14.0)], ["2018-09"])
    assert result["status"].iloc[0] == "within_tolerance"
    assert np.isnan(result["profiled_target"].iloc[0])
    assert result["forecast"].iloc[0] == 14.0


def test_year_end_judgement() -> None:
    sched = schedule(measure(accumulation="cumulative", judged="year_end", target=17,
                             tolerance=13))
    result = run(sched, [("M1", "2018-09", 10.0), ("M1", "2019-03", 18.0)],
                 ["2018-09", "2019-03"])
    by_period = result.set_index("period")
    assert by_period.loc["2018-09", "status"] == "not_due"
    assert by_period.loc["2018-09", "forecast_status"] == "breach"
    assert by_period.loc["2019-03", "status"] == "met"


def test_quarterly_measure_not_due_between_quarters() -> None:
    sched = schedule(measure(), reporting="quarterly")
    result = run(sched, [("M1", "2018-06", 95.0), ("M1", "2018-09", 80.0)],
                 ["2018-06", "2018-07", "2018-08", "2018-09"])
    assert list(result["status"]) == ["met", "not_due", "not_due", "breach"]
    # Direction compares with the previous due period (June), not July.
    assert result["direction"].iloc[3] == "declining"
    assert result["previous_value"].iloc[3] == 95.0


def test_annual_and_termly_frequencies() -> None:
    sched = schedule(measure("A", frequency="annual"), measure("T", frequency="termly"))
    result = run(sched, [], ["2018-12", "2019-03"])
    statuses = result.set_index(["measure", "period"])["status"]
    assert statuses[("A", "2018-12")] == "not_due"
    assert statuses[("A", "2019-03")] == "not_reported"
    assert statuses[("T", "2018-12")] == "not_reported"
    assert statuses[("T", "2019-03")] == "not_due"


def test_lagged_figure_is_judged_in_the_later_check() -> None:
    sched = schedule(measure(lag_months=1))
    result = run(sched, [("M1", "2018-08", 85.8)], ["2018-09"])
    assert result["figure_period"].iloc[0] == "2018-08"
    assert result["status"].iloc[0] == "within_tolerance"
    assert result["value"].iloc[0] == 85.8


def test_direction_follows_polarity() -> None:
    sched = schedule(measure("H"), measure("L", polarity="lower_is_better", target=22,
                                           tolerance=[22.1, 28.9]),
                     measure("R", polarity="within_range", target=[20, 30], tolerance=None))
    rows = [("H", "2018-08", 80.0), ("H", "2018-09", 85.0),
            ("L", "2018-08", 20.0), ("L", "2018-09", 25.0),
            ("R", "2018-08", 40.0), ("R", "2018-09", 33.0)]
    result = run(sched, rows, ["2018-09"]).set_index("measure")
    assert result.loc["H", "direction"] == "improving"
    assert result.loc["L", "direction"] == "declining"
    assert result.loc["R", "direction"] == "improving"
    assert result.loc["L", "change"] == pytest.approx(5.0)


def test_primary_source_and_spread() -> None:
    sched = schedule(measure(primary_source="manual"))
    figs = pd.concat([figures([("M1", "2018-09", 36.9)], source="system"),
                      figures([("M1", "2018-09", 78.0)], source="manual")], ignore_index=True)
    figs.loc[1, "source_rank"] = 1
    result = assess(measure_table([sched]), figs, ["2018-09"])
    assert result["source"].iloc[0] == "manual"
    assert result["value"].iloc[0] == 78.0
    assert result["sources"].iloc[0] == 2
    assert result["source_spread"].iloc[0] == pytest.approx(41.1)


def test_many_contracts_at_once() -> None:
    a = schedule(measure(), cid="a")
    b = schedule(measure(polarity="lower_is_better", target=10, tolerance=12), cid="b")
    figs = pd.concat([figures([("M1", "2018-09", 91.0)], contract="a"),
                      figures([("M1", "2018-09", 11.0)], contract="b")], ignore_index=True)
    result = assess(measure_table([a, b]), figs, {"a": ["2018-09"], "b": ["2018-09"]})
    assert dict(zip(result["contract"], result["status"], strict=True)) == {
        "a": "met", "b": "within_tolerance"}


# --- properties of the band logic -----------------------------------------------------------

finite = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)
RANK = {"met": 0, "within_tolerance": 1, "breach": 2}


def one(value: float, polarity: str, t_low: float, t_high: float, tol_low: float,
        tol_high: float) -> str:
    return str(judge(np.array([value]), np.array([polarity]), np.array([t_low]),
                     np.array([t_high]), np.array([tol_low]), np.array([tol_high]))[0])


@given(value=finite, target=finite, width=st.floats(0, 100), extra=st.floats(0, 100),
       polarity=st.sampled_from(["higher_is_better", "lower_is_better"]))
@settings(max_examples=300, deadline=None)
def test_widening_tolerance_never_worsens(value: float, target: float, width: float,
                                          extra: float, polarity: str) -> None:
    sign = -1 if polarity == "higher_is_better" else 1
    narrow = target + sign * width
    wide = target + sign * (width + extra)
    before = one(value, polarity, target, target, narrow, narrow)
    after = one(value, polarity, target, target, wide, wide)
    assert RANK[after] <= RANK[before]


@given(value=finite, target=finite, width=st.floats(0, 100))
@settings(max_examples=300, deadline=None)
def test_swapping_polarity_mirrors(value: float, target: float, width: float) -> None:
    higher = one(value, "higher_is_better", target, target, target - width, target - width)
    lower = one(-value, "lower_is_better", -target, -target, -(target - width),
                -(target - width))
    assert higher == lower


@given(value=finite, low=finite, span=st.floats(0, 100), margin=st.floats(0, 50))
@settings(max_examples=300, deadline=None)
def test_within_range_is_symmetric(value: float, low: float, span: float,
                                   margin: float) -> None:
    high = low + span
    status = one(value, "within_range", low, high, low - margin, high + margin)
    mirrored = one(-value, "within_range", -high, -low, -high - margin, -low + margin)
    assert status == mirrored
    if low <= value <= high:
        assert status == "met"


@given(value=finite, target=finite, polarity=st.sampled_from(
    ["higher_is_better", "lower_is_better"]))
@settings(max_examples=200, deadline=None)
def test_meeting_target_is_met_whatever_the_band(value: float, target: float,
                                                 polarity: str) -> None:
    status = one(value, polarity, target, target, np.nan, np.nan)
    good = value >= target if polarity == "higher_is_better" else value <= target
    assert status == ("met" if good else "breach")


# --- many sources, frequencies and profiles, against a plain reading of the rules ------------

SOURCES = ("", "system", "manual")


@st.composite
def figure_sets(draw: st.DrawFn) -> pd.DataFrame:
    """Figures of three measures over 2023-04..2024-06, with up to three sources each, ranks
    that tie, missing values and months without any figure."""
    rows = []
    for mid in ("M1", "Q1", "C1"):
        for i in range(15):
            period = from_index(month_index("2023-04") + i)
            for source in draw(st.lists(st.sampled_from(SOURCES), max_size=3, unique=True)):
                value = draw(st.one_of(st.just(None), st.integers(0, 200).map(float)))
                rows.append({"contract": "c1", "measure": mid, "period": period,
                             "value": np.nan if value is None else value, "numerator": np.nan,
                             "denominator": np.nan, "source": source,
                             "source_rank": draw(st.integers(0, 1)), "comment": "",
                             "version": 1})
    frame = pd.DataFrame(rows, columns=["contract", "measure", "period", "value", "numerator",
                                        "denominator", "source", "source_rank", "comment",
                                        "version"])
    order = draw(st.permutations(range(len(frame))))
    return frame.iloc[list(order)].reset_index(drop=True)


PROFILE = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 1.0]


@given(figs=figure_sets())
@settings(max_examples=60, deadline=None)
def test_history_reads_every_figure_as_the_rules_say(figs: pd.DataFrame) -> None:
    sched = Schedule(
        contract=ContractSpec(id="c1", title="T", commissioner="C", provider="P",
                              forums=["Group"], year_start_month=4),  # type: ignore[arg-type]
        measures=[measure("M1", primary_source="manual"),
                  measure("Q1", frequency="quarterly", polarity="lower_is_better", target=50,
                          tolerance=60),
                  measure("C1", unit="count", accumulation="cumulative", target=120,
                          tolerance=[100, 119], profile=PROFILE)])
    out = assess(measure_table([sched]), figs, {"c1": ["2024-01", "2024-06"]}, history=True)

    # One row per measure-period, in contract, period and schedule order.
    assert out[["contract", "period", "order"]].equals(
        out[["contract", "period", "order"]].sort_values(["contract", "period", "order"]))
    assert not out.duplicated(["contract", "measure", "period"]).any()
    assert out["sources"].dtype == np.int64
    for _, got in out.iterrows():
        mine = figs[(figs["measure"] == got["measure"])
                    & (figs["period"] == got["figure_period"])]
        assert got["sources"] == len(mine)
        if mine.empty:
            assert np.isnan(got["value"]) and np.isnan(got["source_spread"])
            continue
        # The primary source first, then the best rank, then the first given.
        primary = "manual" if got["measure"] == "M1" else ""
        best = sorted(range(len(mine)), key=lambda i: (mine["source"].iloc[i] != primary,
                                                       mine["source_rank"].iloc[i], i))[0]
        assert got["source"] == mine["source"].iloc[best]
        assert got["value"] == mine["value"].iloc[best] or (
            np.isnan(got["value"]) and np.isnan(mine["value"].iloc[best]))
        values = mine["value"].dropna()
        if len(mine) > 1 and len(values):
            assert got["source_spread"] == values.max() - values.min()
        else:
            assert np.isnan(got["source_spread"])
        month = int(got["period"][5:])
        if got["measure"] == "Q1":
            assert got["due"] == (((month - 4) % 12 + 1) % 3 == 0)
        if got["measure"] == "C1":
            assert got["profiled_target"] == pytest.approx(120 * PROFILE[(month - 4) % 12])


def test_overlapping_schedule_versions_keep_their_order() -> None:
    """A later version that takes effect before the one it follows overlaps it: both are
    assessed in the overlap, the earlier version first."""
    v1 = schedule(measure("M1"), measure("M2"))
    v2 = schedule(measure("M2"), measure("M1"))
    v3 = schedule(measure("M1", target=95), measure("M2"))
    table = measure_table([(v1, 1, None), (v2, 2, "2024-06"), (v3, 3, "2024-03")])
    figs = figures([("M1", p, 96.0) for p in ("2024-02", "2024-03", "2024-04")]
                   + [("M2", "2024-04", 80.0)])
    out = assess(table, figs, ["2024-04"], history=True)
    april = out[out["period"] == "2024-04"]
    assert april[["measure", "schedule_version"]].values.tolist() == [
        ["M1", 1], ["M1", 3], ["M2", 1], ["M2", 3]]
    # The direction of travel reads the months of the measure whatever the version.
    assert april["previous_value"].tolist()[:2] == [96.0, 96.0]


def test_a_period_counts_towards_recovery_by_its_margin_beyond_the_target() -> None:
    """``_recovered``: met or within tolerance counts; with a recovery margin, only a figure
    better than its target (the one it is judged against, where given) by the margin; a
    negative or missing margin is none."""
    import numpy as np

    from compliance.assess import _recovered

    nan = float("nan")
    rows = {
        "status": np.array(["met", "met", "within_tolerance", "breach", "met", "met", None,
                            "met", "met"], dtype=object),
        "polarity": np.array(["higher_is_better", "higher_is_better", "lower_is_better",
                              "higher_is_better", "within_range", "within_range",
                              "higher_is_better", "lower_is_better", None], dtype=object),
        "recovery_margin": np.array([1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, -1.0, nan]),
        "value": np.array([91.0, 90.5, 5.0, 99.0, 5.0, 5.5, 99.0, 50.0, 1.0], dtype=object),
        "target_low": np.array([90.0, 90.0, 8.0, 90.0, 4.0, 4.0, 90.0, 10.0, nan]),
        "target_high": np.array([90.0, 90.0, 8.0, 90.0, 6.0, 6.0, 90.0, 10.0, nan]),
    }
    assert _recovered(rows).tolist() == [True, False, True, False, True, False, False, True,
                                         True]
    assert _recovered({"status": rows["status"]}).tolist() == [
        True, True, True, False, True, True, False, True, True]
    # Judged against another target (a cumulative profile's, say): the margin is beyond it.
    compared = {**rows, "compared_with": np.array([80.0, 90.0, 3.0, 90.0, 0.0, 0.0, 90.0,
                                                   10.0, nan])}
    assert _recovered(compared).tolist() == [True, False, False, False, True, False, False,
                                             True, True]
