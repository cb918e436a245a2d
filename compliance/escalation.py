"""Escalation: rule packs run by durable-rules over the assessed facts, then the ladder.

durable-rules is old and fragile, so it is used narrowly:
- one ruleset per contract per run, registered on a private host made for the run (never
  the global ``durable.lang`` registry), whose background dispatch threads are never started:
  every action runs synchronously inside ``assert_fact``;
- facts are small, carry explicit string ids, and only those that can fire a rule are
  asserted; a fact that matches no rule is normal;
- an exception inside an action, which durable-rules would swallow into its state, is raised;
- durable-rules can take a distinct fact for one already asserted (its identity hash
  collides): such a fact is asserted again in a fresh state of its own, and what fired is
  checked against the same conditions evaluated independently, so that no record is ever
  lost or invented;
- every state, and the ruleset itself, is deleted when the run ends.

The rules' conditions are also evaluated over whole columns (``rulepack.evaluate_columns``),
once per distinct pack and settings; that picks the candidate facts. A run with more than
``BATCH_THRESHOLD`` candidates (checking many contracts, or many periods, at once) takes the
evaluation as what fired instead of asserting each candidate; smaller runs, such as the
monthly check of one contract, go through durable-rules and are checked against it. Both
give the same records (``tests/test_rules_differential.py`` runs both).

What spans periods (the ladder: one open escalation per measure, whose level only rises
until it is resolved) is replayed from the records in period order, so that checking months
again or out of order gives the same escalations as checking them in order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compliance.rulepack import (
    FIELDS,
    RulePack,
    RuleSpec,
    compile_pack,
    describe,
    effective_settings,
    evaluate_columns,
    load_pack,
    settings_used,
)
from compliance.store.packed import STORED_ESCALATION_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from compliance.schedule import Schedule

MAX_REASSERTS = 3
# Above this many candidate facts in one run, the rules' conditions evaluated over whole
# columns are what fired; at or below it, durable-rules decides, checked against them.
BATCH_THRESHOLD = 5_000
FINDING_COLUMNS = ["contract", "measure", "period", "figure_period", "type", "severity", "rule",
                   "description", "value", "compared_with", "status", "settings", "facts"]


class RuleEngineError(RuntimeError):
    """The rules engine failed or disagreed with the rules' own conditions: never ignored."""


@dataclass
class EscalationRecord:
    contract: str
    measure: str
    opened: str
    level: int
    forum: str
    rule: str
    description: str
    last_period: str
    resolved: str | None = None
    resolved_rule: str | None = None
    silenced_until: str | None = None
    silence_reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # The settings of the rule that set the level, and the fact it fired on, as stored
    # (JSON; the fact's keys sorted).
    settings_text: str = "{}"
    facts_text: str = "{}"

    @property
    def status(self) -> str:
        if self.silenced_until:
            return "silenced"
        return "resolved" if self.resolved else "open"

    @property
    def settings(self) -> dict[str, float]:
        loaded: dict[str, float] = json.loads(self.settings_text)
        return loaded

    @property
    def facts(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.facts_text)
        return loaded

    def row(self) -> dict[str, Any]:
        """As stored (``escalation_columns`` of this record alone)."""
        return {name: values[0] for name, values in escalation_columns([self]).items()}


# The columns of a stored escalation, in the order ``EscalationRecord.row`` gives them.
ESCALATION_COLUMNS = STORED_ESCALATION_COLUMNS


def escalation_columns(records: Sequence[EscalationRecord]) -> dict[str, list[Any]]:
    """The records as stored, column by column: ``ESCALATION_COLUMNS``, each with one entry
    per record (as ``row`` gives each), without a dict per record."""
    return {
        "contract_id": [e.contract for e in records],
        "measure_id": [e.measure for e in records],
        "opened": [e.opened for e in records],
        "level": [e.level for e in records],
        "forum": [e.forum for e in records],
        "status": [e.status for e in records],
        "resolved": [e.resolved for e in records],
        "rule": [e.rule for e in records],
        "resolved_rule": [e.resolved_rule for e in records],
        "description": [e.description for e in records],
        "last_period": [e.last_period for e in records],
        "history": _histories_json(records),
        "settings": [e.settings_text for e in records],
        "facts": [e.facts_text for e in records],
        "silenced_until": [e.silenced_until for e in records],
        "silence_reason": [e.silence_reason for e in records],
    }


_HISTORY_KEYS = ("period", "level", "rule", "description")


def history_json(history: Sequence[Mapping[str, Any]],
                 written: dict[tuple[Any, ...], str] | None = None) -> str:
    """An escalation's history as stored: exactly ``json.dumps(history)``, written directly
    for steps of the usual shape (their four keys in order, texts and a whole level).

    ``written`` keeps each distinct step's text, for the histories written after this one
    (many escalations share steps: the same rule in the same period)."""
    if written is None:
        written = {}
    steps = []
    for step in history:
        if len(step) != 4 or tuple(step) != _HISTORY_KEYS:
            return json.dumps(history)
        key = tuple(step.values())
        period, level, rule, description = key
        if type(level) is not int:  # (True and 1.0 are keys equal to 1)
            return json.dumps(history)
        shown = written.get(key)
        if shown is None:
            if type(period) is not str or type(rule) is not str or type(description) is not str:
                return json.dumps(history)
            shown = written[key] = _step_json(period, level, rule, description)
        steps.append(shown)
    return f"[{', '.join(steps)}]"


def _step_json(period: str, level: int, rule: str, description: str) -> str:
    """One step of an escalation's history as ``json.dumps`` writes it."""
    text = json.encoder.encode_basestring_ascii
    return (f'{{"period": {text(period)}, "level": {level}, "rule": {text(rule)}, '
            f'"description": {text(description)}}}')


