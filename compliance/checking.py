"""The monthly check: assess, record, run the rules, keep the records. No printing here."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from compliance.batch import collector_paused

if TYPE_CHECKING:
    import pandas as pd

    from compliance.assess import FloatArray
    from compliance.escalation import RulesResult
    from compliance.helper import Helper
    from compliance.progress import Progress
    from compliance.schedule import Schedule
    from compliance.store import Transaction
    from compliance.store.packed import AssessmentSets, EscalationSets, FindingSets


@dataclass
class CheckResult:
    schedules: dict[str, Schedule]
    periods: list[str]
    counts: dict[str, int]
    versions: dict[tuple[str, int], Schedule]
    # Each batch's assessments as the store took them (their sets), their profiled targets
    # (which the sets leave out) in the sets' order, and the records as the store took them
    # (see ``batches``).
    parts: list[tuple[AssessmentSets, FloatArray, _Records]]
    # Seconds spent reading, assessing, running the rules and writing, summed over batches.
    # Batches judged in a helper process (``helped`` of them) are assessed and judged there
    # while this process reads and writes: the stages then overlap.
    seconds: dict[str, float] = field(default_factory=dict)
    helped: int = 0

    def shown_assessments(self) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
        """Each (contract, period) checked, in order, with its assessments as the check's
        output shows them, read from their sets as stored: one dict per measure with the
        fields of ``packed.FIELDS`` (``measure`` for ``measure_id``; missing values None)
        and ``profiled_target``. Made as they are asked for."""
        import math

        import orjson

        from compliance.store.packed import FIELDS

        names = ["measure" if n == "measure_id" else n for n in FIELDS]
        where = sorted((pair, k, j) for k, (sets, _, _) in enumerate(self.parts)
                       for j, pair in enumerate(sets.pairs))
        starts = [[0, *itertools.accumulate(sets.sizes)] for sets, _, _ in self.parts]
        for (cid, period), k, j in where:
            sets, profiled, _ = self.parts[k]
            doc = orjson.loads(sets.documents[j])
            fields = [doc[n] for n in FIELDS]
            targets = profiled[starts[k][j]:starts[k][j + 1]].tolist()
            rows = [dict(zip(names, values, strict=True)) for values in zip(*fields,
                                                                                 strict=True)]
            for row, target in zip(rows, targets, strict=True):
                row["profiled_target"] = None if math.isnan(target) else target
            yield cid, period, rows

    def shown_records(self) -> tuple[dict[tuple[str, str], list[dict[str, Any]]],
                                     dict[str, list[dict[str, Any]]]]:
        """What the check's output shows of the records, read from them as stored: the
        findings of the periods checked (not every finding of every month), by contract and
        period, each with the fields of ``escalation.FINDING_COLUMNS`` (missing numbers
        None); and each contract's escalations, as ``escalation_as_at`` reads them (their
        histories read)."""
        import orjson

        from compliance.store.packed import FINDING_FIELDS, unpacked_escalations

        wanted = set(self.periods)
        names = ["measure" if n == "measure_id" else n for n in FINDING_FIELDS]
        at_period = FINDING_FIELDS.index("period")
        findings: dict[tuple[str, str], list[dict[str, Any]]] = {}
        escalations: dict[str, list[dict[str, Any]]] = {}
        for _, _, records in self.parts:
            for cid, document in zip(records.findings.contracts, records.findings.documents,
                                     strict=True):
                doc = orjson.loads(document)
                fields = [doc[n] for n in FINDING_FIELDS]
                for k, period in enumerate(fields[at_period]):
                    if period in wanted:
                        findings.setdefault((cid, period), []).append(
                            {"contract": cid, **{name: values[k] for name, values
                                                 in zip(names, fields, strict=True)}})
            sets = records.escalations
            for row in unpacked_escalations(zip(sets.contracts, sets.documents,
                                                strict=True)):
                shown = {name: row[name] for name in _AS_AT}
                shown["history"] = orjson.loads(shown["history"])
                escalations.setdefault(row["contract_id"], []).append(shown)
        return findings, escalations


# The columns of a stored escalation that ``escalation_as_at`` reads.
_AS_AT = ("measure_id", "opened", "history", "resolved", "silenced_until", "silence_reason")


def spc_settings(schedules: Mapping[str, Schedule]) -> dict[str, Any]:
    """Each contract's XmR chart settings (its schedule's ``spc`` block over the defaults)."""
    from compliance.spc import SpcSettings

    return {cid: SpcSettings(**s.contract.spc)  # type: ignore[arg-type]
            for cid, s in schedules.items()
            if s.contract.spc}


def history_with_features(tx: Transaction, schedules: Mapping[str, Schedule],
                          through: Mapping[str, str],
                          first: Mapping[str, str] | None = None, *,
                          in_force: Sequence[tuple[Schedule, int, str | None]] | None = None
                          ) -> pd.DataFrame:
    """Every measure-period of the contracts up to ``through``, with the rules' features.

    A measure's history starts at its first figure or at the contract's first checked
    period (or ``first``), whichever is earlier. ``in_force`` is
    ``tx.schedule_versions(list(schedules))`` when the caller already holds it. Its
    contracts, measures, periods, statuses and clause texts are texts (a check's own
    history holds them as categoricals, see ``assess``).
    """
    import pandas as pd

    history = _history(_read(tx, schedules, through, first, in_force=in_force))
    for name in history.columns:
        if isinstance(history[name].dtype, pd.CategoricalDtype):
            history[name] = history[name].to_numpy(dtype=object)
    return history


@dataclass
class _Inputs:
    """What the assessment of some contracts' history, and the rules on it, read from the
    store: with it, they need the store no more (and can run in another process).

    ``schedules`` need hold only each contract's terms (``_terms``): the measures are those
    of ``measures``, the measure table of the schedule versions in force. A helper reads a
    batch before it is given these two (``_fetched``)."""

    schedules: dict[str, Schedule]
    measures: pd.DataFrame | None
    spans: dict[str, list[str]]
    figures: pd.DataFrame | None
    received: dict[tuple[str, str], Any]
    silences: dict[tuple[str, str], list[dict[str, Any]]] | None = None


def _read(tx: Transaction, schedules: Mapping[str, Schedule], through: Mapping[str, str],
          first: Mapping[str, str] | None = None, *,
          in_force: Sequence[tuple[Schedule, int, str | None]] | None = None,
          silences: bool = False) -> _Inputs:
    """What ``history_with_features`` reads (and, with ``silences``, the rules too)."""
    ids = list(schedules)
    if in_force is None:
        in_force = tx.schedule_versions(ids)
    given = first or {}
    unknown = [cid for cid in through if not given.get(cid)]
    checked = tx.checked_periods(unknown) if unknown else {}
    since = {cid: given.get(cid) or checked.get(cid, (None,))[0] or last
             for cid, last in through.items()}
    from compliance.assess import measure_table

    return _gathered(tx, schedules, through, since, measure_table(in_force), silences)


class _Reader(Protocol):
    """What reads a batch's figures: a transaction, or a helper's reader of a SQLite file
    (compliance.store.reads)."""

    def latest_figures(self, contracts: Sequence[str], up_to: str | None = None, *,
                       parts: bool = True) -> pd.DataFrame: ...

    def returns_received(self, contracts: Sequence[str]) -> dict[tuple[str, str], Any]: ...

    def silences(self, contracts: Sequence[str]
                 ) -> dict[tuple[str, str], list[dict[str, Any]]]: ...


def _gathered(reader: _Reader, schedules: Mapping[str, Schedule], through: Mapping[str, str],
              since: Mapping[str, str], measures: pd.DataFrame, silences: bool) -> _Inputs:
    """What ``_read`` reads, once it knows the period each contract is read from and has
    the measure table of the schedule versions in force."""
    inputs = _fetched(reader, list(schedules), through, since, silences)
    inputs.schedules, inputs.measures = dict(schedules), measures
    return inputs


def _fetched(reader: _Reader, ids: list[str], through: Mapping[str, str],
             since: Mapping[str, str], silences: bool) -> _Inputs:
    """What ``_gathered`` reads of the store, without the schedules' terms and measures."""
    figures = reader.latest_figures(ids, up_to=max(through.values()), parts=False)
    spans = {cid: [min(since[cid], last), last] for cid, last in through.items()}
    return _Inputs(schedules={}, measures=None, spans=spans, figures=figures,
                   received=reader.returns_received(ids),
                   silences=reader.silences(ids) if silences else None)


