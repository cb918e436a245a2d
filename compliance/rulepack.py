"""Rule packs: escalation policy as data (``rules/*.yaml``), validated with located messages.

A pack has settings (every number of the policy, named) and rules. A rule is a condition on
one fact (a measure's figure for one period, with the features that span periods) and an
outcome: a record (performance or missing-data breach, data-quality, watch), an escalation
to a level of the contract's ladder, or the resolution of an open escalation.

This module compiles packs into durable-rules' JSON condition language and also evaluates the
same conditions over a DataFrame, which picks the facts that can fire a rule before they are
handed to the engine. It never imports durable itself.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from compliance.errors import ComplianceError, Problem
from compliance.yamldoc import line_of, read_plain, read_yaml

if TYPE_CHECKING:
    import pandas as pd

    from compliance.schedule import Schedule


class RulesError(ComplianceError):
    """A rule pack, or a contract's settings for it, that cannot be used."""


# The fields of a fact, and whether rules compare them as text or as numbers.
FIELDS: dict[str, type] = {
    "status": str, "kind": str, "unit": str, "polarity": str, "frequency": str,
    "direction": str, "value": float, "sources": float, "source_spread": float,
    "source_spread_fraction": float, "consecutive_breaches": float,
    "consecutive_missing": float, "consecutive_deteriorating": float, "good_run": float,
    "variation": str, "assurance": str, "days_late": float,
}
# The values a text field of a fact can take.
VALUES: dict[str, frozenset[str]] = {
    "status": frozenset({"met", "within_tolerance", "breach", "not_reported", "not_due",
                         "monitor"}),
    "kind": frozenset({"kpi", "supporting"}),
    "unit": frozenset({"percent", "rate_per_1k", "rate_per_10k", "rate_per_100k", "count",
                       "days", "number"}),
    "polarity": frozenset({"higher_is_better", "lower_is_better", "within_range"}),
    "frequency": frozenset({"monthly", "quarterly", "termly", "annual"}),
    "direction": frozenset({"improving", "declining", "unchanged"}),
    "variation": frozenset({"special_cause_improvement", "special_cause_concern",
                            "special_cause_neither", "common_cause"}),
    "assurance": frozenset({"consistently_passing", "consistently_failing", "inconsistent"}),
}
OPERATORS = {"eq": "$eq", "ne": "$neq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte",
             "in": "$in"}
