"""Assessment: every figure judged against its clause, for many contracts and periods at once.

Pure and vectorised: a DataFrame of schedules' measures and a DataFrame of figures go in, a
DataFrame of assessments comes out. No Python loop runs per figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from compliance.batch import shared_texts
from compliance.periods import TERM_END_MONTHS, from_index, month_index
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

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


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
    linear = [(i + 1) / 12 for i in range(12)]
    rows: list[tuple[Any, ...]] = []
    for schedule, version, _ in items:
        contract = schedule.contract
        year_start = contract.year_start_month
        starts_at = month_index(contract.starts) if contract.starts else -1
        margin = contract.settings.get("recovery_margin", np.nan)
        in_force_from, in_force_to = starts[(schedule.id, version)], ends[(schedule.id, version)]
        for order, m in enumerate(schedule.measures):
            target = m.target_range
            band = m.tolerance_band()
            far = m.far_bound()
            rows.append((
                schedule.id, m.id, order, m.kind, m.unit, m.polarity, schedule.frequency(m),
                m.accumulation, m.judged,
                m.target if isinstance(m.target, float | int) else np.nan,
                target[0] if target else np.nan, target[1] if target else np.nan,
                band[0] if band else np.nan, band[1] if band else np.nan,
                far if far is not None else np.nan,
                m.lag_months, m.primary_source or "", year_start, starts_at,
                list(linear) if m.profile == "linear" else m.profile, version,
                m.recovery_margin if m.recovery_margin is not None else margin,
                in_force_from, in_force_to))
    # Tuples in the columns' order: quicker to lay out than a dict per measure.
    table = pd.DataFrame.from_records(rows, columns=_MEASURE_COLUMNS)
    # Equal texts of different schedules become one object: the assessment then gathers
    # rows from a few shared objects rather than one per measure.
    for name in _SHARED_TEXTS:
        if name in table and table[name].dtype == object:
            table[name] = shared_texts(table[name].to_numpy())
    return table


# The measure table's columns, in order.
_MEASURE_COLUMNS = ("contract", "measure", "order", "kind", "unit", "polarity", "frequency",
                    "accumulation", "judged", "target", "target_low", "target_high",
                    "tolerance_low", "tolerance_high", "far_bound", "lag_months",
                    "primary_source", "year_start_month", "starts", "profile",
                    "schedule_version", "recovery_margin", "in_force_from", "in_force_to")
_SHARED_TEXTS = ("contract", "measure", "kind", "unit", "polarity", "frequency", "accumulation",
                 "judged", "primary_source")


MET, WITHIN, BREACH, NOT_REPORTED, NOT_DUE, MONITOR = range(len(STATUSES))
_STATUS_NAMES = np.array(STATUSES, dtype=object)
_RAG_NAMES = np.array([RAG[s] for s in STATUSES], dtype=object)
# Forecast statuses: code 0 is "no forecast", the others are 1 + the status code.
_FORECAST_NAMES = np.array([None, *STATUSES], dtype=object)
_DIRECTIONS = np.array([None, "unchanged", "improving", "declining"], dtype=object)
_FREQUENCIES = ("monthly", "quarterly", "termly", "annual")
_NOT_REPORTED_REASONS = np.array(["no figure in the return", "the return gives no value"],
                                 dtype=object)
_YEAR_END_REASON = "judged at year end; the in-year figure is a forecast"
_NOWHERE = np.iinfo(np.int64).max


def _codes(values: Any, sort: bool = False) -> tuple[IntArray, npt.NDArray[Any]]:
    """Integer codes of the values, in order of first appearance (``sort``: of the values),
    with the distinct values; a missing value is coded as one more value, the last."""
    codes, uniques = pd.factorize(values, sort=sort)
    codes = codes.astype(np.int64, copy=False)
    distinct = np.asarray(uniques, dtype=object)
    missing = codes < 0
    if missing.any():
        codes[missing] = len(distinct)
        distinct = np.append(distinct, np.array([np.nan], dtype=object))
    return codes, distinct


def _pair_codes(first: Any, second: Any) -> IntArray:
    """One code per distinct (first, second) pair, in order of first appearance."""
    a, _ = _codes(first)
    b, b_values = _codes(second)
    codes, _ = pd.factorize(a * max(len(b_values), 1) + b)
    return codes.astype(np.int64, copy=False)


def _first_positions(codes: IntArray, count: int) -> IntArray:
    """The position of the first occurrence of each code 0 .. count - 1."""
    first = np.empty(count, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return first


def _values(column: pd.Series) -> Any:
    """A column's values as they are held: a numpy array, or pandas' own array (a
    categorical, say)."""
    return column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array


def _take(values: Any, index: IntArray) -> Any:
    """values[index], where -1 gives a missing value; the dtype widens (int to float, bool to
    object) only where something is missing, as a left merge's does."""
    if isinstance(values, pd.Series):
        values = _values(values)
    if len(index) and int(index.min()) < 0:
        return pd.api.extensions.take(values, index, allow_fill=True)
    return values.take(index)


