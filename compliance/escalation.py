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

What spans periods (the ladder: one open escalation per measure, whose level only rises
until it is resolved) is replayed from the records in period order, so that checking months
again or out of order gives the same escalations as checking them in order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compliance.rulepack import (
    FIELDS,
    RulePack,
    compile_pack,
    describe,
    effective_settings,
    evaluate,
    load_pack,
    settings_used,
)

if TYPE_CHECKING:
    import pandas as pd

    from compliance.schedule import Schedule

MAX_REASSERTS = 3
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
    settings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.silenced_until:
            return "silenced"
        return "resolved" if self.resolved else "open"

    def row(self) -> dict[str, Any]:
        """As stored."""
        return {
            "contract_id": self.contract, "measure_id": self.measure, "opened": self.opened,
            "level": self.level, "forum": self.forum, "status": self.status,
            "resolved": self.resolved, "rule": self.rule, "resolved_rule": self.resolved_rule,
            "description": self.description, "last_period": self.last_period,
            "history": json.dumps(self.history), "settings": json.dumps(self.settings),
            "facts": json.dumps(self.facts, sort_keys=True),
            "silenced_until": self.silenced_until, "silence_reason": self.silence_reason,
        }


@dataclass
class RulesResult:
    findings: pd.DataFrame
    escalations: list[EscalationRecord]
    fired: pd.DataFrame  # rule, fact id, contract, measure, period: every rule that fired
    settings: dict[str, dict[str, float]]
    packs: dict[str, RulePack]


def _fact_id(contract: str, measure: str, period: str) -> str:
    return f"{contract}|{measure}|{period}"


def facts_frame(features: pd.DataFrame) -> pd.DataFrame:
    """The judged measure-periods as facts: the features rules read, with an id."""
    facts = features[features["status"] != "not_due"].copy()
    facts["id"] = (facts["contract"].astype(str) + "|" + facts["measure"].astype(str) + "|"
                   + facts["period"].astype(str))
    facts["sid"] = facts["contract"].astype(str) + "|" + facts["measure"].astype(str)
    return facts


def run_rules(features: pd.DataFrame, schedules: Mapping[str, Schedule],
              silences: Mapping[tuple[str, str], list[dict[str, Any]]] | None = None
              ) -> RulesResult:
    """Fire every contract's rule pack over its facts and derive records and escalations.

    ``silences`` maps (contract, measure) to silences (id, start, until, reason): while one
    is in force, a new escalation or a rise of the measure is held back as a silenced record.
    """
    import pandas as pd

    facts = facts_frame(features)
    fired_frames: list[pd.DataFrame] = []
    packs: dict[str, RulePack] = {}
    settings: dict[str, dict[str, float]] = {}
    loaded: dict[str, RulePack] = {}
    for cid, group in facts.groupby("contract", sort=True):
        schedule = schedules[str(cid)]
        name = schedule.contract.rules
        pack = loaded.get(name) or load_pack(name)
        loaded[name] = pack
        packs[str(cid)] = pack
        values = effective_settings(pack, schedule)
        settings[str(cid)] = values
        mask = evaluate(pack, values, group)
        candidates = group[mask.any(axis=1)]
        expected = {(rule, fid) for rule in mask.columns
                    for fid in group.loc[mask[rule], "id"]}
        fired = _fire(pack, values, candidates)
        if fired != expected:
            missing = sorted(expected - fired)[:3]
            extra = sorted(fired - expected)[:3]
            raise RuleEngineError(
                f"durable-rules fired differently from the rules' conditions for contract {cid}:"
                f" missing {missing}, unexpected {extra}")
        fired_frames.append(pd.DataFrame(sorted(fired), columns=["rule", "id"]))
    fired_all = (pd.concat(fired_frames, ignore_index=True) if fired_frames
                 else pd.DataFrame(columns=["rule", "id"]))
    fired_all = fired_all.merge(facts, on="id", how="left")
    findings = _findings(fired_all, packs, settings)
    escalations = _ladder(fired_all, packs, settings, schedules, silences)
    return RulesResult(findings=findings, escalations=escalations,
                       fired=fired_all[["rule", "id", "contract", "measure", "period"]],
                       settings=settings, packs=packs)


def fact_payload(row: Mapping[str, Any], used: Iterable[str]) -> dict[str, Any]:
    """A small fact: the id, the state it lives in, and only the fields the rules read."""
    fact: dict[str, Any] = {"id": str(row["id"]), "sid": str(row["sid"])}
    for name in used:
        value = row.get(name)
        if value is None or (isinstance(value, float) and value != value):
            continue
        fact[name] = float(value) if FIELDS[name] is float else str(value)
    return fact


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
        for row in records(candidates):
            _assert(host, name, fact_payload(row, used), sids, errors, engine)
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


