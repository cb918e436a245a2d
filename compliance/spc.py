"""Statistical process control: XmR charts read by NHS England's "Making Data Count" method.

An XmR chart plots each figure (X) against the mean of the series and against process limits
at ``mean ± 2.66 × MR-bar``, where MR-bar is the mean of the moving ranges, the absolute
differences between consecutive figures. Four rules pick out special-cause variation:

1. **beyond_limit** – a single point beyond a process limit (strictly above the upper limit
   or strictly below the lower one; a point on a limit is within it).
2. **shift** – ``shift_points`` (7) or more consecutive points all above the mean or all
   below it. A point on the mean belongs to neither side, so it ends the run. Every point of
   the run is flagged.
3. **trend** – ``trend_points`` (7) or more consecutive points each strictly higher than the
   one before (or each strictly lower). An equal value ends the trend. Every point of the run
   is flagged; a rising trend is on the high side, a falling one on the low side.
4. **two_of_three** – within any ``near_window`` (3) consecutive points, ``near_points`` (2)
   or more are near a limit on the same side of the mean. A point is near the upper limit
   when ``x - mean >= near_limit_fraction × (upper - mean)`` (2/3 of the way from the mean
   to the limit, or beyond it), and mirror-wise for the lower limit. Only the near points of
   a qualifying window are flagged; the third point of the window need not be near, nor on
   the same side.

Every count and factor is a setting of :class:`SpcSettings` (the defaults are Making Data
Count's): nothing in this module hard-codes 7, 12, 2/3 or 2.66.

Each point then gets one variation label. The side of the rule that flagged it (high or low)
is read through the measure's polarity: for ``higher_is_better`` the high side is
improvement and the low side concern, for ``lower_is_better`` the reverse; a
``within_range`` measure, or one with no polarity, is neither. Where rules flag one point on
different sides (a high-side shift running through a point below the lower limit), the
strongest evidence decides, in the order beyond_limit > shift > trend > two_of_three: a
single point beyond a process limit is the strongest signal the method has (it alone is
enough to say the process has changed), the runs of the mean follow, and two-of-three, the
weakest and the most often a prelude to the others, comes last.

Missing figures (NaN) are skipped: they count towards neither the mean nor MR-bar, and never
signal. A moving range is taken only between two consecutive periods that both have a
figure; a gap does not make a moving range over two periods. The run rules (shift, trend,
two-of-three) pass over a gap: the missing period neither extends nor breaks a run.

Limits come from every point unless a baseline is named: ``baseline_from`` and
``baseline_to`` together fix the limits on that range of periods and apply them to every
point; ``baseline_to`` alone fixes them on the periods up to it; ``baseline_from`` alone
recalculates the limits from that period: the points before it are one chart with limits of
their own, the points from it onwards another, and no run crosses the recalculation. Limits
computed from fewer than ``min_points`` figures are trial limits.

Too few figures: the mean of a stretch needs one figure, its limits one moving range (two
consecutive periods with figures). A stretch with no figure has no mean (NaN) and
``points`` 0. A stretch with figures but no moving range (a single figure, or figures only
ever separated by gaps) has its mean but a NaN MR-bar, NaN limits and NaN near-limit
boundaries: no point of it is beyond a limit or near one, and it gives no assurance; shift
and trend, which read only the mean and the figures, still apply. A chart is summed up by the
stretch its latest figure is read against (see :class:`XmrResult`), so a recalculation from
a period after the latest figure changes neither the summary nor the latest row of
:func:`spc_frame` until a figure arrives in the new stretch.

Comparisons with the computed mean, limits and near-limit boundaries allow a relative
tolerance of 1e-9, so that a figure equal to one of them in decimal is not split off by binary
rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from compliance.periods import parse_period

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Variation = Literal["special_cause_improvement", "special_cause_concern",
                    "special_cause_neither", "common_cause"]
Rule = Literal["beyond_limit", "shift", "trend", "two_of_three"]
Assurance = Literal["consistently_passing", "consistently_failing", "inconsistent"]

RULES: tuple[Rule, ...] = ("beyond_limit", "shift", "trend", "two_of_three")
"""The rules in order of precedence: the first that flags a point labels it."""

SPC_COLUMNS = [
    "contract", "measure", "period", "value", "polarity", "moving_range", "mean", "mr_bar",
    "lower_limit", "upper_limit", "lower_near", "upper_near", "points", "trial", "variation",
    "rule", "icon", "assurance",
]

_RTOL = 1e-9
_ATOL = 1e-12


@dataclass(frozen=True)
class SpcSettings:
    """Every count and factor of the method; the defaults are Making Data Count's.

    ``shift_points``: points in a row on one side of the mean that make a shift.
    ``trend_points``: points in a row, each strictly above (below) the last, that make a trend.
    ``min_points``: fewer figures than this behind the limits make them trial limits.
    ``near_limit_fraction``: how far from the mean towards a limit a point is "near" it.
    ``limit_factor``: process limits at mean ± limit_factor × MR-bar.
    ``two_of_three``: whether the near-limit rule applies at all; ``near_points`` of any
    ``near_window`` consecutive points near one limit signal.
    ``baseline_from`` / ``baseline_to``: periods (YYYY-MM) naming the baseline; see the
    module docstring for fixed baselines and recalculation.
    """

    shift_points: int = 7
    trend_points: int = 7
    min_points: int = 12
    near_limit_fraction: float = 2 / 3
    limit_factor: float = 2.66
    two_of_three: bool = True
    near_points: int = 2
    near_window: int = 3
    baseline_from: str | None = None
    baseline_to: str | None = None

    def __post_init__(self) -> None:
        for name in ("shift_points", "trend_points", "near_points", "near_window"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2")
        if self.min_points < 1:
            raise ValueError("min_points must be at least 1")
        if self.near_points > self.near_window:
            raise ValueError("near_points cannot exceed near_window")
        if not 0 < self.near_limit_fraction <= 1:
            raise ValueError("near_limit_fraction must be in (0, 1]")
        if not (math.isfinite(self.limit_factor) and self.limit_factor > 0):
            raise ValueError("limit_factor must be a positive number")
        for name in ("baseline_from", "baseline_to"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, parse_period(value))
        if (self.baseline_from is not None and self.baseline_to is not None
                and self.baseline_to < self.baseline_from):
            raise ValueError(f"the baseline {self.baseline_from} to {self.baseline_to} "
                             "runs backwards")

    @property
    def recalculates(self) -> bool:
        """Whether ``baseline_from`` alone splits the chart into two sets of limits."""
        return self.baseline_from is not None and self.baseline_to is None


@dataclass(frozen=True)
class Limits:
    """The centre line and limits of one stretch of a chart (all of it, unless recalculated)."""

    mean: float
    mr_bar: float
    lower_limit: float
    upper_limit: float
    lower_near: float
    upper_near: float
    points: int
    trial: bool


@dataclass(frozen=True)
class XmrResult:
    """An XmR chart of one series: limits, moving ranges, each rule's flags and the labels.

    Rule flags are per point: +1 on the high side, -1 on the low side, 0 not flagged.
    ``segments`` holds the limits of each stretch (one unless the limits are recalculated);
    ``segment`` says which stretch each point belongs to. The summary properties (``limits``,
    ``mean``, ``upper_limit``, ``trial``...) are those of the stretch the latest point with a
    figure is read against, the same point :func:`variation_icon` reads and the same limits
    :func:`spc_frame` gives that point's row. That is the last stretch, unless the limits are
    recalculated from a period after the latest figure: a stretch with no figure yet has no
    limits, and the chart is still read against the stretch before it. With no figure at all
    they are those of the last stretch (all NaN). ``side`` and ``rule`` are the outcome of the
    precedence, per point.
    """

    values: FloatArray
    periods: tuple[str, ...] | None
    moving_ranges: FloatArray
    segment: IntArray
    segments: tuple[Limits, ...]
    beyond_limit: IntArray
    shift: IntArray
    trend: IntArray
    two_of_three: IntArray
    side: IntArray
    rule: tuple[Rule | None, ...]

    @property
    def current(self) -> int:
        """The index into ``segments`` of the stretch the summary properties describe."""
        present = np.flatnonzero(~np.isnan(self.values))
        if len(present) == 0:
            return len(self.segments) - 1
        return int(self.segment[present[-1]])

    @property
    def limits(self) -> Limits:
        return self.segments[self.current]

    @property
    def mean(self) -> float:
        return self.limits.mean

    @property
    def mr_bar(self) -> float:
        return self.limits.mr_bar

    @property
    def upper_limit(self) -> float:
        return self.limits.upper_limit

    @property
    def lower_limit(self) -> float:
        return self.limits.lower_limit

    @property
    def upper_near(self) -> float:
        return self.limits.upper_near

    @property
    def lower_near(self) -> float:
        return self.limits.lower_near

    @property
    def trial(self) -> bool:
        return self.limits.trial

    @property
    def points_used(self) -> int:
        return self.limits.points

    def variation(self, polarity: str | None) -> list[Variation | None]:
        """Each point's label (None for a missing figure)."""
        labels = _variation(self.side, _good_side(np.full(len(self.side), polarity, object)))
        missing = np.isnan(self.values)
        return [None if gap else cast(Variation, label)
                for label, gap in zip(labels.tolist(), missing.tolist(), strict=True)]

    def icon(self, polarity: str | None) -> str | None:
        """The variation icon code of the latest point with a figure (None if there is none)."""
        return variation_icon(self, polarity)