def _histories_json(records: Sequence[EscalationRecord]) -> list[str]:
    """``history_json`` of each record's history, each distinct step written once."""
    written: dict[tuple[Any, ...], str] = {}
    return [history_json(e.history, written) for e in records]


@dataclass
class RulesResult:
    findings: pd.DataFrame
    # The escalations as stored, column by column (``ESCALATION_COLUMNS``, one entry per
    # escalation): a national check makes some 80,000, which go to the store without an
    # object of each.
    table: dict[str, list[Any]]
    fired: pd.DataFrame  # rule, fact id, contract, measure, period: every rule that fired
    settings: dict[str, dict[str, float]]
    packs: dict[str, RulePack]

    @property
    def escalations(self) -> list[EscalationRecord]:
        """The escalations as records, in the table's order."""
        return escalation_records(self.table)


def escalation_records(table: Mapping[str, Sequence[Any]]) -> list[EscalationRecord]:
    """Records of escalations given as stored, column by column (``escalation_columns``)."""
    return [EscalationRecord(
        contract=row["contract_id"], measure=row["measure_id"], opened=row["opened"],
        level=row["level"], forum=row["forum"], rule=row["rule"],
        description=row["description"], last_period=row["last_period"],
        resolved=row["resolved"], resolved_rule=row["resolved_rule"],
        silenced_until=row["silenced_until"], silence_reason=row["silence_reason"],
        history=json.loads(row["history"]), settings_text=row["settings"],
        facts_text=row["facts"])
        for row in (dict(zip(ESCALATION_COLUMNS, values, strict=True))
                    for values in zip(*(table[name] for name in ESCALATION_COLUMNS),
                                      strict=True))]


def _fact_id(contract: str, measure: str, period: str) -> str:
    return f"{contract}|{measure}|{period}"


def facts_frame(features: pd.DataFrame) -> pd.DataFrame:
    """The judged measure-periods as facts: the features rules read, with an id."""
    facts = features[features["status"] != "not_due"].copy()
    facts["id"] = (facts["contract"].astype(str) + "|" + facts["measure"].astype(str) + "|"
                   + facts["period"].astype(str))
    facts["sid"] = facts["contract"].astype(str) + "|" + facts["measure"].astype(str)
    return facts


@dataclass
class _Outcome:
    """One rule of one pack under one set of effective settings, worked out once."""

    rule: RuleSpec
    used: list[str]  # the fields its condition reads, sorted
    description: str
    settings: dict[str, float]
    settings_json: str

    @classmethod
    def of(cls, rule: RuleSpec, values: Mapping[str, float]) -> _Outcome:
        used_settings = settings_used(rule, values)
        return cls(rule=rule, used=sorted(set(rule.when)), description=describe(rule, values),
                   settings=used_settings,
                   settings_json=json.dumps(used_settings, sort_keys=True))


@dataclass
class _Group:
    """Contracts that share a rule pack and its effective settings: one evaluation."""

    pack: RulePack
    values: dict[str, float]
    contracts: list[str]
    first: int  # index of its first rule in the run's list of outcomes


class _Facts:
    """The judged facts of a run as column arrays, holding only the columns used."""

    def __init__(self, features: pd.DataFrame) -> None:
        import numpy as np
        import pandas as pd

        self.features = features
        status = features["status"].to_numpy()
        self.rows = np.flatnonzero(status != "not_due")
        self.columns: dict[str, Any] = {}
        self._ids: Any = None
        self._id_keys: Any = None
        self.add(_OUTPUT_COLUMNS)
        codes, uniques = pd.factorize(self.columns["contract"], sort=True)
        names = [str(u) for u in uniques]
        # The contracts with facts, sorted, and each fact's place among them (-1: none).
        self.contracts = sorted(names)
        rank = {name: i for i, name in enumerate(self.contracts)}
        self.contract_code = np.array([rank[n] for n in names] + [-1], dtype=np.int64)[codes]

    def add(self, fields: Iterable[str]) -> None:
        """Take these fields of the judged facts too (those the features have): a
        categorical stays one (the rules compare and group its codes)."""
        import pandas as pd

        for name in fields:
            if name not in self.columns and name in self.features.columns:
                column = self.features[name]
                self.columns[name] = (column.array[self.rows]
                                      if isinstance(column.dtype, pd.CategoricalDtype)
                                      else column.to_numpy()[self.rows])

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self, positions: Any, fields: Iterable[str]) -> pd.DataFrame:
        """Some facts with some fields, as a DataFrame."""
        import pandas as pd

        return pd.DataFrame({f: self.columns[f][positions] for f in fields
                             if f in self.columns})

    def ids(self, positions: Any) -> list[str]:
        """The ids of some facts (``_fact_id``)."""
        ids: list[str] = self.all_ids()[positions].tolist()
        return ids

    def all_ids(self) -> Any:
        """Every fact's id (``_fact_id``), as an object array: made once, each distinct
        contract and measure, and each period, written once."""
        import numpy as np
        import pandas as pd

        if self._ids is not None:
            return self._ids
        contract, measure, period = (self.columns[name]
                                     for name in ("contract", "measure", "period"))
        c_code, contracts = pd.factorize(contract)
        m_code, measures = pd.factorize(measure)
        p_code, periods = pd.factorize(period)
        if (c_code < 0).any() or (m_code < 0).any() or (p_code < 0).any():
            # A fact without one of them (never in a check's history): each written whole.
            self._ids = np.array([_fact_id(c, m, p) for c, m, p in zip(
                contract.tolist(), measure.tolist(), period.tolist(), strict=True)],
                dtype=object)
            return self._ids
        width = max(len(measures), 1)
        pair_code, pairs = pd.factorize(c_code.astype(np.int64) * width + m_code)
        contract_texts, measure_texts = contracts.tolist(), measures.tolist()
        prefixes = np.array([f"{contract_texts[k // width]}|{measure_texts[k % width]}|"
                             for k in pairs.tolist()], dtype=object)
        suffixes = np.array([f"{p}" for p in periods.tolist()], dtype=object)
        self._ids = prefixes[pair_code] + suffixes[p_code]
        if not any("|" in str(text) for text in (*contract_texts, *measure_texts)):
            # Each id is "contract|measure|" then its period, with no other "|": ids sort
            # as their (contract|measure|, period) pairs do, each part ranked once.
            self._id_keys = (_ranks(prefixes)[pair_code] * len(suffixes)
                             + _ranks(suffixes)[p_code])
        return self._ids

    def id_keys(self, positions: Any) -> Any:
        """Numbers that sort some facts as their ids sort."""
        import numpy as np

        self.all_ids()
        if self._id_keys is None:
            keys = np.empty(len(positions), dtype=np.int64)
            keys[np.argsort(self._ids[positions], kind="stable")] = np.arange(len(positions))
            return keys
        return self._id_keys[positions]

    def row(self, position: int, fields: Iterable[str]) -> dict[str, Any]:
        """One fact's id (with an empty sid) and some of its fields."""
        values = self.columns
        fid = _fact_id(values["contract"][position], values["measure"][position],
                       values["period"][position])
        row = {name: values[name][position] for name in fields if name in values}
        return {**row, "id": fid, "sid": ""}

    def values(self, name: str, positions: Any) -> Any:
        """A column's values at some facts, as an object array (None where absent)."""
        import numpy as np

        values = self.columns.get(name)
        if values is None:
            return np.full(len(positions), None, dtype=object)
        if values.dtype.kind == "O":
            return np.asarray(values[positions], dtype=object)
        out = np.empty(len(positions), dtype=object)
        out[:] = values[positions].tolist()
        return out

    def column(self, name: str, positions: Any) -> list[Any]:
        """A column's values at some facts as plain Python values (None where absent)."""
        values = self.columns.get(name)
        if values is None:
            return [None] * len(positions)
        return list(values[positions].tolist())


