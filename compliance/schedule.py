"""Contract schedules: the YAML a commissioner writes, parsed into typed, validated models.

Every problem is collected and located (file, line, measure) before anything is refused, so
that an officer fixing a schedule sees all of its faults at once.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compliance.batch import collector_paused
from compliance.errors import Problem, ScheduleError
from compliance.periods import PeriodError, parse_period
from compliance.yamldoc import line_of, read_plain, read_yaml

Kind = Literal["kpi", "supporting"]
Unit = Literal["percent", "rate_per_1k", "rate_per_10k", "rate_per_100k", "count", "days", "number"]
Polarity = Literal["higher_is_better", "lower_is_better", "within_range"]
Frequency = Literal["monthly", "quarterly", "termly", "annual"]
Accumulation = Literal["point_in_time", "cumulative", "rolling_12_months"]
Judged = Literal["each_period", "year_end"]

ADDITIVE_UNITS = frozenset({"count", "days", "number"})
UNIT_SCALE = {"percent": 100.0, "rate_per_1k": 1_000.0, "rate_per_10k": 10_000.0,
              "rate_per_100k": 100_000.0}

_SLUG = re.compile(r"^[a-z0-9][a-z0-9\-_.]*$")
_EPS = 1e-9


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContractSpec(_Spec):
    """The contract block of a schedule."""

    id: str
    title: str
    commissioner: str
    provider: str
    year_start_month: int = Field(default=4, ge=1, le=12)
    reporting: Frequency = "monthly"
    forums: list[str] = Field(min_length=1)
    rules: str = "standard"
    settings: dict[str, float] = Field(default_factory=dict)
    starts: str | None = None
    ends: str | None = None
    return_due_day: int | None = Field(default=None, ge=1, le=31)
    description: str | None = None
    spc: dict[str, int | float | str | bool] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("must be a slug: lower-case letters, digits, '-', '_' or '.'")
        return value

    @field_validator("starts", "ends")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return parse_period(value)
        except PeriodError as exc:
            raise ValueError(str(exc)) from None


class MeasureSpec(_Spec):
    """One KPI or supporting measure of the performance schedule."""

    id: str
    kind: Kind
    parent: str | None = None
    title: str
    unit: Unit
    polarity: Polarity
    frequency: Frequency | None = None
    accumulation: Accumulation = "point_in_time"
    target: float | tuple[float, float] | None = None
    tolerance: float | tuple[float, float] | None = None
    judged: Judged = "each_period"
    profile: Literal["linear"] | list[float] = "linear"
    lag_months: int = Field(default=0, ge=0, le=24)
    comparators: dict[str, float] = Field(default_factory=dict)
    baselines: dict[str, float] = Field(default_factory=dict)
    primary_source: str | None = None
    precision: float | None = Field(default=None, gt=0)
    description: str | None = None
    not_comparable: str | None = None
    recovery_margin: float | None = Field(default=None, ge=0)

    @property
    def monitor_only(self) -> bool:
        return self.target is None

    @property
    def target_range(self) -> tuple[float, float] | None:
        """The target as (low, high): a range for within_range, a point otherwise."""
        if self.target is None:
            return None
        if isinstance(self.target, tuple):
            return self.target
        return (self.target, self.target)

    def far_bound(self) -> float | None:
        """The bound of the tolerance band furthest from the target (higher/lower polarity)."""
        if self.tolerance is None or self.polarity == "within_range":
            return None
        if isinstance(self.tolerance, tuple):
            low, high = sorted(self.tolerance)
            return low if self.polarity == "higher_is_better" else high
        return self.tolerance

    def tolerance_band(self) -> tuple[float, float] | None:
        """The tolerance as (low, high) in the figures' scale, whichever polarity."""
        if self.tolerance is None:
            return None
        if isinstance(self.tolerance, tuple):
            low, high = sorted(self.tolerance)
            return (low, high)
        return (self.tolerance, self.tolerance)

    def step(self) -> float:
        """One step of the figures' precision, used to tell a gap from adjacency."""
        if self.precision is not None:
            return self.precision
        numbers: list[float] = []
        for value in (self.target, self.tolerance):
            if isinstance(value, tuple):
                numbers.extend(value)
            elif value is not None:
                numbers.append(value)
        decimals = max((_decimals(n) for n in numbers), default=0)
        unit_step = 1.0 if self.unit == "count" else 0.1
        return min(unit_step, 10.0 ** -decimals)


