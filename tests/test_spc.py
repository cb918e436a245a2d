"""Statistical process control (Making Data Count XmR charts): hand-worked series per rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.assess import FEATURES, SPC_FEATURES, add_features, add_spc, assess, measure_table
from compliance.periods import from_index, month_index
from compliance.schedule import ContractSpec, MeasureSpec, Schedule
from compliance.spc import (
    SPC_COLUMNS,
    SpcSettings,
    XmrResult,
    assurance,
    spc_frame,
    variation,
    variation_icon,
    xmr,
)

NAN = math.nan
CC = "common_cause"
IMP = "special_cause_improvement"
CON = "special_cause_concern"
NEI = "special_cause_neither"
HIGHER, LOWER, WITHIN = "higher_is_better", "lower_is_better", "within_range"


def months(n: int, start: str = "2023-01") -> list[str]:
    return [from_index(month_index(start) + i) for i in range(n)]


def labels(values: Sequence[float], polarity: str | None = HIGHER,
           spc: SpcSettings | None = None, periods: list[str] | None = None) -> list[Any]:
    return variation(xmr(values, periods, spc), polarity)


def flagged(flags: Any) -> list[int]:
    """Positions of the points a rule flagged."""
    return [i for i, f in enumerate(flags.tolist()) if f != 0]


# --- hand-worked limits --------------------------------------------------------------------

# Series A: 10, 12 alternating, 12 points.
#   mean = (6 x 10 + 6 x 12) / 12 = 132 / 12 = 11
#   moving ranges: 11 of |12 - 10| = 2, so MR-bar = 22 / 11 = 2
#   limits = 11 +/- 2.66 x 2 = 11 +/- 5.32 -> lower 5.68, upper 16.32
#   near band = 11 +/- (2/3) x 5.32 = 11 +/- 3.546667 -> 7.453333 and 14.546667
#   12 points = min_points, so the limits are not trial; nothing signals.
SERIES_A = [10.0, 12.0] * 6


def test_hand_worked_common_cause_series() -> None:
    r = xmr(SERIES_A)
    assert r.mean == pytest.approx(11.0)
    assert r.mr_bar == pytest.approx(2.0)
    assert r.lower_limit == pytest.approx(5.68)
    assert r.upper_limit == pytest.approx(16.32)
    assert r.lower_near == pytest.approx(11 - 2 / 3 * 5.32)
    assert r.upper_near == pytest.approx(14.546667, abs=1e-6)
    assert r.points_used == 12
    assert r.trial is False
    assert np.isnan(r.moving_ranges[0])
    assert r.moving_ranges[1:].tolist() == [2.0] * 11
    assert r.variation(HIGHER) == [CC] * 12
    assert r.rule == (None,) * 12
    assert variation_icon(r, HIGHER) == "common_cause"


# Series B: 4, 16 alternating for 11 points, then 60.
#   sum = 6 x 4 + 5 x 16 + 60 = 24 + 80 + 60 = 164; mean = 164 / 12 = 13.666667
#   moving ranges: 10 of |16 - 4| = 12, and |60 - 4| = 56 -> 176 / 11 = 16 = MR-bar
#   upper limit = 13.666667 + 2.66 x 16 = 13.666667 + 42.56 = 56.226667
#   lower limit = 13.666667 - 42.56 = -28.893333
#   near band: 13.666667 +/- 28.373333 -> upper near 42.04
#   60 > 56.226667: the last point alone is beyond the upper limit. The 4s (below the mean)
#   and 16s (above) alternate, so there is no shift, no trend, and no other near point.
SERIES_B = [4.0, 16.0] * 5 + [4.0, 60.0]


def test_hand_worked_beyond_upper_limit_is_improvement_when_higher_is_better() -> None:
    r = xmr(SERIES_B)
    assert r.mean == pytest.approx(164 / 12)
    assert r.mr_bar == pytest.approx(16.0)
    assert r.upper_limit == pytest.approx(56.226667, abs=1e-6)
    assert r.lower_limit == pytest.approx(-28.893333, abs=1e-6)
    assert r.upper_near == pytest.approx(42.04)
    assert flagged(r.beyond_limit) == [11]
    assert r.beyond_limit[11] == 1
    assert flagged(r.shift) == flagged(r.trend) == flagged(r.two_of_three) == []
    assert r.variation(HIGHER) == [CC] * 11 + [IMP]
    assert r.rule[11] == "beyond_limit"
    assert variation_icon(r, HIGHER) == "improvement_high"


def test_beyond_upper_limit_is_concern_when_lower_is_better() -> None:
    r = xmr(SERIES_B)
    assert r.variation(LOWER) == [CC] * 11 + [CON]
    assert variation_icon(r, LOWER) == "concern_high"


def test_beyond_lower_limit_is_improvement_when_lower_is_better() -> None:
    mirrored = [-v for v in SERIES_B]
    assert labels(mirrored, LOWER) == [CC] * 11 + [IMP]
    assert labels(mirrored, HIGHER) == [CC] * 11 + [CON]
    assert variation_icon(xmr(mirrored), LOWER) == "improvement_low"


def test_within_range_and_no_polarity_are_neither() -> None:
    assert labels(SERIES_B, WITHIN) == [CC] * 11 + [NEI]
    assert labels(SERIES_B, None) == [CC] * 11 + [NEI]
    assert variation_icon(xmr(SERIES_B), WITHIN) == "neither_high"
    assert variation_icon(xmr([-v for v in SERIES_B]), WITHIN) == "neither_low"


def test_a_point_on_the_limit_is_within_it() -> None:
    # Fixed baseline A: upper limit 16.32 exactly (up to rounding), then 16.32 itself.
    spc = SpcSettings(baseline_to="2023-12")
    r = xmr(SERIES_A + [16.32], months(13), spc)
    assert r.beyond_limit.tolist() == [0] * 13
    r = xmr(SERIES_A + [16.33], months(13), spc)
    assert r.beyond_limit.tolist() == [0] * 12 + [1]


# Series C (missing figures): 10, NaN, 19, 20, 21.
#   mean over the figures = (10 + 19 + 20 + 21) / 4 = 70 / 4 = 17.5
#   moving ranges only between consecutive periods both with a figure: 20 - 19 = 1 and
#   21 - 20 = 1 (none across the gap, which would have been |19 - 10| = 9) -> MR-bar = 1
#   limits 17.5 +/- 2.66 -> 14.84 and 20.16; near band 17.5 +/- 1.773333 -> 15.726667
#   and 19.273333.
#   10 < 14.84: beyond the lower limit. 21 > 20.16: beyond the upper limit. 20 >= 19.273333 is
#   near, and with 21 makes two of three (19, 20, 21) near the upper limit. 19 is not near.
SERIES_C = [10.0, NAN, 19.0, 20.0, 21.0]


def test_hand_worked_missing_values_are_skipped() -> None:
    r = xmr(SERIES_C)
    assert r.mean == pytest.approx(17.5)
    assert r.mr_bar == pytest.approx(1.0)
    assert r.points_used == 4
    assert r.lower_limit == pytest.approx(14.84)
    assert r.upper_limit == pytest.approx(20.16)
    assert r.upper_near == pytest.approx(19.273333, abs=1e-6)
    assert r.lower_near == pytest.approx(15.726667, abs=1e-6)
    assert np.isnan(r.moving_ranges[:3]).all()
    assert r.moving_ranges[3:].tolist() == [1.0, 1.0]
    assert r.beyond_limit.tolist() == [-1, 0, 0, 0, 1]
    assert r.two_of_three.tolist() == [0, 0, 0, 1, 1]
    assert r.variation(HIGHER) == [CON, None, CC, IMP, IMP]
    assert r.rule == ("beyond_limit", None, None, "two_of_three", "beyond_limit")
    assert r.trial is True


def test_a_missing_figure_never_signals_and_does_not_break_a_run() -> None:
    r = xmr([8, 12, 8, 12, 8, 12, 8, 11, 12, 11, NAN, 12, 11, 12, 11, 8, 12, 8])
    assert flagged(r.shift) == [7, 8, 9, 11, 12, 13, 14]
    assert r.variation(HIGHER)[10] is None
    assert r.rule[10] is None


def test_the_latest_icon_reads_the_latest_point_with_a_figure() -> None:
    assert variation_icon(xmr(SERIES_B + [NAN]), HIGHER) == "improvement_high"
    assert variation_icon(xmr([NAN, NAN]), HIGHER) is None


# --- shifts --------------------------------------------------------------------------------

# 8, 12 alternate; then 11, 12, 11, 12, 11, 12, 11 all above the mean (176 / 17 = 10.35).
SHIFT_7 = [8, 12, 8, 12, 8, 12, 8, 11, 12, 11, 12, 11, 12, 11, 8, 12, 8]
# The same with a run of six: 11, 12, 11, 12, 11, 12 above the mean (177 / 17 = 10.41).
SHIFT_6 = [8, 12, 8, 12, 8, 12, 8, 11, 12, 11, 12, 11, 12, 8, 12, 8, 12]


def test_a_shift_of_seven_signals_every_point_of_the_run() -> None:
    r = xmr(SHIFT_7)
    assert r.mean == pytest.approx(176 / 17)
    assert r.shift.tolist() == [0] * 7 + [1] * 7 + [0] * 3
    assert flagged(r.beyond_limit) == flagged(r.trend) == flagged(r.two_of_three) == []
    assert labels(SHIFT_7) == [CC] * 7 + [IMP] * 7 + [CC] * 3
    assert labels(SHIFT_7, LOWER) == [CC] * 7 + [CON] * 7 + [CC] * 3
    assert set(r.rule[7:14]) == {"shift"}


def test_a_shift_of_six_does_not_signal_with_the_default_seven() -> None:
    r = xmr(SHIFT_6)
    assert r.shift.tolist() == [0] * 17
    assert labels(SHIFT_6) == [CC] * 17


def test_a_shift_of_six_signals_when_the_setting_is_six() -> None:
    r = xmr(SHIFT_6, settings=SpcSettings(shift_points=6))
    assert r.shift.tolist() == [0] * 7 + [1] * 6 + [0] * 4
    assert labels(SHIFT_6, spc=SpcSettings(shift_points=6)) == [CC] * 7 + [IMP] * 6 + [CC] * 4


# 13/5 alternate, then 11, 12, 11, 10, 11, 12, 11, then 7, 13, 7, 13.
#   sum = 4 x 18 + 78 + 40 = 190 over 19 points: the mean is exactly 10, and the fourth
#   point of the run is 10, on the mean: it splits the run into 3 + 3 above.
ON_MEAN: list[float] = [13, 5, 13, 5, 13, 5, 13, 5, 11, 12, 11, 10, 11, 12, 11, 7, 13, 7, 13]


def test_a_point_on_the_mean_breaks_a_shift() -> None:
    r = xmr(ON_MEAN)
    assert r.mean == 10.0
    assert r.shift.tolist() == [0] * 19
    assert labels(ON_MEAN) == [CC] * 19
    # Just above the mean instead, the run of seven signals.
    above = list(ON_MEAN)
    above[11] = 10.5
    assert flagged(xmr(above).shift) == list(range(8, 15))


def test_a_point_on_the_mean_up_to_binary_rounding_still_breaks_a_shift() -> None:
    # 18 points summing to 3.6: the mean is 0.2, but in binary it comes out 0.19999999999999998.
    values = ([0.3, 0.1] * 3 + [0.25, 0.25, 0.25, 0.2, 0.25, 0.25, 0.25]
              + [0.1, 0.3, 0.1, 0.3, -0.1])
    r = xmr(values)
    assert r.mean != 0.2 and r.mean == pytest.approx(0.2)
    assert r.shift.tolist() == [0] * 18
    above = list(values)
    above[9] = 0.21
    assert flagged(xmr(above).shift) == list(range(6, 13))


# --- trends --------------------------------------------------------------------------------

TREND_7 = [10, 12, 10, 12, 10, 9, 9.5, 10, 10.5, 11, 11.5, 12, 10, 12, 10, 12]
TREND_6_EQUAL = [10, 12, 10, 12, 10, 9, 9.5, 10, 10.5, 11, 11.5, 11.5, 10, 12, 10, 12]


def test_seven_strictly_rising_points_are_a_trend() -> None:
    r = xmr(TREND_7)
    assert r.trend.tolist() == [0] * 5 + [1] * 7 + [0] * 4
    assert flagged(r.beyond_limit) == flagged(r.shift) == flagged(r.two_of_three) == []
    assert labels(TREND_7) == [CC] * 5 + [IMP] * 7 + [CC] * 4
    assert labels(TREND_7, LOWER) == [CC] * 5 + [CON] * 7 + [CC] * 4
    assert set(r.rule[5:12]) == {"trend"}


def test_six_rising_then_an_equal_value_is_no_trend() -> None:
    r = xmr(TREND_6_EQUAL)
    assert r.trend.tolist() == [0] * 16
    assert labels(TREND_6_EQUAL) == [CC] * 16


def test_a_falling_trend_is_low_side() -> None:
    falling = [20 - v for v in TREND_7]
    r = xmr(falling)
    assert r.trend.tolist() == [0] * 5 + [-1] * 7 + [0] * 4
    assert labels(falling, LOWER) == [CC] * 5 + [IMP] * 7 + [CC] * 4
    assert labels(falling, WITHIN)[5:12] == [NEI] * 7


def test_the_trend_length_is_a_setting() -> None:
    spc = SpcSettings(trend_points=6)
    assert flagged(xmr(TREND_6_EQUAL, settings=spc).trend) == [5, 6, 7, 8, 9, 10]
    assert flagged(xmr(TREND_7, settings=SpcSettings(trend_points=8)).trend) == []


# --- two of three --------------------------------------------------------------------------

BASE = [10.0, 11.0] * 6
# 13.6, 11, 13.6 after a quiet base: mean 10.819, MR-bar 1.37, upper near 13.2485.
TWO_SAME = BASE + [13.6, 11, 13.6] + [10, 11] * 3
# 13.6 near the upper limit, 7.4 near the lower one (near band 8.0057 - 13.0419).
TWO_OPPOSITE = BASE + [13.6, 11, 7.4] + [11, 10] * 3
# Two near points, but four apart: no window of three holds both.
TWO_APART = BASE + [13.6, 11, 10.5, 13.6] + [10, 11] * 3


def test_two_of_three_near_the_same_limit_flags_the_near_points() -> None:
    r = xmr(TWO_SAME)
    assert r.upper_near == pytest.approx(13.248514, abs=1e-6)
    assert r.two_of_three.tolist() == [0] * 12 + [1, 0, 1] + [0] * 6
    assert flagged(r.beyond_limit) == flagged(r.shift) == flagged(r.trend) == []
    expected = [CC] * 21
    expected[12] = expected[14] = IMP
    assert labels(TWO_SAME) == expected
    assert r.rule[12] == r.rule[14] == "two_of_three"
    assert r.rule[13] is None


def test_two_of_three_on_opposite_sides_does_not_signal() -> None:
    r = xmr(TWO_OPPOSITE)
    assert r.values[12] >= r.upper_near and r.values[14] <= r.lower_near
    assert r.two_of_three.tolist() == [0] * 21
    assert labels(TWO_OPPOSITE) == [CC] * 21


def test_two_near_points_outside_one_window_do_not_signal() -> None:
    r = xmr(TWO_APART)
    assert r.values[12] >= r.upper_near and r.values[15] >= r.upper_near
    assert r.two_of_three.tolist() == [0] * 22


def test_the_two_of_three_rule_can_be_switched_off() -> None:
    r = xmr(TWO_SAME, settings=SpcSettings(two_of_three=False))
    assert r.two_of_three.tolist() == [0] * 21
    assert labels(TWO_SAME, spc=SpcSettings(two_of_three=False)) == [CC] * 21


def test_the_near_fraction_is_a_setting() -> None:
    # Only 2/3 of the way to the limit counts by default; 0.95 of the way 13.6 is not near.
    assert flagged(xmr(TWO_SAME, settings=SpcSettings(near_limit_fraction=0.95))
                   .two_of_three) == []


# --- precedence ----------------------------------------------------------------------------

# Series D: 1, 2, 3, 4, 5, 6, 7, 6, 5.
#   mean = 39 / 9 = 4.333333; moving ranges all 1 -> MR-bar = 1
#   limits 4.333333 +/- 2.66 -> 1.673333 and 6.993333; near band +/- 1.773333 -> 2.56, 6.106667
#   1 < 1.673333 beyond the lower limit; 7 > 6.993333 beyond the upper limit;
#   1 and 2 are near the lower limit (<= 2.56): two of three, low side;
#   1 .. 7 is a rising trend of seven, high side; 1, 2, 3, 4 below the mean and 5, 6, 7, 6, 5
#   above: no shift.
SERIES_D = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 6.0, 5.0]


def test_hand_worked_precedence_of_beyond_limit_over_trend_and_trend_over_two_of_three() -> None:
    r = xmr(SERIES_D)
    assert r.mean == pytest.approx(39 / 9)
    assert r.mr_bar == pytest.approx(1.0)
    assert r.lower_limit == pytest.approx(4.333333 - 2.66, abs=1e-6)
    assert r.upper_limit == pytest.approx(6.993333, abs=1e-6)
    assert r.lower_near == pytest.approx(2.56)
    assert r.beyond_limit.tolist() == [-1, 0, 0, 0, 0, 0, 1, 0, 0]
    assert r.trend.tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert r.two_of_three.tolist() == [-1, -1, 0, 0, 0, 0, 0, 0, 0]
    assert r.shift.tolist() == [0] * 9
    # Point 0: beyond the lower limit (concern) beats the rising trend (improvement).
    # Point 1: the rising trend beats two-of-three near the lower limit.
    # Point 6: beyond the upper limit and in the trend: named by the stronger rule.
    assert r.rule == ("beyond_limit", "trend", "trend", "trend", "trend", "trend",
                      "beyond_limit", None, None)
    assert r.variation(HIGHER) == [CON, IMP, IMP, IMP, IMP, IMP, IMP, CC, CC]
    assert r.variation(LOWER) == [IMP, CON, CON, CON, CON, CON, CON, CC, CC]
    assert r.side.tolist() == [-1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert r.trial is True


# Points 9 - 16 (12, 15, 14.5 ... 12.2) are all above the mean 11.84: a high-side shift;
# points 10 - 17 (15 down to 10) fall strictly: a low-side trend.
SHIFT_AND_TREND = [10, 12] * 5 + [15, 14.5, 14, 13.5, 13, 12.5, 12.2] + [10, 12] * 2


def test_a_shift_takes_precedence_over_a_trend_the_other_way() -> None:
    r = xmr(SHIFT_AND_TREND)
    assert flagged(r.shift) == list(range(9, 17))
    assert flagged(r.trend) == list(range(10, 18))
    assert r.trend[10] == -1 and r.shift[10] == 1
    got = r.variation(HIGHER)
    assert got[9:17] == [IMP] * 8
    assert got[17] == CON  # the trend's last point, below the mean: only the trend flags it
    assert r.rule[9:18] == ("shift",) * 8 + ("trend",)


# Fixed baseline 12, 10 alternating (mean 11, MR-bar 2, limits 5.68 - 16.32, upper near
# 14.546667), then seven points above 11: 12, 13, 15, 12, 17, 13, 12.
#   15 is near; 17 is beyond (and near); 15, 12, 17 is two of three near the upper limit.
IN_A_SHIFT = [12.0, 10.0] * 6 + [12, 13, 15, 12, 17, 13, 12]


def test_beyond_limit_then_shift_then_two_of_three_on_the_same_side() -> None:
    r = xmr(IN_A_SHIFT, months(19), SpcSettings(baseline_to="2023-12"))
    assert r.mean == pytest.approx(11.0) and r.upper_limit == pytest.approx(16.32)
    assert flagged(r.shift) == list(range(12, 19))
    assert flagged(r.beyond_limit) == [16]
    assert flagged(r.two_of_three) == [14, 16]
    assert r.rule[12:] == ("shift", "shift", "shift", "shift", "beyond_limit", "shift",
                           "shift")
    assert r.variation(HIGHER)[12:] == [IMP] * 7


# --- trial limits, baselines and recalculation ---------------------------------------------


def test_fewer_than_twelve_points_give_trial_limits() -> None:
    r = xmr(SERIES_A[:11])
    assert r.trial is True and r.points_used == 11
    # (6 x 10 + 5 x 12) / 11
    assert r.mean == pytest.approx(120 / 11)
    assert xmr(SERIES_A).trial is False
    assert xmr(SERIES_A[:11], settings=SpcSettings(min_points=10)).trial is False


def test_a_fixed_baseline_period_sets_the_limits_for_every_point() -> None:
    # Baseline 2023-01 to 2023-12 is series A (mean 11, MR-bar 2, upper limit 16.32); 17 in
    # 2024-01 lies beyond it. Limits from all 16 points would be 11.4375 +/- 2.66 x 2.4
    # (upper 17.8215), and 17 would not signal.
    values = SERIES_A + [17, 12, 10, 12]
    fixed = xmr(values, months(16), SpcSettings(baseline_from="2023-01",
                                                 baseline_to="2023-12"))
    assert fixed.mean == pytest.approx(11.0)
    assert fixed.mr_bar == pytest.approx(2.0)
    assert fixed.upper_limit == pytest.approx(16.32)
    assert fixed.points_used == 12 and fixed.trial is False
    assert fixed.rule[12] == "beyond_limit"
    assert fixed.variation(HIGHER)[12] == IMP
    loose = xmr(values)
    assert loose.mean == pytest.approx(183 / 16)
    assert loose.mr_bar == pytest.approx(2.4)
    assert loose.upper_limit == pytest.approx(17.8215)
    assert loose.rule[12] is None
    # The baseline may also be given by its end alone, or in other spellings of the period.
    to_only = xmr(values, months(16), SpcSettings(baseline_to="Dec 2023"))
    assert to_only.upper_limit == pytest.approx(16.32)
    # A baseline in the middle of the series is applied before it too.
    middle = xmr([30.0, *SERIES_A], months(13, "2022-12"),
                 SpcSettings(baseline_from="2023-01", baseline_to="2023-12"))
    assert middle.mean == pytest.approx(11.0)
    assert middle.rule[0] == "beyond_limit"


def test_recalculating_from_a_named_period() -> None:
    # 10/12 for 2023, then 20/22 for 2024. As one chart (mean 16) both halves are shifts;
    # recalculated from 2024-01 each half has its own limits: 11 +/- 5.32 and 21 +/- 5.32.
    values = SERIES_A + [20.0, 22.0] * 6
    one = xmr(values, months(24))
    assert one.mean == pytest.approx(16.0)
    assert set(one.variation(HIGHER)) == {CON, IMP}
    split = xmr(values, months(24), SpcSettings(baseline_from="2024-01"))
    assert len(split.segments) == 2
    before, after = split.segments
    assert (before.mean, before.mr_bar) == pytest.approx((11.0, 2.0))
    assert (before.lower_limit, before.upper_limit) == pytest.approx((5.68, 16.32))
    assert (after.mean, after.mr_bar) == pytest.approx((21.0, 2.0))
    assert (after.lower_limit, after.upper_limit) == pytest.approx((15.68, 26.32))
    assert split.mean == pytest.approx(21.0)  # the latest limits
    assert split.segment.tolist() == [0] * 12 + [1] * 12
    assert np.isnan(split.moving_ranges[12])  # no moving range across the recalculation
    assert split.variation(HIGHER) == [CC] * 24


def test_recalculation_segments_are_trial_on_their_own_counts() -> None:
    values = SERIES_A + [20.0, 22.0] * 3
    split = xmr(values, months(18), SpcSettings(baseline_from="2024-01"))
    assert [s.trial for s in split.segments] == [False, True]
    assert [s.points for s in split.segments] == [12, 6]
    assert split.trial is True


def test_a_recalculation_before_the_first_point_leaves_one_chart() -> None:
    r = xmr(SERIES_A, months(12), SpcSettings(baseline_from="2020-01"))
    assert len(r.segments) == 1 and r.mean == pytest.approx(11.0)


def test_a_recalculation_after_the_latest_figure_keeps_the_limits_it_is_read_against() -> None:
    # Recalculated from 2023-07, whose only period has no figure yet: that stretch has no
    # limits, and the chart is still summed up by the stretch of its latest figure
    # (2023-04), as spc_frame's latest row is. 0, 0, -, 0: mean 0, one moving range of 0,
    # so limits 0 - 0; a target of 8 above the upper limit is consistently failed.
    spc = SpcSettings(baseline_from="2023-07")
    r = xmr([0.0, 0.0, NAN, 0.0, NAN, NAN, NAN], months(7), spc)
    assert r.segment.tolist() == [0] * 6 + [1]
    assert np.isnan(r.segments[1].mean) and r.segments[1].points == 0
    assert r.current == 0 and r.limits == r.segments[0]
    assert (r.mean, r.mr_bar, r.lower_limit, r.upper_limit) == (0.0, 0.0, 0.0, 0.0)
    assert r.points_used == 3 and r.trial is True
    assert assurance(r, HIGHER, 8.0) == "consistently_failing"
    # A figure in the new stretch moves the summary onto it.
    moved = xmr([0.0, 0.0, NAN, 0.0, NAN, NAN, 5.0], months(7), spc)
    assert moved.current == 1 and moved.mean == 5.0 and moved.points_used == 1
    assert np.isnan(moved.upper_limit) and assurance(moved, HIGHER, 8.0) is None


def test_a_stretch_without_a_moving_range_has_a_mean_but_no_limits() -> None:
    # 0, -, -, 0: two figures never in consecutive periods, so no moving range: mean 0, and
    # NaN MR-bar and limits (nothing beyond or near a limit, no assurance).
    r = xmr([0.0, NAN, NAN, 0.0, NAN, NAN, NAN], months(7), SpcSettings(baseline_from="2023-07"))
    assert r.mean == 0.0 and r.points_used == 2
    assert all(np.isnan(v) for v in (r.mr_bar, r.lower_limit, r.upper_limit, r.lower_near,
                                     r.upper_near))
    assert r.rule == (None,) * 7
    assert assurance(r, HIGHER, 8.0) is None
    one = xmr([7.0], ["2023-01"])
    assert one.mean == 7.0 and np.isnan(one.upper_limit) and one.points_used == 1


@pytest.mark.parametrize(("values", "mean", "upper", "outcome"), [
    ([0.0, NAN, NAN, 0.0, NAN, NAN, NAN], 0.0, NAN, None),
    ([0.0, 0.0, NAN, 0.0, NAN, NAN, NAN], 0.0, 0.0, "consistently_failing"),
])
def test_spc_frame_agrees_with_xmr_when_the_recalculated_stretch_has_no_figure(
        values: list[float], mean: float, upper: float, outcome: str | None) -> None:
    # The two examples hypothesis found for test_spc_frame_agrees_with_one_chart_at_a_time.
    spc = SpcSettings(baseline_from="2023-07")
    rows = assessment_rows("c", "m0", values, HIGHER, target=8.0)
    last = spc_frame(pd.DataFrame(rows), spc).iloc[-1]
    one = xmr(values, months(len(values)), spc)
    assert last["period"] == "2023-04"
    for got, want in ((last["mean"], one.mean), (last["upper_limit"], one.upper_limit),
                      (last["lower_limit"], one.lower_limit)):
        assert got == want or (np.isnan(got) and np.isnan(want))
    assert one.mean == mean
    assert one.upper_limit == upper or (np.isnan(upper) and np.isnan(one.upper_limit))
    assert last["assurance"] == assurance(one, HIGHER, 8.0) == outcome
    assert last["icon"] == variation_icon(one, HIGHER) == "common_cause"
    assert bool(last["trial"]) == one.trial


def test_the_limit_factor_is_a_setting() -> None:
    r = xmr(SERIES_A, settings=SpcSettings(limit_factor=3.0))
    assert (r.lower_limit, r.upper_limit) == pytest.approx((5.0, 17.0))
    assert r.upper_near == pytest.approx(15.0)


# --- assurance -----------------------------------------------------------------------------

# Series A's limits are 5.68 - 16.32.
@pytest.mark.parametrize(("polarity", "target", "expected"), [
    (HIGHER, 5.0, "consistently_passing"),
    (HIGHER, 5.68, "consistently_passing"),     # target on the lower limit: every point meets
    (HIGHER, 10.0, "inconsistent"),
    (HIGHER, 16.32, "inconsistent"),            # on the upper limit: not beyond it
    (HIGHER, 17.0, "consistently_failing"),
    (LOWER, 17.0, "consistently_passing"),
    (LOWER, 16.32, "consistently_passing"),
    (LOWER, 10.0, "inconsistent"),
    (LOWER, 5.68, "inconsistent"),
    (LOWER, 5.0, "consistently_failing"),
    (WITHIN, (5.0, 17.0), "consistently_passing"),
    (WITHIN, (5.68, 16.32), "consistently_passing"),
    (WITHIN, (10.0, 20.0), "inconsistent"),
    (WITHIN, (0.0, 6.0), "inconsistent"),
    (WITHIN, (18.0, 30.0), "consistently_failing"),
    (WITHIN, (0.0, 5.0), "consistently_failing"),
    (HIGHER, None, None),
    (WITHIN, None, None),
    (None, 10.0, None),
])
def test_assurance(polarity: str | None, target: Any, expected: str | None) -> None:
    assert assurance(xmr(SERIES_A), polarity, target) == expected


def test_no_assurance_without_limits() -> None:
    assert assurance(xmr([10.0]), HIGHER, 5.0) is None
    assert assurance(xmr([]), HIGHER, 5.0) is None


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [
    {"shift_points": 1}, {"trend_points": 1}, {"min_points": 0}, {"near_limit_fraction": 0},
    {"near_limit_fraction": 1.5}, {"limit_factor": 0}, {"limit_factor": math.inf},
    {"near_points": 4}, {"baseline_from": "2024-13"},
    {"baseline_from": "2024-06", "baseline_to": "2024-01"},
])
def test_bad_settings_are_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SpcSettings(**kw)


def test_settings_normalise_periods() -> None:
    assert SpcSettings(baseline_from="Sep 2018").baseline_from == "2018-09"


def test_periods_must_fit_the_values() -> None:
    with pytest.raises(ValueError, match="periods"):
        xmr([1.0, 2.0], ["2023-01"])
    with pytest.raises(ValueError, match="increasing"):
        xmr([1.0, 2.0], ["2023-02", "2023-01"])
    with pytest.raises(ValueError, match="baseline"):
        xmr([1.0, 2.0], None, SpcSettings(baseline_to="2023-01"))


# --- the frame of many charts --------------------------------------------------------------


def assessment_rows(contract: str, measure: str, values: Sequence[float], polarity: str,
                    start: str = "2023-01", status: list[str] | None = None,
                    target: float | tuple[float, float] = NAN) -> list[dict[str, Any]]:
    low, high = target if isinstance(target, tuple) else (target, target)
    return [{"contract": contract, "measure": measure, "period": p, "value": v,
             "status": (status[i] if status else ("not_reported" if np.isnan(v) else "met")),
             "polarity": polarity, "target_low": low, "target_high": high,
             "compared_with": NAN if isinstance(target, tuple) else target}
            for i, (p, v) in enumerate(zip(months(len(values), start), values, strict=True))]


def test_spc_frame_charts_each_contract_measure_apart() -> None:
    rows = (assessment_rows("c1", "beyond", SERIES_B, HIGHER, target=5.0)
            + assessment_rows("c1", "shift", SHIFT_7, LOWER, target=30.0)
            + assessment_rows("c2", "range", SERIES_A, WITHIN, target=(18.0, 30.0)))
    frame = pd.DataFrame(rows).sample(frac=1, random_state=1)  # any row order
    out = spc_frame(frame)
    assert list(out.columns) == SPC_COLUMNS
    assert len(out) == 12 + 17 + 12
    b = out[out["measure"] == "beyond"]
    assert b["period"].tolist() == months(12)
    assert b["mean"].iloc[0] == pytest.approx(164 / 12)
    assert b["upper_limit"].iloc[-1] == pytest.approx(56.226667, abs=1e-6)
    assert b["variation"].tolist() == [CC] * 11 + [IMP]
    assert b["rule"].tolist() == [None] * 11 + ["beyond_limit"]
    assert b["icon"].iloc[-1] == "improvement_high"
    assert set(b["assurance"]) == {"inconsistent"}  # 5 lies within -28.9 - 56.2
    s = out[out["measure"] == "shift"]
    assert s["variation"].tolist() == [CC] * 7 + [CON] * 7 + [CC] * 3
    assert set(s["assurance"]) == {"consistently_passing"}  # 30 above the upper limit
    r = out[out["measure"] == "range"]
    assert r["variation"].tolist() == [CC] * 12
    assert not r["trial"].any()
    assert set(r["assurance"]) == {"consistently_failing"}  # 5.68 - 16.32 below 18 - 30


def test_spc_frame_skips_periods_not_due_and_breaks_moving_ranges_at_missing_figures() -> None:
    # Quarterly figures in a monthly grid: the not-due months neither count nor make gaps.
    values = [NAN, NAN, 10.0, NAN, NAN, 12.0, NAN, NAN, 10.0, NAN, NAN, 12.0]
    status = ["not_due", "not_due", "met"] * 4
    quarterly = assessment_rows("c1", "q", values, HIGHER, status=status)
    # A judged month without a figure: no moving range across it (as SERIES_C).
    monthly = assessment_rows("c1", "m", SERIES_C, HIGHER)
    out = spc_frame(pd.DataFrame(quarterly + monthly))
    q = out[out["measure"] == "q"]
    assert q["period"].tolist() == ["2023-03", "2023-06", "2023-09", "2023-12"]
    assert q["moving_range"].tolist()[1:] == [2.0, 2.0, 2.0]
    assert q["mr_bar"].iloc[0] == pytest.approx(2.0)
    assert q["points"].iloc[0] == 4 and q["trial"].all()
    m = out[out["measure"] == "m"]
    assert m["period"].tolist() == ["2023-01", "2023-03", "2023-04", "2023-05"]
    assert m["mr_bar"].iloc[0] == pytest.approx(1.0)
    assert m["variation"].tolist() == [CON, CC, IMP, IMP]
    assert m["assurance"].isna().all()  # no target


def test_spc_frame_with_baseline_settings() -> None:
    rows = assessment_rows("c1", "m", SERIES_A + [20.0, 22.0] * 6, HIGHER)
    out = spc_frame(pd.DataFrame(rows), SpcSettings(baseline_from="2024-01"))
    assert out["mean"].tolist() == pytest.approx([11.0] * 12 + [21.0] * 12)
    assert out["variation"].tolist() == [CC] * 24
    fixed = spc_frame(pd.DataFrame(rows), SpcSettings(baseline_to="2023-12"))
    assert fixed["upper_limit"].tolist() == pytest.approx([16.32] * 24)
    assert fixed["rule"].tolist()[12:] == ["beyond_limit"] * 12


def test_spc_frame_of_nothing() -> None:
    assert list(spc_frame(pd.DataFrame()).columns) == SPC_COLUMNS
    rows = assessment_rows("c1", "m", [1.0], HIGHER, status=["not_due"])
    assert spc_frame(pd.DataFrame(rows)).empty


def test_spc_frame_of_an_assessment_history() -> None:
    sched = Schedule(
        contract=ContractSpec(id="c1", title="T", commissioner="C", provider="P",
                              forums=["Group"]),
        measures=[MeasureSpec.model_validate(dict(
            id="M1", kind="kpi", title="M1", unit="percent", polarity="lower_is_better",
            target=20, tolerance=[20.1, 25]))])
    values = SERIES_A + [10.0, 12.0]
    figures = pd.DataFrame([
        {"contract": "c1", "measure": "M1", "period": p, "value": v, "numerator": NAN,
         "denominator": NAN, "source": "", "source_rank": 0, "comment": ""}
        for p, v in zip(months(14), values, strict=True)])
    history = assess(measure_table([sched]), figures, ["2024-02"], history=True)
    out = spc_frame(history)
    assert out["period"].tolist() == months(14)
    assert out["mean"].iloc[-1] == pytest.approx(11.0)
    assert out["mr_bar"].iloc[-1] == pytest.approx(2.0)
    assert out["variation"].tolist() == [CC] * 14
    # Target 20, lower is better, upper limit 16.32: every month will meet it.
    assert out["assurance"].iloc[-1] == "consistently_passing"


@settings(max_examples=60, deadline=None)
@given(st.lists(
    st.tuples(st.sampled_from([HIGHER, LOWER, WITHIN]),
              st.lists(st.one_of(st.integers(0, 20).map(float), st.just(NAN)),
                       min_size=0, max_size=30)),
    min_size=1, max_size=4),
    st.sampled_from([SpcSettings(), SpcSettings(shift_points=4, trend_points=4),
                     SpcSettings(baseline_from="2023-07"), SpcSettings(baseline_to="2023-06")]))
def test_spc_frame_agrees_with_one_chart_at_a_time(
        series: list[tuple[str, list[float]]], spc: SpcSettings) -> None:
    rows: list[dict[str, Any]] = []
    for i, (polarity, values) in enumerate(series):
        rows += assessment_rows("c", f"m{i}", values, polarity, target=8.0)
    frame = pd.DataFrame(rows, columns=["contract", "measure", "period", "value", "status",
                                        "polarity", "target_low", "target_high",
                                        "compared_with"])
    out = spc_frame(frame, spc)
    for i, (polarity, values) in enumerate(series):
        got = out[out["measure"] == f"m{i}"]
        one: XmrResult = xmr(values, months(len(values)), spc)
        present = [j for j, v in enumerate(values) if not np.isnan(v)]
        assert got["variation"].tolist() == [one.variation(polarity)[j] for j in present]
        assert got["rule"].tolist() == [one.rule[j] for j in present]
        if present:
            last = got.iloc[-1]
            assert last["icon"] == variation_icon(one, polarity)
            assert last["assurance"] == assurance(one, polarity, 8.0)
            assert bool(last["trial"]) == one.trial
            for column, expected in (("mean", one.mean), ("upper_limit", one.upper_limit),
                                     ("lower_limit", one.lower_limit)):
                if np.isnan(expected):
                    assert np.isnan(last[column])
                else:
                    assert last[column] == pytest.approx(expected)


# --- the charts as add_spc and add_features read them -------------------------------------


def merged_spc(frame: pd.DataFrame, settings: dict[str, SpcSettings]) -> pd.DataFrame:
    """add_spc as a left merge of each settings group's spc_frame onto the frame."""
    charted = frame[frame["accumulation"] != "cumulative"]
    parts = [spc_frame(charted[charted["contract"] == cid], settings.get(cid, SpcSettings()))
             for cid in frame["contract"].unique()]
    charts = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    charts = charts[["contract", "measure", "period", *SPC_FEATURES]].rename(
        columns=SPC_FEATURES)
    return frame.merge(charts, on=["contract", "measure", "period"], how="left")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["c1", "c2"]), st.sampled_from(["m1", "m2"]),
                          st.integers(0, 14),
                          st.one_of(st.integers(0, 20).map(float), st.just(NAN)),
                          st.sampled_from(["met", "breach", "not_due", "not_reported"]),
                          st.sampled_from(["point_in_time", "cumulative"])),
                min_size=1, max_size=40))
