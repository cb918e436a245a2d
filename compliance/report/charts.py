"""One chart per measure, drawn with matplotlib and returned as inline, accessible SVG.

Matplotlib is imported inside the functions (never when the package is imported), so the
command line starts without it. Figures are drawn on the Agg/SVG canvases directly, without
pyplot, so no window system and no global figure state are involved.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from compliance import present
from compliance.periods import add_months, from_index, month_index, month_name
from compliance.report.narrative import COMPARATOR_NAMES
from compliance.schedule import ADDITIVE_UNITS, MeasureSpec

# Colours for lines and fills. Lines that carry meaning have at least 3:1 contrast against
# the white background (WCAG 2.2, 1.4.11 non-text contrast).
INK = "#0b0c0c"
FIGURE_LINE = "#1d3f6e"
TARGET_LINE = "#00703c"
TOLERANCE_FILL = "#ffd966"
TARGET_RANGE_FILL = "#b7dfc4"
GAP_COLOUR = "#505a5f"
REFERENCE_COLOURS = ("#4c2c92", "#6f3a00", "#005a70", "#912b88", "#505a5f")
REFERENCE_DASHES: tuple[tuple[float, tuple[float, ...]], ...] = (
    (0, (5, 2)), (0, (1.5, 1.5)), (0, (6, 2, 1.5, 2)), (0, (3, 3)), (0, (8, 3)))

# The XmR chart: each point's variation by colour and by shape (the shapes of the command
# line's words: ▲ improvement, ▼ concern, ◆ neither), every colour at least 4.5:1 on white.
XMR_LINE = "#6f777b"
MEAN_LINE = INK
LIMIT_LINE = "#505a5f"
VARIATION_STYLES: dict[str, dict[str, Any]] = {
    "common_cause": {"colour": XMR_LINE, "marker": "o", "size": 4.5},
    "special_cause_improvement": {"colour": "#005eb8", "marker": "^", "size": 8.5},
    "special_cause_concern": {"colour": "#b35900", "marker": "v", "size": 8.5},
    "special_cause_neither": {"colour": "#4c2c92", "marker": "D", "size": 6.5},
}
_VARIATION_LEGEND = {
    "common_cause": "Common cause",
    "special_cause_improvement": "Special cause: improvement",
    "special_cause_concern": "Special cause: concern",
    "special_cause_neither": "Special cause: neither",
}
_RULE_WORDS = {"beyond_limit": "beyond a process limit", "shift": "a shift",
               "trend": "a trend", "two_of_three": "near a process limit"}

_WIDTH_IN = 7.4
_HEIGHT_IN = 2.9
_XMR_HEIGHT_IN = _HEIGHT_IN


def _num(value: Any) -> float | None:
    if value is None or present.missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _label(period: str) -> str:
    name, year = month_name(period).split()
    return f"{name[:3]} {year}"


def chart_points(rows: Sequence[Mapping[str, Any]], period: str, months: int
                 ) -> list[dict[str, Any]]:
    """The due figures of the last ``months`` periods to ``period``, in order.

    Each point is dated by the figure's own month (a lagged figure by the month it is for).
    A due figure that was not reported is a point with no value: the chart leaves a gap.
    Periods in which the measure was not due are left out (no gap).
    """
    first = add_months(period, 1 - months)
    points = []
    for row in sorted(rows, key=lambda r: str(r["period"])):
        check = str(row["period"])
        if not first <= check <= period:
            continue
        value = _num(row.get("value"))
        status = str(row.get("status") or "")
        due = bool(row.get("due", True)) if row.get("due") is not None else True
        if value is None and (status != "not_reported" or not due):
            continue
        points.append({
            "period": str(row.get("figure_period") or check), "value": value, "status": status,
            "target": _num(row.get("compared_with")),
        })
    return points


def describe(spec: MeasureSpec, points: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The chart's title and its long description for readers who cannot see it."""
    unit = spec.unit
    if points:
        span = f"{month_name(points[0]['period'])} to {month_name(points[-1]['period'])}"
        title = f"{spec.id}: {spec.title}, {span}"
        figures = "; ".join(
            f"{month_name(p['period'])} {present.figure(p['value'], unit)}"
            if p["value"] is not None else f"{month_name(p['period'])} not reported"
            for p in points)
        parts = [f"Figures: {figures}."]
    else:
        title = f"{spec.id}: {spec.title}"
        parts = ["No figures have been reported yet."]
    if spec.target is not None:
        parts.append(f"Target {present.target_text(spec.target, unit)}.")
    if spec.tolerance is not None:
        parts.append(f"Tolerance {present.tolerance_text(spec.tolerance, unit, spec.polarity)}.")
    for name, value in {**spec.comparators, **spec.baselines}.items():
        parts.append(f"{_reference_name(name)} {present.figure(value, unit)}.")
    return title, " ".join(parts)