RecordType = Literal["performance", "missing_data", "data_quality", "watch", "late_return"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutcomeSpec(_Spec):
    record: RecordType | None = None
    severity: Literal["major", "minor"] | None = None
    escalate: int | None = Field(default=None, ge=1)
    resolve: bool = False


class RuleSpec(_Spec):
    id: str
    description: str
    when: dict[str, Any]
    then: OutcomeSpec


class RulePack(_Spec):
    pack: str
    title: str
    settings: dict[str, float] = Field(default_factory=dict)
    rules: list[RuleSpec]
    path: str = ""

    def rule(self, rule_id: str) -> RuleSpec:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def max_level(self) -> int:
        return max((r.then.escalate or 0 for r in self.rules), default=0)


def rules_dir() -> Path:
    """Where packs live: $COMPLIANCE_RULES, else the project's rules/ folder, else ./rules."""
    env = os.environ.get("COMPLIANCE_RULES")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent / "rules"
    return here if here.is_dir() else Path.cwd() / "rules"


def pack_path(name: str) -> Path:
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        return Path(name)
    return rules_dir() / f"{name}.yaml"


# Validated packs, by file and content: a pack is read and checked once per process.
_PACKS: dict[tuple[str, bytes], RulePack] = {}
_PACKS_KEPT = 64


def load_pack(name: str) -> RulePack:
    """The named pack (or the pack at a path), validated; RulesError if it cannot be used.

    A pack already loaded from the same file with the same content is returned again. A
    file that reads as plain YAML (no tags, anchors or repeated keys) and validates without
    a problem is parsed with the safe loader; any other goes through ``validate_pack``,
    which locates every problem.
    """
    path = pack_path(name)
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError:
        data = None
    key: tuple[str, bytes] | None = None
    if data is not None:
        key = (file, hashlib.sha256(data).digest())
        cached = _PACKS.get(key)
        if cached is not None:
            return cached
        saved = _saved_pack(key)
        if saved is not None:
            return _keep(key, saved)
        quick = _quick_pack(file, data)
        if quick is not None:
            _save_pack(key, quick)
            return _keep(key, quick)
    pack, problems = validate_pack(path)
    if pack is None or any(p.severity == "error" for p in problems):
        raise RulesError(problems)
    if key is not None and _digest(path) == key[1]:
        _keep(key, pack)
    return pack


def cache_dir() -> Path:
    """Where validated packs are kept between commands: $COMPLIANCE_CACHE_DIR, else
    $XDG_CACHE_HOME/compliance, else ~/.cache/compliance."""
    env = os.environ.get("COMPLIANCE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "compliance"


def _saved_name(key: tuple[str, bytes]) -> Path:
    """The cache file of a pack: named by the pack's path and content and by the code that
    validated it, so that a changed pack or a changed validation never reads an old entry."""
    digest = hashlib.sha256(key[0].encode() + b"\0" + key[1])
    digest.update(Path(__file__).read_bytes())
    return cache_dir() / "packs" / f"{digest.hexdigest()}.json"


def _saved_pack(key: tuple[str, bytes]) -> RulePack | None:
    """A pack validated by an earlier command, if one is kept; None otherwise."""
    try:
        text = _saved_name(key).read_text(encoding="utf-8")
        pack = RulePack.model_validate_json(text)
    except (OSError, ValueError):
        return None
    return pack if pack.path == key[0] else None


def _save_pack(key: tuple[str, bytes], pack: RulePack) -> None:
    """Keep a validated pack for later commands; a cache that cannot be written is skipped."""
    target = _saved_name(key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        partial.write_text(pack.model_dump_json(), encoding="utf-8")
        os.replace(partial, target)
    except OSError:
        return


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


def _keep(key: tuple[str, bytes], pack: RulePack) -> RulePack:
    if len(_PACKS) >= _PACKS_KEPT:
        _PACKS.clear()
    _PACKS[key] = pack
    return pack


def _quick_pack(file: str, data: bytes) -> RulePack | None:
    """The pack, if its text is plain YAML and it has no problem at all; else None."""
    plain = read_plain(data)
    if not isinstance(plain, dict):
        return None
    try:
        pack = RulePack.model_validate({**plain, "path": file})
    except ValidationError:
        return None
    return None if _rule_problems(pack, file, None) else pack


def validate_pack(path: str | Path) -> tuple[RulePack | None, list[Problem]]:
    file = str(path)
    if not Path(path).exists():
        known = sorted(p.stem for p in rules_dir().glob("*.yaml"))
        return None, [Problem(f"no rule pack at {file}; the packs are: {', '.join(known)}",
                              file=file)]
    loaded = read_yaml(path, "rule pack")
    if isinstance(loaded, list):
        return None, loaded
    raw, plain, problems, _ = loaded
    if not isinstance(plain, dict):
        return None, [Problem("a rule pack must be a mapping with pack, settings and rules",
                              file=file, line=1)]
    try:
        pack = RulePack.model_validate({**plain, "path": file})
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            node, line = raw, 1
            for part in loc:
                try:
                    line = line_of(node, part, value=False) or line
                    node = node[part]
                except (KeyError, IndexError, TypeError):
                    break
            where = ".".join(str(p) for p in loc)
            if error["type"] == "extra_forbidden":
                message = f"unknown key {where!r}"
            else:
                message = f"{where}: {error['msg']}"
            problems.append(Problem(message, file=file, line=line))
        return None, problems

    problems.extend(_rule_problems(pack, file, raw))
    return pack, problems


def _rule_problems(pack: RulePack, file: str, raw: Any) -> list[Problem]:
    """What is wrong with a pack's rules; located in ``raw`` (the round-trip tree) if given."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, rule in enumerate(pack.rules):
        node = raw["rules"][index] if raw is not None else None
        rule_line = line_of(raw["rules"], index) if raw is not None else None
        if rule.id in seen:
            problems.append(Problem(f"rule id {rule.id!r} is used twice", file=file,
                                    line=rule_line))
        seen.add(rule.id)
        if not rule.when:
            problems.append(Problem(f"rule {rule.id}: 'when' is empty", file=file, line=rule_line))
        for field, test in rule.when.items():
            fline = (line_of(node["when"], field) if node is not None else None) or rule_line
            problems.extend(_condition_problems(rule.id, field, test, pack.settings, file, fline))
        then = rule.then
        if then.record is None and then.escalate is None and not then.resolve:
            problems.append(Problem(f"rule {rule.id}: 'then' does nothing (give record, "
                                    "escalate or resolve)", file=file, line=rule_line))
        if then.record in ("performance", "missing_data") and then.severity is None:
            problems.append(Problem(f"rule {rule.id}: a breach record needs a severity",
                                    file=file, line=rule_line))
    return problems


def _condition_problems(rule_id: str, field: str, test: Any, settings: Mapping[str, float],
                        file: str, line: int | None) -> list[Problem]:
    problems: list[Problem] = []
    if field not in FIELDS:
        match = difflib.get_close_matches(field, list(FIELDS), n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        return [Problem(f"rule {rule_id}: unknown field {field!r} in a condition{hint}",
                        file=file, line=line)]
    tests = test.items() if isinstance(test, dict) else [("eq", test)]
    for op, operand in tests:
        if op not in OPERATORS:
            problems.append(Problem(f"rule {rule_id}: unknown comparison {op!r} for {field} "
                                    f"(use one of {', '.join(OPERATORS)})", file=file,
                                    line=line))
            continue
        operands = operand if op == "in" else [operand]
        if op == "in" and not isinstance(operand, list):
            problems.append(Problem(f"rule {rule_id}: 'in' needs a list", file=file,
                                    line=line))
            continue
        for value in operands:
            if field in VALUES and value not in VALUES[field]:
                match = difflib.get_close_matches(str(value), sorted(VALUES[field]), n=1)
                hint = f" (did you mean {match[0]!r}?)" if match else ""
                problems.append(Problem(
                    f"rule {rule_id}: {field} is never {value!r}, so the rule could never fire"
                    f"{hint}; it is one of {', '.join(sorted(VALUES[field]))}", file=file,
                    line=line))
            if FIELDS[field] is float and isinstance(value, str) and value not in settings:
                match = difflib.get_close_matches(value, list(settings), n=1)
                hint = f" (did you mean {match[0]!r}?)" if match else ""
                problems.append(Problem(f"rule {rule_id}: {value!r} is not a setting of this "
                                        f"pack{hint}", file=file, line=line))
    return problems


def effective_settings(pack: RulePack, schedule: Schedule) -> dict[str, float]:
    """The pack's settings with the contract's overrides; unknown overrides are refused."""
    overrides = schedule.contract.settings
    unknown = [k for k in overrides if k not in pack.settings]
    problems = []
    for key in unknown:
        match = difflib.get_close_matches(key, list(pack.settings), n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        problems.append(Problem(f"contract setting {key!r} is not a setting of rule pack "
                                f"{pack.pack!r}{hint}", file=schedule.path or None))
    if pack.max_level() > len(schedule.contract.forums):
        problems.append(Problem(
            f"rule pack {pack.pack!r} escalates to level {pack.max_level()} but the contract's "
            f"ladder has {len(schedule.contract.forums)} forums", file=schedule.path or None))
    if problems:
        raise RulesError(problems)
    return {**pack.settings, **overrides}


def _operand(field: str, value: Any, settings: Mapping[str, float]) -> Any:
    if FIELDS[field] is float and isinstance(value, str):
        return settings[value]
    return value


def compile_rule(rule: RuleSpec, settings: Mapping[str, float]) -> dict[str, Any]:
    """One rule in durable-rules' JSON condition language (without its action)."""
    terms: list[dict[str, Any]] = []
    for field, test in rule.when.items():
        tests = test.items() if isinstance(test, dict) else [("eq", test)]
        for op, operand in tests:
            if op == "in":
                terms.append({"$or": [{field: _operand(field, v, settings)} for v in operand]})
            elif op == "eq":
                terms.append({field: _operand(field, operand, settings)})
            else:
                terms.append({OPERATORS[op]: {field: _operand(field, operand, settings)}})
    condition = terms[0] if len(terms) == 1 else {"$and": terms}
    return {"all": [{"m": condition}]}


def compile_pack(pack: RulePack, settings: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    return {rule.id: compile_rule(rule, settings) for rule in pack.rules}


def evaluate(pack: RulePack, settings: Mapping[str, float], facts: pd.DataFrame
             ) -> pd.DataFrame:
    """The same conditions over a DataFrame of facts: one boolean column per rule."""
    import pandas as pd

    fields = {f for rule in pack.rules for f in rule.when}
    columns = {f: facts[f].to_numpy() for f in fields if f in facts}
    mask = evaluate_columns(pack, settings, columns, len(facts))
    return pd.DataFrame({rule.id: mask[:, i] for i, rule in enumerate(pack.rules)},
                        index=facts.index)


class _Column:
    """One field's values, with what every comparison of it needs worked out once."""

    def __init__(self, values: Any, length: int) -> None:
        import numpy as np

        if values is None:
            values = np.full(length, None, dtype=object)
        self.values = values
        self.numeric = values.dtype.kind in "biuf"
        self._present: Any = None
        self._codes: Any = None
        self._uniques: list[Any] = []

    @property
    def present(self) -> Any:
        """Where the field has a value (not None, NaN or another missing marker): worked out
        when first asked for, from the codes for texts (which code a missing value -1)."""
        import numpy as np

        if self._present is None:
            if self.values.dtype.kind == "f":
                self._present = ~np.isnan(self.values)
            elif self.numeric:
                self._present = np.ones(len(self.values), dtype=bool)
            else:
                codes, _ = self.coded()
                self._present = codes >= 0
        return self._present

    def coded(self) -> tuple[Any, list[Any]]:
        """Codes of the values (-1 where absent) and the distinct values they index."""
        import pandas as pd

        if self._codes is None:
            codes, uniques = pd.factorize(self.values)
            self._codes, self._uniques = codes, list(uniques)
        return self._codes, self._uniques

    def where(self, hits: Any) -> Any:
        """Where the value is one of the distinct values marked in ``hits``."""
        import numpy as np

        codes, _ = self.coded()
        chosen = np.flatnonzero(hits)
        return np.isin(codes, chosen) if len(chosen) else np.zeros(len(codes), dtype=bool)


_TESTS: dict[str, Any] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}


def evaluate_columns(pack: RulePack, settings: Mapping[str, float], columns: Mapping[str, Any],
                     length: int) -> Any:
    """The rules' conditions over facts given as arrays (one per field; a field without an
    array is absent from every fact): a boolean matrix, one row per fact, one column per
    rule in the pack's order. A comparison other than ``in`` holds only where the field is
    present; a term used by several rules is computed once."""
    import numpy as np
    import pandas as pd

    prepared: dict[str, _Column] = {}
    terms: dict[tuple[str, str, str], Any] = {}
    out = np.zeros((length, len(pack.rules)), dtype=bool)
    for index, rule in enumerate(pack.rules):
        mask = np.ones(length, dtype=bool)
        for field, test in rule.when.items():
            column = prepared.get(field)
            if column is None:
                column = prepared[field] = _Column(columns.get(field), length)
            tests = test.items() if isinstance(test, dict) else [("eq", test)]
            for op, operand in tests:
                if op == "in":
                    value: Any = [_operand(field, v, settings) for v in operand]
                elif op in _TESTS:
                    value = _operand(field, operand, settings)
                else:
                    continue
                key = (field, op, repr(value))
                term = terms.get(key)
                if term is None:
                    term = terms[key] = _term(column, op, value, pd)
                mask &= term
        out[:, index] = mask
    return out


def _term(column: _Column, op: str, value: Any, pd: Any) -> Any:
    """One comparison of a field with a value, over every fact, as pandas makes it."""
    import numpy as np

    if op == "in":
        values = list(value)
        if column.numeric or any(pd.isna(v) for v in values):
            return np.asarray(pd.Series(column.values).isin(values), dtype=bool)
        _, uniques = column.coded()
        return column.where(pd.Series(uniques, dtype=object).isin(values).to_numpy())
    compare = _TESTS[op]
    if column.numeric and isinstance(value, (int, float)):
        with np.errstate(invalid="ignore"):
            return np.asarray(column.present & compare(column.values, value), dtype=bool)
    _, uniques = column.coded()
    hits = [bool(compare(u, value)) for u in uniques]
    return np.asarray(column.present & column.where(np.array(hits, dtype=bool)), dtype=bool)


def describe(rule: RuleSpec, settings: Mapping[str, float]) -> str:
    """The rule's description with its settings' values written in."""
    text = rule.description
    for name in sorted(settings, key=len, reverse=True):
        value = settings[name]
        shown = f"{value:g}"
        if name.endswith("_fraction"):
            shown = f"{value * 100:g}%"
        text = text.replace(name, shown)
    return text


def settings_used(rule: RuleSpec, settings: Mapping[str, float]) -> dict[str, float]:
    used: dict[str, float] = {}
    for field, test in rule.when.items():
        tests = test.items() if isinstance(test, dict) else [("eq", test)]
        for _, operand in tests:
            for value in operand if isinstance(operand, list) else [operand]:
                if FIELDS.get(field) is float and isinstance(value, str) and value in settings:
                    used[value] = settings[value]
    return used


def explain_terms(rule: RuleSpec, settings: Mapping[str, float], fact: Mapping[str, Any]
                  ) -> list[tuple[str, bool]]:
    """Each term of a rule's condition in words, and whether the fact meets it."""
    words = {"eq": "is", "ne": "is not", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    out: list[tuple[str, bool]] = []
    for field, test in rule.when.items():
        actual = fact.get(field)
        absent = actual is None or (isinstance(actual, float) and actual != actual)
        shown = "none" if absent else (f"{actual:g}" if isinstance(actual, float) else actual)
        tests = test.items() if isinstance(test, dict) else [("eq", test)]
        for op, operand in tests:
            if op == "in":
                values = [_operand(field, v, settings) for v in operand]
                ok = not absent and actual in values
                out.append((f"{field} is one of {', '.join(map(str, values))} (it is {shown})",
                            ok))
                continue
            value = _operand(field, operand, settings)
            named = f"{operand} = {value:g}" if isinstance(operand, str) and \
                FIELDS[field] is float else str(value)
            ok = not absent and {
                "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
                "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
                "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}[op](actual, value)
            out.append((f"{field} {words[op]} {named} (it is {shown})", bool(ok)))
    return out