def _column(frame: pd.DataFrame, name: str) -> Any:
    """A column's values; a missing column reads as NaN throughout, as a reindex gives it."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(np.nan, index=frame.index, dtype=float)


def _figure_pairs(figures: pd.DataFrame, measures: pd.DataFrame, pairs: IntArray,
                  first_row: IntArray) -> IntArray:
    """For each figure, the code of its (contract, measure) in ``pairs`` (-1: not scheduled)."""
    f_contract, contract_values = _codes(figures["contract"])
    f_measure, measure_values = _codes(figures["measure"])
    width = max(len(measure_values), 1)
    m_contract = pd.Index(contract_values).get_indexer(
        pd.Index(measures["contract"].to_numpy()[first_row]))
    m_measure = pd.Index(measure_values).get_indexer(
        pd.Index(measures["measure"].to_numpy()[first_row]))
    known = (m_contract >= 0) & (m_measure >= 0)
    pair_keys = np.where(known, m_contract * width + m_measure,
                         -1 - np.arange(len(first_row), dtype=np.int64))
    figure_pair: IntArray = pd.Index(pair_keys).get_indexer(
        pd.Index(f_contract * width + f_measure))
    return figure_pair.astype(np.int64, copy=False)


def _not_primary(source: pd.Series, pair: IntArray, primary_source: npt.NDArray[Any]
                 ) -> BoolArray:
    """Whether each figure's source differs from its measure's primary source (compared once
    per distinct source and measure)."""
    source_code, source_values = _codes(source)
    combos, combo_values = pd.factorize(source_code * max(len(primary_source), 1) + pair)
    width = max(len(primary_source), 1)
    differs = (pd.Series(source_values[combo_values // width])
               != pd.Series(primary_source[combo_values % width])).to_numpy()
    return differs[combos]


def _first_of_groups(key: IntArray, not_primary: BoolArray, rank: npt.NDArray[Any],
                     value: FloatArray) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Groups of equal ``key``, each led by its primary source then its best-ranked one.

    Returns the groups' keys (ascending), the position of each group's chosen figure, the
    number of figures in each group and the spread (max - min) of values in groups of more
    than one.
    """
    if key.dtype.kind in "iu" and np.asarray(rank).dtype.kind in "iu":
        # Whole numbers sort as they are: no codes to make for them first.
        order = np.lexsort((rank, not_primary, key))
    else:
        order = _sorted(_sort_codes(key), (not_primary.astype(np.int64), 2),
                        _sort_codes(rank))
    sorted_key = key[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_key[1:] != sorted_key[:-1]]))
    counts = np.diff(np.append(starts, len(key))).astype(np.int64)
    spread = np.full(len(starts), np.nan)
    if len(starts):
        ordered = value[order]
        spread = np.where(counts > 1, np.fmax.reduceat(ordered, starts)
                          - np.fmin.reduceat(ordered, starts), np.nan)
    return sorted_key[starts], order[starts], counts, spread


def _judge_codes(value: FloatArray, higher: BoolArray, lower: BoolArray, target_low: FloatArray,
                 target_high: FloatArray, tol_low: FloatArray, tol_high: FloatArray
                 ) -> npt.NDArray[np.int8]:
    """Status codes (indices into STATUSES) of ``judge``, with the polarity given as masks."""
    has_tol = ~np.isnan(tol_low)
    with np.errstate(invalid="ignore"):
        met = np.where(higher, value >= target_high,
                       np.where(lower, value <= target_low,
                                (value >= target_low) & (value <= target_high)))
        within = has_tol & np.where(higher, value >= tol_low,
                                    np.where(lower, value <= tol_high,
                                             (value >= tol_low) & (value <= tol_high)))
    codes = np.where(met, MET, np.where(within, WITHIN, BREACH)).astype(np.int8)
    codes[np.isnan(target_low)] = MONITOR
    return codes


def judge(value: np.ndarray, polarity: np.ndarray, target_low: np.ndarray,
          target_high: np.ndarray, tol_low: np.ndarray, tol_high: np.ndarray) -> np.ndarray:
    """Status of each value against its target and tolerance, all three polarities at once.

    ``target_low == target_high`` for a one-number target. The tolerance is the band as
    (low, high); for higher/lower polarity only its far end counts. NaN means none.
    """
    codes = _judge_codes(value, polarity == "higher_is_better", polarity == "lower_is_better",
                         target_low, target_high, tol_low, tol_high)
    return np.asarray(np.array(STATUSES)[codes])


def _due(frequency: IntArray, month: IntArray, elapsed: IntArray) -> BoolArray:
    """Whether each period is due, ``frequency`` as an index into _FREQUENCIES (else due)."""
    due: BoolArray = np.select(
        [frequency == 0, frequency == 1, frequency == 2, frequency == 3],
        [np.ones_like(elapsed, dtype=bool), elapsed % 3 == 0,
         np.isin(month, TERM_END_MONTHS), elapsed == 12],
        default=True,
    )
    return due