def test_add_spc_reads_each_row_as_a_left_merge_of_the_charts(
        rows: list[tuple[str, str, int, float, str, str]]) -> None:
    """Rows repeat (contract, measure, period) at times: each reads every chart point of its
    key, as a merge would, and a frame of unique keys keeps its rows and dtypes."""
    frame = pd.DataFrame([{"contract": c, "measure": m, "period": from_index(24276 + i),
                           "value": v, "status": s, "accumulation": a,
                           "polarity": HIGHER if m == "m1" else WITHIN, "target_low": 5.0,
                           "target_high": 9.0, "compared_with": NAN}
                          for c, m, i, v, s, a in rows])
    settings_by_contract = {"c2": SpcSettings(shift_points=3, trend_points=3)}
    got = add_spc(frame, settings_by_contract)
    if (frame["accumulation"] == "cumulative").all() or frame[
            (frame["accumulation"] != "cumulative") & (frame["status"] != "not_due")][
            "value"].isna().all():
        assert got[list(SPC_FEATURES.values())].isna().all().all()
        return
    pd.testing.assert_frame_equal(got, merged_spc(frame, settings_by_contract))


def test_add_features_counts_runs_over_judged_periods_only() -> None:
    sched = Schedule(
        contract=ContractSpec(id="c1", title="T", commissioner="C", provider="P",
                              forums=["Group"]),  # type: ignore[arg-type]
        measures=[MeasureSpec.model_validate(dict(
            id=mid, kind="kpi", title=mid, unit="percent", polarity="higher_is_better",
            target=90, tolerance=[85, 89.9], frequency=frequency))
            for mid, frequency in (("M1", "monthly"), ("Q1", "quarterly"))])
    values = [80.0, 80.0, 95.0, 80.0, 80.0, 80.0, 80.0, 80.0, 80.0, 80.0, 80.0, 80.0]
    figures = pd.DataFrame([
        {"contract": "c1", "measure": mid, "period": p, "value": v, "numerator": NAN,
         "denominator": NAN, "source": "", "source_rank": 0, "comment": "", "version": 1}
        for mid in ("M1", "Q1") for p, v in zip(months(12, "2024-01"), values, strict=True)])
    history = assess(measure_table([sched]), figures, ["2024-12"], history=True)
    out = add_features(history)
    assert list(out.columns) == [*history.columns, *SPC_FEATURES.values(), *FEATURES]
    assert out[list(history.columns)].equals(history)
    m1 = out[out["measure"] == "M1"]
    assert m1["consecutive_breaches"].tolist() == [1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    # Quarterly: due in March, June, September, December only (year starting in April).
    q1 = out[out["measure"] == "Q1"]
    assert q1["status"].tolist().count("not_due") == 8
    assert q1["consecutive_breaches"].tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3]
    assert out["consecutive_breaches"].dtype == np.int64