class Schedule(_Spec):
    """A validated contract schedule: its contract block, its measures, and where it came from."""

    contract: ContractSpec
    measures: list[MeasureSpec]
    path: str = ""
    sha256: str = ""
    warnings: list[str] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return self.contract.id

    def measure(self, measure_id: str) -> MeasureSpec:
        for measure in self.measures:
            if measure.id == measure_id:
                return measure
        raise KeyError(measure_id)

    def frequency(self, measure: MeasureSpec) -> str:
        return measure.frequency or self.contract.reporting


def _decimals(number: float) -> int:
    text = repr(float(number))
    if "e" in text or "E" in text:
        return 6
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return len(frac)


# --- loading with line numbers -------------------------------------------------------------


def _locate(raw: Any, loc: tuple[Any, ...]) -> tuple[int | None, str | None]:
    """Follow a pydantic error location into the YAML tree; return (line, measure id)."""
    node = raw
    line = line_of(raw)
    measure = None
    for index, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            line = line_of(node, part, value=index < len(loc) - 1) or line
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            line = line_of(node, part) or line
            node = node[part]
        else:
            break
        if index == 1 and loc[0] == "measures" and isinstance(node, dict):
            measure = str(node.get("id")) if node.get("id") is not None else None
    return line, measure


def _suggest(key: str, model: type[BaseModel]) -> str:
    match = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _pydantic_problems(exc: ValidationError, raw: Any, file: str, prefix: tuple[Any, ...],
                       model: type[BaseModel]) -> Iterator[Problem]:
    seen: set[tuple[Any, ...]] = set()
    for error in exc.errors():
        loc = tuple(error["loc"])
        # A union field reports one error per branch; one message per field is enough.
        key = loc[:1]
        if key in seen and error["type"] != "extra_forbidden":
            continue
        seen.add(key)
        line, measure = _locate(raw, prefix + loc)
        if error["type"] == "extra_forbidden":
            name = str(loc[-1])
            message = f"unknown key {name!r}{_suggest(name, model)}"
        elif error["type"] == "missing":
            message = f"missing required key {loc[0]!r}"
        else:
            field = ".".join(str(p) for p in loc[:1])
            message = f"{field}: {_describe(error, loc)}"
        yield Problem(message, file=file, line=line, measure=measure)


def _describe(error: Any, loc: tuple[Any, ...]) -> str:
    field = loc[0] if loc else ""
    if field == "target":
        return "must be a number, or [low, high] for a within_range measure"
    if field == "tolerance":
        return "must be a number (the far bound) or a band [from, to]"
    if field == "profile":
        return "must be 'linear' or a list of 12 cumulative fractions of the year"
    msg = str(error["msg"])
    return msg[0].lower() + msg[1:] if msg else msg


def load_schedule(path: str | Path) -> Schedule:
    """Parse and validate a schedule; raise ScheduleError listing every error and warning."""
    schedule, problems = validate_schedule(path)
    if schedule is None or any(p.severity == "error" for p in problems):
        raise ScheduleError(problems)
    return schedule


@collector_paused()  # many small objects, no cycles of note
def validate_schedule(path: str | Path) -> tuple[Schedule | None, list[Problem]]:
    """Parse a schedule; return it (None if it cannot be accepted) and every problem found.

    A file that reads as plain YAML and has no problem at all is read once with the safe
    loader; any other is read again with line numbers, so that each problem names its
    line. The checks are the same either way."""
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError:
        data = None
    if data is not None:
        plain = read_plain(data)
        if isinstance(plain, dict):
            schedule, problems = _validate(file, plain, plain, [], data)
            if schedule is not None and not problems:
                return schedule, problems
    loaded = read_yaml(path, "schedule", data)
    if isinstance(loaded, list):
        return None, loaded
    raw, plain, problems, data = loaded
    return _validate(file, raw, plain, problems, data)