def assess(measures: pd.DataFrame, figures: pd.DataFrame,
           periods: Mapping[str, Sequence[str]] | Sequence[str],
           history: bool = False) -> pd.DataFrame:
    """Assess every measure of every contract for the given check periods.

    ``periods`` is a list of periods for all contracts, or a mapping contract -> periods.
    Figures are the latest version of each figure (all sources), any periods. With
    ``history`` the result keeps every period from the first figure up to the last check
    period (the features of escalation rules need it); otherwise only the check periods.

    Rows are measure-periods, held as positions into ``measures`` (one row per contract
    measure and schedule version) and month indices, so that every column is gathered once,
    by position, when the frame is built.
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
    by_contract = wanted.groupby("contract")["pidx"]
    last = by_contract.max()
    contracts = last.index
    first_wanted = by_contract.min().to_numpy().astype(np.int64)
    last_wanted = last.to_numpy().astype(np.int64)

    # Measures: each (contract, measure) pair across schedule versions, and its first row
    # (whose lag dates the figures and whose primary source picks among them).
    pairs = _pair_codes(measures["contract"], measures["measure"])
    n_pairs = int(pairs.max()) + 1
    first_row = _first_positions(pairs, n_pairs)
    m_contract = contracts.get_indexer(pd.Index(measures["contract"].to_numpy()))
    lag = measures["lag_months"].to_numpy()

    # The grid spans from the earliest figure (so that direction of travel has its previous
    # period) to the last check period, for each contract.
    first = first_wanted.copy()
    keys = None
    if not figures.empty:
        keys = _figure_keys(figures, measures, pairs, first_row)
        first = np.minimum(first, _earliest_due(figures, keys, lag[first_row], contracts))
    c, pidx, row = _grid_rows(measures, m_contract, first, last_wanted)
    if not len(row):
        return pd.DataFrame(columns=ASSESSMENT_COLUMNS)
    pair = pairs[row]
    fidx = pidx - lag[row]
    low = int(min(pidx.min(), fidx.min()))
    months = int(max(pidx.max(), fidx.max())) - low + 1
    names = np.array([from_index(low + i) for i in range(months)], dtype=object)
    found, primary = _primary_figures(figures, measures, keys, first_row, pair, fidx, low,
                                      names)
    has_row = found >= 0

    # A measure's history starts with its first figure, or with the first period checked,
    # whichever is earlier: figures given for one measure's earlier months (comparators,
    # say) do not make every other measure "not reported" in those months.
    first_figure = np.full(n_pairs, _NOWHERE, dtype=np.int64)
    np.minimum.at(first_figure, pair[has_row], pidx[has_row])
    keep = pidx >= np.minimum(first_figure[pair], first_wanted[c])
    if not keep.all():
        c, pidx, row, pair, fidx, found = (a[keep] for a in (c, pidx, row, pair, fidx, found))
        has_row = has_row[keep]
    if not len(row):
        return pd.DataFrame(columns=ASSESSMENT_COLUMNS)
    grid_order: IntArray = np.arange(len(row), dtype=np.int64)
    period_rank = np.argsort(np.argsort(names, kind="stable"), kind="stable")
    if history:
        # Every row is kept: lay them out in the frame's order (contract, period, measure)
        # now, so that no column needs reordering at the end.
        final = _sorted((c, len(contracts)), (period_rank[pidx - low], len(names)),
                        _sort_codes(measures["order"].to_numpy()[row]))
        if not np.array_equal(final, grid_order):
            c, pidx, row, pair, fidx, found, grid_order = (
                a[final] for a in (c, pidx, row, pair, fidx, found, grid_order))
            has_row = has_row[final]
    return _judged(measures, _Grid(row, c, pair, pidx, fidx, grid_order, low, names,
                                   period_rank, contracts),
                   found, has_row, primary, wanted, history)


@dataclass
class _FigureKeys:
    """Each figure's (contract, measure) pair code (-1: not scheduled), and its period as a
    code into ``period_values``."""

    pair: IntArray
    period_code: IntArray
    period_values: npt.NDArray[Any]


def _figure_keys(figures: pd.DataFrame, measures: pd.DataFrame, pairs: IntArray,
                 first_row: IntArray) -> _FigureKeys:
    period_code, period_values = _codes(figures["period"])
    return _FigureKeys(_figure_pairs(figures, measures, pairs, first_row), period_code,
                       period_values)


def _earliest_due(figures: pd.DataFrame, keys: _FigureKeys, lag: npt.NDArray[Any],
                  contracts: pd.Index) -> IntArray:
    """The first month in which some figure of each contract is due (a lagged figure is due
    later); _NOWHERE for a contract without figures. ``lag`` is each pair's."""
    figure_month = np.array([month_index(p) for p in keys.period_values],
                            dtype=np.int64)[keys.period_code]
    due_at = figure_month + np.where(keys.pair >= 0, lag[keys.pair], 0)
    contract_code, contract_values = _codes(figures["contract"])
    f_contract = contracts.get_indexer(pd.Index(contract_values))[contract_code]
    known = f_contract >= 0
    earliest = np.full(len(contracts), _NOWHERE, dtype=np.int64)
    np.minimum.at(earliest, f_contract[known], due_at[known].astype(np.int64))
    return earliest


