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
from compliance.periods import add_months, month_index, month_name
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

_WIDTH_IN = 7.4
_HEIGHT_IN = 2.9


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
        fig.subplots_adjust(left=0.08, right=0.78, top=0.95, bottom=0.27)
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

        low, high = _y_limits(scale_values, unit)
        ax.set_ylim(low, high)
        if xs:
            ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
            ax.set_xticks(xs, [_label(p["period"]) for p in points])
        else:
            ax.set_xticks([])
        ax.tick_params(axis="x", labelsize=7.5, length=3)
        ax.tick_params(axis="y", labelsize=7.5)
        ax.grid(axis="y", color="#dcdedf", lw=0.6, zorder=0)
        ax.set_axisbelow(True)
        if unit == "percent":
            ax.yaxis.set_major_formatter(_percent_formatter())
        span = high - low

        # Values above the points; the gaps marked in words.
        gap_marked = False
        for x, y in zip(xs, ys, strict=True):
            if math.isnan(y):
                ax.axvline(x, color=GAP_COLOUR, lw=1, linestyle=(0, (2, 2)), zorder=1)
                ax.text(x, low + span * 0.5, "Not reported", rotation=90, ha="center",
                        va="center", fontsize=7.5, color=GAP_COLOUR,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5},
                        zorder=4)
                gap_marked = True
            else:
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
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                  ncol=min(len(handles), 4), frameon=False, fontsize=7.5,
                  handlelength=2.6)

        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return _accessible(buffer.getvalue(), ident, title, desc)


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