def xmr(values: Sequence[float] | FloatArray, periods: Sequence[str] | None = None,
        settings: SpcSettings | None = None) -> XmrResult:
    """The XmR chart of one series in time order, with every rule applied.

    ``periods`` (YYYY-MM, strictly increasing) are needed only to place a named baseline.
    """
    settings = settings or SpcSettings()
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    names: tuple[str, ...] | None = None
    if periods is not None:
        names = tuple(parse_period(p) for p in periods)
        if len(names) != len(x):
            raise ValueError(f"{len(x)} values but {len(names)} periods")
        if any(b <= a for a, b in zip(names, names[1:], strict=False)):
            raise ValueError("periods must be strictly increasing")
    elif settings.baseline_from is not None or settings.baseline_to is not None:
        raise ValueError("a named baseline needs the periods of the values")
    period_array = np.asarray(names if names is not None else [""] * len(x), dtype=str)
    segment, in_base = _baseline(period_array, settings)
    # Number the stretches present 0, 1...: a recalculation before the first point leaves one.
    segment = np.unique(segment, return_inverse=True)[1].astype(np.int64).reshape(-1)
    chart = _chart(x, segment, in_base, settings)
    firsts = [int(np.flatnonzero(segment == s)[0]) for s in range(len(np.unique(segment)))]
    segments = tuple(_limits_of(chart, i) for i in firsts) or (_NO_LIMITS,)
    rules: list[Rule | None] = [None if code == 0 else RULES[code - 1]
                                for code in chart.rule.tolist()]
    return XmrResult(values=x, periods=names, moving_ranges=chart.moving_range, segment=segment,
                     segments=segments, beyond_limit=chart.beyond_limit,
                     shift=chart.shift, trend=chart.trend, two_of_three=chart.two_of_three,
                     side=chart.side, rule=tuple(rules))