def _validate(file: str, raw: Any, plain: Any, problems: list[Problem], data: bytes
              ) -> tuple[Schedule | None, list[Problem]]:
    """A schedule from its YAML values: ``raw`` as read (with lines, or plain values without
    them), ``plain`` as plain values, and the problems reading found."""
    problems = [_with_measure(p, raw) for p in problems]
    if not isinstance(plain, dict):
        return None, [Problem("a schedule must be a mapping with 'contract' and 'measures'",
                              file=file, line=1)]
    for key in plain:
        if key not in ("contract", "measures"):
            match = difflib.get_close_matches(key, ["contract", "measures"], n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            problems.append(Problem(f"unknown top-level key {key!r}{hint}", file=file,
                                    line=line_of(raw, key)))
    for key in ("contract", "measures"):
        if key not in plain:
            problems.append(Problem(f"missing the {key!r} block", file=file, line=1))

    contract: ContractSpec | None = None
    if isinstance(plain.get("contract"), dict):
        try:
            contract = ContractSpec.model_validate(plain["contract"])
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc, raw, file, ("contract",), ContractSpec))
    elif "contract" in plain:
        problems.append(Problem("'contract' must be a mapping", file=file,
                                line=line_of(raw, "contract")))

    measures: list[MeasureSpec] = []
    raw_measures = plain.get("measures")
    if raw_measures is not None and not isinstance(raw_measures, list):
        problems.append(Problem("'measures' must be a list", file=file,
                                line=line_of(raw, "measures")))
        raw_measures = []
    for index, item in enumerate(raw_measures or []):
        if not isinstance(item, dict):
            problems.append(Problem("each measure must be a mapping", file=file,
                                    line=line_of(raw["measures"], index)))
            continue
        try:
            measures.append(MeasureSpec.model_validate(item))
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc, raw, file, ("measures", index), MeasureSpec))

    if not raw_measures and "measures" in plain:
        problems.append(Problem("the schedule lists no measures", file=file,
                                line=line_of(raw, "measures")))

    lines = {m.id: _measure_line(raw, m.id) for m in measures}
    problems.extend(_clause_problems(measures, contract, file, raw, lines))

    if contract is not None:
        problems.extend(_pack_problems(contract, file, raw))
        if contract.spc:
            from compliance.spc import SpcSettings

            try:
                SpcSettings(**contract.spc)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                problems.append(Problem(f"spc: {exc}", file=file,
                                        line=line_of(raw.get("contract"), "spc")))
    if contract is None or any(p.severity == "error" for p in problems):
        return None, problems
    schedule = Schedule(
        contract=contract, measures=measures, path=file,
        sha256=hashlib.sha256(data).hexdigest(),
        warnings=[str(p) for p in problems if p.severity == "warning"],
    )
    return schedule, problems