def _ranks(texts: Any) -> Any:
    """Each text's place among the texts in order."""
    import numpy as np

    ranks = np.empty(len(texts), dtype=np.int64)
    ranks[np.argsort(texts, kind="stable")] = np.arange(len(texts))
    return ranks


_OUTPUT_COLUMNS = ("contract", "measure", "period", "figure_period", "value", "compared_with",
                   "status")


def run_rules(features: pd.DataFrame, schedules: Mapping[str, Schedule],
              silences: Mapping[tuple[str, str], list[dict[str, Any]]] | None = None
              ) -> RulesResult:
    """Fire every contract's rule pack over its facts and derive records and escalations.

    ``silences`` maps (contract, measure) to silences (id, start, until, reason): while one
    is in force, a new escalation or a rise of the measure is held back as a silenced record.

    The rules' conditions are evaluated over whole columns once per distinct pack and
    settings; the facts that meet any condition are the candidates. When a run has at most
    ``BATCH_THRESHOLD`` candidates they are asserted into durable-rules, one ruleset per
    contract, and what fired must equal the evaluation; above it, the evaluation is what
    fired.
    """
    import numpy as np
    import pandas as pd

    facts = _Facts(features)
    contracts = facts.contracts
    packs: dict[str, RulePack] = {}
    settings: dict[str, dict[str, float]] = {}
    loaded: dict[str, RulePack] = {}
    groups: dict[tuple[str, tuple[tuple[str, float], ...]], _Group] = {}
    outcomes: list[_Outcome] = []
    for cid in contracts:
        schedule = schedules[cid]
        name = schedule.contract.rules
        pack = loaded.get(name) or load_pack(name)
        loaded[name] = pack
        packs[cid] = pack
        values = effective_settings(pack, schedule)
        settings[cid] = values
        key = (name, tuple(sorted(values.items())))
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(pack=pack, values=values, contracts=[],
                                         first=len(outcomes))
            outcomes.extend(_Outcome.of(rule, values) for rule in pack.rules)
        group.contracts.append(cid)

    fields = sorted({f for g in groups.values() for r in g.pack.rules for f in r.when})
    facts.add(fields)
    code = facts.contract_code
    rank = {cid: i for i, cid in enumerate(contracts)}

    # Evaluate each group's conditions once over all its facts.
    evaluated: list[tuple[_Group, Any, Any]] = []  # group, fact positions, mask
    for group in groups.values():
        if len(groups) == 1 and (code >= 0).all():
            positions = np.arange(len(facts))
            columns = {f: facts.columns[f] for f in fields if f in facts.columns}
        else:
            mine = np.isin(code, [rank[c] for c in group.contracts])
            positions = np.flatnonzero(mine)
            columns = {f: facts.columns[f][positions] for f in fields if f in facts.columns}
        mask = evaluate_columns(group.pack, group.values, columns, len(positions))
        evaluated.append((group, positions, mask))
    candidates = sum(int(m.any(axis=1).sum()) for _, _, m in evaluated)

    fired_pos: list[Any] = []
    fired_out: list[Any] = []
    for group, positions, mask in evaluated:
        if candidates > BATCH_THRESHOLD:
            rows, rules = np.nonzero(mask)
            fired_pos.append(positions[rows])
            fired_out.append(group.first + rules)
            continue
        can_fire = mask.any(axis=1)
        group_pos, group_mask = positions[can_fire], mask[can_fire]
        group_code = code[group_pos]
        for cid in group.contracts:
            ours = group_code == rank[cid]
            pos, sub = group_pos[ours], group_mask[ours]
            ids = facts.ids(pos)
            rule_ids = [rule.id for rule in group.pack.rules]
            expected = {(rule_ids[r], ids[i]) for i, r in zip(*np.nonzero(sub), strict=True)}
            fired = _fire(group.pack, group.values, _candidates(facts, pos, ids, group.pack))
            if fired != expected:
                missing = sorted(expected - fired)[:3]
                extra = sorted(fired - expected)[:3]
                raise RuleEngineError(
                    f"durable-rules fired differently from the rules' conditions for contract "
                    f"{cid}: missing {missing}, unexpected {extra}")
            where_id = dict(zip(ids, pos.tolist(), strict=True))
            index = {rid: group.first + i for i, rid in enumerate(rule_ids)}
            fired_pos.append(np.array([where_id[fid] for _, fid in sorted(fired)],
                                      dtype=np.int64))
            fired_out.append(np.array([index[rid] for rid, _ in sorted(fired)],
                                      dtype=np.int64))
    pos = np.concatenate(fired_pos) if fired_pos else np.array([], dtype=np.int64)
    out = np.concatenate(fired_out) if fired_out else np.array([], dtype=np.int64)

    # Every rule that fired, in order of contract, rule id and fact id.
    seen = np.zeros(len(facts), dtype=bool)
    seen[pos] = True
    unique = np.flatnonzero(seen)
    unique_ids = facts.all_ids()[unique]
    id_rank = facts.id_keys(unique)
    rule_names = sorted({o.rule.id for o in outcomes})
    rule_rank = np.array([rule_names.index(o.rule.id) for o in outcomes] or [0],
                         dtype=np.int64)
    contract_rank = code[pos]
    slot = np.searchsorted(unique, pos)
    order = np.lexsort((id_rank[slot], rule_rank[out], contract_rank))
    pos, out, fired_ids = pos[order], out[order], unique_ids[slot[order]]

    rule_of = np.array([o.rule.id for o in outcomes], dtype=object)
    fired_frame = pd.DataFrame({
        "rule": rule_of[out] if len(out) else np.array([], dtype=object),
        "id": fired_ids,
        **{c: facts.columns[c][pos] if len(facts) else np.array([], dtype=object)
           for c in ("contract", "measure", "period")}}, dtype=object)
    findings = _findings(facts, pos, out, fired_ids, outcomes)
    table = _ladder(facts, pos, out, outcomes, schedules, silences)
    return RulesResult(findings=findings, table=table, fired=fired_frame,
                       settings=settings, packs=packs)