def _grid_rows(measures: pd.DataFrame, m_contract: IntArray, first: IntArray, last: IntArray
               ) -> tuple[IntArray, IntArray, IntArray]:
    """Every (contract, month, measure row) in that order from each contract's first month
    to its last, then only the rows in force: contract, month and row of each."""
    in_grid = np.flatnonzero(m_contract >= 0)
    by_c = in_grid[np.argsort(m_contract[in_grid], kind="stable")]
    per_contract = np.bincount(m_contract[in_grid], minlength=len(first)).astype(np.int64)
    block = (last - first + 1) * per_contract
    c = np.repeat(np.arange(len(first), dtype=np.int64), block)
    step = np.arange(len(c), dtype=np.int64) - np.repeat(np.cumsum(block) - block, block)
    width = per_contract[c]
    pidx = first[c] + step // width
    row = by_c[(np.cumsum(per_contract) - per_contract)[c] + step % width]
    del step, width
    in_force = ((pidx >= measures["starts"].to_numpy()[row])
                & (pidx >= measures["in_force_from"].to_numpy()[row])
                & (pidx < measures["in_force_to"].to_numpy()[row]))
    return c[in_force], pidx[in_force], row[in_force]


def _primary_figures(figures: pd.DataFrame, measures: pd.DataFrame, keys: _FigureKeys | None,
                     first_row: IntArray, pair: IntArray, fidx: IntArray, low: int,
                     names: npt.NDArray[Any]) -> tuple[IntArray, dict[str, Any]]:
    """The primary figure of each row's figure period, found by (pair, month): its position
    in the returned columns (-1: none), and the columns (value, source, comment, version
    where the figures have them; sources; source_spread)."""
    found = np.full(len(pair), -1, dtype=np.int64)
    if keys is None:
        return found, {"value": np.empty(0), "source": np.empty(0, dtype=object),
                       "comment": np.empty(0, dtype=object),
                       "sources": np.empty(0, dtype=np.int64), "source_spread": np.empty(0)}
    months = len(names)
    # A figure period matches a row's only when spelled as the row's is.
    month_of_name = {name: i for i, name in enumerate(names)}
    named = np.array([month_of_name.get(p, -1) for p in keys.period_values],
                     dtype=np.int64)[keys.period_code]
    usable = np.flatnonzero((keys.pair >= 0) & (named >= 0))
    key = keys.pair[usable] * months + named[usable]
    del named
    not_primary = _not_primary(figures["source"].take(usable), keys.pair[usable],
                               measures["primary_source"].to_numpy()[first_row])
    group_keys, chosen, counts, spread = _first_of_groups(
        key, not_primary, figures["source_rank"].to_numpy()[usable],
        figures["value"].to_numpy(dtype=float)[usable])
    del key, not_primary
    rows = usable[chosen]
    carried = [c for c in ("value", "source", "comment", "version") if c in figures]
    primary = {col: _take(figures[col], rows) for col in carried}
    primary["sources"] = counts
    primary["source_spread"] = spread
    if len(group_keys):
        wanted_keys = pair * months + (fidx - low)
        at = np.minimum(np.searchsorted(group_keys, wanted_keys), len(group_keys) - 1)
        found = np.where(group_keys[at] == wanted_keys, at, -1)
    return found, primary


@dataclass
class _Grid:
    """Measure-periods: the row of ``measures`` (``row``), the contract (index into
    ``contracts``), the (contract, measure) pair, the month and the figure's month (month
    indices), and the position in the grid as first laid out (contract, month, row), which
    orders measure-periods that are otherwise alike. ``names`` are the months from ``low``
    as periods, ``period_rank`` their order as text."""

    row: IntArray
    c: IntArray
    pair: IntArray
    pidx: IntArray
    fidx: IntArray
    grid_order: IntArray
    low: int
    names: npt.NDArray[Any]
    period_rank: IntArray
    contracts: pd.Index


def _per_row(measures: pd.DataFrame, name: str, row: IntArray) -> Any:
    """A column of ``measures`` at each row (NaN throughout when the column is missing)."""
    return _take(_column(measures, name), row)


def _clause_texts(measures: pd.DataFrame, name: str, row: IntArray) -> Any:
    """A text column of ``measures`` at each row, as a categorical when the measures all
    have one (as a history holds them); else as ``_per_row`` gives it."""
    if name not in measures.columns:
        return _per_row(measures, name, row)
    codes, texts = pd.factorize(measures[name].to_numpy(), sort=True)
    if len(codes) and int(codes.min()) < 0:
        return _per_row(measures, name, row)
    return pd.Categorical.from_codes(codes[row], pd.Index(np.asarray(texts, dtype=object)))