def _reference_name(name: str) -> str:
    words = COMPARATOR_NAMES.get(name, name.replace("_", " "))
    return words[0].upper() + words[1:]


def measure_chart(spec: MeasureSpec, rows: Sequence[Mapping[str, Any]], period: str,
                  months: int = 12, chart_id: str | None = None) -> str:
    """An SVG chart of the measure's recent history, ready to inline in HTML.

    A line of the figures (broken where a due figure was not reported, with the gap marked),
    the target line (the profiled target of a cumulative count), the tolerance band shaded,
    and comparators and baselines as labelled reference lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ident = chart_id or "chart-" + re.sub(r"[^A-Za-z0-9_-]", "-", spec.id)
    points = chart_points(rows, period, months)
    title, desc = describe(spec, points)
    unit = spec.unit

    rc: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": ident, "font.size": 8.5,
          "axes.edgecolor": "#505a5f", "axes.labelcolor": INK, "text.color": INK,
          "xtick.color": INK, "ytick.color": INK, "axes.spines.top": False,
          "axes.spines.right": False}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(_WIDTH_IN, _HEIGHT_IN))
        FigureCanvasSVG(fig)
        fig.subplots_adjust(left=0.08, right=0.78, top=0.95, bottom=_bottom(len(points)))
        ax = fig.add_subplot()

        xs = [month_index(p["period"]) for p in points]
        ys = [p["value"] if p["value"] is not None else math.nan for p in points]
        handles: list[Any] = []
        labels: list[str] = []
        values = [y for y in ys if not math.isnan(y)]
        scale_values = list(values)

        # Tolerance band and target (constant, or profiled through the year).
        profiled = spec.accumulation == "cumulative" and spec.unit in ADDITIVE_UNITS \
            and spec.target is not None
        far = spec.far_bound()
        if spec.target is not None and not profiled:
            if spec.polarity == "within_range" and isinstance(spec.target, tuple):
                low, high = spec.target
                band = spec.tolerance_band()
                if band is not None:
                    ax.axhspan(band[0], band[1], color=TOLERANCE_FILL, alpha=0.45, lw=0,
                               zorder=0)
                    handles.append(Patch(color=TOLERANCE_FILL, alpha=0.45))
                    labels.append("Tolerance "
                                  + present.tolerance_text(spec.tolerance, unit, spec.polarity))
                    scale_values += list(band)
                ax.axhspan(low, high, color=TARGET_RANGE_FILL, alpha=0.8, lw=0, zorder=0.5)
                handles.append(Patch(color=TARGET_RANGE_FILL, alpha=0.8))
                labels.append(f"Target range {present.target_text(spec.target, unit)}")
                scale_values += [low, high]
            else:
                target = float(spec.target if not isinstance(spec.target, tuple)
                               else spec.target[1])
                if far is not None:
                    ax.axhspan(min(far, target), max(far, target), color=TOLERANCE_FILL,
                               alpha=0.45, lw=0, zorder=0)
                    handles.append(Patch(color=TOLERANCE_FILL, alpha=0.45))
                    labels.append("Tolerance "
                                  + present.tolerance_text(spec.tolerance, unit, spec.polarity))
                    scale_values.append(far)
                ax.axhline(target, color=TARGET_LINE, lw=1.6, zorder=2)
                handles.append(Line2D([], [], color=TARGET_LINE, lw=1.6))
                labels.append(f"Target {present.figure(target, unit)}")
                scale_values.append(target)
        elif profiled:
            tx = [x for x, p in zip(xs, points, strict=True) if p["target"] is not None]
            ty = [p["target"] for p in points if p["target"] is not None]
            ax.plot(tx, ty, color=TARGET_LINE, lw=1.6, drawstyle="default", zorder=2)
            handles.append(Line2D([], [], color=TARGET_LINE, lw=1.6))
            labels.append(f"Target profiled to {present.figure(spec.target, unit)} a year")
            scale_values += ty

        # Comparators and baselines: labelled reference lines.
        references = [(_reference_name(k), v) for k, v in spec.comparators.items()]
        references += [(_reference_name(k), v) for k, v in spec.baselines.items()]
        for i, (_name, value) in enumerate(references):
            colour = REFERENCE_COLOURS[i % len(REFERENCE_COLOURS)]
            ax.axhline(value, color=colour, lw=1.2, linestyle=REFERENCE_DASHES[
                i % len(REFERENCE_DASHES)], zorder=1.5)
            scale_values.append(value)

        # The figures: a line broken where a due figure is missing.
        if points:
            ax.plot(xs, ys, color=FIGURE_LINE, lw=2, marker="o", markersize=5,
                    markerfacecolor="white", markeredgewidth=1.6, zorder=3)
            handles.insert(0, Line2D([], [], color=FIGURE_LINE, lw=2, marker="o",
                                     markerfacecolor="white"))
            labels.insert(0, "Figure")

        xlim = (min(xs) - 0.5, max(xs) + 0.5) if xs else None
        low, high = _style_axes(ax, xs, points, scale_values, unit, xlim)
        span = high - low

        # Values above the points (only the latest when there are too many to label); the
        # gaps marked in words.
        gap_marked = False
        latest = max((x for x, y in zip(xs, ys, strict=True) if not math.isnan(y)),
                     default=None)
        for x, y in zip(xs, ys, strict=True):
            if math.isnan(y):
                ax.axvline(x, color=GAP_COLOUR, lw=1, linestyle=(0, (2, 2)), zorder=1)
                ax.text(x, low + span * 0.5, "Not reported", rotation=90, ha="center",
                        va="center", fontsize=7.5, color=GAP_COLOUR,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5},
                        zorder=4)
                gap_marked = True
            elif len(xs) <= _MONTHS_LABELLED or x == latest:
                ax.annotate(present.figure(y, unit), (x, y), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=7, color=INK, zorder=4)
        if gap_marked:
            handles.append(Line2D([], [], color=GAP_COLOUR, lw=1, linestyle=(0, (2, 2))))
            labels.append("Not reported")

        # Direct labels for the target and references, in the right margin, kept apart.
        direct: list[tuple[float, str, str]] = []
        if spec.target is not None and not profiled and not isinstance(spec.target, tuple):
            direct.append((float(spec.target), f"Target {present.figure(spec.target, unit)}",
                           TARGET_LINE))
        for i, (name, value) in enumerate(references):
            direct.append((value, f"{name} {present.figure(value, unit)}",
                           REFERENCE_COLOURS[i % len(REFERENCE_COLOURS)]))
        for y_axes, text, colour in _declutter(direct, low, high):
            ax.text(1.02, y_axes, text, transform=ax.transAxes, fontsize=7.5, color=colour,
                    va="center", ha="left", clip_on=False)

        if not points:
            ax.text(0.5, 0.5, "No figures reported yet", transform=ax.transAxes,
                    ha="center", va="center", color=GAP_COLOUR)
        ax.legend(handles, labels, loc="upper center",
                  bbox_to_anchor=(0.5, _legend_at(len(points))),
                  ncol=min(len(handles), 4), frameon=False, fontsize=7.5,
                  handlelength=2.6)

        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return _accessible(buffer.getvalue(), ident, title, desc)


_MONTHS_LABELLED = 12
"""Up to this many points, each is labelled with its value and "Sep 2018" under it."""


def _bottom(points: int) -> float:
    """The figure's bottom margin: room for the month labels (on two lines past a year of
    points) and the legend under them."""
    return 0.27 if points <= _MONTHS_LABELLED else 0.31


def _legend_at(points: int) -> float:
    return -0.16 if points <= _MONTHS_LABELLED else -0.25


def _month_ticks(ax: Any, xs: Sequence[int], periods: Sequence[str]) -> None:
    """Label the months along the x axis so that the labels never overlap: "Sep 2018" under
    each point up to a year of points; beyond that the month, with its year under the first
    and under each January, and past two years only every second (third...) month labelled,
    the others marked by a tick alone."""
    ax.tick_params(axis="x", labelsize=7.5, length=3)
    if not xs:
        ax.set_xticks([])
        return
    if len(xs) <= _MONTHS_LABELLED:
        ax.set_xticks(list(xs), [_label(p) for p in periods])
        return
    step = math.ceil(len(xs) / 24)
    at: list[int] = []
    labels: list[str] = []
    year = ""
    for i, (x, period) in enumerate(zip(xs, periods, strict=True)):
        if i % step:
            continue
        name = month_name(period)[:3]
        labels.append(f"{name}\n{period[:4]}" if period[:4] != year else name)
        year = period[:4]
        at.append(x)
    ax.set_xticks(at, labels)
    if step > 1:
        ax.set_xticks(list(xs), minor=True)
        ax.tick_params(axis="x", which="minor", length=2)


def _style_axes(ax: Any, xs: Sequence[int], points: Sequence[Mapping[str, Any]],
                scale_values: Sequence[float], unit: str,
                xlim: tuple[float, float] | None) -> tuple[float, float]:
    """The axes every chart of the report shares: limits, month ticks, grid, % labels."""
    low, high = _y_limits(scale_values, unit)
    ax.set_ylim(low, high)
    if xlim is not None:
        ax.set_xlim(*xlim)
    _month_ticks(ax, xs, [p["period"] for p in points])
    ax.tick_params(axis="y", labelsize=7.5)
    ax.grid(axis="y", color="#dcdedf", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    if unit == "percent":
        ax.yaxis.set_major_formatter(_percent_formatter())
    return low, high


def _percent_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _pos: f"{value:g}%")


def _y_limits(values: Sequence[float], unit: str) -> tuple[float, float]:
    if not values:
        return (0.0, 100.0) if unit == "percent" else (0.0, 1.0)
    low, high = min(values), max(values)
    span = high - low
    pad = span * 0.18 if span > 0 else max(abs(high) * 0.1, 1.0)
    low, high = low - pad, high + pad * 1.4
    if unit == "percent":
        low, high = max(low, 0.0), min(high, 100.0 + pad)
    elif low < 0 <= min(values):
        low = 0.0
    return low, high


def _declutter(labels: Sequence[tuple[float, str, str]], low: float, high: float,
               gap: float = 0.085) -> list[tuple[float, str, str]]:
    """Place labels at their values (as fractions of the axes), pushed apart to be legible."""
    span = (high - low) or 1.0
    placed = sorted(((v - low) / span, text, colour) for v, text, colour in labels)
    result: list[tuple[float, str, str]] = []
    for y, text, colour in placed:
        if result and y - result[-1][0] < gap:
            y = result[-1][0] + gap
        result.append((y, text, colour))
    # If the pile runs off the top, shift it back down as a block.
    overflow = (result[-1][0] - 1.0) if result else 0.0
    if overflow > 0:
        result = [(y - overflow, t, c) for y, t, c in result]
    return result


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_ID = re.compile(r'\bid="([^"]+)"')


def _accessible(svg: str, ident: str, title: str, desc: str) -> str:
    """Inline-ready SVG: no XML prolog or metadata, ids unique to this chart, sized by CSS,
    and named for assistive technology by its <title> and <desc>."""
    svg = _PROLOG.sub("", svg, count=1)
    svg = _METADATA.sub("", svg, count=1)
    ids = set(_ID.findall(svg))
    if ids:
        pattern = re.compile(r'(\bid="|href="#|url\(#)(' + "|".join(
            re.escape(i) for i in sorted(ids, key=len, reverse=True)) + r')(?=[")])')
        svg = pattern.sub(lambda m: f"{m.group(1)}{ident}-{m.group(2)}", svg)
    open_tag = re.match(r"<svg\b[^>]*>", svg)
    if open_tag is None:  # pragma: no cover - matplotlib always writes one
        raise ValueError("not an SVG document")
    tag = open_tag.group(0)
    tag = re.sub(r'\s(width|height)="[^"]*"', "", tag)
    tag = tag.replace(
        "<svg", f'<svg id="{ident}" class="chart" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" focusable="false"', 1)
    head = (f'{tag}\n <title id="{ident}-title">{html.escape(title)}</title>\n'
            f' <desc id="{ident}-desc">{html.escape(desc)}</desc>')
    return head + svg[open_tag.end():].rstrip() + "\n"


# --- the XmR chart ------------------------------------------------------------------------


def xmr_points(rows: Sequence[Mapping[str, Any]], period: str, months: int
               ) -> list[dict[str, Any]]:
    """The judged figures of the last ``months`` periods to ``period`` read on the measure's
    XmR chart, in order, dated by each figure's own month.

    Only judged periods are charted (a period in which the measure is not due is left out,
    as the XmR chart leaves it out); a due figure that was not reported is a point with no
    value, a gap in the line. Each point carries its limits (``mean``, ``lower``, ``upper``,
    from the history's ``spc_*`` columns), its ``variation`` and ``rule``, and the target it
    was judged by.
    """
    first = add_months(period, 1 - months)
    points = []
    for row in sorted(rows, key=lambda r: str(r["period"])):
        check = str(row["period"])
        status = str(row.get("status") or "")
        if not first <= check <= period or status == "not_due":
            continue
        value = _num(row.get("value"))
        if value is None and status != "not_reported":
            continue
        variation = row.get("variation")
        rule = row.get("spc_rule")
        trial = row.get("spc_trial")
        points.append({
            "period": str(row.get("figure_period") or check), "value": value,
            "status": status,
            "variation": str(variation) if isinstance(variation, str) and value is not None
            else None,
            "rule": str(rule) if isinstance(rule, str) else None,
            "mean": _num(row.get("spc_mean")), "lower": _num(row.get("spc_lower")),
            "upper": _num(row.get("spc_upper")),
            "points": int(_num(row.get("spc_points")) or 0),
            "trial": bool(trial) if trial is not None and not present.missing(trial)
            else False,
            "target": _num(row.get("compared_with")),
        })
    return points


def _stretches(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs of points read against the same limits (one, unless the limits are recalculated):
    first and last x, mean, lower and upper limit, figures behind them, trial or not."""
    out: list[dict[str, Any]] = []
    for p in points:
        if p["value"] is None or p["mean"] is None:
            continue
        x = month_index(p["period"])
        key = (p["mean"], p["lower"], p["upper"])
        if out and out[-1]["key"] == key:
            out[-1]["last"] = x
            continue
        out.append({"key": key, "first": x, "last": x, "mean": p["mean"], "lower": p["lower"],
                    "upper": p["upper"], "points": p["points"], "trial": p["trial"]})
    return out


def describe_xmr(spec: MeasureSpec, points: Sequence[Mapping[str, Any]],
                 assurance: str | None = None) -> tuple[str, str]:
    """The XmR chart's title and its long description for readers who cannot see it."""
    unit = spec.unit
    shown = [p for p in points if p["value"] is not None]
    if points:
        span = f"{month_name(points[0]['period'])} to {month_name(points[-1]['period'])}"
        title = f"{spec.id}: {spec.title}, XmR chart, {span}"
    else:
        title = f"{spec.id}: {spec.title}, XmR chart"
    figures = []
    for p in points:
        if p["value"] is None:
            figures.append(f"{month_name(p['period'])} not reported")
            continue
        text = f"{month_name(p['period'])} {present.figure(p['value'], unit)}"
        variation = p["variation"]
        if variation and variation != "common_cause":
            text += f" ({_VARIATION_LEGEND[variation].lower()}"
            text += f", {_RULE_WORDS[p['rule']]})" if p["rule"] in _RULE_WORDS else ")"
        figures.append(text)
    parts = [f"Figures: {'; '.join(figures)}." if figures else "No figures have been judged."]
    stretches = _stretches(points)
    for stretch in stretches:
        if len(stretches) > 1:
            parts.append(f"From {month_name(from_index(stretch['first']))}:")
        parts.append(f"Mean {_level(stretch['mean'], unit)}.")
        if stretch["lower"] is not None and stretch["upper"] is not None:
            limits = (f"Process limits {_level(stretch['lower'], unit)} to "
                      f"{_level(stretch['upper'], unit)}")
            if stretch["trial"]:
                limits += f" (trial limits, from {stretch['points']} figures)"
            parts.append(limits + ".")
    if shown and not any(s["lower"] is not None for s in stretches):
        parts.append("No process limits yet: they need two figures in consecutive periods.")
    if spec.target is not None:
        parts.append(f"Target {present.target_text(spec.target, unit)}.")
    if assurance in _ASSURANCE_DESC:
        parts.append(_ASSURANCE_DESC[assurance] + ".")
    return title, " ".join(parts)


def _level(value: float, unit: str) -> str:
    """A mean or limit: a computed figure, shown to two decimal places at most."""
    return present.figure(round(value, 2), unit)


_ASSURANCE_DESC = {"consistently_passing": "Assurance: the target is consistently passed",
                   "consistently_failing": "Assurance: the target is consistently failed",
                   "inconsistent": "Assurance: the target is hit and miss"}


def xmr_chart(spec: MeasureSpec, rows: Sequence[Mapping[str, Any]], period: str,
              months: int = 12, chart_id: str | None = None) -> str:
    """The measure's XmR chart as inline SVG; empty when it has no judged figure to chart
    (or the history has no ``spc_*`` columns).

    The figures (a line broken where a due figure was not reported), the mean, the upper and
    lower process limits (dashed; labelled as trial limits when fewer figures than the
    method asks for are behind them), the target, and every point's variation marked by
    colour and by shape: ▲ special cause of improvement, ▼ of concern, ◆ neither, a small
    circle common cause. The limits are those the history's ``spc_*`` columns give each
    point, so a recalculated chart shows each stretch with its own limits.
    """
    points = xmr_points(rows, period, months)
    if not any(p["value"] is not None and p["mean"] is not None for p in points):
        return ""  # no judged figure, or a history without its XmR reading

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ident = chart_id or "xmr-" + re.sub(r"[^A-Za-z0-9_-]", "-", spec.id)
    assurance = next((str(r.get("assurance")) for r in rows
                      if str(r.get("period")) == period
                      and isinstance(r.get("assurance"), str)), None)
    title, desc = describe_xmr(spec, points, assurance)
    unit = spec.unit

    rc: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": ident, "font.size": 8.5,
                          "axes.edgecolor": "#505a5f", "axes.labelcolor": INK,
                          "text.color": INK, "xtick.color": INK, "ytick.color": INK,
                          "axes.spines.top": False, "axes.spines.right": False}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(_WIDTH_IN, _XMR_HEIGHT_IN))
        FigureCanvasSVG(fig)
        fig.subplots_adjust(left=0.08, right=0.78, top=0.93, bottom=_bottom(len(points)))
        ax = fig.add_subplot()

        xs = [month_index(p["period"]) for p in points]
        ys = [p["value"] if p["value"] is not None else math.nan for p in points]
        scale_values = [y for y in ys if not math.isnan(y)]
        handles: list[Any] = []
        labels: list[str] = []
        left, right = min(xs) - 0.5, max(xs) + 0.5

        # The mean and the process limits of each stretch of the chart.
        stretches = _stretches(points)
        limited = [s for s in stretches if s["lower"] is not None]
        trial = bool(limited) and bool(limited[-1]["trial"])
        has_limits = False
        for i, stretch in enumerate(stretches):
            start = left if i == 0 else stretch["first"] - 0.5
            end = right if i == len(stretches) - 1 else stretch["last"] + 0.5
            ax.hlines(stretch["mean"], start, end, color=MEAN_LINE, lw=1.1, zorder=2)
            scale_values.append(stretch["mean"])
            if stretch["lower"] is not None and stretch["upper"] is not None:
                has_limits = True
                for limit in (stretch["lower"], stretch["upper"]):
                    ax.hlines(limit, start, end, color=LIMIT_LINE, lw=1.2,
                              linestyles=(0, (5, 3)), zorder=2)
                scale_values += [stretch["lower"], stretch["upper"]]
        if stretches:
            handles.append(Line2D([], [], color=MEAN_LINE, lw=1.1))
            labels.append("Mean")
        if has_limits:
            handles.append(Line2D([], [], color=LIMIT_LINE, lw=1.2, linestyle=(0, (5, 3))))
            labels.append("Process limits (trial)" if trial else "Process limits")

        # The target: constant, a range, or profiled through the year.
        direct: list[tuple[float, str, str]] = []
        if spec.target is not None:
            profiled = spec.accumulation == "cumulative" and spec.unit in ADDITIVE_UNITS
            if isinstance(spec.target, tuple):
                for bound in spec.target:
                    ax.axhline(bound, color=TARGET_LINE, lw=1.4, zorder=1.5)
                    scale_values.append(bound)
                labels.append(f"Target range {present.target_text(spec.target, unit)}")
            elif profiled:
                tx = [x for x, p in zip(xs, points, strict=True) if p["target"] is not None]
                ty = [p["target"] for p in points if p["target"] is not None]
                ax.plot(tx, ty, color=TARGET_LINE, lw=1.4, zorder=1.5)
                scale_values += ty
                labels.append(f"Target profiled to {present.figure(spec.target, unit)} a year")
            else:
                ax.axhline(float(spec.target), color=TARGET_LINE, lw=1.4, zorder=1.5)
                scale_values.append(float(spec.target))
                labels.append(f"Target {present.figure(spec.target, unit)}")
                direct.append((float(spec.target),
                               f"Target {present.figure(spec.target, unit)}", TARGET_LINE))
            handles.append(Line2D([], [], color=TARGET_LINE, lw=1.4))

        # The figures, then each point marked by its variation.
        ax.plot(xs, ys, color=XMR_LINE, lw=1.5, zorder=3)
        marked: list[str] = []
        for variation, style in VARIATION_STYLES.items():
            at = [(x, y) for x, y, p in zip(xs, ys, points, strict=True)
                  if not math.isnan(y) and (p["variation"] or "common_cause") == variation]
            if not at:
                continue
            special = variation != "common_cause"
            ax.plot([x for x, _ in at], [y for _, y in at], linestyle="none",
                    marker=style["marker"], markersize=style["size"],
                    markerfacecolor=style["colour"] if special else "white",
                    markeredgecolor=style["colour"] if not special else "white",
                    markeredgewidth=1.3 if not special else 0.8, zorder=4 + special,
                    gid=f"points-{variation}")
            marked.append(variation)
        figure_handles: list[Any] = []
        figure_labels: list[str] = []
        for variation in marked:
            style = VARIATION_STYLES[variation]
            special = variation != "common_cause"
            figure_handles.append(Line2D([], [], color=XMR_LINE if not special else style["colour"],
                                  lw=1.5 if not special else 0, marker=style["marker"],
                                  markersize=style["size"] * (0.9 if special else 1),
                                  markerfacecolor=style["colour"] if special else "white",
                                  markeredgecolor=style["colour"]))
            figure_labels.append(_VARIATION_LEGEND[variation] if special
                                 else "Figure (common cause)")
        handles, labels = figure_handles + handles, figure_labels + labels

        low, high = _style_axes(ax, xs, points, scale_values, unit, (left, right))
        span = high - low

        gap_marked = False
        for x, y in zip(xs, ys, strict=True):
            if math.isnan(y):
                ax.axvline(x, color=GAP_COLOUR, lw=1, linestyle=(0, (2, 2)), zorder=1)
                ax.text(x, low + span * 0.5, "Not reported", rotation=90, ha="center",
                        va="center", fontsize=7.5, color=GAP_COLOUR,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5},
                        zorder=6)
                gap_marked = True
        if gap_marked:
            handles.append(Line2D([], [], color=GAP_COLOUR, lw=1, linestyle=(0, (2, 2))))
            labels.append("Not reported")

        # Direct labels for the latest stretch's lines and the target, in the right margin.
        if stretches:
            last = stretches[-1]
            direct.append((last["mean"], f"Mean {_level(last['mean'], unit)}",
                           MEAN_LINE))
            if last["lower"] is not None and last["upper"] is not None:
                kind = "trial limit" if last["trial"] else "limit"
                direct.append((last["upper"],
                               f"Upper {kind} {_level(last['upper'], unit)}",
                               LIMIT_LINE))
                direct.append((last["lower"],
                               f"Lower {kind} {_level(last['lower'], unit)}",
                               LIMIT_LINE))
        for y_axes, text, colour in _declutter(direct, low, high):
            ax.text(1.02, y_axes, text, transform=ax.transAxes, fontsize=7.5, color=colour,
                    va="center", ha="left", clip_on=False)

        heading = "XmR chart"
        if trial:
            heading += f": trial limits, from {limited[-1]['points']} figures"
        elif stretches and not has_limits:
            heading += ": no process limits yet"
        ax.text(0.0, 1.03, heading, transform=ax.transAxes, fontsize=7.5, color=INK,
                ha="left", va="bottom", fontweight="bold")
        ax.legend(handles, labels, loc="upper center",
                  bbox_to_anchor=(0.5, _legend_at(len(points))),
                  ncol=min(len(handles), 4), frameon=False, fontsize=7.5, handlelength=2.6)

        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return _accessible(buffer.getvalue(), ident, title, desc)