def variation(result: XmrResult, polarity: str | None) -> list[Variation | None]:
    """Each point's variation label under the measure's polarity (None for a missing figure)."""
    return result.variation(polarity)


def variation_icon(result: XmrResult, polarity: str | None) -> str | None:
    """The icon code of the latest point with a figure, for reports.

    One of ``common_cause``, ``improvement_high``, ``improvement_low``, ``concern_high``,
    ``concern_low``, ``neither_high``, ``neither_low``; None when no point has a figure.
    """
    present = np.flatnonzero(~np.isnan(result.values))
    if len(present) == 0:
        return None
    last = int(present[-1])
    icons = _icons(result.side[last:last + 1],
                   _good_side(np.array([polarity], dtype=object)))
    return str(icons[0])


def assurance(result: XmrResult, polarity: str | None,
              target: float | tuple[float, float] | None) -> Assurance | None:
    """Whether the process, as its latest limits describe it, will meet the target.

    ``higher_is_better``: a target at or below the lower limit is consistently passed, a
    target above the upper limit consistently failed, one in between hit and miss
    (``inconsistent``); mirror-wise for ``lower_is_better``. ``within_range`` takes the target
    range [low, high]: passing when both limits lie inside it, failing when the whole band
    between the limits lies outside it, otherwise inconsistent. No target, no polarity or no
    limits (no moving range in the stretch of the latest figure) gives None.
    """
    if target is None:
        return None
    low, high = target if isinstance(target, tuple) else (target, target)
    outcome = _assurance(np.array([polarity], dtype=object), np.array([low], dtype=np.float64),
                         np.array([high], dtype=np.float64),
                         np.array([result.lower_limit], dtype=np.float64),
                         np.array([result.upper_limit], dtype=np.float64))[0]
    return cast(Assurance | None, outcome)