def _judged(measures: pd.DataFrame, grid: _Grid, found: IntArray, has_row: BoolArray,
            primary: Mapping[str, Any], wanted: pd.DataFrame, history: bool) -> pd.DataFrame:
    """The assessment frame of the grid's measure-periods: statuses, targets, forecasts and
    direction. With ``history`` every measure-period is kept, in the grid's order; otherwise
    those of the wanted periods, sorted."""
    row, c, pair, pidx, fidx = grid.row, grid.c, grid.pair, grid.pidx, grid.fidx
    low, names, contracts = grid.low, grid.names, grid.contracts
    n = len(row)

    def measure_flag(values: Any) -> BoolArray:
        flag: BoolArray = np.asarray(values, dtype=bool)[row]
        return flag

    month = (fidx % 12) + 1
    elapsed = (month - measures["year_start_month"].to_numpy()[row]) % 12 + 1
    frequency = measures["frequency"]
    frequency_code = np.select([frequency.to_numpy() == f for f in _FREQUENCIES],
                               list(range(len(_FREQUENCIES))), default=-1)
    due = _due(frequency_code[row], month, elapsed)

    # Cumulative figures in an additive unit are judged against the target profiled to the
    # months elapsed; a year-to-date rate stands against the target as it is.
    cumulative = measure_flag(measures["accumulation"] == "cumulative")
    additive = measure_flag(measures["unit"].isin(ADDITIVE_UNITS))
    profiled = cumulative & additive
    used = np.zeros(len(measures), dtype=bool)
    used[row] = True
    profile_of = np.cumsum(used) - 1
    profiles = np.vstack(list(measures["profile"].to_numpy()[used]))
    fraction = profiles[profile_of[row], elapsed - 1]
    scale = np.where(profiled, fraction, 1.0)

    value_column = _take(primary["value"], found)
    value = pd.Series(value_column, copy=False).to_numpy(dtype=float)

    def target(name: str) -> FloatArray:
        floats: FloatArray = measures[name].to_numpy(dtype=float)[row]
        return floats

    target_low, target_high = target("target_low"), target("target_high")
    tolerance_low, tolerance_high = target("tolerance_low"), target("tolerance_high")
    higher = measure_flag(measures["polarity"] == "higher_is_better")
    lower = measure_flag(measures["polarity"] == "lower_is_better")
    status = _judge_codes(value, higher, lower, target_low * scale, target_high * scale,
                          tolerance_low * scale, tolerance_high * scale)

    with np.errstate(divide="ignore", invalid="ignore"):
        forecast = np.where(cumulative, np.where(additive, value / fraction, value), np.nan)
    forecast_status = np.where(
        cumulative & ~np.isnan(forecast),
        _judge_codes(forecast, higher, lower, target_low, target_high, tolerance_low,
                     tolerance_high) + 1, 0)

    year_end_only = measure_flag(measures["judged"] == "year_end") & (elapsed != 12)
    status[np.isnan(value)] = NOT_REPORTED
    status[year_end_only] = NOT_DUE
    status[~due] = NOT_DUE
    target_values = _per_row(measures, "target", row)
    profiled_target = np.where(profiled, np.asarray(target_values, dtype=float) * fraction,
                               np.nan)

    # Reasons, as shared strings: only the comments are per row.
    reason = np.full(n, "", dtype=object)
    reason[year_end_only] = _YEAR_END_REASON
    not_due_reason = ("not due this period (" + frequency.astype(str) + ")").to_numpy()
    reason[~due] = not_due_reason[row[~due]]
    not_reported = np.flatnonzero(status == NOT_REPORTED)
    reason[not_reported] = _NOT_REPORTED_REASONS[has_row[not_reported].astype(np.int64)]
    comment_column = _take(primary["comment"], found)
    given = not_reported[has_row[not_reported]]
    comments = pd.Series(comment_column[given], copy=False).fillna("")
    told = comments.astype(bool).to_numpy()
    reason[given[told]] = comments.to_numpy()[told]

    # Direction of travel against the previous due period of the measure, read through the
    # polarity. A year-to-date count always grows; its annualised run rate is what can improve.
    comparable = np.where(profiled, forecast, value)
    due_rows = np.flatnonzero(due)
    due_rows = due_rows[_sorted((pair[due_rows], int(pair.max()) + 1),
                                (pidx[due_rows] - low, len(names)),
                                (grid.grid_order[due_rows], n))]
    follows = pair[due_rows[1:]] == pair[due_rows[:-1]]
    previous = np.full(n, np.nan)
    previous[due_rows[1:][follows]] = comparable[due_rows[:-1][follows]]
    change = comparable - previous
    mid = (_per_row(measures, "target_low", row) + _per_row(measures, "target_high", row)) / 2
    with np.errstate(invalid="ignore"):
        closer = np.abs(comparable - mid) - np.abs(previous - mid)
        better = np.select([higher, lower], [change, -change], default=-closer)
        direction = np.where(np.isnan(change), 0,
                             np.where(np.abs(change) <= 1e-8, 1, np.where(better > 0, 2, 3)))

    sources = np.zeros(n, dtype=np.int64)
    sources[has_row] = primary["sources"][found[has_row]]

    # The rows asked for, in contract, period and measure order.
    if history:
        r = row
    else:
        lean = pd.DataFrame({"contract": contracts.to_numpy()[c], "period": names[pidx - low],
                             "row": np.arange(n)})
        rows = lean.merge(wanted[["contract", "period"]], on=["contract", "period"])[
            "row"].to_numpy()
        rows = rows[_sorted((c[rows], len(contracts)),
                            (grid.period_rank[pidx[rows] - low], len(names)),
                            _sort_codes(measures["order"].to_numpy()[row[rows]]))]
        r = row[rows]

    def at(values: Any) -> Any:
        return values if history else values[rows]

    if history:
        # A history's contracts, measures and periods (and statuses, below) as categoricals
        # (each text once, a code for each row, the texts in order): the features and the
        # rules group and compare them by code, without hashing a text for every row again
        # and again.
        month_names = pd.Index(names)
        coded: dict[str, Any] = {
            "contract": pd.Categorical.from_codes(c, pd.Index(contracts.to_numpy())),
            "measure": _clause_texts(measures, "measure", r),
            "period": pd.Categorical.from_codes(pidx - low, month_names),
            "figure_period": pd.Categorical.from_codes(fidx - low, month_names)}
    else:
        coded = {"contract": contracts.to_numpy()[at(c)],
                 "measure": measures["measure"].to_numpy()[r],
                 "period": names[at(pidx) - low],
                 "figure_period": names[at(fidx) - low]}
    # The measures' clause texts: categoricals in a history, as the other texts above.
    clause_texts = _clause_texts if history else _per_row
    columns: dict[str, Any] = {
        "contract": coded["contract"],
        "measure": coded["measure"],
        "kind": clause_texts(measures, "kind", r),
        "period": coded["period"],
        "figure_period": coded["figure_period"],
        "value": at(value_column),
        "source": (_take(primary["source"], at(found)) if "source" in primary
                   else np.full(len(r), np.nan)),
        "sources": at(sources),
        "source_spread": _take(primary["source_spread"], at(found)),
    }
    for name in ("target", "target_low", "target_high", "tolerance_low", "tolerance_high",
                 "far_bound"):
        columns[name] = _per_row(measures, name, r)
    columns["compared_with"] = np.where(at(profiled), at(profiled_target), at(target_values))
    columns["profiled_target"] = at(profiled_target)
    columns["status"] = (pd.Categorical.from_codes(status, pd.Index(STATUSES)) if history
                         else _STATUS_NAMES[at(status)])
    columns["rag"] = _RAG_NAMES[at(status)]
    columns["direction"] = _DIRECTIONS[at(direction)]
    columns["previous_value"] = at(previous)
    columns["change"] = at(change)
    columns["forecast"] = at(forecast)
    columns["forecast_status"] = _FORECAST_NAMES[at(forecast_status)]
    columns["reason"] = at(reason)
    columns["comment"] = at(comment_column)
    columns["due"] = at(due)
    columns["order"] = _per_row(measures, "order", r)
    for name in ("unit", "polarity", "frequency", "accumulation"):
        columns[name] = clause_texts(measures, name, r)
    columns["elapsed"] = at(elapsed)
    columns["schedule_version"] = _per_row(measures, "schedule_version", r)
    columns["figure_version"] = (_take(primary["version"], at(found)) if "version" in primary
                                 else np.full(len(r), np.nan))
    columns["recovery_margin"] = _per_row(measures, "recovery_margin", r)
    # The arrays are new: the frame takes them as they are, unconsolidated.
    return pd.DataFrame(columns, copy=False)