def _candidates(facts: _Facts, positions: Any, ids: list[str], pack: RulePack
                ) -> pd.DataFrame:
    """The candidate facts of one contract with their ids and the fields its rules read."""
    import pandas as pd

    used = sorted({f for rule in pack.rules for f in rule.when})
    frame = facts.frame(positions, ["contract", "measure", *used])
    frame.insert(0, "id", ids)
    frame.insert(1, "sid", [f"{c}|{m}" for c, m in
                            zip(frame["contract"].tolist(), frame["measure"].tolist(),
                                strict=True)])
    keep = ["id", "sid", *[f for f in used if f in frame.columns]]
    return pd.DataFrame(frame[keep])


def fact_payload(row: Mapping[str, Any], used: Iterable[str]) -> dict[str, Any]:
    """A small fact: the id, the state it lives in, and only the fields the rules read."""
    fact: dict[str, Any] = {"id": str(row["id"]), "sid": str(row["sid"])}
    for name in used:
        value = row.get(name)
        if value is None or (isinstance(value, float) and value != value):
            continue
        fact[name] = float(value) if FIELDS[name] is float else str(value)
    return fact


def _payloads(candidates: pd.DataFrame, used: list[str]) -> Iterator[dict[str, Any]]:
    """``fact_payload`` of every row of a frame, read column by column."""
    names = [str(c) for c in candidates.columns]
    columns = [candidates[c].to_numpy().tolist() for c in candidates.columns]
    for values in zip(*columns, strict=True):
        yield fact_payload(dict(zip(names, values, strict=True)), used)


def _action(rule_id: str, fired: set[tuple[str, str]], errors: list[BaseException]) -> Any:
    """The action of a rule: note which fact fired it; keep any exception to raise later."""
    def action(c: Any) -> None:
        try:
            fired.add((rule_id, str(c.m["id"])))
        except BaseException as exc:  # durable-rules would keep this in its state
            errors.append(exc)
            raise
    return action


def _delete_ruleset(handle: Any) -> None:
    import durable_rules_engine

    durable_rules_engine.delete_ruleset(handle)


def _fire(pack: RulePack, settings: Mapping[str, float], candidates: pd.DataFrame
          ) -> set[tuple[str, str]]:
    """Assert the candidate facts into a fresh durable-rules ruleset; return what fired."""
    from durable import engine

    if candidates.empty:
        return set()

    fired: set[tuple[str, str]] = set()
    errors: list[BaseException] = []

    class RunHost(engine.Host):  # type: ignore[misc]
        """A host for one run: no background dispatch or timer threads."""

        def _run(self) -> None:
            return None

    definition = {rule_id: {**condition, "run": _action(rule_id, fired, errors)}
                  for rule_id, condition in compile_pack(pack, settings).items()}
    name = f"compliance-{uuid.uuid4().hex}"
    host = RunHost()
    host.register_rulesets({name: definition})
    used = sorted({f for rule in pack.rules for f in rule.when})
    sids: set[str] = set()
    try:
        for fact in _payloads(candidates, used):
            _assert(host, name, fact, sids, errors, engine)
    finally:
        for sid in sids:
            try:
                host.delete_state(name, sid)
            except Exception:  # noqa: BLE001 - the state may never have been created
                pass
        _delete_ruleset(host.get_ruleset(name)._handle)
    return fired