def spc_frame(assessments: pd.DataFrame, settings: SpcSettings | None = None) -> pd.DataFrame:
    """An XmR chart of every (contract, measure) of an assessment history, all at once.

    Charts run over the judged periods (status other than ``not_due``), in period order;
    a judged period without a figure is a gap (no moving range spans it). One row comes back
    per judged period with a figure, with the limits it is read against, its variation label,
    the rule that produced it (None for common cause), its icon code and the assurance of
    its limits against the target it was judged by (``compared_with``, else the target; the
    range ``target_low``-``target_high`` for within_range measures). Every count is a setting
    of ``settings``; see the module docstring for the method.
    """
    settings = settings or SpcSettings()
    if assessments.empty:
        return pd.DataFrame(columns=SPC_COLUMNS)
    frame = assessments[[c for c in _INPUTS if c in assessments.columns]]
    if "status" in frame.columns:
        frame = frame[frame["status"] != "not_due"]
    frame = frame.sort_values(["contract", "measure", "period"], kind="stable")
    if frame.empty:
        return pd.DataFrame(columns=SPC_COLUMNS)
    n = len(frame)

    def column(name: str, default: Any) -> npt.NDArray[Any]:
        if name in frame.columns:
            return frame[name].to_numpy()
        return np.full(n, default, dtype=object)

    contract = frame["contract"].to_numpy()
    measure = frame["measure"].to_numpy()
    periods = frame["period"].astype(str).to_numpy(dtype=str)
    x = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
    polarity = column("polarity", None)
    new_series = np.ones(n, dtype=bool)
    new_series[1:] = (contract[1:] != contract[:-1]) | (measure[1:] != measure[:-1])
    readings = chart_readings(new_series, periods, x, polarity,
                              column("compared_with", np.nan), column("target_low", np.nan),
                              column("target_high", np.nan), settings)
    out = pd.DataFrame({"contract": contract, "measure": measure, "period": periods, "value": x,
                        "polarity": polarity, **readings})
    kept: pd.DataFrame = out.loc[~np.isnan(x)]
    return kept.reset_index(drop=True)


_INPUTS = ("contract", "measure", "period", "value", "status", "polarity", "compared_with",
           "target_low", "target_high")
"""The columns of an assessment history that :func:`spc_frame` reads."""