def _recovered(rows: Mapping[str, Any]) -> BoolArray:
    """Periods that count towards recovery: met or within tolerance; or, where the measure
    has a recovery margin (hysteresis), better than the target by at least that margin, so
    that a figure hovering at a bound does not open and resolve an escalation every month.

    ``rows`` holds ``status`` and, where there are margins, ``recovery_margin``, ``value``,
    ``target_low``, ``target_high`` and ``polarity`` (and ``compared_with``, the target a
    figure is judged against), as arrays; each text is compared once per distinct value."""
    good = _equal(rows["status"], "met", "within_tolerance")
    if "recovery_margin" not in rows:
        return good

    def numbers(name: str) -> FloatArray:
        return np.asarray(rows[name], dtype=np.float64)

    margin = numbers("recovery_margin")
    with np.errstate(invalid="ignore"):
        # A negative margin (the pack's default) is no margin.
        margin = np.where(margin >= 0, margin, np.nan)
    value = numbers("value")
    low, high = numbers("target_low"), numbers("target_high")
    polarity = rows["polarity"]
    if "compared_with" in rows:
        target = numbers("compared_with")
        in_range = _equal(polarity, "within_range")
        low = np.where(in_range, low, target)
        high = np.where(in_range, high, target)
    with np.errstate(invalid="ignore"):
        inside = np.select(
            [_equal(polarity, "higher_is_better"), _equal(polarity, "lower_is_better")],
            [value - high, low - value], default=np.fmin(value - low, high - value))
        clear = good & (inside >= margin)
    recovered: BoolArray = np.where(np.isnan(margin), good, clear)
    return recovered


UNBOUNDED_FRACTION = 1e12
FEATURES = ("consecutive_breaches", "consecutive_missing", "consecutive_deteriorating",
            "good_run", "source_spread_fraction")


SPC_FEATURES = {"variation": "variation", "rule": "spc_rule", "assurance": "assurance",
                "mean": "spc_mean", "lower_limit": "spc_lower", "upper_limit": "spc_upper",
                "points": "spc_points", "trial": "spc_trial"}


def _sort_codes(values: Any) -> tuple[IntArray, int]:
    """Codes that sort as the values do (a missing value last), and how many there are."""
    codes, distinct = _codes(values, sort=True)
    return codes, max(len(distinct), 1)


