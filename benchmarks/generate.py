"""A seeded generator of realistic contract schedules and one combined provider return.

    python benchmarks/generate.py --figures 100000 --out /tmp/bench-100k [--seed 1]

writes ``OUT/contracts/hub-NNNN.yaml`` (one schedule per contract, in the format of
``contracts/sunderland-tfc.yaml``) and ``OUT/returns.csv``: a commissioning hub's combined
long-form return with a ``contract`` column, holding exactly ``--figures`` rows.

Each contract has 40 measures (10 KPIs, each with 3 supporting measures) over 25 months, so
that about 1,000 figures make a contract and 1,000,000 figures about 1,000 contracts. The
measures cover every unit, every polarity, point-in-time, cumulative (profiled counts, and
year-to-date percentages judged at year end) and rolling measures, monthly, quarterly,
termly and annual frequencies, lagged figures, monitor-only measures, figures given with
their numerator and denominator, and measures reported by two sources (which sometimes
disagree). Each measure's figures follow a sticky chain of states (met, within tolerance,
breach, missing) so that runs of breaches, missing figures, deteriorating figures and
recoveries occur, and every rule of the standard pack fires somewhere.

The same seed and size always give byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

FIRST_PERIOD = "2022-12"
MONTHS = 25  # 2022-12 to 2024-12
CONTRACT_STARTS = "2021-04"
YEAR_START_MONTH = 4
FORUMS = [
    "Operational Commissioning Group",
    "Directorate Management Team",
    "Chief Executive's Performance Clinic",
    "Scrutiny Committee",
]
SERVICES = [
    "children's social care", "adult social care", "public health nursing",
    "home care", "domiciliary care", "supported living", "substance misuse",
    "sexual health", "leisure services", "waste collection", "highways maintenance",
    "special educational needs transport", "fostering", "youth justice",
    "housing repairs", "homelessness prevention", "libraries", "school meals",
]
PROVIDERS = ["Together for Care", "Northern Services Ltd", "Community Partnership CIC",
             "Borough Services (in-house)", "Regional Health Trust", "Civic Works plc"]
# Which archetype each of the 40 measures is: KPI k is measure 4k, its supporting
# measures 4k+1..4k+3. Ten KPIs and thirty supporting measures.
LAYOUT = [
    "pct_high", "pct_low", "rate10k_nd", "pct_high_2src",
    "pct_high", "count_cum", "pct_low_quarterly", "days_low",
    "pct_high", "rate100k_far", "pct_ytd_year_end", "number_range",
    "pct_low", "pct_high_lag", "monitor_pct", "pct_high_2src",
    "pct_high", "rate1k_high", "count_low_quarterly", "pct_rolling",
    "pct_low", "pct_high_termly", "count_annual", "pct_high",
    "pct_high", "pct_high_2src", "days_low", "pct_low_lag",
    "pct_high", "pct_low", "rate10k_nd", "pct_high_quarterly",
    "pct_low", "days_low_2src", "number_range", "pct_high",
    "pct_high", "pct_low", "count_cum", "monitor_rate",
]
assert len(LAYOUT) == 40


TITLES = {
    "pct_high": "% of {subject} completed within timescale",
    "pct_low": "% of {subject} that were repeats within 12 months",
    "pct_high_2src": "% of {subject} with an up to date plan (two recording systems)",
    "pct_high_lag": "% of {subject} meeting the duty (reported a month late)",
    "pct_low_lag": "% of {subject} whose status is unknown (reported a month late)",
    "pct_low_quarterly": "% of {subject} escalated to a complaint (quarterly)",
    "pct_high_quarterly": "% of {subject} rated good or better at audit (quarterly)",
    "pct_high_termly": "% of {subject} with a school place confirmed (termly)",
    "pct_rolling": "% of {subject} completed on time, rolling 12 months",
    "pct_ytd_year_end": "% of {subject} closed with a positive outcome, year to date",
    "rate10k_nd": "Rate of {subject} per 10k of the population",
    "rate100k_far": "Rate of first-time {subject} per 100k of the 10-17 population",
    "rate1k_high": "Rate of {subject} per 1,000 households",
    "count_cum": "Number of {subject} completed since April",
    "count_low_quarterly": "Number of {subject} overdue at quarter end",
    "count_annual": "Number of {subject} in the year",
    "days_low": "Average days from referral to first {subject}",
    "days_low_2src": "Average days to close {subject} (two recording systems)",
    "number_range": "Average caseload of {subject} per worker",
    "monitor_pct": "% of {subject} from outside the area (monitored)",
    "monitor_rate": "Rate of {subject} per 10k (monitored)",
}


def month_index(period: str) -> int:
    return int(period[:4]) * 12 + int(period[5:7]) - 1


def from_index(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def elapsed(period: str) -> int:
    """Months of the financial year ended with ``period`` (1 to 12)."""
    return (int(period[5:7]) - YEAR_START_MONTH) % 12 + 1


def periods() -> list[str]:
    start = month_index(FIRST_PERIOD)
    return [from_index(start + i) for i in range(MONTHS)]


@dataclass
class Measure:
    id: str
    kind: str
    parent: str | None
    archetype: str
    title: str
    unit: str
    polarity: str
    frequency: str | None = None
    accumulation: str = "point_in_time"
    judged: str = "each_period"
    target: float | tuple[float, float] | None = None
    tolerance: float | tuple[float, float] | None = None
    lag_months: int = 0
    primary_source: str | None = None
    sources: list[str] = field(default_factory=list)
    denominator: int | None = None

    def yaml(self) -> str:
        lines = [f"  - id: {self.id}", f"    kind: {self.kind}"]
        if self.parent:
            lines.append(f"    parent: {self.parent}")
        lines += [f'    title: "{self.title}"', f"    unit: {self.unit}",
                  f"    polarity: {self.polarity}"]
        if self.frequency:
            lines.append(f"    frequency: {self.frequency}")
        if self.accumulation != "point_in_time":
            lines.append(f"    accumulation: {self.accumulation}")
            if self.accumulation == "cumulative":
                lines.append("    profile: linear")
        if self.judged != "each_period":
            lines.append(f"    judged: {self.judged}")
        if self.target is not None:
            lines.append(f"    target: {_yaml_number(self.target)}")
        if self.tolerance is not None:
            lines.append(f"    tolerance: {_yaml_number(self.tolerance)}")
        if self.lag_months:
            lines.append(f"    lag_months: {self.lag_months}")
        if self.primary_source:
            lines.append(f"    primary_source: {self.primary_source}")
        return "\n".join(lines)


def _yaml_number(value: float | tuple[float, float]) -> str:
    if isinstance(value, tuple):
        return f"[{_g(value[0])}, {_g(value[1])}]"
    return _g(value)


def _g(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e6 else str(int(x))


def _r1(x: float) -> float:
    return round(x, 1)


def make_measure(rng: random.Random, index: int, archetype: str) -> Measure:
    k, s = divmod(index, 4)
    mid = f"KPI{k + 1}" if s == 0 else f"SM{k + 1}.{s}"
    kind = "kpi" if s == 0 else "supporting"
    parent = None if s == 0 else f"KPI{k + 1}"
    subject = rng.choice(["referrals", "assessments", "visits", "reviews", "placements",
                          "plans", "cases", "contacts", "audits", "returns"])
    title = TITLES[archetype].format(subject=subject)
    m = Measure(id=mid, kind=kind, parent=parent, archetype=archetype, title=title,
                unit="percent", polarity="higher_is_better")
    if archetype.startswith("pct_high") or archetype == "pct_rolling":
        t = float(rng.randint(60, 95))
        m.target, m.tolerance = t, (t - rng.choice([3, 5, 8]), _r1(t - 0.1))
    elif archetype.startswith("pct_low"):
        m.polarity = "lower_is_better"
        t = float(rng.randint(5, 30))
        m.target, m.tolerance = t, (_r1(t + 0.1), t + rng.choice([3, 5, 7]))
    if archetype == "pct_high_2src":
        m.sources = ["case-system", "manual-records"]
        m.primary_source = "case-system"
    elif archetype in ("pct_high_lag", "pct_low_lag"):
        m.lag_months = 1
    elif archetype in ("pct_low_quarterly", "pct_high_quarterly"):
        m.frequency = "quarterly"
    elif archetype == "pct_high_termly":
        m.frequency = "termly"
    elif archetype == "pct_rolling":
        m.accumulation = "rolling_12_months"
    elif archetype == "rate10k_nd":
        m.unit, m.polarity = "rate_per_10k", "lower_is_better"
        t = float(rng.randint(40, 90))
        m.target, m.tolerance = t, (_r1(t + 0.1), t + 10)
        m.denominator = rng.randint(20_000, 90_000)
    elif archetype == "rate100k_far":
        m.unit, m.polarity = "rate_per_100k", "lower_is_better"
        t = float(rng.randint(250, 450))
        m.target, m.tolerance = t, _r1(t + 27.9)
    elif archetype == "rate1k_high":
        m.unit = "rate_per_1k"
        t = float(rng.randint(20, 60))
        m.target, m.tolerance = t, (t - 4, _r1(t - 0.1))
    elif archetype == "count_cum":
        m.unit, m.accumulation = "count", "cumulative"
        t = float(rng.randint(24, 120) * 10)
        m.target, m.tolerance = t, float(round(t * 0.9))
    elif archetype == "count_low_quarterly":
        m.unit, m.polarity, m.frequency = "count", "lower_is_better", "quarterly"
        t = float(rng.randint(10, 60))
        m.target, m.tolerance = t, (t + 1, t + 10)
    elif archetype == "count_annual":
        m.unit, m.frequency = "count", "annual"
        t = float(rng.randint(100, 2000))
        m.target, m.tolerance = t, (round(t * 0.85), t - 1)
    elif archetype in ("days_low", "days_low_2src"):
        m.unit, m.polarity = "days", "lower_is_better"
        if archetype == "days_low_2src":
            m.sources = ["case-system", "manual-records"]
        t = float(rng.randint(10, 40))
        m.target, m.tolerance = t, (_r1(t + 0.1), t + 5)
    elif archetype == "number_range":
        m.unit, m.polarity = "number", "within_range"
        low = float(rng.randint(5, 40))
        high = low + rng.randint(5, 20)
        m.target, m.tolerance = (low, high), (low - 3, high + 3)
    elif archetype == "pct_ytd_year_end":
        m.accumulation, m.judged = "cumulative", "year_end"
        t = float(rng.randint(10, 40))
        m.target, m.tolerance = t, t - 4
    elif archetype == "monitor_pct":
        m.target = m.tolerance = None
    elif archetype == "monitor_rate":
        m.unit, m.polarity = "rate_per_10k", "lower_is_better"
        m.target = m.tolerance = None
    return m


def due(m: Measure, period: str) -> bool:
    e = elapsed(period)
    if m.frequency == "quarterly":
        return e % 3 == 0
    if m.frequency == "termly":
        return int(period[5:7]) in (12, 4, 7)
    if m.frequency == "annual":
        return e == 12
    return True


# Sticky states: met (G), within tolerance (A), breach (B), missing (M).
TRANSITIONS = {
    "G": (("G", 0.78), ("A", 0.12), ("B", 0.08), ("M", 0.02)),
    "A": (("A", 0.45), ("G", 0.25), ("B", 0.27), ("M", 0.03)),
    "B": (("B", 0.65), ("A", 0.15), ("G", 0.17), ("M", 0.03)),
    "M": (("M", 0.45), ("G", 0.35), ("B", 0.20)),
}


def states(rng: random.Random, n: int) -> list[str]:
    state = rng.choice("GGGAB")
    out = []
    for _ in range(n):
        out.append(state)
        pick, acc = rng.random(), 0.0
        for nxt, p in TRANSITIONS[state]:
            acc += p
            if pick < acc:
                state = nxt
                break
    return out


def _value_for(m: Measure, state: str, rng: random.Random, drift: float) -> float:
    """A figure in the given state; ``drift`` in [0, 1] moves a met figure towards target."""
    lo, hi = _bounds(m)
    if m.target is None:
        return _r1(rng.uniform(lo, hi))
    if m.polarity == "within_range":
        assert isinstance(m.target, tuple) and isinstance(m.tolerance, tuple)
        (tl, th), (bl, bh) = m.target, m.tolerance
        if state == "G":
            return _r1(rng.uniform(tl, th))
        if state == "A":
            return _r1(rng.choice([rng.uniform(bl, tl - 0.1), rng.uniform(th + 0.1, bh)]))
        return _r1(rng.choice([rng.uniform(max(0, bl - 10), bl - 0.1),
                               rng.uniform(bh + 0.1, bh + 10)]))
    assert not isinstance(m.target, tuple)
    t = m.target
    higher = m.polarity == "higher_is_better"
    if isinstance(m.tolerance, tuple):
        far = min(m.tolerance) if higher else max(m.tolerance)
    else:
        far = m.tolerance if m.tolerance is not None else t
    sign = 1 if higher else -1
    if state == "G":
        room = (hi - t) if higher else (t - lo)
        noise = rng.uniform(0.95, 1.0) if drift else rng.uniform(0.6, 1.0)
        margin = max(room, 0.2) * (0.9 - 0.8 * drift) * noise
        return _r1(t + sign * margin)
    if state == "A" and far != t:
        low, high = (far, t - 0.1) if higher else (t + 0.1, far)
        return _r1(rng.uniform(low, max(low, high)))
    gap = abs(t - far) + 1
    return _r1(far - sign * rng.uniform(0.2, 1.5) * gap)


def _bounds(m: Measure) -> tuple[float, float]:
    if m.unit == "percent":
        return 0.0, 100.0
    if m.target is None:
        return 20.0, 120.0
    top = max(m.target) if isinstance(m.target, tuple) else m.target
    return 0.0, top * 2.0


def _text(value: float, m: Measure, rng: random.Random) -> str:
    if m.unit == "count":
        n = int(round(value))
        return f"{n:,}" if n >= 1000 and rng.random() < 0.5 else str(n)
    text = f"{value:.1f}"
    if m.unit == "percent" and rng.random() < 0.5:
        text += "%"
    return text


MISSING_COMMENTS = [
    "Unable to report until the new case system is live",
    "Data not available this month: staff absence in the performance team",
    "Figure withheld pending data validation",
]


def figures(cid: str, measures: list[Measure], rng: random.Random) -> Iterator[list[str]]:
    """The return rows of one contract, in period order within each measure."""
    window = periods()
    for m in measures:
        dated = [from_index(month_index(p) - m.lag_months) for p in window]
        dated = [p for p in dated if due(m, p)]
        chain = states(rng, len(dated))
        drift, drifting = 0.0, False
        ytd_base = rng.uniform(0.9, 1.1)
        for p, state in zip(dated, chain, strict=True):
            if state == "G":
                if not drifting and rng.random() < 0.15:
                    drifting, drift = True, 0.0
                drift = min(1.0, drift + 0.3) if drifting else 0.0
            else:
                drifting, drift = False, 0.0
            if state == "M":
                how = rng.random()
                if how < 0.2:
                    continue  # no row at all: not reported
                value = "n/a" if how < 0.3 else ""
                yield [cid, m.id, p, value, "", "", m.sources[0] if m.sources else "",
                       rng.choice(MISSING_COMMENTS)]
                continue
            if m.archetype == "count_cum":
                assert isinstance(m.target, float) and isinstance(m.tolerance, float)
                share = elapsed(p) / 12
                factor = {"G": rng.uniform(1.0, 1.2) * ytd_base,
                          "A": rng.uniform(m.tolerance / m.target + 0.01, 0.99),
                          "B": rng.uniform(0.5, m.tolerance / m.target - 0.02)}[state]
                if state == "G":
                    factor = max(factor, 1.0)
                value = float(round(m.target * share * factor))
                yield [cid, m.id, p, _text(value, m, rng), "", "", "", ""]
                continue
            value = _value_for(m, state, rng, drift)
            if m.unit != "number":
                value = max(value, 0.0)
            if m.unit == "percent":
                value = min(value, 100.0)
            if m.denominator:
                numerator = round(value * m.denominator / 10_000)
                value = round(numerator / m.denominator * 10_000, 1)
                yield [cid, m.id, p, f"{value:.1f}", str(numerator), str(m.denominator), "",
                       ""]
                continue
            comment = "Year to date" if m.accumulation == "cumulative" else ""
            if m.sources:
                yield [cid, m.id, p, _text(value, m, rng), "", "", m.sources[0], comment]
                if m.unit == "percent":  # points apart
                    spread = rng.choice([0.5, 1.5, 3.0, 7.5, 12.0])
                else:  # a fraction of the figure apart
                    spread = value * rng.choice([0.02, 0.05, 0.08, 0.15, 0.3])
                other = max(0.0, _r1(value + rng.choice([-1, 1]) * spread))
                if m.unit == "percent":
                    other = min(100.0, other)
                yield [cid, m.id, p, _text(other, m, rng), "", "", m.sources[1], ""]
            else:
                yield [cid, m.id, p, _text(value, m, rng), "", "", "", comment]


def schedule_yaml(cid: str, n: int, measures: list[Measure], rng: random.Random) -> str:
    service = rng.choice(SERVICES)
    settings = ""
    if n % 10 == 3:  # some contracts override a setting of the pack
        settings = "  settings:\n    consecutive_kpi_breaches_level_2: 3\n" \
                   "    consecutive_kpi_breaches_level_3: 4\n"
    forums = "\n".join(f'    - "{f}"' for f in FORUMS)
    head = (f"# Generated by benchmarks/generate.py: contract {n}, a {service} contract.\n"
            f"contract:\n"
            f"  id: {cid}\n"
            f'  title: "{service.capitalize()} contract {n}"\n'
            f'  commissioner: "Hub Council {n % 37}"\n'
            f'  provider: "{rng.choice(PROVIDERS)}"\n'
            f"  year_start_month: {YEAR_START_MONTH}\n"
            f"  reporting: monthly\n"
            f"  forums:\n{forums}\n"
            f"  rules: standard\n{settings}"
            f"  starts: {CONTRACT_STARTS}\n"
            f"  return_due_day: 15\n\n"
            f"measures:\n")
    return head + "\n\n".join(m.yaml() for m in measures) + "\n"


def generate(figures_wanted: int, out: Path, seed: int = 1) -> dict[str, object]:
    """Write the schedules and the combined return; return a summary."""
    contracts_dir = out / "contracts"
    contracts_dir.mkdir(parents=True, exist_ok=True)
    for old in contracts_dir.glob("*.yaml"):
        old.unlink()
    written = 0
    n = 0
    with (out / "returns.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["contract", "measure", "period", "value", "numerator",
                         "denominator", "source", "comment"])
        while written < figures_wanted:
            n += 1
            rng = random.Random(f"{seed}:{n}")
            cid = f"hub-{n:04d}"
            measures = [make_measure(rng, i, a) for i, a in enumerate(LAYOUT)]
            (contracts_dir / f"{cid}.yaml").write_text(schedule_yaml(cid, n, measures, rng),
                                                       encoding="utf-8")
            for row in figures(cid, measures, rng):
                writer.writerow(row)
                written += 1
                if written >= figures_wanted:
                    break
    summary = {"figures": written, "contracts": n, "seed": seed,
               "periods": [periods()[0], periods()[-1]], "measures_per_contract": len(LAYOUT)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", type=int, required=True, help="rows of the return")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    summary = generate(args.figures, args.out, args.seed)
    print(json.dumps(summary), file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