def _pack_problems(contract: ContractSpec, file: str, raw: Any) -> list[Problem]:
    """The contract's rule pack must exist, know its settings and fit its ladder."""
    from compliance.rulepack import RulesError, load_pack

    block = raw.get("contract")
    try:
        pack = load_pack(contract.rules)
    except RulesError as exc:
        first = exc.problems[0].message if exc.problems else "cannot be read"
        return [Problem(f"rule pack {contract.rules!r}: {first}", file=file,
                        line=line_of(block, "rules"))]
    problems = []
    for key in contract.settings:
        if key not in pack.settings:
            match = difflib.get_close_matches(key, list(pack.settings), n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            problems.append(Problem(f"{key!r} is not a setting of rule pack {pack.pack!r}{hint}",
                                    file=file, line=line_of(block.get("settings"), key)))
    if pack.max_level() > len(contract.forums):
        problems.append(Problem(
            f"rule pack {pack.pack!r} escalates up to level {pack.max_level()}, but the ladder "
            f"of forums has {len(contract.forums)}", file=file, line=line_of(block, "forums")))
    return problems


def _with_measure(problem: Problem, raw: Any) -> Problem:
    """Name the measure whose block holds a problem found before the measures were read."""
    if problem.line is None or not isinstance(raw, dict):
        return problem
    owner = None
    for index, item in enumerate(raw.get("measures") or []):
        start = line_of(raw["measures"], index)
        if isinstance(item, dict) and start is not None and start <= problem.line:
            owner = str(item.get("id"))
    if owner is None:
        return problem
    return Problem(problem.message, file=problem.file, line=problem.line, measure=owner,
                   severity=problem.severity)


def _measure_line(raw: Any, measure_id: str) -> int | None:
    for index, item in enumerate(raw.get("measures") or []):
        if isinstance(item, dict) and str(item.get("id")) == measure_id:
            return line_of(raw["measures"], index)
    return None


def _key_line(raw: Any, measure_id: str, key: str, nth: int = 0) -> int | None:
    """The line of a key of the nth measure with this id (ids may be given twice)."""
    for item in raw.get("measures") or []:
        if isinstance(item, dict) and str(item.get("id")) == measure_id:
            if nth:
                nth -= 1
                continue
            return line_of(item, key) if key in item else line_of(item)
    return _measure_line(raw, measure_id)


def _clause_problems(measures: list[MeasureSpec], contract: ContractSpec | None, file: str,
                     raw: Any, lines: dict[str, int | None]) -> Iterator[Problem]:
    """What pydantic cannot see: clauses that are impossible, or doubtful, in context."""
    # A KPI whose own clause is invalid is still a KPI its supporting measures may name.
    kpis = {str(item.get("id")) for item in (raw.get("measures") or [])
            if isinstance(item, dict) and item.get("kind") == "kpi"}
    seen: dict[str, int | None] = {}
    occurrences: dict[str, int] = {}
    for m in measures:
        nth = occurrences.get(m.id, 0)
        occurrences[m.id] = nth + 1

        def at(key: str, message: str, severity: Literal["error", "warning"] = "error",
               measure: MeasureSpec = m, nth: int = nth) -> Problem:
            return Problem(message, file=file, line=_key_line(raw, measure.id, key, nth),
                           measure=measure.id, severity=severity)

        if m.id in seen:
            yield at("id", f"duplicate measure id {m.id!r} (first at line {seen[m.id]})")
        seen.setdefault(m.id, lines.get(m.id))

        if m.kind == "supporting" and m.parent is None:
            yield at("kind", "a supporting measure must name its KPI in 'parent'")
        if m.kind == "kpi" and m.parent is not None:
            yield at("parent", "a KPI has no parent; only supporting measures name one")
        if m.kind == "supporting" and m.parent is not None and m.parent not in kpis:
            match = difflib.get_close_matches(m.parent, sorted(kpis), n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            yield at("parent", f"parent {m.parent!r} is not a KPI of this schedule{hint}")

        yield from _target_problems(m, at)

        if m.accumulation != "cumulative" and m.profile != "linear":
            yield at("profile", "a profile applies only to a cumulative measure")
        if isinstance(m.profile, list):
            p = m.profile
            if len(p) != 12:
                yield at("profile", f"a profile needs 12 cumulative fractions, not {len(p)}")
            elif any(b < a for a, b in zip(p, p[1:], strict=False)) or not 0 <= p[0] <= 1 \
                    or not math.isclose(p[-1], 1.0):
                yield at("profile", "a profile must rise from 0-1 to exactly 1 at year end")
        if m.judged == "year_end" and m.accumulation == "point_in_time":
            yield at("judged", "a point-in-time figure judged at year end is doubtful: "
                     "is the measure cumulative?", "warning")
        for name, value in m.comparators.items():
            if m.unit == "percent" and not 0 <= value <= 100:
                yield at("comparators", f"comparator {name!r} = {value} is not a percentage")
    if contract is not None and contract.starts and contract.ends \
            and contract.ends < contract.starts:
        yield Problem("the contract ends before it starts", file=file,
                      line=line_of(raw.get("contract"), "ends"))


def _target_problems(m: MeasureSpec, at: Any) -> Iterator[Problem]:
    percent = m.unit == "percent"
    numbers = []
    if m.target is not None:
        numbers += list(m.target) if isinstance(m.target, tuple) else [m.target]
    if m.tolerance is not None:
        numbers += list(m.tolerance) if isinstance(m.tolerance, tuple) else [m.tolerance]
    if any(not math.isfinite(n) for n in numbers):
        yield at("target", "targets and tolerances must be finite numbers")
        return
    if percent:
        for key, value in (("target", m.target), ("tolerance", m.tolerance)):
            values = list(value) if isinstance(value, tuple) else [value]
            for v in values:
                if v is not None and not 0 <= v <= 100:
                    yield at(key, f"{key} {v} is not a percentage (0-100)")
    elif any(n < 0 for n in numbers) and m.unit != "number":
        yield at("target", f"a {m.unit} target or tolerance cannot be negative")

    if m.target is None:
        if m.tolerance is not None:
            yield at("tolerance", "a tolerance is given without a target, so no figure can be "
                     "judged against it; give the target the band falls short of")
        if m.judged == "year_end":
            yield at("judged", "a measure without a target cannot be judged at year end")
        return

    if m.polarity == "within_range":
        if not isinstance(m.target, tuple):
            yield at("target", "a within_range target must be [low, high]")
            return
        low, high = m.target
        if low > high:
            yield at("target", f"the range [{low}, {high}] runs backwards")
        band = m.tolerance_band()
        if band is not None and not (band[0] <= low and band[1] >= high):
            yield at("tolerance", f"the tolerance band {list(band)} must contain the target "
                     f"range [{low}, {high}]")
        return
    if isinstance(m.target, tuple):
        yield at("target", f"a {m.polarity} target is one number; [low, high] is for "
                 "within_range measures")
        return

    target = m.target
    if m.tolerance is None:
        return
    higher = m.polarity == "higher_is_better"
    worse = "below" if higher else "above"
    if not isinstance(m.tolerance, tuple):
        far = m.tolerance
        if (higher and far >= target) or (not higher and far <= target):
            yield at("tolerance", f"the tolerance bound {far} is not {worse} the target "
                     f"{target}: for a {m.polarity} measure the tolerance must lie on the "
                     "worse side of the target")
        return
    low, high = sorted(m.tolerance)
    near = high if higher else low
    printed = f"{m.tolerance[0]:g}-{m.tolerance[1]:g}"
    if (higher and low >= target) or (not higher and high <= target):
        better = "above" if higher else "below"
        yield at("tolerance", f"the tolerance band {printed} lies wholly {better} the target "
                 f"{target:g}, on the better side for a {m.polarity} measure: a figure in it "
                 "already meets the target, and no figure can be within tolerance")
        return
    if (higher and near >= target) or (not higher and near <= target):
        yield at("tolerance", f"the tolerance band {printed} overlaps the target {target:g}: "
                 f"figures from {target:g} to {near:g} meet the target and are never "
                 f"within tolerance; the band's near end should be just {worse} {target:g}",
                 "warning")
        return
    gap = abs(target - near)
    step = m.step()
    if gap - step > _EPS * max(1.0, abs(target)):
        yield at("tolerance", f"the tolerance band {printed} does not start next to the target "
                 f"{target:g}: figures between {target:g} and {near:g} (a gap of {gap:g}, more "
                 f"than one step of {step:g}) fall outside both the target and the band as "
                 "printed; they will be judged within tolerance", "warning")


def schedule_from_json(text: str) -> Schedule:
    return Schedule.model_validate_json(text)