def chart_readings(new_series: BoolArray, periods: npt.NDArray[np.str_], x: FloatArray,
                   polarity: npt.NDArray[Any], compared_with: npt.NDArray[Any],
                   target_low: npt.NDArray[Any], target_high: npt.NDArray[Any],
                   settings: SpcSettings, icons: bool = True) -> dict[str, npt.NDArray[Any]]:
    """The chart columns of :data:`SPC_COLUMNS` (from ``moving_range`` on) for points laid
    out series by series, each in period order.

    ``new_series`` marks the first point of each (contract, measure); ``periods`` are the
    points' periods (YYYY-MM). The targets may be of any type ``pd.to_numeric`` reads.
    Without ``icons`` the icon column is left out.
    """
    segment, in_base = _baseline(periods, settings)
    new_group = new_series.copy()
    new_group[1:] |= segment[1:] != segment[:-1]
    group = (np.cumsum(new_group) - 1).astype(np.int64)
    chart = _chart(x, group, in_base, settings)

    higher, lower, within = _polarities(polarity)
    good = _good_side_of(higher, lower)
    target_cols = {name: pd.to_numeric(pd.Series(values), errors="coerce")
                   .to_numpy(dtype=np.float64)
                   for name, values in (("compared_with", compared_with),
                                        ("target_low", target_low),
                                        ("target_high", target_high))}
    compared = target_cols["compared_with"]
    t_low = np.where(within, target_cols["target_low"],
                     np.where(np.isnan(compared), target_cols["target_low"], compared))
    t_high = np.where(within, target_cols["target_high"],
                      np.where(np.isnan(compared), target_cols["target_high"], compared))

    rule_names = np.array([None, *RULES], dtype=object)
    readings: dict[str, npt.NDArray[Any]] = {
        "moving_range": chart.moving_range, "mean": chart.mean,
        "mr_bar": chart.mr_bar, "lower_limit": chart.lower_limit,
        "upper_limit": chart.upper_limit, "lower_near": chart.lower_near,
        "upper_near": chart.upper_near, "points": chart.points, "trial": chart.trial,
        "variation": _variation(chart.side, good), "rule": rule_names[chart.rule],
    }
    if icons:
        readings["icon"] = _icons(chart.side, good)
    readings["assurance"] = _assurance_of(higher, lower, within, t_low, t_high,
                                          chart.lower_limit, chart.upper_limit)
    return readings


# --- the vectorised chart ------------------------------------------------------------------


@dataclass(frozen=True)
class _Chart:
    """Per-point arrays of one or many charts laid end to end (``group`` marks each chart)."""

    moving_range: FloatArray
    mean: FloatArray
    mr_bar: FloatArray
    lower_limit: FloatArray
    upper_limit: FloatArray
    lower_near: FloatArray
    upper_near: FloatArray
    points: IntArray
    trial: BoolArray
    beyond_limit: IntArray
    shift: IntArray
    trend: IntArray
    two_of_three: IntArray
    side: IntArray
    rule: IntArray  # 0 none, else 1 + index into RULES


def _baseline(periods: npt.NDArray[np.str_], settings: SpcSettings) -> tuple[IntArray, BoolArray]:
    """Which stretch of the chart each point is in, and whether it counts towards the limits."""
    start, end = settings.baseline_from, settings.baseline_to
    n = len(periods)
    if settings.recalculates:
        assert start is not None
        return (periods >= start).astype(np.int64), np.ones(n, dtype=bool)
    in_base = np.ones(n, dtype=bool)
    if start is not None:
        in_base &= periods >= start
    if end is not None:
        in_base &= periods <= end
    return np.zeros(n, dtype=np.int64), in_base


