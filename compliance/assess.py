"""Assessment: every figure judged against its clause, for many contracts and periods at once.

Pure and vectorised: a DataFrame of schedules' measures and a DataFrame of figures go in, a
DataFrame of assessments comes out. No Python loop runs per figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from compliance.periods import from_index, month_index
from compliance.returns import TERM_END_MONTHS
from compliance.schedule import ADDITIVE_UNITS, Schedule

STATUSES = ("met", "within_tolerance", "breach", "not_reported", "not_due", "monitor")
RAG = {"met": "green", "within_tolerance": "amber", "breach": "red", "not_reported": "red",
       "not_due": "grey", "monitor": "grey"}

ASSESSMENT_COLUMNS = [
    "contract", "measure", "kind", "period", "figure_period", "value", "source", "sources",
    "source_spread", "target", "target_low", "target_high", "tolerance_low", "tolerance_high",
    "far_bound", "compared_with", "profiled_target", "status", "rag", "direction",
    "previous_value", "change", "forecast", "forecast_status", "reason", "comment",
]


SchedulesInForce = Iterable[Schedule | tuple[Schedule, int, str | None]]
NO_END = 10**9


def measure_table(schedules: SchedulesInForce) -> pd.DataFrame:
    """One row per contract measure (per schedule version), with its clause in columns the
    assessment can vectorise.

    A schedule may come with its version and the period it takes effect from: a version is
    in force from its ``effective_from`` until the next version's (the first from the
    beginning), so that past periods are assessed against the targets in force then.
    """
    items = [s if isinstance(s, tuple) else (s, 1, None) for s in schedules]
    starts: dict[tuple[str, int], int] = {}
    by_contract: dict[str, list[tuple[int, str | None]]] = {}
    for schedule, version, effective in items:
        by_contract.setdefault(schedule.id, []).append((version, effective))
    for cid, versions in by_contract.items():
        versions.sort()
        for i, (version, effective) in enumerate(versions):
            # A version with no start replaces those before it entirely (nothing had been
            # checked when it was loaded).
            starts[(cid, version)] = (-NO_END if i == 0 or effective is None
                                      else month_index(effective))
    ends: dict[tuple[str, int], int] = {}
    for cid, versions in by_contract.items():
        for i, (version, _) in enumerate(versions):
            nxt = versions[i + 1][0] if i + 1 < len(versions) else None
            ends[(cid, version)] = starts[(cid, nxt)] if nxt is not None else NO_END
    rows = []
    for schedule, version, _ in items:
        for order, m in enumerate(schedule.measures):
            target = m.target_range
            band = m.tolerance_band()
            profile = [(i + 1) / 12 for i in range(12)] if m.profile == "linear" else m.profile
            rows.append({
                "contract": schedule.id, "measure": m.id, "order": order, "kind": m.kind,
                "unit": m.unit, "polarity": m.polarity, "frequency": schedule.frequency(m),
                "accumulation": m.accumulation, "judged": m.judged,
                "target": m.target if isinstance(m.target, float | int) else np.nan,
                "target_low": target[0] if target else np.nan,
                "target_high": target[1] if target else np.nan,
                "tolerance_low": band[0] if band else np.nan,
                "tolerance_high": band[1] if band else np.nan,
                "far_bound": m.far_bound() if m.far_bound() is not None else np.nan,
                "lag_months": m.lag_months, "primary_source": m.primary_source or "",
                "year_start_month": schedule.contract.year_start_month,
                "starts": month_index(schedule.contract.starts) if schedule.contract.starts
                else -1,
                "profile": profile, "schedule_version": version,
                "recovery_margin": (m.recovery_margin if m.recovery_margin is not None
                                    else schedule.contract.settings.get("recovery_margin",
                                                                        np.nan)),
                "in_force_from": starts[(schedule.id, version)],
                "in_force_to": ends[(schedule.id, version)],
            })
    return pd.DataFrame(rows)


def _due(frequency: pd.Series, month: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
    freq = frequency.to_numpy()
    return np.select(
        [freq == "monthly", freq == "quarterly", freq == "termly", freq == "annual"],
        [np.ones_like(elapsed, dtype=bool), elapsed % 3 == 0,
         np.isin(month, TERM_END_MONTHS), elapsed == 12],
        default=True,
    )


def judge(value: np.ndarray, polarity: np.ndarray, target_low: np.ndarray,
          target_high: np.ndarray, tol_low: np.ndarray, tol_high: np.ndarray) -> np.ndarray:
    """Status of each value against its target and tolerance, all three polarities at once.

    ``target_low == target_high`` for a one-number target. The tolerance is the band as
    (low, high); for higher/lower polarity only its far end counts. NaN means none.
    """
    higher = polarity == "higher_is_better"
    lower = polarity == "lower_is_better"
    has_tol = ~np.isnan(tol_low)
    with np.errstate(invalid="ignore"):
        met = np.where(higher, value >= target_high,
                       np.where(lower, value <= target_low,
                                (value >= target_low) & (value <= target_high)))
        within = has_tol & np.where(higher, value >= tol_low,
                                    np.where(lower, value <= tol_high,
                                             (value >= tol_low) & (value <= tol_high)))
    status = np.where(met, "met", np.where(within, "within_tolerance", "breach"))
    return np.where(np.isnan(target_low), "monitor", status)


def pick_primary(figures: pd.DataFrame, measures: pd.DataFrame) -> pd.DataFrame:
    """One figure per contract, measure and period: the primary source, with the others noted."""
    keys = ["contract", "measure", "period"]
    if figures.empty:
        return pd.DataFrame({
            "contract": pd.Series(dtype=object), "measure": pd.Series(dtype=object),
            "period": pd.Series(dtype=object), "value": pd.Series(dtype=float),
            "source": pd.Series(dtype=object), "sources": pd.Series(dtype="int64"),
            "source_spread": pd.Series(dtype=float), "comment": pd.Series(dtype=object)})
    figs = figures.merge(measures[["contract", "measure", "primary_source"]], on=["contract",
                                                                                  "measure"])
    figs["not_primary"] = figs["source"] != figs["primary_source"]
    figs = figs.sort_values([*keys, "not_primary", "source_rank"], kind="stable")
    carried = [c for c in ("value", "source", "comment", "version") if c in figs]
    primary = figs.drop_duplicates(keys, keep="first")[[*keys, *carried]]
    counts = figs.groupby(keys, sort=False).size()
    multi = counts[counts > 1].index
    primary = primary.set_index(keys)
    primary["sources"] = 1
    primary["source_spread"] = np.nan
    if len(multi):
        several = figs.set_index(keys).loc[multi]
        grouped = several.groupby(level=[0, 1, 2])["value"]
        primary.loc[multi, "sources"] = grouped.size()
        primary.loc[multi, "source_spread"] = grouped.max() - grouped.min()
    return primary.reset_index()


def assess(measures: pd.DataFrame, figures: pd.DataFrame,
           periods: Mapping[str, Sequence[str]] | Sequence[str],
           history: bool = False) -> pd.DataFrame:
    """Assess every measure of every contract for the given check periods.

    ``periods`` is a list of periods for all contracts, or a mapping contract -> periods.
    Figures are the latest version of each figure (all sources), any periods. With
    ``history`` the result keeps every period from the first figure up to the last check
    period (the features of escalation rules need it); otherwise only the check periods.
    """
    if isinstance(periods, Mapping):
        wanted = pd.DataFrame([(c, p) for c, ps in periods.items() for p in ps],
                              columns=["contract", "period"])
    else:
        wanted = pd.DataFrame([(c, p) for c in measures["contract"].unique() for p in periods],
                              columns=["contract", "period"])
    if wanted.empty or measures.empty:
        return pd.DataFrame(columns=ASSESSMENT_COLUMNS)
    wanted["pidx"] = wanted["period"].map(month_index)

    # The grid spans from the earliest figure (so that direction of travel has its previous
    # period) to the last check period, for each contract.
    last = wanted.groupby("contract")["pidx"].max()
    first = wanted.groupby("contract")["pidx"].min()
    if not figures.empty:
        # The first period in which some figure is due: a lagged figure is due later.
        lags = figures[["contract", "measure"]].merge(
            measures[["contract", "measure", "lag_months"]].drop_duplicates(
                ["contract", "measure"]), how="left")["lag_months"]
        due_at = figures["period"].map(month_index).to_numpy() + lags.fillna(0).to_numpy()
        fig_first = pd.Series(due_at, index=figures.index).groupby(figures["contract"]).min()
        first = pd.concat([first, fig_first.reindex(first.index)], axis=1).min(axis=1)
    spans = pd.DataFrame({"first": first.astype(int), "last": last.astype(int)})
    lengths = (spans["last"] - spans["first"] + 1).to_numpy()
    grid = pd.DataFrame({
        "contract": np.repeat(spans.index.to_numpy(), lengths),
        "pidx": np.concatenate([np.arange(a, b + 1) for a, b in
                                zip(spans["first"], spans["last"], strict=True)]),
    })
    grid = grid.merge(measures, on="contract")
    grid = grid[(grid["pidx"] >= grid["starts"]) & (grid["pidx"] >= grid["in_force_from"])
                & (grid["pidx"] < grid["in_force_to"])]
    if grid.empty:
        return pd.DataFrame(columns=ASSESSMENT_COLUMNS)

    grid["fidx"] = grid["pidx"] - grid["lag_months"]
    month = (grid["fidx"].to_numpy() % 12) + 1
    elapsed = (month - grid["year_start_month"].to_numpy()) % 12 + 1
    grid["elapsed"] = elapsed
    grid["due"] = _due(grid["frequency"], month, elapsed)
    period_names = {i: from_index(i) for i in np.unique(np.concatenate(
        [grid["pidx"].unique(), grid["fidx"].unique()]))}
    grid["period"] = grid["pidx"].map(period_names)
    grid["figure_period"] = grid["fidx"].map(period_names)

    primary = pick_primary(figures, measures.drop_duplicates(["contract", "measure"])).rename(
        columns={"period": "figure_period", "version": "figure_version"})
    grid = grid.merge(primary, on=["contract", "measure", "figure_period"], how="left")
    grid["sources"] = grid["sources"].fillna(0).astype(int)
    # A measure's history starts with its first figure, or with the first period checked,
    # whichever is earlier: figures given for one measure's earlier months (comparators,
    # say) do not make every other measure "not reported" in those months.
    first_figure = grid["pidx"].where(grid["sources"] > 0).groupby(
        [grid["contract"], grid["measure"]]).transform("min")
    first_wanted = grid["contract"].map(wanted.groupby("contract")["pidx"].min())
    grid = grid[grid["pidx"] >= np.fmin(first_figure, first_wanted)].copy()
    if grid.empty:
        return pd.DataFrame(columns=ASSESSMENT_COLUMNS)
    elapsed = grid["elapsed"].to_numpy()
    has_row = grid["sources"] > 0

    # Cumulative figures in an additive unit are judged against the target profiled to the
    # months elapsed; a year-to-date rate stands against the target as it is.
    cumulative = (grid["accumulation"] == "cumulative").to_numpy()
    additive = grid["unit"].isin(ADDITIVE_UNITS).to_numpy()
    profiled = cumulative & additive
    profiles = (np.vstack(list(grid["profile"])) if len(grid) else np.empty((0, 12)))
    fraction = profiles[np.arange(len(grid)), elapsed - 1] if len(grid) else np.empty(0)
    scale = np.where(profiled, fraction, 1.0)
    value = grid["value"].to_numpy(dtype=float)
    t_low = grid["target_low"].to_numpy(dtype=float) * scale
    t_high = grid["target_high"].to_numpy(dtype=float) * scale
    tol_low = grid["tolerance_low"].to_numpy(dtype=float) * scale
    tol_high = grid["tolerance_high"].to_numpy(dtype=float) * scale
    polarity = grid["polarity"].to_numpy()
    status = judge(value, polarity, t_low, t_high, tol_low, tol_high)

    with np.errstate(divide="ignore", invalid="ignore"):
        forecast = np.where(cumulative, np.where(additive, value / fraction, value), np.nan)
    forecast_status = np.where(
        cumulative & ~np.isnan(forecast),
        judge(forecast, polarity, grid["target_low"].to_numpy(dtype=float),
              grid["target_high"].to_numpy(dtype=float),
              grid["tolerance_low"].to_numpy(dtype=float),
              grid["tolerance_high"].to_numpy(dtype=float)),
        np.array(None))

    due = grid["due"].to_numpy(dtype=bool)
    year_end_only = (grid["judged"] == "year_end").to_numpy() & (elapsed != 12)
    missing = np.isnan(value)
    status = np.where(missing, "not_reported", status)
    status = np.where(missing & np.isnan(t_low) & ~has_row.to_numpy(), "not_reported", status)
    status = np.where(year_end_only & ~missing, "not_due", status)
    status = np.where(year_end_only & missing, "not_due", status)
    status = np.where(~due, "not_due", status)
    grid["status"] = status
    grid["rag"] = grid["status"].map(RAG)
    grid["profiled_target"] = np.where(profiled, grid["target"].to_numpy(dtype=float) * fraction,
                                       np.nan)
    grid["compared_with"] = np.where(profiled, grid["profiled_target"], grid["target"])
    grid["forecast"] = forecast
    grid["forecast_status"] = forecast_status

    reason = np.where(
        grid["status"] == "not_reported",
        np.where(has_row & grid["comment"].fillna("").astype(bool), grid["comment"].fillna(""),
                 np.where(has_row, "the return gives no value", "no figure in the return")),
        np.where(~due, "not due this period (" + grid["frequency"].astype(str) + ")",
                 np.where(year_end_only, "judged at year end; the in-year figure is a forecast",
                          "")))
    grid["reason"] = reason
    grid = _direction(grid)

    if not history:
        grid = grid.merge(wanted[["contract", "period"]], on=["contract", "period"])
    grid = grid.sort_values(["contract", "period", "order"], kind="stable")
    return grid.reindex(columns=[*ASSESSMENT_COLUMNS, "due", "order", "unit", "polarity",
                                 "frequency", "accumulation", "elapsed", "schedule_version",
                                 "figure_version", "recovery_margin"]).reset_index(drop=True)


def _recovered(rows: pd.DataFrame) -> pd.Series:
    """Periods that count towards recovery: met or within tolerance; or, where the measure
    has a recovery margin (hysteresis), better than the target by at least that margin, so
    that a figure hovering at a bound does not open and resolve an escalation every month."""
    good = rows["status"].isin(["met", "within_tolerance"])
    if "recovery_margin" not in rows:
        return good
    margin = rows["recovery_margin"].astype(float)
    margin = margin.where(margin >= 0)  # a negative margin (the pack's default) is no margin
    value = rows["value"].astype(float)
    low, high = rows["target_low"].astype(float), rows["target_high"].astype(float)
    if "compared_with" in rows:
        target = rows["compared_with"].astype(float)
        low = low.where(rows["polarity"] == "within_range", target)
        high = high.where(rows["polarity"] == "within_range", target)
    inside = np.select(
        [rows["polarity"] == "higher_is_better", rows["polarity"] == "lower_is_better"],
        [value - high, low - value], default=np.fmin(value - low, high - value))
    clear = good & (inside >= margin)
    return clear.where(margin.notna(), good).astype(bool)


def _run_length(flag: pd.Series, keys: list[pd.Series]) -> pd.Series:
    """Length of the run of True ending at each row, within each group (rows in order)."""
    breaks = (~flag).astype("int64").groupby(keys).cumsum()
    return flag.astype("int64").groupby([*keys, breaks]).cumsum()


UNBOUNDED_FRACTION = 1e12
FEATURES = ("consecutive_breaches", "consecutive_missing", "consecutive_deteriorating",
            "good_run", "source_spread_fraction")


SPC_FEATURES = {"variation": "variation", "rule": "spc_rule", "assurance": "assurance",
                "mean": "spc_mean", "lower_limit": "spc_lower", "upper_limit": "spc_upper",
                "points": "spc_points", "trial": "spc_trial"}


def add_spc(frame: pd.DataFrame, settings: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Each judged figure read on its measure's XmR chart (NHS "Making Data Count").

    ``settings`` maps a contract to its SpcSettings; contracts not named use the defaults.
    """
    from compliance.spc import SpcSettings, spc_frame

    chosen = settings or {}
    groups: dict[Any, list[str]] = {}
    for cid in frame["contract"].unique():
        groups.setdefault(chosen.get(cid, SpcSettings()), []).append(cid)
    # A year-to-date figure rises through the year by construction: no chart for it.
    charted = frame[frame["accumulation"] != "cumulative"] if "accumulation" in frame \
        else frame
    parts = [spc_frame(charted[charted["contract"].isin(cids)], spc)
             for spc, cids in groups.items()]
    charts = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(
        not p.empty for p in parts) else pd.DataFrame(columns=["contract", "measure", "period",
                                                               *SPC_FEATURES])
    charts = charts[["contract", "measure", "period", *SPC_FEATURES]].rename(
        columns=SPC_FEATURES)
    frame = frame.drop(columns=[c for c in SPC_FEATURES.values() if c in frame])
    return frame.merge(charts, on=["contract", "measure", "period"], how="left")