def _assert(host: Any, name: str, fact: dict[str, Any], sids: set[str],
            errors: list[BaseException], engine: Any, attempt: int = 0) -> None:
    sids.add(fact["sid"])
    try:
        state = host.assert_fact(name, fact)
    except engine.MessageNotHandledException:
        return  # the fact matched no rule
    except engine.MessageObservedException:
        # Every fact id is distinct, so this is durable-rules' identity hash colliding.
        if attempt >= MAX_REASSERTS:
            raise RuleEngineError(f"durable-rules keeps refusing fact {fact['id']} as already "
                                  "seen") from None
        retry = {**fact, "sid": f"{fact['sid']}~{attempt + 1}"}
        _assert(host, name, retry, sids, errors, engine, attempt + 1)
        return
    if errors:
        raise RuleEngineError(f"a rule action failed on fact {fact['id']}") from errors[0]
    if isinstance(state, dict) and state.get("exception"):
        raise RuleEngineError(f"durable-rules failed on fact {fact['id']}: "
                              f"{state['exception']}")


def _json_float(value: float) -> str:
    """A number as ``json.dumps`` writes it."""
    if value == float("inf"):
        return "Infinity"
    if value == float("-inf"):
        return "-Infinity"
    return float.__repr__(value)


def _facts_json(facts: _Facts, positions: Any, ids: list[str], used: list[str]) -> list[str]:
    """``json.dumps(fact_payload(fact with an empty sid, used), sort_keys=True)`` of each
    fact, put together a field at a time over all the facts: each distinct value of a field
    is written once, and numpy adds the pieces of all the facts' texts."""
    from json.encoder import encode_basestring_ascii as quote

    import numpy as np

    # The id is always there: the fields before it end with ", ", those after begin with it.
    text = np.full(len(ids), "{", dtype=object)
    after_id = False
    for key in sorted(["id", "sid", *used]):
        if key == "id":
            text = text + np.array([f'"id": {quote(fid)}' for fid in ids], dtype=object)
            after_id = True
            continue
        before, after = (", ", "") if after_id else ("", ", ")
        if key == "sid":
            text = text + f'{before}"sid": ""{after}'
            continue
        text = text + _field_json(facts, key, positions, before, after)
    written: list[str] = (text + "}").tolist()
    return written


def _field_json(facts: _Facts, key: str, positions: Any, before: str, after: str) -> Any:
    """One field of some facts as ``json.dumps`` writes it, between ``before`` and
    ``after``, as an object array of texts; an empty text where the fact has no value."""
    from json.encoder import encode_basestring_ascii as quote

    import numpy as np
    import pandas as pd

    name = quote(key)
    values = facts.columns.get(key)
    if values is None:
        return ""
    values = values[positions]
    if FIELDS[key] is float and values.dtype.kind in "biuf":
        numbers = values.astype(np.float64)
        absent = np.isnan(numbers)
        # Keyed by the bits: 0.0 and -0.0 are written differently.
        codes, distinct = pd.factorize(numbers.view(np.int64))
        shown = [f"{before}{name}: {_json_float(v)}{after}"
                 for v in np.asarray(distinct, dtype=np.int64).view(np.float64).tolist()]
    elif FIELDS[key] is float:  # numbers held as objects: each written as it comes
        return np.array([f"{before}{name}: {_json_float(float(v))}{after}"
                         if _num(v) is not None else "" for v in values.tolist()],
                        dtype=object)
    else:
        codes, distinct = pd.factorize(values if isinstance(values, pd.Categorical)
                                       else np.asarray(values, dtype=object))
        absent = codes < 0
        shown = [f"{before}{name}: {quote(str(v))}{after}" for v in distinct.tolist()]
    table = np.array([*shown, ""], dtype=object)
    codes = np.where(absent, len(shown), codes)
    return table[codes]


def _numbers(facts: _Facts, name: str, positions: Any) -> Any:
    """A column as numbers for a findings frame: NaN where absent, or all None if none is
    present (as a list of numbers or None makes it)."""
    import numpy as np

    values = facts.columns.get(name)
    if values is None or values.dtype.kind not in "biuf":
        return [_num(v) for v in facts.column(name, positions)]
    numbers = values[positions].astype(np.float64)
    if np.isnan(numbers).all():
        return [None] * len(numbers)
    return numbers