def _chart(x: FloatArray, group: IntArray, in_base: BoolArray,
           settings: SpcSettings) -> _Chart:
    """Limits and rule flags of many series at once.

    ``x`` holds the series end to end in time order; ``group`` numbers them 0, 1, 2...
    contiguously; ``in_base`` marks the points whose figures make the limits.
    """
    n = len(x)
    groups = int(group.max()) + 1 if n else 0
    valid = ~np.isnan(x)
    same_prev = np.zeros(n, dtype=bool)
    same_prev[1:] = group[1:] == group[:-1]

    # Moving ranges: between consecutive periods of one chart that both have a figure.
    mr = np.full(n, np.nan)
    mr[1:] = np.abs(np.diff(x))
    mr[~same_prev] = np.nan
    base = valid & in_base
    base_mr = same_prev & ~np.isnan(mr) & in_base
    base_mr[1:] &= in_base[:-1]

    with np.errstate(divide="ignore", invalid="ignore"):
        count = np.bincount(group, weights=base.astype(np.float64), minlength=groups)
        total = np.bincount(group, weights=np.where(base, x, 0.0), minlength=groups)
        g_mean = total / count
        mr_count = np.bincount(group, weights=base_mr.astype(np.float64), minlength=groups)
        mr_total = np.bincount(group, weights=np.where(base_mr, mr, 0.0), minlength=groups)
        g_mr_bar = mr_total / mr_count
    g_mean[count == 0] = np.nan
    g_mr_bar[mr_count == 0] = np.nan
    reach = settings.limit_factor * g_mr_bar
    near = settings.near_limit_fraction * reach

    mean = g_mean[group]
    upper, lower = (g_mean + reach)[group], (g_mean - reach)[group]
    upper_near, lower_near = (g_mean + near)[group], (g_mean - near)[group]
    points = count.astype(np.int64)[group]
    trial = points < settings.min_points

    # The rules read only the points with a figure, so a gap neither breaks nor makes a run.
    at = np.flatnonzero(valid)
    xv, gv = x[at], group[at]
    flags = [
        _beyond(xv, lower[at], upper[at]),
        _shift(xv, gv, mean[at], settings.shift_points),
        _trend(xv, gv, settings.trend_points),
        (_near_run(xv, gv, lower_near[at], upper_near[at], settings.near_points,
                   settings.near_window)
         if settings.two_of_three else np.zeros(len(at), dtype=np.int64)),
    ]
    beyond, shift, trend, two = (_scatter(flag, at, n) for flag in flags)
    stacked = np.vstack([beyond, shift, trend, two]) if n else np.zeros((4, 0), np.int64)
    flagged = stacked != 0
    first = np.argmax(flagged, axis=0)
    any_flag = flagged.any(axis=0)
    side = np.where(any_flag, stacked[first, np.arange(n)], 0).astype(np.int64)
    rule = np.where(any_flag, first + 1, 0).astype(np.int64)
    return _Chart(moving_range=mr, mean=mean, mr_bar=g_mr_bar[group], lower_limit=lower,
                  upper_limit=upper, lower_near=lower_near, upper_near=upper_near,
                  points=points, trial=trial, beyond_limit=beyond, shift=shift, trend=trend,
                  two_of_three=two, side=side, rule=rule)


def _scatter(flag: IntArray, at: IntArray, n: int) -> IntArray:
    out = np.zeros(n, dtype=np.int64)
    out[at] = flag
    return out


def _close(a: FloatArray, b: FloatArray) -> BoolArray:
    return np.isclose(a, b, rtol=_RTOL, atol=_ATOL)


def _beyond(x: FloatArray, lower: FloatArray, upper: FloatArray) -> IntArray:
    """+1 strictly above the upper limit, -1 strictly below the lower; a NaN limit never."""
    with np.errstate(invalid="ignore"):
        high = (x > upper) & ~_close(x, upper)
        low = (x < lower) & ~_close(x, lower)
    return high.astype(np.int64) - low.astype(np.int64)