def add_features(history: pd.DataFrame, spc: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """What spans periods, as columns of each measure-period, so a rule reads one fact.

    Runs count judged periods only: a period in which the measure is not due neither breaks
    nor extends a run. Each figure is also read on its XmR chart (see ``add_spc``).
    """
    if history.empty:
        return history
    history = add_spc(history, spc)
    frame = history.sort_values(["contract", "measure", "period"], kind="stable").copy()
    judged = frame["status"] != "not_due"
    rows = frame[judged]
    keys = [rows["contract"], rows["measure"]]
    status = rows["status"]
    for name in FEATURES[:4]:
        frame[name] = 0
    frame.loc[rows.index, "consecutive_breaches"] = _run_length(status == "breach", keys)
    frame.loc[rows.index, "consecutive_missing"] = _run_length(status == "not_reported", keys)
    frame.loc[rows.index, "consecutive_deteriorating"] = _run_length(
        rows["direction"] == "declining", keys)
    frame.loc[rows.index, "good_run"] = _run_length(_recovered(rows), keys)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = (frame["source_spread"].astype(float)
                    / frame["value"].astype(float).abs())
    # Sources that disagree about a zero figure are as far apart as can be; a finite stand-in
    # keeps the fact serialisable for the rules engine.
    fraction = fraction.mask(np.isinf(fraction), UNBOUNDED_FRACTION)
    frame["source_spread_fraction"] = fraction.where(~fraction.isna())
    return frame.sort_values(["contract", "period", "order"], kind="stable").reset_index(
        drop=True)


def _direction(grid: pd.DataFrame) -> pd.DataFrame:
    """Direction of travel against the previous due period, read through the polarity."""
    cumulative_additive = (grid["accumulation"] == "cumulative") & grid["unit"].isin(
        ADDITIVE_UNITS)
    # A year-to-date count always grows; its annualised run rate is what can improve.
    comparable = grid["value"].where(~cumulative_additive, grid["forecast"])
    due = grid[grid["due"]].sort_values(["contract", "measure", "pidx"])
    previous = comparable.loc[due.index].groupby([due["contract"], due["measure"]]).shift(1)
    grid["previous_value"] = np.nan
    grid.loc[due.index, "previous_value"] = previous
    grid["previous_value"] = grid["previous_value"].where(grid["due"])
    change = comparable - grid["previous_value"]
    grid["change"] = change
    polarity = grid["polarity"]
    mid = (grid["target_low"] + grid["target_high"]) / 2
    closer = (comparable - mid).abs() - (grid["previous_value"] - mid).abs()
    better = np.select(
        [polarity == "higher_is_better", polarity == "lower_is_better"],
        [change, -change], default=-closer)
    grid["direction"] = np.where(
        change.isna().to_numpy(), np.array(None),
        np.where(np.isclose(change.fillna(0), 0), "unchanged",
                 np.where(better > 0, "improving", "declining")))
    return grid