def _findings(facts: _Facts, pos: Any, out: Any, ids: Any, outcomes: list[_Outcome]
              ) -> pd.DataFrame:
    """A record for every rule with a record that fired, from the facts' columns."""
    import numpy as np
    import pandas as pd

    makes = np.array([o.rule.then.record is not None for o in outcomes] or [False],
                     dtype=bool)
    keep = np.flatnonzero(makes[out])
    if not len(keep):
        return pd.DataFrame([], columns=FINDING_COLUMNS)
    pos, out, ids = pos[keep], out[keep], ids[keep]
    columns: dict[str, Any] = {
        c: facts.values(c, pos) for c in ("contract", "measure", "period", "figure_period",
                                          "status")}
    columns["value"] = _numbers(facts, "value", pos)
    columns["compared_with"] = _numbers(facts, "compared_with", pos)
    per_outcome = {
        "type": [o.rule.then.record for o in outcomes],
        "severity": [o.rule.then.severity or "minor" for o in outcomes],
        "rule": [o.rule.id for o in outcomes],
        "description": [o.description for o in outcomes],
        "settings": [o.settings_json for o in outcomes]}
    for name, listed in per_outcome.items():
        values = np.empty(len(outcomes), dtype=object)
        values[:] = listed
        columns[name] = values[out]
    fact_json = np.empty(len(out), dtype=object)
    for o in np.flatnonzero(np.bincount(out)).tolist():
        these = np.flatnonzero(out == o)
        fact_json[these] = _facts_json(facts, pos[these], ids[these].tolist(),
                                       outcomes[o].used)
    columns["facts"] = fact_json
    frame = pd.DataFrame({c: columns[c] for c in FINDING_COLUMNS}, columns=FINDING_COLUMNS)
    return frame.sort_values(["contract", "period", "measure", "type", "rule"]).reset_index(
        drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as plain dicts keyed by column name."""
    rows = frame.to_dict("records")
    if all(isinstance(c, str) for c in frame.columns):
        return rows  # type: ignore[return-value]
    return [{str(k): v for k, v in row.items()} for row in rows]


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return float(value)


def _silence_at(silences: Iterable[Mapping[str, Any]], period: str
                ) -> Mapping[str, Any] | None:
    for silence in silences:
        if silence["start"] <= period <= silence["until"]:
            return silence
    return None


def _ladder(facts: _Facts, pos: Any, out: Any, outcomes: list[_Outcome],
            schedules: Mapping[str, Schedule],
            silences: Mapping[tuple[str, str], list[dict[str, Any]]] | None = None
            ) -> dict[str, list[Any]]:
    """Replay each measure's escalations in period order from the rules that fired; the
    escalations as stored, column by column (``escalation_columns``), measure after measure
    (in order of contract, measure and opening).

    ``pos`` and ``out`` are the facts and rules that fired, in order of contract, rule id
    and fact id. A period's event is the highest level its rules escalate to (the first such
    rule in that order) and the last of its rules that resolves.

    A measure's escalations are worked out over arrays for all such measures at once
    (``_ladder_arrays``); those of a measure with silences, which hold new escalations back,
    one event at a time (``_ladder_events``). Both give what the one would give the other.
    """
    import numpy as np
    import pandas as pd

    level_of = np.array([o.rule.then.escalate or 0 for o in outcomes] or [0], dtype=np.int64)
    resolves = np.array([bool(o.rule.then.resolve) for o in outcomes] or [False], dtype=bool)
    order_in = np.arange(len(pos))

    rises = np.flatnonzero(level_of[out] > 0)
    e_pos, e_out = pos[rises], out[rises]
    e_level = level_of[e_out]
    pick = np.lexsort((order_in[rises], -e_level, e_pos))
    e_pos, e_out, e_level = e_pos[pick], e_out[pick], e_level[pick]
    first = np.ones(len(e_pos), dtype=bool)
    first[1:] = e_pos[1:] != e_pos[:-1]
    e_pos, e_out, e_level = e_pos[first], e_out[first], e_level[first]

    ends = np.flatnonzero(resolves[out])
    r_pos, r_out = pos[ends], out[ends]
    pick = np.lexsort((order_in[ends], r_pos))
    r_pos, r_out = r_pos[pick], r_out[pick]
    last = np.ones(len(r_pos), dtype=bool)
    last[:-1] = r_pos[:-1] != r_pos[1:]
    r_pos, r_out = r_pos[last], r_out[last]

    marked = np.zeros(len(facts), dtype=bool)
    marked[e_pos] = True
    marked[r_pos] = True
    ev_pos = np.flatnonzero(marked)
    if not len(ev_pos):
        return {name: [] for name in ESCALATION_COLUMNS}
    ev_level = np.zeros(len(ev_pos), dtype=np.int64)
    ev_rule = np.full(len(ev_pos), -1, dtype=np.int64)
    ev_resolve = np.full(len(ev_pos), -1, dtype=np.int64)
    at = np.searchsorted(ev_pos, e_pos)
    ev_level[at], ev_rule[at] = e_level, e_out
    ev_resolve[np.searchsorted(ev_pos, r_pos)] = r_out

    # The events in order of contract, measure and period.
    contract = facts.contract_code[ev_pos]
    measure, measure_names = pd.factorize(facts.values("measure", ev_pos), sort=True)
    period, period_names = pd.factorize(facts.values("period", ev_pos), sort=True)
    order = np.lexsort((period, measure, contract))
    events = _Events(
        position=ev_pos[order], contract=contract[order], measure=measure[order],
        period=period[order], level=ev_level[order], rule=ev_rule[order],
        resolve=ev_resolve[order], contracts=facts.contracts,
        measures=[str(m) for m in measure_names], periods=[str(p) for p in period_names])
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = ((events.contract[1:] != events.contract[:-1])
                  | (events.measure[1:] != events.measure[:-1]))
    group = np.cumsum(starts) - 1
    silenced = np.zeros(int(group[-1]) + 1, dtype=bool)
    if silences:
        for g, k in enumerate(np.flatnonzero(starts).tolist()):
            silenced[g] = bool(silences.get((events.contracts[events.contract[k]],
                                             events.measures[events.measure[k]])))
    one_by_one = silenced[group]
    parts = []
    if not one_by_one.all():
        plain = np.flatnonzero(~one_by_one)
        parts.append(_ladder_arrays(facts, events.take(plain), group[plain], outcomes,
                                    schedules))
    if one_by_one.any():
        held = np.flatnonzero(one_by_one)
        parts.append(_ladder_events(facts, events.take(held), group[held], outcomes,
                                    schedules, silences or {}))
    if len(parts) == 1:
        return parts[0][0]
    # Measure after measure, as the events come.
    (a, a_group), (b, b_group) = parts
    merged = np.argsort(np.concatenate([a_group, b_group]), kind="stable").tolist()
    table = {}
    for name in ESCALATION_COLUMNS:
        both = [*a[name], *b[name]]
        table[name] = [both[k] for k in merged]
    return table


@dataclass
class _Events:
    """A ladder's events, one for each fact that fired a rule that escalates or resolves,
    in order of contract, measure and period: the fact's position, its contract (index into
    ``contracts``), measure and period (indices into ``measures`` and ``periods``), the
    level it escalates to (0: none), the outcome that escalates (-1: none) and the outcome
    that resolves (-1: none)."""

    position: Any
    contract: Any
    measure: Any
    period: Any
    level: Any
    rule: Any
    resolve: Any
    contracts: list[str]
    measures: list[str]
    periods: list[str]

    def take(self, rows: Any) -> _Events:
        return _Events(self.position[rows], self.contract[rows], self.measure[rows],
                       self.period[rows], self.level[rows], self.rule[rows],
                       self.resolve[rows], self.contracts, self.measures, self.periods)


def _ladder_arrays(facts: _Facts, events: _Events, group: Any, outcomes: list[_Outcome],
                   schedules: Mapping[str, Schedule]) -> tuple[dict[str, list[Any]], Any]:
    """The escalations of measures without silences, over arrays, and the measure each
    belongs to (``group``: a number for each event's measure, in the events' order).

    A measure's escalation opens at an event that escalates while none is open, rises with
    each event that escalates higher (a step of its history) and is resolved by the first
    event after its last rise that resolves and does not escalate: the events that resolve
    cut a measure's rises into its escalations, one for each run of rises between them."""
    import numpy as np

    starts = np.ones(len(group), dtype=bool)
    starts[1:] = group[1:] != group[:-1]
    measure = np.cumsum(starts) - 1
    forums = [schedules[cid].contract.forums for cid in events.contracts]
    top = np.array([len(f) for f in forums] or [0], dtype=np.int64)
    rise = events.level > 0
    ends = ~rise & (events.resolve >= 0)
    # The events that resolve before each event, in its measure.
    ended = np.cumsum(ends) - ends
    ended -= ended[np.flatnonzero(starts)][measure]
    r = np.flatnonzero(rise)
    if not len(r):
        return {name: [] for name in ESCALATION_COLUMNS}, np.empty(0, dtype=np.int64)
    # Each rise's escalation: its measure and the resolving events before it.
    new = np.ones(len(r), dtype=bool)
    new[1:] = (measure[r[1:]] != measure[r[:-1]]) | (ended[r[1:]] != ended[r[:-1]])
    escalation = np.cumsum(new) - 1
    count = int(escalation[-1]) + 1
    level = np.minimum(events.level[r], top[events.contract[r]])
    # The level reached so far in its escalation, and whether each rise is a step (the
    # opening, or a level higher than any before).
    span = int(level.max()) + 1
    reached = np.maximum.accumulate(escalation * span + level) - escalation * span
    step = new.copy()
    step[1:] |= level[1:] > reached[:-1]
    opening = r[new]
    last_rise = r[np.append(new[1:], True)]
    s = np.flatnonzero(step)
    last_step = s[np.append(escalation[s[1:]] != escalation[s[:-1]], True)]
    # Resolved by the first resolving event after its last rise, in its measure.
    q = np.flatnonzero(ends)
    if len(q):
        after = np.searchsorted(q, last_rise)
        closer = q[np.minimum(after, len(q) - 1)]
        closed = (after < len(q)) & (measure[closer] == measure[last_rise])
    else:
        closer, closed = last_rise, np.zeros(count, dtype=bool)

    contracts = [events.contracts[c] for c in events.contract[opening].tolist()]
    periods = events.periods
    levels = reached[np.append(new[1:], True)].tolist()
    rules = events.rule[r[last_step]].tolist()
    resolved_by = events.resolve[closer].tolist()
    resolved = [periods[p] if c else None
                for p, c in zip(events.period[closer].tolist(), closed.tolist(), strict=True)]
    # Each step's text, each distinct (period, level, rule) written once.
    written: dict[tuple[int, int, int], str] = {}
    texts = []
    for p, lv, o in zip(events.period[r[s]].tolist(), level[s].tolist(),
                        events.rule[r[s]].tolist(), strict=True):
        shown = written.get((p, lv, o))
        if shown is None:
            shown = written[(p, lv, o)] = _step_json(periods[p], lv, outcomes[o].rule.id,
                                                     outcomes[o].description)
        texts.append(shown)
    bounds = [0, *np.cumsum(np.bincount(escalation[s], minlength=count)).tolist()]
    histories = [f"[{', '.join(texts[a:b])}]" for a, b in zip(bounds[:-1], bounds[1:],
                                                                strict=True)]
    # The settings and fact of the rule that set each one's level, as stored.
    settings, fact_texts = _origin_texts(facts, outcomes, events.position[r[last_step]],
                                         events.rule[r[last_step]])
    contract_codes = events.contract[opening].tolist()
    table = {
        "contract_id": contracts,
        "measure_id": [events.measures[m] for m in events.measure[opening].tolist()],
        "opened": [periods[p] for p in events.period[opening].tolist()],
        "level": levels,
        "forum": [forums[c][lv - 1] for c, lv in zip(contract_codes, levels, strict=True)],
        "status": ["resolved" if when else "open" for when in resolved],
        "resolved": resolved,
        "rule": [outcomes[o].rule.id for o in rules],
        "resolved_rule": [outcomes[o].rule.id if when else None
                          for o, when in zip(resolved_by, resolved, strict=True)],
        "description": [outcomes[o].description for o in rules],
        "last_period": [periods[p] for p in events.period[last_rise].tolist()],
        "history": histories,
        "settings": settings,
        "facts": fact_texts,
        "silenced_until": [None] * count,
        "silence_reason": [None] * count,
    }
    return table, group[opening]