def _run_lengths(starts: BoolArray) -> IntArray:
    """The length of the run each element belongs to, runs beginning where ``starts``."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    run: IntArray = (np.cumsum(starts) - 1).astype(np.int64)
    lengths: IntArray = np.bincount(run).astype(np.int64)
    return lengths[run]


def _starts(gv: IntArray, key: IntArray) -> BoolArray:
    starts = np.ones(len(gv), dtype=bool)
    starts[1:] = (gv[1:] != gv[:-1]) | (key[1:] != key[:-1])
    return starts


def _shift(x: FloatArray, gv: IntArray, mean: FloatArray, points: int) -> IntArray:
    """+1/-1 for each point of a run of ``points`` or more on one side of the mean."""
    with np.errstate(invalid="ignore"):
        side = np.sign(x - mean)
    side[_close(x, mean) | np.isnan(side)] = 0
    side_int = side.astype(np.int64)
    length = _run_lengths(_starts(gv, side_int))
    return np.where((side_int != 0) & (length >= points), side_int, 0).astype(np.int64)


def _trend(x: FloatArray, gv: IntArray, points: int) -> IntArray:
    """+1/-1 for each point of ``points`` or more each strictly above (below) the one before.

    A point that ends one trend and begins the opposite one (a peak) takes the side of the
    trend it ends.
    """
    n = len(x)
    step = np.zeros(n, dtype=np.int64)
    if n > 1:
        step[1:] = np.sign(np.diff(x)).astype(np.int64)
        step[1:][gv[1:] != gv[:-1]] = 0
    # A run of k equal non-zero steps spans k + 1 points.
    length = _run_lengths(_starts(gv, step))
    into = np.where((step != 0) & (length >= points - 1), step, 0).astype(np.int64)
    flag = into.copy()
    if n > 1:
        opening = (flag[:-1] == 0) & (into[1:] != 0)
        flag[:-1][opening] = into[1:][opening]
    return flag


def _near_run(x: FloatArray, gv: IntArray, lower_near: FloatArray, upper_near: FloatArray,
              points: int, window: int) -> IntArray:
    """+1/-1 for each near-limit point of a window with ``points`` of ``window`` near one side."""
    with np.errstate(invalid="ignore"):
        high = (x >= upper_near) | _close(x, upper_near)
        low = (x <= lower_near) | _close(x, lower_near)
    high &= ~np.isnan(upper_near)
    low &= ~np.isnan(lower_near)
    return _in_window(high, gv, points, window) - _in_window(low, gv, points, window)


def _in_window(near: BoolArray, gv: IntArray, points: int, window: int) -> IntArray:
    """1 for each near point lying in some window of ``window`` points of one chart that
    holds ``points`` or more near points."""
    n = len(near)
    if n < window:
        return np.zeros(n, dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(near.astype(np.int64))])
    ends = np.arange(window - 1, n)
    count = cum[ends + 1] - cum[ends + 1 - window]
    whole = gv[ends] == gv[ends + 1 - window]
    good = np.zeros(n, dtype=np.int64)
    good[ends] = ((count >= points) & whole).astype(np.int64)
    # Point j lies in the windows ending at j .. j + window - 1.
    cum_good = np.concatenate([[0], np.cumsum(good)])
    j = np.arange(n)
    last = np.minimum(j + window, n)
    covered: BoolArray = (cum_good[last] - cum_good[j]) > 0
    flagged: IntArray = (covered & near).astype(np.int64)
    return flagged


# --- labels ---------------------------------------------------------------------------------


def _polarities(polarity: npt.NDArray[Any]) -> tuple[BoolArray, BoolArray, BoolArray]:
    """Masks of higher_is_better, lower_is_better and within_range (each distinct polarity
    compared once)."""
    codes, uniques = pd.factorize(polarity)
    # A missing polarity (code -1) reads the last name, None: no polarity.
    names = np.append(np.asarray(uniques, dtype=object), np.array([None], dtype=object))
    return ((names == "higher_is_better")[codes], (names == "lower_is_better")[codes],
            (names == "within_range")[codes])


def _good_side(polarity: npt.NDArray[Any]) -> IntArray:
    """+1 where high is good, -1 where low is good, 0 where neither (within_range, none)."""
    higher, lower, _ = _polarities(polarity)
    return _good_side_of(higher, lower)


def _good_side_of(higher: BoolArray, lower: BoolArray) -> IntArray:
    return np.where(higher, 1, np.where(lower, -1, 0)).astype(np.int64)


_VARIATIONS = np.array(["common_cause", "special_cause_neither", "special_cause_improvement",
                        "special_cause_concern"], dtype=object)
_ICONS = np.array(["common_cause", "neither_low", "neither_high", "improvement_low",
                   "improvement_high", "concern_low", "concern_high"], dtype=object)
_ASSURANCES = np.array([None, "consistently_passing", "consistently_failing", "inconsistent"],
                       dtype=object)


def _variation(side: IntArray, good: IntArray) -> npt.NDArray[np.object_]:
    codes = np.select([side == 0, good == 0, side == good], [0, 1, 2], 3)
    labels: npt.NDArray[np.object_] = _VARIATIONS[codes]
    return labels


def _icons(side: IntArray, good: IntArray) -> npt.NDArray[np.object_]:
    kind = np.select([good == 0, side == good], [1, 3], 5)
    codes = np.where(side == 0, 0, kind + (side > 0))
    icons: npt.NDArray[np.object_] = _ICONS[codes]
    return icons


def _assurance(polarity: npt.NDArray[Any], t_low: FloatArray, t_high: FloatArray,
               lower: FloatArray, upper: FloatArray) -> npt.NDArray[np.object_]:
    """Target against limits, vectorised; None where there is no target or no limits."""
    return _assurance_of(*_polarities(polarity), t_low, t_high, lower, upper)


def _assurance_of(higher: BoolArray, lower_better: BoolArray, within: BoolArray,
                  t_low: FloatArray, t_high: FloatArray, lower: FloatArray, upper: FloatArray
                  ) -> npt.NDArray[np.object_]:
    with np.errstate(invalid="ignore"):
        at_or_below = (t_high <= lower) | _close(t_high, lower)   # target <= lower limit
        above = (t_high > upper) & ~_close(t_high, upper)          # target > upper limit
        at_or_above = (t_low >= upper) | _close(t_low, upper)      # target >= upper limit
        below = (t_low < lower) & ~_close(t_low, lower)            # target < lower limit
        inside = (((t_low <= lower) | _close(t_low, lower))
                  & ((upper <= t_high) | _close(upper, t_high)))
        outside = (((upper < t_low) & ~_close(upper, t_low))
                   | ((lower > t_high) & ~_close(lower, t_high)))
    passing = np.where(higher, at_or_below, np.where(lower_better, at_or_above, inside))
    failing = np.where(higher, above, np.where(lower_better, below, outside))
    known = ((higher | lower_better | within) & ~np.isnan(t_low) & ~np.isnan(t_high)
             & ~np.isnan(lower) & ~np.isnan(upper))
    codes = np.where(known, np.select([passing, failing], [1, 2], 3), 0)
    outcome: npt.NDArray[np.object_] = _ASSURANCES[codes]
    return outcome


_NO_LIMITS = Limits(mean=math.nan, mr_bar=math.nan, lower_limit=math.nan, upper_limit=math.nan,
                    lower_near=math.nan, upper_near=math.nan, points=0, trial=True)


def _limits_of(chart: _Chart, index: int) -> Limits:
    return Limits(mean=float(chart.mean[index]), mr_bar=float(chart.mr_bar[index]),
                  lower_limit=float(chart.lower_limit[index]),
                  upper_limit=float(chart.upper_limit[index]),
                  lower_near=float(chart.lower_near[index]),
                  upper_near=float(chart.upper_near[index]),
                  points=int(chart.points[index]), trial=bool(chart.trial[index]))