def _equal(values: Any, *targets: str) -> BoolArray:
    """Whether each value is one of the targets (each distinct value compared once)."""
    codes, uniques = _codes(values)
    matched: BoolArray = pd.Series(uniques, dtype=object).isin(targets).to_numpy()[codes]
    return matched


def _sorted(*codes: tuple[IntArray, int]) -> IntArray:
    """The stable order of the rows by several sort codes (with their counts), first first."""
    size = 1
    for _, count in codes:
        size *= count
    if size >= 2**62:
        return np.lexsort([c for c, _ in reversed(codes)])
    key = np.zeros(len(codes[0][0]), dtype=np.int64)
    for c, count in codes:
        key = key * count + c
    return np.argsort(key, kind="stable")


def _spc_rows(frame: pd.DataFrame, chosen: Mapping[Any, Any], charted: BoolArray,
              contract: IntArray, measure: IntArray, by_series: IntArray
              ) -> tuple[IntArray, dict[str, Any]]:
    """The rows ``spc_frame`` gives for the ``charted`` rows of the frame, each contract with
    its settings: the position in ``frame`` of each row, in the order the charts come
    (contracts by settings, then contract, measure and period), and the SPC_FEATURES
    columns."""
    from compliance.spc import SpcSettings, chart_readings

    n = len(frame)
    contract_code, contract_values = _codes(frame["contract"])
    groups: dict[Any, list[int]] = {}
    for i, cid in enumerate(contract_values):
        groups.setdefault(chosen.get(cid, SpcSettings()), []).append(i)
    ordered = by_series[charted[by_series]]
    x = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
    period_code, period_values = _codes(frame["period"])
    period_text = period_values.astype(str)

    def values(name: str) -> npt.NDArray[Any]:
        if name in frame.columns:
            return np.asarray(frame[name].to_numpy())
        return np.full(n, None if name == "polarity" else np.nan, dtype=object)

    inputs = {name: values(name) for name in ("polarity", "compared_with", "target_low",
                                              "target_high")}
    group_of = np.empty(len(contract_values), dtype=np.int64)
    for g, members in enumerate(groups.values()):
        group_of[members] = g
    group = group_of[contract_code[ordered]]
    sources: list[IntArray] = []
    parts: list[dict[str, Any]] = []
    for g, spc in enumerate(groups):
        at = ordered[group == g] if len(groups) > 1 else ordered
        if not len(at):
            continue
        new_series = np.ones(len(at), dtype=bool)
        new_series[1:] = ((contract[at[1:]] != contract[at[:-1]])
                          | (measure[at[1:]] != measure[at[:-1]]))
        readings = chart_readings(new_series, period_text[period_code[at]], x[at],
                                  inputs["polarity"][at], inputs["compared_with"][at],
                                  inputs["target_low"][at], inputs["target_high"][at], spc,
                                  icons=False)
        kept = ~np.isnan(x[at])
        sources.append(at[kept])
        parts.append({name: readings[name][kept] for name in SPC_FEATURES})
    if not sum(len(s) for s in sources):
        return np.empty(0, dtype=np.int64), {}
    return (np.concatenate(sources),
            {name: np.concatenate([p[name] for p in parts]) for name in SPC_FEATURES})


@dataclass
class _SpcRows:
    """The rows ``add_spc`` gives, as positions in the frame (``rows``), with their
    SPC_FEATURES columns (renamed), the sort codes of their contract, measure and period,
    and their order by contract, measure and period (``by_series``)."""

    rows: IntArray
    columns: dict[str, Any]
    contract: tuple[IntArray, int]
    measure: tuple[IntArray, int]
    period: tuple[IntArray, int]
    by_series: IntArray


def _with_spc(frame: pd.DataFrame, settings: Mapping[str, Any] | None,
              judged: BoolArray | None) -> _SpcRows:
    """Each row of the frame read on its XmR chart, ``judged`` marking the rows charted
    (None: all).

    A frame row is read against every chart row with its contract, measure and period (one
    as a rule, so the rows are the frame's), in chart order, as a left merge reads them.
    """
    n = len(frame)
    contract, measure, period = (_sort_codes(frame[k]) for k in ("contract", "measure",
                                                                  "period"))
    by_series = _sorted(contract, measure, period)
    charted = np.ones(n, dtype=bool) if judged is None else judged.copy()
    # A year-to-date figure rises through the year by construction: no chart for it.
    if "accumulation" in frame:
        charted &= ~_equal(frame["accumulation"], "cumulative")
    source, readings = _spc_rows(frame, settings or {}, charted, contract[0], measure[0],
                                 by_series)
    if not len(source):
        columns = {SPC_FEATURES[name]: np.full(n, np.nan, dtype=object) for name in SPC_FEATURES}
        return _SpcRows(np.arange(n), columns, contract, measure, period, by_series)
    # Each row's (contract, measure, period) numbered 0, 1... in series order.
    ordered = [c[by_series] for c, _ in (contract, measure, period)]
    changes = np.ones(n, dtype=bool)
    changes[1:] = ((ordered[0][1:] != ordered[0][:-1]) | (ordered[1][1:] != ordered[1][:-1])
                   | (ordered[2][1:] != ordered[2][:-1]))
    key = np.empty(n, dtype=np.int64)
    key[by_series] = np.cumsum(changes) - 1
    chart_key = key[source]
    matches = np.bincount(chart_key, minlength=int(key.max()) + 1)
    by_key = np.argsort(chart_key, kind="stable")
    first_match = np.cumsum(matches) - matches
    per_row = matches[key]
    last = len(by_key) - 1
    if per_row.max() <= 1:
        rows = np.arange(n)
        match = np.where(per_row == 1, by_key[np.minimum(first_match[key], last)], -1)
    else:
        copies = np.maximum(per_row, 1)
        rows = np.repeat(np.arange(n), copies)
        nth = np.arange(len(rows)) - np.repeat(np.cumsum(copies) - copies, copies)
        match = np.where(per_row[rows] > 0,
                         by_key[np.minimum(first_match[key[rows]] + nth, last)], -1)
        contract, measure, period = ((c[rows], count) for c, count in (contract, measure,
                                                                        period))
        by_series = _sorted(contract, measure, period)
    columns = {SPC_FEATURES[name]: _take(readings[name], match) for name in SPC_FEATURES}
    return _SpcRows(rows, columns, contract, measure, period, by_series)