def _ladder_events(facts: _Facts, events: _Events, group: Any, outcomes: list[_Outcome],
                   schedules: Mapping[str, Schedule],
                   silences: Mapping[tuple[str, str], list[dict[str, Any]]]
                   ) -> tuple[dict[str, list[Any]], Any]:
    """The escalations of some measures, replayed one event at a time, with the silences in
    force held back (recorded, never lost); and the measure each belongs to (``group``)."""
    import numpy as np

    cids = [events.contracts[c] for c in events.contract.tolist()]
    measures = [events.measures[m] for m in events.measure.tolist()]
    periods = [events.periods[p] for p in events.period.tolist()]
    groups = group.tolist()
    # The fact and rule each record's settings and facts come from, written at the end.
    origin: dict[int, tuple[EscalationRecord, int, int]] = {}

    out_records: list[EscalationRecord] = []
    of_group: list[int] = []
    key: tuple[str, str] | None = None
    forums: list[str] = []
    measure_silences: Sequence[Mapping[str, Any]] = ()
    current: EscalationRecord | None = None
    held: dict[int, EscalationRecord] = {}
    levels, rules, ends_at = events.level.tolist(), events.rule.tolist(), events.resolve.tolist()
    positions = events.position.tolist()

    def close(record: EscalationRecord, g: int) -> None:
        out_records.append(record)
        of_group.append(g)

    g = -1
    for i in range(len(cids)):
        cid, measure, period = cids[i], measures[i], periods[i]
        if (cid, measure) != key:
            for waiting in held.values():
                close(waiting, g)
            if current is not None:
                close(current, g)
            key, forums, g = (cid, measure), schedules[cid].contract.forums, groups[i]
            current, held = None, {}
            measure_silences = silences.get(key, ())
        if levels[i]:
            outcome = outcomes[rules[i]]
            rule = outcome.rule
            level = min(levels[i], len(forums))
            silence = _silence_at(measure_silences, period) if measure_silences else None
            if silence is not None and (current is None or level > current.level):
                # Held back while the silence is in force: recorded, never lost.
                record = held.get(silence["id"])
                if record is None:
                    record = held[silence["id"]] = _opened(
                        cid, measure, period, level, forums, rule.id, outcome.description,
                        silenced_until=silence["until"], silence_reason=silence["reason"])
                    origin[id(record)] = (record, positions[i], rules[i])
                else:
                    record.last_period = period
                    if level > record.level:
                        _raised(record, period, level, forums, rule.id, outcome.description)
                if current is not None:
                    current.last_period = period
                continue
            if current is None:
                current = _opened(cid, measure, period, level, forums, rule.id,
                                  outcome.description)
                origin[id(current)] = (current, positions[i], rules[i])
            else:
                current.last_period = period
                if level > current.level:
                    _raised(current, period, level, forums, rule.id, outcome.description)
                    origin[id(current)] = (current, positions[i], rules[i])
        elif ends_at[i] >= 0 and current is not None:
            current.resolved, current.resolved_rule = period, outcomes[ends_at[i]].rule.id
            close(current, g)
            current = None
    for waiting in held.values():
        close(waiting, g)
    if current is not None:
        close(current, g)
    _write_origins(facts, outcomes, list(origin.values()))
    return escalation_columns(out_records), np.array(of_group, dtype=np.int64)