def _history(inputs: _Inputs) -> pd.DataFrame:
    """The history ``history_with_features`` gives, from what it read. Its figures are let
    go of as soon as they are assessed."""
    from compliance.assess import add_features, assess

    measures = inputs.measures
    figures, inputs.figures = inputs.figures, None
    assert figures is not None, "a batch's figures are assessed once"
    assert measures is not None, "a batch is assessed with its measures"
    history = assess(measures, figures, inputs.spans, history=True)
    del figures, measures
    history = _lateness(history, inputs.schedules, inputs.received)
    return add_features(history, spc_settings(inputs.schedules))


def _lateness(history: pd.DataFrame, schedules: Mapping[str, Schedule],
              received: Mapping[tuple[str, str], Any]) -> pd.DataFrame:
    """Days after its due date that each figure's return arrived (``return_due_day``).

    The column is added to ``history`` itself, which is returned.
    """
    import numpy as np
    import pandas as pd

    from compliance.periods import return_due

    if history.empty:
        return history
    days_due = {cid: s.contract.return_due_day for cid, s in schedules.items()
                if s.contract.return_due_day}
    late = np.full(len(history), np.nan)
    if days_due and received:
        # Each distinct contract, period and figure period is looked up once.
        contract_code, contracts = pd.factorize(history["contract"])
        period_code, periods = pd.factorize(history["period"])
        figure_code, figure_periods = pd.factorize(history["figure_period"])
        day = np.array([days_due.get(c, 0) for c in contracts], dtype=np.int64)[contract_code]
        # The date each row's return was due, as days since the epoch (0 when none is set).
        combo, combo_code = np.unique(period_code * 32 + day, return_inverse=True)
        due = np.array([0 if c % 32 == 0 else
                        (return_due(str(periods[c // 32]), int(c % 32))
                         - dt.date(1970, 1, 1)).days for c in combo.tolist()],
                       dtype=np.int64)[combo_code.reshape(-1)]
        # The day each figure period's return arrived (-1 when it is not known).
        arrived = np.full(len(contracts) * len(figure_periods), -1, dtype=np.int64)
        where_contract = {c: i for i, c in enumerate(contracts)}
        where_figure = {f: i for i, f in enumerate(figure_periods)}
        days: dict[Any, int] = {}  # each distinct time (a return's rows share one) once
        for (cid, figure_period), at in received.items():
            c = where_contract.get(cid, -1)
            f = where_figure.get(figure_period, -1)
            if c >= 0 and f >= 0:
                on = days.get(at)
                if on is None:
                    when = pd.Timestamp(at)
                    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert(
                        "UTC")
                    on = days[at] = (when.date() - dt.date(1970, 1, 1)).days
                arrived[c * len(figure_periods) + f] = on
        row_arrived = arrived[contract_code * len(figure_periods) + figure_code]
        known = (row_arrived >= 0) & (day > 0) & (figure_code >= 0)
        late[known] = (row_arrived - due)[known]
    history["days_late"] = late
    return history


# Contracts are checked a batch at a time, each batch's figures read, assessed, judged and
# written before the next is read: memory then stays bounded by a batch, however many
# contracts the store holds, and a batch's arrays are small enough to stay in the processor's
# caches (a national hub's check runs faster so). About this many measure-periods a batch.
_BATCH_MEASURE_PERIODS = 100_000


def batches(schedules: Mapping[str, Schedule], first: Mapping[str, str],
            through: Mapping[str, str]) -> list[list[str]]:
    """The contracts, in order of id, in runs of at most about ``_BATCH_MEASURE_PERIODS``
    measure-periods (measures x months from ``first`` to ``through``) and about even in size;
    a contract larger than that is a run of its own. Always at least one run.

    In order of id, whatever order the schedules come in, so that check runs and records are
    numbered as one pass over all the contracts numbers them."""
    from compliance.periods import month_index

    ids = sorted(schedules)
    sizes = [len(schedules[c].measures)
             * (max(month_index(through[c]) - month_index(first[c]), 0) + 1) for c in ids]
    total = sum(sizes)
    # An even share of the whole rather than the limit itself: no small run left at the end.
    share = total / max(1, -(-total // _BATCH_MEASURE_PERIODS))
    runs: list[list[str]] = [[]]
    held = 0
    for cid, size in zip(ids, sizes, strict=True):
        if runs[-1] and held + size > share:
            runs.append([])
            held = 0
        runs[-1].append(cid)
        held += size
    return runs


def start_helpers(tx: Transaction, contracts: Sequence[str] | None, periods: Sequence[str]
                  ) -> bool:
    """Start the helpers' fork server now, before the caller reads the schedules, when a
    check of these periods of the contracts (all of them: None) is sure to use helpers (see
    ``run_check``): it imports what they need while the schedules are read. Whether it did.

    Sure by a lower bound: the measures in force times the periods checked is at most the
    measure-periods the check's batches weigh (each measure's history covers at least the
    periods checked)."""
    import math

    size = tx.measure_count(contracts) * len(set(periods))
    if not _helper_count(math.ceil(size / _BATCH_MEASURE_PERIODS), True):
        return False
    from compliance.helper import warm

    warm(_HELPERS_IMPORT)
    return True


@collector_paused()
def run_check(tx: Transaction, schedules: dict[str, Schedule], periods: Sequence[str],
              *, progress: Progress | None = None) -> CheckResult:
    """Assess the periods, store the assessments, and re-derive the contracts' records.

    Records (breaches, escalations) are a function of the figures up to the latest period any
    check of the contract has covered, replayed in period order: checking again, or checking
    months out of order, leaves the same records as checking them in order. One assessment
    of the whole history serves both the periods checked and the rules. Many contracts are
    checked in batches (see ``batches``), with the same result as all at once; from three
    batches on, with a processor to spare, helper processes judge each batch but the first
    while this one writes them in turn (see ``_helpers``).

    ``progress`` hears of the stages: assessing and running the rules, storing the
    assessments, writing the records (see compliance.progress), for each batch in turn.
    """
    import time

    from compliance.progress import no_progress

    report = progress or no_progress
    ids = list(schedules)
    tx.lock(ids)
    checked = tx.checked_periods(ids)
    through = {cid: max(max(periods), checked[cid][1] if cid in checked else "")
               for cid in schedules}
    first = {cid: min(min(periods), checked[cid][0] if cid in checked else "9999-12")
             for cid in schedules}
    in_force = tx.schedule_versions(ids)
    versions = tx.current_versions(ids)
    runs = batches(schedules, _history_from(tx, first), through)
    steps = 3 * len(runs)
    parts: list[tuple[AssessmentSets, FloatArray, _Records]] = []
    counts: dict[str, int] = {}
    seconds = dict.fromkeys(("read", "assess", "rules", "write"), 0.0)

    def plan(k: int) -> _Plan:
        mine, until, since = _of_run(runs[k], schedules, through, first)
        return _plan(mine, until, since, [entry for entry in in_force if entry[0].id in mine])

    def read(k: int) -> _Inputs:
        began = time.perf_counter()
        inputs = _read_plan(tx, plan(k))
        seconds["read"] += time.perf_counter() - began
        return inputs

    url = tx.shared_url()
    ahead: dict[int, _Inputs] = {}
    if _helper_count(len(runs), url is not None):
        # The fork server imports what the helpers need while the first batch is read here.
        from compliance.helper import warm

        warm(_HELPERS_IMPORT)
        ahead[0] = read(0)

    def taken(k: int) -> _Inputs:
        return ahead.pop(k) if k in ahead else read(k)

    with _helpers(len(runs), url is not None) as helpers:
        if not helpers:
            judgements: Iterator[Judged] = (_judge(taken(k), list(periods))
                                            for k in range(len(runs)))
        elif url is None:
            judgements = _judged_as_read(helpers[0], taken, len(runs), list(periods))
        else:
            def span(k: int) -> tuple[dict[str, str], dict[str, str]]:
                _, until, since = _of_run(runs[k], schedules, through, first)
                return until, since

            judgements = _judged_where_read(helpers, url, taken, span, plan, len(runs),
                                            list(periods), seconds)
        for k in range(len(runs)):
            report("assessing and running the rules", 3 * k, steps)
            spent, sets, profiled, records = next(judgements)
            for stage, value in spent.items():
                seconds[stage] += value
            began = time.perf_counter()
            report("storing the assessments", 3 * k + 1, steps)
            written = tx.save_assessment_sets(sets, versions)
            report("writing the records", 3 * k + 2, steps)
            derived = _record(tx, _of_run(runs[k], schedules)[0], records)
            if helpers and k + 1 < len(runs):
                # While the helpers judge the next batches, the disk takes this one's
                # writes: the commit then has only the last batch's to wait for.
                tx.write_behind()
            seconds["write"] += time.perf_counter() - began
            for name, value in (*written.items(), *derived.items()):
                counts[name] = counts.get(name, 0) + value
            parts.append((sets, profiled, records))
        if not helpers:
            helped = 0
        elif url is None:
            helped = len(runs) - 1
        else:
            helped = sum(len(mine) for mine in _shared(len(runs), len(helpers))[0])
    report("done", steps, steps)
    return CheckResult(schedules=schedules, periods=list(periods), counts=counts,
                       versions={(s.id, v): s for s, v, _ in in_force}, parts=parts,
                       seconds=seconds, helped=helped)


# The seconds each stage of a batch's judgement took, its assessments (of the periods
# checked) as the store keeps them, their profiled targets in the same order (see
# CheckResult.parts), and the rules' records as the store keeps them.
Judged = tuple[dict[str, float], "AssessmentSets", "FloatArray", "_Records"]


@dataclass
class _Records:
    """The rules' records of some contracts as the store takes them: the findings' sets,
    and the escalations' sets (contract by contract, in the contracts' order)."""

    findings: FindingSets
    escalations: EscalationSets


def _records(schedules: Mapping[str, Schedule], rules: RulesResult) -> _Records:
    """The records of the contracts of ``schedules`` among the rules' results."""
    from compliance.store.packed import escalation_sets, finding_sets

    findings = rules.findings
    if len(findings):
        findings = findings[findings["contract"].isin(list(schedules)).to_numpy()]
    # The escalations of the contracts, contract by contract in the schedules' order.
    table = rules.table
    rank = {cid: k for k, cid in enumerate(schedules)}
    ranks = [rank.get(cid, -1) for cid in table["contract_id"]]
    kept = sorted((k for k, r in enumerate(ranks) if r >= 0), key=ranks.__getitem__)
    if kept != list(range(len(ranks))):
        table = {name: [values[k] for k in kept] for name, values in table.items()}
    return _Records(findings=finding_sets(findings), escalations=escalation_sets(table))


@collector_paused()
def _judge(inputs: _Inputs, periods: list[str]) -> Judged:
    """Assess a batch and run the rules on it, from what was read for it; and make its
    assessments' sets for the store (where there are helpers, the checking process has
    only to write them)."""
    import time

    import numpy as np

    from compliance.escalation import run_rules
    from compliance.store.packed import assessment_sets

    began = time.perf_counter()
    history = _history(inputs)
    # The assessments of the periods checked: their sets take the fields they keep by name
    # (and the profiled targets are taken beside them), the history's other columns serving
    # the rules alone.
    assessments = _checked(history, periods)
    assessed = time.perf_counter()
    rules = run_rules(history, inputs.schedules, inputs.silences or {})
    judged = time.perf_counter()
    sets = assessment_sets(assessments)
    profiled = (assessments["profiled_target"].to_numpy(dtype=np.float64)[sets.rows]
                if "profiled_target" in assessments.columns and sets.pairs
                else np.full(sum(sets.sizes), np.nan))
    sets.rows = None
    del assessments
    # The findings and escalations go on as the records; which rules fired is not needed
    # further (nor sent back from a helper).
    records = _records(inputs.schedules, rules)
    return ({"assess": assessed - began, "rules": judged - assessed,
             "write": time.perf_counter() - judged}, sets, profiled, records)


# What reading a batch needs: its contracts' terms (``_terms``), the period each is read up
# to, the period each starts at, and the measure table of the schedule versions in force.
_Plan = tuple[dict[str, "Schedule"], dict[str, str], dict[str, str], "pd.DataFrame"]


def _plan(schedules: Mapping[str, Schedule], until: dict[str, str], since: dict[str, str],
          in_force: Sequence[tuple[Schedule, int, str | None]]) -> _Plan:
    """A batch's plan: made here, it is all a helper needs of the schedules.

    A helper is sent the measure table rather than the schedules themselves: 450 schedules'
    measures, each a model of its own, took 0.06-0.11 s to pickle here and 0.2 s to unpickle
    in each helper, where their table, some 3,600 rows of plain values, takes a few
    milliseconds either way."""
    from compliance.assess import measure_table

    return _terms(schedules), until, since, measure_table(in_force)


def _terms(schedules: Mapping[str, Schedule]) -> dict[str, Schedule]:
    """Each schedule's contract terms (its forums, rule pack and settings, return day and
    charts' settings), the schedule without its measures: what the rules and the days late
    read of it."""
    return {cid: s.model_copy(update={"measures": []}) for cid, s in schedules.items()}


def _read_plan(reader: _Reader, plan: _Plan) -> _Inputs:
    mine, until, since, measures = plan
    return _gathered(reader, mine, until, since, measures, silences=True)


def _judged_as_read(helper: Helper, read: Callable[[int], _Inputs], count: int,
                    periods: list[str]) -> Iterator[Judged]:
    """Each batch judged, in order: the first here (while the helper starts), the others by
    the helper from what this process reads for it. Batch k+1 is judged there while the
    caller writes batch k and this process reads batch k+2; it is sent as soon as batch k's
    answer is back (one job at a time; sending it only once read, rather than read ahead,
    was slower: 13.3/14.3 s against 12.8/13.5 s at 1M)."""
    following: _Inputs | None = None
    for k in range(count):
        if k == 0:
            judged: Judged = _judge(read(0), periods)
            following = read(1)
        else:
            judged = helper.receive()
        if following is not None:
            helper.send("judge", following, periods)
            following = None
        yield judged
        if k + 2 < count:
            following = read(k + 2)


def _judged_where_read(helpers: list[Helper], url: str, read: Callable[[int], _Inputs],
                       span: Callable[[int], tuple[dict[str, str], dict[str, str]]],
                       plan: Callable[[int], _Plan], count: int, periods: list[str],
                       seconds: dict[str, float]) -> Iterator[Judged]:
    """Each batch judged, in order: the first here, the others by the helpers in turn, each
    of which first reads all of its batches from the store itself (``url``, opened for
    reading) while this process judges the first. When the others do not share out evenly
    among the helpers, the last is judged here too, once the helpers are at work.

    A helper is told which contracts of which periods to read (``span``) before anything
    else, and reads them while this process makes the batches' plans (their measure tables:
    a fiftieth of a second each), which it is sent with its jobs to judge them.

    The helpers see the store as last committed, which is what this transaction would read:
    it has written nothing yet, and holds SQLite's write lock, or on PostgreSQL the
    contracts' locks that a submission of their figures waits for. Nothing is written until
    every helper has read: on SQLite this transaction's writes could otherwise need the file
    to itself while a helper reads."""
    ways = len(helpers)
    theirs, last = _shared(count, ways)

    def judging(k: int) -> tuple[Any, ...]:
        terms, _, _, measures = plan(k)
        return ("judge", k, periods, terms, measures)

    for helper, batches_of in zip(helpers, theirs, strict=True):
        helper.send("read", url, [(k, *span(k)) for k in batches_of])
    for helper, batches_of in zip(helpers, theirs, strict=True):
        # Where a helper's jobs and answers go in memory files, it is given all its batches
        # at once, and goes from one to the next without waiting for this process to take
        # each judgement (see compliance.helper).
        for k in batches_of if helper.queued else ():
            helper.send(*judging(k))
    first = _judge(read(0), periods)
    for helper, batches_of in zip(helpers, theirs, strict=True):
        seconds["read"] += helper.receive()
        if not helper.queued and batches_of:
            helper.send(*judging(batches_of[0]))
    ended = _judge(read(last), periods) if last is not None else None
    yield first
    for k in range(1, count):
        if k == last:
            assert ended is not None
            yield ended
            continue
        helper = helpers[(k - 1) % ways]
        judged = helper.receive()
        if not helper.queued and k + ways in theirs[(k - 1) % ways]:
            helper.send(*judging(k + ways))
        yield judged


def _shared(count: int, ways: int) -> tuple[list[list[int]], int | None]:
    """The batches each of ``ways`` helpers judges, and the last batch when this process
    judges it too: when the batches after the first do not share out evenly, so that the
    helpers end together (it is judged while they judge theirs)."""
    rest = list(range(1, count))
    last = rest.pop() if ways and len(rest) % ways else None
    return [rest[j::ways] for j in range(ways)], last


# In a helper process: the batches it has read, by number, until each is judged.
_READ: dict[int, _Inputs] = {}


def _work(kind: str, *args: Any) -> Any:
    """A helper's job: ``("judge", batch, periods)`` judges a batch (its inputs), and
    ``("judge", number, periods, terms, measures)`` one it has read, given its contracts'
    terms and measure table (see ``_plan``); ``("read", url, [(number, until, since), ...])``
    reads batches from the store at ``url`` (the contracts of ``until``, each up to its
    period there, from its period in ``since``), keeps them, and answers with the seconds it
    took."""
    import time

    from compliance.store import reads

    if kind == "judge":
        batch, periods, *plan = args
        if isinstance(batch, _Inputs):
            return _judge(batch, periods)
        inputs = _READ.pop(batch)
        inputs.schedules, inputs.measures = plan
        return _judge(inputs, periods)
    url, spans = args
    began = time.perf_counter()
    path = reads.sqlite_file(url)
    if path is not None:
        # A SQLite file is read through ADBC's driver: the store's engine is not imported
        # in a helper.
        with collector_paused(), reads.sqlite_reading(path) as reader:
            for number, until, since in spans:
                _READ[number] = _fetched(reader, list(until), until, since, silences=True)
        return time.perf_counter() - began
    from compliance.store import Store

    store = Store(url, reading=True)
    try:
        with collector_paused(), store.reading() as tx:
            for number, until, since in spans:
                _READ[number] = _fetched(tx, list(until), until, since, silences=True)
    finally:
        store.dispose()
    return time.perf_counter() - began


# 0: every batch judged in the checking process; 1: helpers whenever there is more than one
# batch; unset: helpers from _HELPED_FROM batches on, when there is more than one processor.
HELPER_VARIABLE = "COMPLIANCE_CHECK_HELPER"
# Starting helpers costs more than they save on two batches (200,000 figures: 2.45 s without,
# 2.56 s with); from three on they pay (300,000 figures: 3.46 -> 3.2-3.3 s; 1M: 12 batches,
# 10.9 s in one process against 8.1-8.6 s).
_HELPED_FROM = 3
# Helpers that read their batches themselves: two, so that the reading, assessing and rules
# (about 7.5 s of work at 1M) are shared while this process writes (about 4 s).
_READERS = 2


# What a helper works with, imported once for all helpers (see compliance.helper).
# A helper reading a SQLite file never imports the store's engine (compliance.store.db, and
# SQLAlchemy with it): one reading a server's store imports it at its first batch.
_HELPERS_IMPORT = ("compliance.checking", "compliance.store.reads", "compliance.store.packed",
                   "compliance.store.columns", "compliance.schedule", "compliance.assess",
                   "compliance.escalation", "compliance.spc", "orjson", "pandas", "numpy.rec",
                   "adbc_driver_sqlite.dbapi")


@contextmanager
def _helpers(runs: int, reading: bool) -> Iterator[list[Helper]]:
    """Helper processes (compliance.helper) to judge batches in, when there are enough
    batches and a second processor for them (``COMPLIANCE_CHECK_HELPER`` decides otherwise,
    see above): ``_READERS`` of them when they can read the store themselves (``reading``),
    else one. None (an empty list) otherwise."""
    from contextlib import ExitStack

    from compliance.helper import Helper

    with ExitStack() as stack:
        yield [stack.enter_context(Helper(_work, preload=_HELPERS_IMPORT))
               for _ in range(_helper_count(runs, reading))]


def _helper_count(runs: int, reading: bool) -> int:
    """How many helpers ``_helpers`` starts."""
    import os

    from compliance.helper import cores

    wanted = os.environ.get(HELPER_VARIABLE, "").strip()
    if runs < 2 or wanted == "0" or (wanted != "1" and (runs < _HELPED_FROM or cores() < 2)):
        return 0
    return min(_READERS if reading else 1, runs - 1)


def _history_from(tx: Transaction, first: Mapping[str, str]) -> dict[str, str]:
    """Where each contract's history starts: at its first period checked (``first``) or at
    its first figure, whichever is earlier. Batches are weighed by it (a first check of one
    month still assesses every month before it that has figures)."""
    held = tx.first_figure_periods(list(first))
    return {cid: min(start, held.get(cid, start)) for cid, start in first.items()}


def _of_run(run: Sequence[str], *by_contract: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each mapping by contract, cut down to the contracts of one run."""
    return [{cid: values[cid] for cid in run} for values in by_contract]


def _checked(history: pd.DataFrame, periods: Sequence[str]) -> pd.DataFrame:
    """The history's rows of the periods checked, numbered from 0."""
    import pandas as pd

    if history.empty:
        return history
    wanted = history["period"].isin(list(periods)).to_numpy()
    if wanted.all():
        # Every period of the history checked: the assessments share its columns.
        assessments = history.copy(deep=False)
        assessments.index = pd.RangeIndex(len(assessments))
        return assessments
    return history[wanted].reset_index(drop=True)


def _derive(tx: Transaction, schedules: Mapping[str, Schedule], history: pd.DataFrame
            ) -> dict[str, int]:
    """The contracts' records from their history: the rules run, their records written."""
    from compliance.escalation import run_rules

    rules = run_rules(history, schedules, tx.silences(list(schedules)))
    return _record(tx, schedules, _records(schedules, rules))


def _record(tx: Transaction, schedules: Mapping[str, Schedule], records: _Records
            ) -> dict[str, int]:
    """The contracts' records written in place of those they had."""
    # Every contract's records replaced at once, contract by contract in the schedules' order.
    written = tx.replace_records(list(schedules), records.findings, records.escalations)
    return {"findings": written["findings"], "escalations": written["escalations"]}


@collector_paused()
def rederive(tx: Transaction, schedules: Mapping[str, Schedule]) -> dict[str, int]:
    """Records again from the figures, after something they depend on changed (a silence)."""
    checked = tx.checked_periods(list(schedules))
    if not checked:
        return {"findings": 0, "escalations": 0}
    mine = {cid: schedules[cid] for cid in schedules if cid in checked}
    tx.lock(list(mine))
    through = {cid: checked[cid][1] for cid in mine}
    first = {cid: checked[cid][0] for cid in mine}
    counts = {"findings": 0, "escalations": 0}
    for run in batches(mine, _history_from(tx, first), through):
        part, until, since = _of_run(run, mine, through, first)
        written = _derive(tx, part, history_with_features(tx, part, until, since))
        for name in counts:
            counts[name] += written[name]
    return counts


def escalation_as_at(row: Mapping[str, Any], period: str, forums: Sequence[str]
                     ) -> dict[str, Any] | None:
    """A stored escalation as it stood at the end of ``period`` (None before it opened)."""
    import json

    if row["opened"] > period:
        return None
    history = row["history"]
    steps = [h for h in (json.loads(history) if isinstance(history, str) else history)
             if h["period"] <= period]
    last = steps[-1]
    resolved = row["resolved"] if row["resolved"] and row["resolved"] <= period else None
    until = row.get("silenced_until")
    status = "silenced" if until else "resolved" if resolved else "open"
    return {
        "measure": row["measure_id"], "level": last["level"],
        "forum": forums[last["level"] - 1], "opened": row["opened"],
        "status": status, "resolved": resolved, "silenced_until": until,
        "silence_reason": row.get("silence_reason"),
        "rule": last["rule"], "description": last["description"],
    }