def _findings(fired: pd.DataFrame, packs: Mapping[str, RulePack],
              settings: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for rec in records(fired):
        pack = packs[rec["contract"]]
        rule = pack.rule(rec["rule"])
        if rule.then.record is None:
            continue
        values = settings[rec["contract"]]
        used = sorted(set(rule.when))
        rows.append({
            "contract": rec["contract"], "measure": rec["measure"], "period": rec["period"],
            "figure_period": rec["figure_period"], "type": rule.then.record,
            "severity": rule.then.severity or "minor", "rule": rule.id,
            "description": describe(rule, values), "value": _num(rec.get("value")),
            "compared_with": _num(rec.get("compared_with")), "status": rec["status"],
            "settings": json.dumps(settings_used(rule, values), sort_keys=True),
            "facts": json.dumps(fact_payload({**rec, "sid": ""}, used), sort_keys=True),
        })
    frame = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    return frame.sort_values(["contract", "period", "measure", "type", "rule"]).reset_index(
        drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as plain dicts keyed by column name."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


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


def _ladder(fired: pd.DataFrame, packs: Mapping[str, RulePack],
            settings: Mapping[str, Mapping[str, float]], schedules: Mapping[str, Schedule],
            silences: Mapping[tuple[str, str], list[dict[str, Any]]] | None = None
            ) -> list[EscalationRecord]:
    """Replay each measure's escalations in period order from the rules that fired."""
    events: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for rec in records(fired):
        rule = packs[rec["contract"]].rule(rec["rule"])
        if not rule.then.escalate and not rule.then.resolve:
            continue
        by_period = events.setdefault((rec["contract"], rec["measure"]), {})
        event = by_period.setdefault(rec["period"], {"level": 0, "rule": None, "resolve": None,
                                                     "fact": rec})
        if rule.then.escalate and rule.then.escalate > event["level"]:
            event["level"], event["rule"] = rule.then.escalate, rule
        if rule.then.resolve:
            event["resolve"] = rule
    out: list[EscalationRecord] = []
    for (cid, measure), by_period in sorted(events.items()):
        forums = schedules[cid].contract.forums
        values = settings[cid]
        current: EscalationRecord | None = None
        held: dict[int, EscalationRecord] = {}
        for period in sorted(by_period):
            event = by_period[period]
            if event["level"]:
                rule = event["rule"]
                level = min(event["level"], len(forums))
                step = {"period": period, "level": level, "rule": rule.id,
                        "description": describe(rule, values)}
                used = sorted(set(rule.when))
                fact = fact_payload({**event["fact"], "sid": ""}, used)
                silence = _silence_at((silences or {}).get((cid, measure), ()), period)
                if silence is not None and (current is None or level > current.level):
                    # Held back while the silence is in force: recorded, never lost.
                    record = held.get(silence["id"])
                    if record is None:
                        record = held[silence["id"]] = EscalationRecord(
                            contract=cid, measure=measure, opened=period, level=level,
                            forum=forums[level - 1], rule=rule.id,
                            description=step["description"], last_period=period,
                            history=[step], settings=settings_used(rule, values), facts=fact,
                            silenced_until=silence["until"],
                            silence_reason=silence["reason"])
                    else:
                        record.last_period = period
                        if level > record.level:
                            record.level, record.forum = level, forums[level - 1]
                            record.rule, record.description = rule.id, step["description"]
                            record.history.append(step)
                    if current is not None:
                        current.last_period = period
                    continue
                if current is None:
                    current = EscalationRecord(
                        contract=cid, measure=measure, opened=period, level=level,
                        forum=forums[level - 1], rule=rule.id, description=step["description"],
                        last_period=period, history=[step],
                        settings=settings_used(rule, values), facts=fact)
                else:
                    current.last_period = period
                    if level > current.level:
                        current.level, current.forum = level, forums[level - 1]
                        current.rule, current.description = rule.id, step["description"]
                        current.settings, current.facts = settings_used(rule, values), fact
                        current.history.append(step)
            elif event["resolve"] is not None and current is not None:
                current.resolved, current.resolved_rule = period, event["resolve"].id
                out.append(current)
                current = None
        out.extend(held.values())
        if current is not None:
            out.append(current)
    return out