def _opened(contract: str, measure: str, period: str, level: int, forums: Sequence[str],
            rule: str, description: str, **held: Any) -> EscalationRecord:
    """An escalation opened in ``period`` at ``level`` by ``rule``."""
    return EscalationRecord(
        contract=contract, measure=measure, opened=period, level=level,
        forum=forums[level - 1], rule=rule, description=description, last_period=period,
        history=[{"period": period, "level": level, "rule": rule,
                  "description": description}], **held)


def _raised(record: EscalationRecord, period: str, level: int, forums: Sequence[str],
            rule: str, description: str) -> None:
    """An escalation taken up to ``level`` in ``period`` by ``rule``."""
    record.level, record.forum = level, forums[level - 1]
    record.rule, record.description = rule, description
    record.history.append({"period": period, "level": level, "rule": rule,
                           "description": description})


def _write_origins(facts: _Facts, outcomes: list[_Outcome],
                   origins: list[tuple[EscalationRecord, int, int]]) -> None:
    """Each record's settings and fact as stored (``_origin_texts``)."""
    import numpy as np

    positions = np.array([position for _, position, _ in origins], dtype=np.int64)
    rules = np.array([rule for _, _, rule in origins], dtype=np.int64)
    settings, texts = _origin_texts(facts, outcomes, positions, rules)
    for (record, _, _), shown, text in zip(origins, settings, texts, strict=True):
        record.settings_text = shown
        record.facts_text = text


def _origin_texts(facts: _Facts, outcomes: list[_Outcome], positions: Any, rules: Any
                  ) -> tuple[list[str], list[str]]:
    """The settings and the fact, as stored, of the rule (``rules``: outcomes) that fired on
    the fact at each of ``positions``: written for all of a rule's at once (as ``json.dumps``
    of the settings, and of ``fact_payload`` with sorted keys)."""
    import numpy as np

    settings = [""] * len(positions)
    texts = [""] * len(positions)
    for rule in np.unique(rules).tolist():
        these = np.flatnonzero(rules == rule)
        outcome = outcomes[rule]
        shown = json.dumps(outcome.settings)
        made = _facts_json(facts, positions[these], facts.ids(positions[these]), outcome.used)
        for k, text in zip(these.tolist(), made, strict=True):
            settings[k], texts[k] = shown, text
    return settings, texts