def add_spc(frame: pd.DataFrame, settings: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Each judged figure read on its measure's XmR chart (NHS "Making Data Count").

    ``settings`` maps a contract to its SpcSettings; contracts not named use the defaults.
    """
    judged = ~_equal(frame["status"], "not_due") if "status" in frame else None
    spc = _with_spc(frame, settings, judged)
    kept = [c for c in frame.columns if c not in SPC_FEATURES.values()]
    columns = {c: _take(frame[c], spc.rows) for c in kept}
    return pd.DataFrame({**columns, **spc.columns}, copy=False)


def _runs(flag: BoolArray, starts: BoolArray) -> IntArray:
    """Length of the run of True ending at each element, runs restarting where ``starts``."""
    at = np.arange(len(flag), dtype=np.int64)
    last_break = np.where(~flag, at, np.where(starts, at - 1, -1))
    runs: IntArray = np.where(flag, at - np.maximum.accumulate(last_break), 0)
    return runs


def add_features(history: pd.DataFrame, spc: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """What spans periods, as columns of each measure-period, so a rule reads one fact.

    Runs count judged periods only: a period in which the measure is not due neither breaks
    nor extends a run. Each figure is also read on its XmR chart (see ``add_spc``).
    """
    if history.empty:
        return history
    status_code, statuses = _codes(history["status"])
    judged = (statuses != "not_due")[status_code]
    charts = _with_spc(history, spc, judged)
    rows = charts.rows
    n = len(rows)
    contract, measure = charts.contract[0], charts.measure[0]

    # Runs over each measure's judged periods, in period order.
    by_series = charts.by_series
    in_order = by_series[judged[rows[by_series]]]
    at = rows[in_order]
    starts = np.ones(len(in_order), dtype=bool)
    starts[1:] = ((contract[in_order[1:]] != contract[in_order[:-1]])
                  | (measure[in_order[1:]] != measure[in_order[:-1]]))
    read = [c for c in ("status", "recovery_margin", "value", "target_low", "target_high",
                        "compared_with", "polarity") if c in history]
    judged_rows = {c: _values(history[c])[at] for c in read}
    flags = {"consecutive_breaches": (statuses == "breach")[status_code[at]],
             "consecutive_missing": (statuses == "not_reported")[status_code[at]],
             "consecutive_deteriorating": _equal(history["direction"], "declining")[at],
             "good_run": _recovered(judged_rows)}
    features: dict[str, IntArray] = {}
    for name, flag in flags.items():
        features[name] = np.zeros(n, dtype=np.int64)
        features[name][in_order] = _runs(np.asarray(flag, dtype=bool), starts)

    # The history's order: contract, period, then the schedule's order of measures.
    order = _sort_codes(history["order"].to_numpy()[rows])
    final = by_series[_sorted(*((c[by_series], count) for c, count in (
        charts.contract, charts.period, order)))]
    source = rows[final]
    if len(source) == len(history) and np.array_equal(source, np.arange(len(source))) and (
            np.array_equal(final, source)):
        # Already in that order (as a check's history is laid out): no column is gathered.
        columns = {c: _values(history[c]) for c in history.columns
                   if c not in SPC_FEATURES.values()}
        columns.update(charts.columns)
        columns.update(features)
    else:
        columns = {c: _take(history[c], source) for c in history.columns
                   if c not in SPC_FEATURES.values()}
        columns.update({name: values[final] for name, values in charts.columns.items()})
        columns.update({name: values[final] for name, values in features.items()})
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = (pd.Series(columns["source_spread"], copy=False).astype(float)
                    / pd.Series(columns["value"], copy=False).astype(float).abs())
    # Sources that disagree about a zero figure are as far apart as can be; a finite stand-in
    # keeps the fact serialisable for the rules engine.
    fraction = fraction.mask(np.isinf(fraction), UNBOUNDED_FRACTION)
    columns["source_spread_fraction"] = fraction.where(~fraction.isna()).to_numpy()
    return pd.DataFrame(columns, copy=False)
