"""The command line. The one place that prints, exits and turns errors into messages.

Heavy libraries (pandas, SQLAlchemy, durable-rules) are imported inside the commands, so that
``compliance --help`` answers at once.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from compliance.errors import ComplianceError, Problem

if TYPE_CHECKING:
    from rich.console import Console

    from compliance.checking import CheckResult
    from compliance.progress import Progress
    from compliance.schedule import Schedule
    from compliance.store import Store, Transaction

app = typer.Typer(
    name="compliance",
    help="Contract compliance monitoring: judge providers' returns against the contract's "
         "performance schedule, record breaches and escalations, and report to committee.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
contract_app = typer.Typer(help="Contract schedules: validate, load, list.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")
rules_app = typer.Typer(help="Escalation rule packs: validate, show.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


ContractOption = Annotated[str, typer.Option("--contract", "-c", help="Contract id.")]
MeasureOption = Annotated[str, typer.Option("--measure", "-m", help="Measure id, e.g. KPI2.")]
MonthOption = Annotated[str, typer.Option("--period", "-p", help="The month, YYYY-MM.")]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


class State:
    db: str | None = None
    user: str | None = None
    quiet: bool = False


state = State()


@app.callback()
def _root(
    db: Annotated[str | None, typer.Option(
        "--db", help="Store URL (sqlite:///path.db or postgresql+psycopg://...). "
                     "Default: $COMPLIANCE_DB, else sqlite:///compliance.db.")] = None,
    user: Annotated[str | None, typer.Option(
        "--user", help="Who is acting, for the audit trail. Default: the OS user.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only results.")] = False,
) -> None:
    state.db, state.user, state.quiet = db, user, quiet


# --- output and errors ----------------------------------------------------------------------


# Every console shows text as written: square brackets and :codes: in a schedule's or a
# return's text are neither rich's markup nor emoji, and nothing is coloured by guesswork.
_AS_WRITTEN: dict[str, Any] = {"markup": False, "emoji": False, "highlight": False}


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    # Messages on stderr are never wrapped: a path or a location must stay on one line.
    return Console(stderr=stderr, soft_wrap=stderr, width=None if sys.stdout.isatty() else 160,
                   **_AS_WRITTEN)


def _say_problems(problems: list[Problem]) -> None:
    from rich.text import Text

    err = _console(stderr=True)
    for problem in problems:
        style = "red" if problem.severity == "error" else "yellow"
        err.print(Text(str(problem), style=style))


def _fail(problems: list[Problem], code: int = 1, writes: bool = True) -> NoReturn:
    _say_problems(problems)
    errors = sum(1 for p in problems if p.severity == "error")
    if errors > 1:
        _console(stderr=True).print(
            f"{errors} errors" + ("; nothing was written." if writes else "."))
    raise typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    """A user's mistake becomes located messages and exit 1, never a traceback."""
    try:
        yield
    except ComplianceError as exc:
        _fail(exc.problems, exc.exit_code)
    except KeyboardInterrupt:
        _console(stderr=True).print("interrupted; nothing was written.")
        raise typer.Exit(130) from None
    finally:
        while _open_stores:
            _open_stores.pop().dispose()


def _info(message: str) -> None:
    if not state.quiet:
        _console(stderr=True).print(message, markup=False, highlight=False)


def _progress_console() -> Console | None:
    """The console progress bars are drawn on: stderr, when it is an interactive terminal and
    the command is neither ``--quiet`` nor running under CI (``$CI``)."""
    if state.quiet or os.environ.get("CI"):
        return None
    if not (sys.stderr.isatty() or os.environ.get("FORCE_COLOR")
            or os.environ.get("TTY_COMPATIBLE") == "1"):
        return None  # answered without importing rich
    from rich.console import Console

    console = Console(stderr=True, **_AS_WRITTEN)
    return console if console.is_terminal and console.is_interactive else None


@contextmanager
def _progress() -> Iterator[Progress | None]:
    """A progress hook (compliance.progress) drawing one transient bar on stderr, from its
    first report until the block ends; None where no bar is wanted (_progress_console)."""
    console = _progress_console()
    if console is None:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    bars = Bars(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=console, transient=True, redirect_stdout=False,
                redirect_stderr=False)
    task: list[TaskID] = []
    shown = [""]

    def report(stage: str, done: int, total: int) -> None:
        if not task:
            bars.start()
            task.append(bars.add_task(stage, total=total))
        # A new stage is drawn at once: a stage may end before the next timed refresh.
        bars.update(task[0], description=stage, completed=done, total=total,
                    refresh=stage != shown[0])
        shown[0] = stage

    try:
        yield report
    finally:
        if task:
            bars.stop()


def _replaces(n: int) -> str:
    return f"{n} replaces an earlier version" if n == 1 else f"{n} replace earlier versions"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_open_stores: list[Store] = []


def _store() -> Store:
    """The store of this command; closed when the command ends (see _user_errors)."""
    from compliance.store import Store

    store = Store(state.db)
    _open_stores.append(store)
    return store


def _args(**kwargs: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list)
                else v) for k, v in kwargs.items() if v not in (None, [], False)}


# --- commands -------------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create the store, or add what a newer version needs."""
    with _user_errors():
        store = _store()
        applied = store.init()
        with store.transaction(state.user) as tx:
            tx.audit("init", {}, {"migrations_applied": len(applied)})
        _info(f"store ready at {store.url}, schema {store.head()}"
              + (f" (applied {', '.join(applied)})" if applied else " (already current)"))


@contract_app.command("validate")
def contract_validate(
    files: Annotated[list[Path], typer.Argument(help="Schedule files (YAML).")],
) -> None:
    """Validate contract schedules; exit 1 and say where, if any has an error."""
    from compliance.schedule import validate_schedule

    problems: list[Problem] = []
    for file in files:
        schedule, found = validate_schedule(file)
        problems.extend(found)
        if schedule is not None and not any(p.severity == "error" for p in found):
            _info(f"{file}: ok: {schedule.id}, {_plural(len(schedule.measures), 'measure')}"
                  + (f", {len(found)} warnings" if found else ""))
    if any(p.severity == "error" for p in problems):
        _fail(problems, writes=False)
    _say_problems(problems)


@contract_app.command("load")
def contract_load(
    files: Annotated[list[Path], typer.Argument(help="Schedule files (YAML).")],
    effective_from: Annotated[str | None, typer.Option(
        "--effective-from", help="The first month a changed schedule applies to. Default: "
        "the month after the latest month checked (months already checked keep their "
        "targets).")] = None,
) -> None:
    """Register contract schedules; a changed schedule becomes a new version."""
    with _user_errors():
        if effective_from is not None:
            effective_from = _periods(effective_from, None, None)[0]
        schedules = _load_schedules(files)
        store = _store()
        from rich.text import Text

        for schedule in schedules:
            for warning in schedule.warnings:
                _console(stderr=True).print(Text(warning, style="yellow"))
        with store.transaction(state.user) as tx:
            tx.lock([s.id for s in schedules])
            results = {s.id: tx.load_schedule(s, effective_from) for s in schedules}
            tx.audit("contract load", _args(files=files),
                     {"contracts": len(results),
                      "new_versions": sum(1 for _, new in results.values() if new)})
        for cid, (version, new) in results.items():
            _info(f"{cid}: schedule version {version}" + ("" if new else " (unchanged)"))


@contract_app.command("list")
def contract_list() -> None:
    """The contracts in the store."""
    with _user_errors():
        store = _store()
        with store.transaction(state.user) as tx:
            schedules = tx.schedules()
            versions = tx.current_versions(list(schedules))
        for cid, schedule in sorted(schedules.items()):
            typer.echo(f"{cid}\tv{versions[cid]}\t{len(schedule.measures)} measures\t"
                       f"{schedule.contract.provider}")


def _load_schedules(files: list[Path]) -> list[Schedule]:
    from compliance.schedule import load_schedule

    schedules: list[Schedule] = []
    problems: list[Problem] = []
    for file in files:
        try:
            schedules.append(load_schedule(file))
        except ComplianceError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ComplianceError(problems)
    return schedules


@app.command()
def submit(
    files: Annotated[list[Path], typer.Argument(help="Provider returns (CSV or XLSX).")],
    contract: Annotated[str | None, typer.Option(
        "--contract", "-c", help="Contract id, unless the return has a 'contract' column.")]
    = None,
) -> None:
    """Import provider returns. Any error rejects the whole submission."""
    with _user_errors():
        store = _store()
        with _progress() as progress, store.transaction(state.user) as tx:
            counts = _submit(tx, files, contract, progress)
        _info(f"{_plural(counts['figures'], 'figure')} from "
              f"{_plural(counts['files'], 'file')} stored"
              + (f"; {_replaces(counts['new_versions'])}" if counts["new_versions"] else ""))


def _submit(tx: Transaction, files: list[Path], contract: str | None,
            progress: Progress | None = None) -> dict[str, int]:
    from compliance.progress import offset
    from compliance.returns import file_digest, parse_returns

    schedules = tx.schedules([contract] if contract else None)
    if not schedules:
        raise ComplianceError("the store holds no contracts: load a schedule first "
                              "(compliance contract load FILE)")
    # Reading each file, then storing the figures: one step more than there are files.
    figures = parse_returns(files, schedules, contract,
                            progress=offset(progress, 0, after=1) if progress else None)
    tx.lock(sorted(set(figures["contract"])))
    if progress:
        progress("storing the figures", len(files), len(files) + 1)
    counts = tx.submit(figures, {str(f): file_digest(f) for f in files})
    tx.audit("submit", _args(files=files, contract=contract), counts)
    return counts


@app.command()
def check(
    contract: Annotated[list[str] | None, typer.Option(
        "--contract", "-c", help="Contract id or schedule file; repeatable. Default: every "
                                 "contract in the store.")] = None,
    period: Annotated[str | None, typer.Option(
        "--period", "-p", help="The month to check, YYYY-MM.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="First month of a range.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last month of a range.")] = None,
    returns: Annotated[list[Path] | None, typer.Option(
        "--returns", "-r", help="Provider returns to submit first; repeatable.")] = None,
    format: FormatOption = Format.table,
) -> None:
    """Assess the period's figures against the schedule, record the results, print them."""
    with _user_errors():
        periods = _periods(period, from_, to)
        store = _store()
        with _progress() as progress, store.transaction(state.user) as tx:
            result = _check(tx, contract or [], periods, returns or [], progress)
        _print_check(result, format)


def _periods(period: str | None, from_: str | None, to: str | None) -> list[str]:
    from compliance.periods import PeriodError, parse_period, period_range

    try:
        if period and (from_ or to):
            raise typer.BadParameter("give --period, or --from and --to, not both")
        if period:
            return [parse_period(period)]
        if from_ and to:
            return period_range(parse_period(from_), parse_period(to))
    except PeriodError as exc:
        raise ComplianceError(Problem(str(exc), column="--period")) from None
    raise typer.BadParameter("say which month to check: --period YYYY-MM (or --from and --to)")


def _check(tx: Transaction, contracts: list[str], periods: list[str],
           returns: list[Path], progress: Progress | None = None) -> CheckResult:
    """The check of the command line; ``progress`` hears of it only when it covers more than
    one period or more than one contract."""
    from compliance.checking import run_check, start_helpers

    ids: list[str] = []
    paths = [c for c in contracts if c.endswith((".yaml", ".yml")) or os.path.sep in c]
    if not paths:
        # A check large enough for helpers has them start while the schedules are read.
        start_helpers(tx, contracts or None, periods)
    if paths:
        for schedule in _load_schedules([Path(p) for p in paths]):
            tx.load_schedule(schedule)
            ids.append(schedule.id)
    ids += [c for c in contracts if c not in paths]
    schedules = tx.schedules(ids or None)
    if not schedules:
        raise ComplianceError("the store holds no contracts: load a schedule first "
                              "(compliance contract load FILE)")
    for cid, schedule in schedules.items():
        spec = schedule.contract
        outside = [p for p in periods if (spec.starts and p < spec.starts)
                   or (spec.ends and p > spec.ends)]
        if outside and len(schedules) == 1:
            raise ComplianceError(Problem(
                f"{', '.join(outside)} is outside contract {cid} ({spec.starts or '...'} to "
                f"{spec.ends or '...'})", column="--period"))
    if len(periods) == 1 and len(schedules) == 1:
        progress = None
    if returns:
        _submit(tx, returns, ids[0] if len(ids) == 1 else None, progress)
    result = run_check(tx, schedules, periods, progress=progress)
    tx.audit("check", _args(contracts=contracts, periods=periods, returns=returns),
             result.counts)
    return result


def _print_check(result: CheckResult, format: Format) -> None:
    from compliance.views import check_documents

    docs = check_documents(result)
    if format is Format.json:
        _print_json_documents(docs)
    elif format is Format.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["contract", "period", "measure", "kind", "figure_period", "value",
                         "target", "tolerance", "status", "rag", "direction", "forecast",
                         "reason", "variation", "assurance"])
        for doc in docs:
            for a in doc["assessments"]:
                writer.writerow([doc["contract"], doc["period"], a["measure"], a["kind"],
                                 a["period"], _csv_cell(a["value"]), _csv_cell(a["target"]),
                                 _csv_cell(a["tolerance"]), a["status"], a["rag"],
                                 a["direction"] or "", _csv_cell(a["forecast"]),
                                 _csv_cell(a["reason"]), a["variation"] or "",
                                 a["assurance"] or ""])
    else:
        console = _console()
        for doc in docs:
            _scorecard(doc, result.schedules[doc["contract"]]).write(console)
            for table in _record_tables(doc, result.schedules[doc["contract"]]):
                table.write(console)


def _json_text(value: Any) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)``: the same text,
    written by orjson, ten times quicker (a national check of every month writes over a
    gigabyte). The two write everything alike but a number between 1e-9 and 1e-4, which
    orjson writes without an exponent (0.00001 for 1e-05) or with a one-digit one (9e-8 for
    9e-08): a text with either in it, and a value orjson does not take, is written by
    ``json`` instead. orjson writes a NaN, which is not JSON and which no output holds
    (missing numbers are None), as null."""
    import orjson

    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:  # orjson.JSONEncodeError: keys that are not text, a number too large
        text = "0.0000"
    if "0.0000" in text or _SHORT_EXPONENT.search(text):
        return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    return text


# A number's exponent of one digit, as orjson writes 1e-9 to 1e-5 (json: two digits at least).
# Text such as "re-1" matches too, and is then written by json: slower, never different.
_SHORT_EXPONENT = re.compile(r"e-\d(?!\d)")


def _print_json_documents(docs: Iterator[dict[str, Any]]) -> None:
    """One document as a JSON object, or several as a JSON list, written one document at a
    time: the text is what ``json.dumps(..., indent=2)`` of the whole would give."""
    first, second = next(docs, None), next(docs, None)
    if first is None or second is None:
        typer.echo(_json_text([] if first is None else first))
        return
    typer.echo("[", nl=True)
    for number, doc in enumerate(itertools.chain((first, second), docs)):
        typer.echo((",\n" if number else "") + "  " + _json_text(doc).replace("\n", "\n  "),
                   nl=False)
    typer.echo("\n]")


def _record_tables(doc: dict[str, Any], schedule: Schedule) -> list[Any]:
    from compliance.periods import month_name
    from compliance.tables import Table

    tables = []
    records = doc["breaches"] + doc["data_quality"] + doc["watch"]
    if records:
        table = Table(title=f"Records for {month_name(doc['period'])}", title_justify="left",
                      header_style="bold")
        for name in ("Measure", "Record", "Severity", "Rule"):
            table.add_column(name, overflow="fold")
        for r in records:
            table.add_row(r["measure"], r["type"].replace("_", " "), r["severity"],
                          f"{r['rule']}: {r['description']}")
        tables.append(table)
    if doc["escalations"]:
        table = Table(title=f"Escalations at {month_name(doc['period'])}", title_justify="left",
                      header_style="bold")
        for name in ("Forum", "Level", "Measure", "Since", "Status", "Rule"):
            table.add_column(name, overflow="fold")
        for e in doc["escalations"]:
            table.add_row(e["forum"], str(e["level"]), e["measure"], month_name(e["opened"]),
                          e["status"] + (f" {month_name(e['resolved'])}" if e["resolved"]
                                         else ""),
                          f"{e['rule']}: {e['description']}")
        tables.append(table)
    return tables


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "-".join(str(v) for v in value)
    if isinstance(value, bool | int | float):
        return str(value)
    text = str(value)
    # Text, above all a provider's, must not become a formula when a spreadsheet opens it.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _scorecard(doc: dict[str, Any], schedule: Schedule) -> Any:
    from rich.text import Text

    from compliance import present
    from compliance.periods import financial_year, month_name
    from compliance.tables import Table

    period = doc["period"]
    table = Table(
        title=f"{schedule.contract.title}\n{schedule.contract.provider} — {month_name(period)}"
              f" (financial year {financial_year(period, schedule.contract.year_start_month)})",
        title_justify="left", header_style="bold")
    for name, justify in (("Measure", "left"), ("Title", "left"), ("Figure", "right"),
                          ("Target", "right"), ("Tolerance", "right"), ("Status", "left"),
                          ("Travel", "left"), ("Variation", "left"), ("Assurance", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for a in doc["assessments"]:
        unit = a["unit"]
        fig = present.figure(a["value"], unit)
        if a["value"] is not None and a["period"] != period:
            fig += f" ({month_name(a['period'])[:3]} {a['period'][:4]})"
        if len(doc["assessments"]) and a["sources"] > 1:
            fig += f" [{a['sources']} sources]"
        target = present.target_text(a["target"], unit)
        if a["profiled_target"] is not None:
            target = f"{present.figure(a['profiled_target'], unit)} of {target}"
        status = a["status"]
        label = f"{present.STATUS_SYMBOLS[status]} {present.STATUS_WORDS[status]}"
        if status == "not_due" and a["forecast"] is not None:
            label += f" (forecast {present.figure(a['forecast'], unit)})"
        travel = present.DIRECTION_ARROWS.get(a["direction"] or "", "")
        title = a["title"] if len(a["title"]) <= 60 else a["title"][:57] + "..."
        table.add_row(a["measure"], title, fig, target,
                      present.tolerance_text(a["tolerance"], unit, a["polarity"]),
                      Text(label, style=present.STATUS_STYLES[status]), travel,
                      present.VARIATION_WORDS.get(a["variation"] or "", ""),
                      present.ASSURANCE_WORDS.get(a["assurance"] or "", ""))
    counts: dict[str, int] = {}
    for a in doc["assessments"]:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    table.caption = "  ".join(f"{present.STATUS_WORDS[s]}: {n}" for s, n in counts.items())
    table.caption_justify = "left"
    return table


@app.command()
def escalations(
    contract: Annotated[list[str] | None, typer.Option(
        "--contract", "-c", help="Contract id; repeatable. Default: every contract.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open escalations.")] = False,
    level: Annotated[int | None, typer.Option("--level", min=1,
                                              help="Only escalations at this level.")] = None,
    format: FormatOption = Format.table,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")]
    = None,
) -> None:
    """The escalation list for the commissioning group: forum, measure, since when, why."""
    from compliance.escalation import records
    from compliance.views import escalation_rows

    with _user_errors():
        store = _store()
        with store.transaction(state.user) as tx:
            schedules = tx.schedules(contract or None)
            found = tx.escalation_rows(list(schedules))
            notes = tx.notes(list(schedules))
            # Each contract's assessments of the latest month checked, in one query.
            latest = {(row["contract_id"], row["measure_id"]): row
                      for row in records(tx.latest_assessments(list(schedules)))}
        if open_only:
            found = [e for e in found if e["status"] == "open"]
        if level is not None:
            found = [e for e in found if e["level"] == level]
        rows = escalation_rows(found, schedules, latest, notes)
        _emit_escalations(rows, format, out)


def _emit_escalations(rows: list[dict[str, Any]], format: Format, out: Path | None) -> None:
    from compliance.periods import month_name

    if format is Format.table:
        from compliance.tables import Table

        # Rows come contract by contract: with more than one contract, a table for each,
        # named by it, so that every measure is seen with its contract.
        by_contract: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_contract.setdefault(r["contract"], []).append(r)
        named = len(by_contract) > 1
        tables = []
        for cid, mine in (by_contract.items() if rows else [("", [])]):
            table = Table(title=f"Escalations: {cid}" if named else "Escalations",
                          title_justify="left", header_style="bold")
            for name in ("Forum", "Lvl", "Measure", "Since", "Status", "Figure", "Target",
                         "Why"):
                table.add_column(name, overflow="fold")
            for r in mine:
                status = r["status"] + (f" {month_name(r['resolved'])}" if r["resolved"]
                                        else "")
                if r["silenced_until"]:
                    status = (f"silenced until {month_name(r['silenced_until'])}: "
                              f"{r['silence_reason']}")
                why = r["rule_text"]
                if r["acknowledged_by"]:
                    why += f"\nAcknowledged by {r['acknowledged_by']} {r['acknowledged_at']}"
                if r["latest_note"]:
                    why += f"\nNote ({r['latest_note_by']}): {r['latest_note']}"
                table.add_row(r["forum"], str(r["level"]), f"{r['measure']} {r['title']}",
                              month_name(r["opened"]), status, r["figure_text"],
                              r["target_text"], why)
            if not mine:
                table.caption = "No escalations."
            tables.append(table)
        if out is None:
            console = _console()
            for table in tables:
                table.write(console)
            return
        from rich.console import Console

        with _atomic(out) as handle:
            console = Console(file=handle, width=160, no_color=True, **_AS_WRITTEN)
            for table in tables:
                table.write(console)
        return
    fields = ["contract", "forum", "level", "measure", "title", "kind", "opened", "status",
              "resolved", "period", "figure", "target", "rule", "rule_text", "silenced_until",
              "silence_reason", "acknowledged_by", "acknowledged_at", "latest_note",
              "latest_note_by"]
    if format is Format.json:
        text = _json_text([{k: r[k] for k in fields} for r in rows]) + "\n"
    else:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(fields)
        for r in rows:
            writer.writerow([_csv_cell(r[k]) for k in fields])
        text = buffer.getvalue()
    if out is None:
        typer.echo(text, nl=False)
    else:
        with _atomic(out) as handle:
            handle.write(text)
        _info(f"{_plural(len(rows), 'escalation')} written to {out}")


@contextmanager
def _atomic(path: Path) -> Iterator[Any]:
    """Write a file whole or not at all."""
    directory = path.resolve().parent
    if not directory.is_dir():
        raise ComplianceError(Problem(f"no such folder: {directory}", file=str(path)))
    from compliance.files import replaced_whole

    with replaced_whole(path) as temporary, temporary.open(
            "w", encoding="utf-8", newline="") as handle:
        yield handle


@app.command()
def silence(
    contract: ContractOption,
    measure: MeasureOption,
    until: Annotated[str, typer.Option("--until", help="The last month it holds, YYYY-MM.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")],
    start: Annotated[str | None, typer.Option(
        "--from", help="The first month it holds. Default: the month after the latest month "
                       "checked.")] = None,
) -> None:
    """Hold back new escalations of a measure until a month; they are recorded as silenced,
    and the measure escalates again after it if still failing."""
    from compliance.checking import rederive
    from compliance.periods import add_months

    with _user_errors():
        last = _periods(until, None, None)[0]
        if not reason.strip():
            raise ComplianceError(Problem("give the reason for the silence", column="--reason"))
        store = _store()
        with store.transaction(state.user) as tx:
            schedules = tx.schedules([contract])
            _known_measure(schedules[contract], measure)
            through = tx.checked_through(contract)
            first = _periods(start, None, None)[0] if start else (
                add_months(through, 1) if through else last)
            if first > last:
                raise ComplianceError(Problem(f"the silence would end ({last}) before it "
                                              f"begins ({first})", column="--until"))
            sid = tx.add_silence(contract, measure, first, last, reason.strip())
            counts = rederive(tx, schedules)
            tx.audit("silence", _args(contract=contract, measure=measure, start=first,
                                      until=last, reason=reason), {"silences": 1, **counts})
        _info(f"{contract} {measure}: new escalations held back from {first} to {last} "
              f"(silence #{sid})")


def _escalation_of(tx: Transaction, contract: str, measure: str, open_only: bool) -> Any:
    found = [e for e in tx.escalations([contract]) if e.measure_id == measure
             and e.status != "silenced" and (e.status == "open" or not open_only)]
    if not found:
        raise ComplianceError(Problem(
            f"{contract} {measure} has no {'open ' if open_only else ''}escalation",
            column="--measure"))
    return max(found, key=lambda e: e.opened)


@app.command()
def ack(
    contract: ContractOption,
    measure: MeasureOption,
    note: Annotated[str, typer.Option("--note", help="A note to keep with it.")] = "",
) -> None:
    """Acknowledge a measure's open escalation (who and when are recorded)."""
    with _user_errors():
        store = _store()
        with store.transaction(state.user) as tx:
            _known_measure(tx.schedules([contract])[contract], measure)
            opened = _escalation_of(tx, contract, measure, open_only=True).opened
            tx.add_note(contract, measure, opened, "ack", note.strip())
            tx.audit("ack", _args(contract=contract, measure=measure, note=note),
                     {"notes": 1})
            who = tx.user
        _info(f"{contract} {measure}: escalation open since {opened} acknowledged by {who}")


@app.command()
def note(
    contract: ContractOption,
    measure: MeasureOption,
    text: Annotated[str, typer.Option("--text", help="The note.")],
) -> None:
    """Attach a note to a measure's latest escalation."""
    with _user_errors():
        if not text.strip():
            raise ComplianceError(Problem("the note is empty", column="--text"))
        store = _store()
        with store.transaction(state.user) as tx:
            _known_measure(tx.schedules([contract])[contract], measure)
            opened = _escalation_of(tx, contract, measure, open_only=False).opened
            tx.add_note(contract, measure, opened, "note", text.strip())
            tx.audit("note", _args(contract=contract, measure=measure, text=text),
                     {"notes": 1})
        _info(f"{contract} {measure}: note added to the escalation opened {opened}")


@app.command()
def overdue(
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="The date to judge by, YYYY-MM-DD. Default: today.")] = None,
    contract: Annotated[list[str] | None, typer.Option(
        "--contract", "-c", help="Contract id; repeatable. Default: every contract.")] = None,
    format: FormatOption = Format.table,
) -> None:
    """Returns not received by the day of the month the contract says they are due."""
    import datetime as dt

    from compliance.periods import overdue_returns

    with _user_errors():
        try:
            today = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
        except ValueError:
            raise ComplianceError(Problem(f"{as_of!r} is not a date (YYYY-MM-DD)",
                                          column="--as-of")) from None
        store = _store()
        with store.transaction(state.user) as tx:
            schedules = tx.schedules(contract or None)
            received = tx.returns_received(list(schedules))
        rows: list[dict[str, Any]] = []
        for cid, schedule in sorted(schedules.items()):
            day = schedule.contract.return_due_day
            if day is None:
                continue
            periods = [p for c, p in received if c == cid]
            first = min([*periods, *( [schedule.contract.starts] if schedule.contract.starts
                                      else [])], default=None)
            if first is None:
                continue
            for period, due in overdue_returns(first, day, today):
                if (cid, period) not in received:
                    rows.append({"contract": cid, "provider": schedule.contract.provider,
                                 "period": period, "due": due.isoformat(),
                                 "days_late": (today - due).days})
    if format is Format.json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if format is Format.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["contract", "provider", "period", "due", "days_late"])
        for r in rows:
            writer.writerow([r["contract"], _csv_cell(r["provider"]), r["period"], r["due"],
                             r["days_late"]])
        return
    from compliance.periods import month_name
    from compliance.tables import Table

    table = Table(title=f"Returns overdue on {today.isoformat()}", title_justify="left",
                  header_style="bold")
    for name in ("Contract", "Provider", "Return for", "Due", "Days late"):
        table.add_column(name)
    for r in rows:
        table.add_row(r["contract"], r["provider"], month_name(r["period"]), r["due"],
                      str(r["days_late"]))
    if not rows:
        table.caption = "No return is overdue."
    table.write(_console())


@app.command()
def explain(
    contract: ContractOption,
    measure: MeasureOption,
    period: MonthOption,
    format: FormatOption = Format.table,
) -> None:
    """Why a measure has its status in a period, and which rules fired or did not."""
    from compliance.checking import history_with_features
    from compliance.escalation import records
    from compliance.rulepack import effective_settings, load_pack
    from compliance.views import explain as explain_view

    with _user_errors():
        month = _periods(period, None, None)[0]
        store = _store()
        with store.transaction(state.user) as tx:
            schedule = tx.schedules([contract])[contract]
            _known_measure(schedule, measure)
            if tx.assessment(contract, measure, month) is None:
                raise ComplianceError(Problem(
                    f"nothing to explain: {contract} has not been checked for {month} (run "
                    f"compliance check --contract {contract} --period {month})",
                    column="--period"))
            history = history_with_features(tx, {contract: schedule}, {contract: month})
            findings = [f.model_dump() for f in tx.findings(contract, month, measure)]
            ladder = [e.model_dump() for e in tx.escalations([contract])
                      if e.measure_id == measure]
        rows = records(history[(history["measure"] == measure) & (history["period"] == month)])
        if not rows:
            raise ComplianceError(Problem(f"nothing to explain: {contract} has no assessment "
                                          f"for {month}", column="--period"))
        pack = load_pack(schedule.contract.rules)
        doc = explain_view(schedule, measure, month, rows[0], pack,
                           effective_settings(pack, schedule), findings, ladder)
    if format is Format.json:
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    if format is Format.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["rule", "fired", "description", "conditions"])
        for r in doc["rules"]:
            writer.writerow([r["rule"], "yes" if r["fired"] else "no", r["description"],
                             "; ".join(c["condition"] for c in r["conditions"])])
        return
    console = _console()
    for sentence in doc["sentences"]:
        console.print(sentence, markup=False, highlight=False, soft_wrap=True)
    for record in doc["records"]:
        console.print(f"Record: {record['type'].replace('_', ' ')} ({record['severity']}) by "
                      f"rule {record['rule']}.", markup=False)
    console.print("")
    console.print("Rules of the pack:", markup=False)
    for r in doc["rules"]:
        mark = "fired" if r["fired"] else "did not fire"
        if r["note"]:
            mark += f" ({r['note']})"
        failed = [c["condition"] for c in r["conditions"] if not c["met"]]
        why = "" if r["fired"] else f": needs {'; '.join(failed)}" if failed else \
            ": the measure is not due"
        console.print(f"  {r['rule']} {mark}{why}", markup=False, highlight=False)


@rules_app.command("validate")
def rules_validate(
    files: Annotated[list[Path] | None, typer.Argument(
        help="Rule pack files. Default: every pack in rules/.")] = None,
) -> None:
    """Validate rule packs; exit 1 and say where, if any has an error."""
    from compliance.rulepack import rules_dir, validate_pack

    paths = files or sorted(rules_dir().glob("*.yaml"))
    problems: list[Problem] = []
    for path in paths:
        pack, found = validate_pack(path)
        problems.extend(found)
        if pack is not None and not any(p.severity == "error" for p in found):
            _info(f"{path}: ok: pack {pack.pack}, {_plural(len(pack.rules), 'rule')}, "
                  f"{_plural(len(pack.settings), 'setting')}")
    if any(p.severity == "error" for p in problems):
        _fail(problems, writes=False)
    _say_problems(problems)


@rules_app.command("show")
def rules_show(
    pack: Annotated[str, typer.Argument(help="Pack name or file.")] = "standard",
) -> None:
    """Print a pack's rules in words, with its settings."""
    from compliance.rulepack import describe, load_pack

    with _user_errors():
        loaded = load_pack(pack)
    typer.echo(f"{loaded.pack}: {loaded.title}")
    for name, value in loaded.settings.items():
        typer.echo(f"  {name} = {value:g}")
    for rule in loaded.rules:
        typer.echo(f"- {rule.id}: {describe(rule, loaded.settings)}")


@app.command()
def history(
    contract: ContractOption,
    measure: MeasureOption,
    format: FormatOption = Format.table,
) -> None:
    """Every version of every figure of a measure, who sent it, and which checks used it."""
    with _user_errors():
        store = _store()
        with store.transaction(state.user) as tx:
            schedule = tx.schedules([contract])[contract]
            _known_measure(schedule, measure)
            rows = tx.figure_history(contract, measure)
    for row in rows:
        row["submitted_at"] = row["submitted_at"].isoformat(timespec="seconds")
        for use in row["used_by"]:
            use["at"] = use["at"].isoformat(timespec="seconds")
    if format is Format.json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False, allow_nan=False))
        return
    if format is Format.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        fields = ["period", "version", "source", "value", "latest", "file", "row",
                  "submitted_at", "submitted_by", "comment", "used_by_checks"]
        writer.writerow(fields)
        for row in rows:
            used = " ".join(f"#{u['check']}({u['period']})" for u in row["used_by"])
            writer.writerow([_csv_cell(row[f]) for f in fields[:-1]] + [used])
        return
    from compliance import present
    from compliance.tables import Table

    unit = schedule.measure(measure).unit
    table = Table(title=f"{contract} {measure}: every figure received", title_justify="left",
                  header_style="bold")
    for name in ("Period", "Version", "Source", "Figure", "Sent", "By", "File", "Used by"):
        table.add_column(name, overflow="fold")
    for row in rows:
        used = ", ".join(f"check #{u['check']} ({u['period']}, {u['at'][:16]})"
                         for u in row["used_by"]) or "—"
        version = f"{row['version']}" + (" (latest)" if row["latest"] else "")
        table.add_row(row["period"], version, row["source"] or "—",
                      present.figure(row["value"], unit), row["submitted_at"][:16],
                      row["submitted_by"], f"{row['file']}:{row['row']}", used)
    if not rows:
        table.caption = "No figures received."
    table.write(_console())


def _known_measure(schedule: Schedule, measure: str) -> None:
    ids = [m.id for m in schedule.measures]
    if measure not in ids:
        from compliance.returns import closest

        likely = closest(measure, ids)
        hint = f" (did you mean {likely!r}?)" if likely else ""
        raise ComplianceError(Problem(f"measure {measure!r} is not in the schedule of "
                                      f"{schedule.id}{hint}", column="--measure"))


@app.command()
def audit(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many entries.")] = 50,
    format: FormatOption = Format.table,
) -> None:
    """The audit trail: every command that changed the store, by whom, when, with counts."""
    with _user_errors():
        store = _store()
        with store.transaction(state.user) as tx:
            entries = [e.model_dump() for e in tx.audit_entries(limit)]
    for entry in entries:
        entry["at"] = entry["at"].isoformat(timespec="seconds")
        entry["arguments"] = json.loads(entry["arguments"])
        entry["counts"] = json.loads(entry["counts"])
    if format is Format.json:
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    if format is Format.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["id", "at", "actor", "command", "arguments", "counts"])
        for e in entries:
            writer.writerow([e["id"], e["at"], _csv_cell(e["actor"]), e["command"],
                             _csv_cell(json.dumps(e["arguments"])),
                             _csv_cell(json.dumps(e["counts"]))])
        return
    from compliance.tables import Table

    table = Table(title="Audit trail (latest first)", title_justify="left", header_style="bold")
    for name in ("#", "When (UTC)", "Who", "Command", "Arguments", "Written"):
        table.add_column(name, overflow="fold")
    for e in entries:
        args = "; ".join(f"{k}={v}" for k, v in e["arguments"].items())
        counts = ", ".join(f"{k} {v}" for k, v in e["counts"].items())
        table.add_row(str(e["id"]), e["at"][:19], e["actor"], e["command"], args, counts)
    table.write(_console())


def _report_data(tx: Transaction, contract: str, month: str) -> dict[str, Any]:
    """What the committee report and the scorecard export are made of, for one month."""
    from compliance.checking import escalation_as_at, history_with_features

    schedule = tx.schedules([contract])[contract]
    through = tx.checked_through(contract)
    if through is None or tx.checked_from(contract) is None or not tx.assessments(
            contract, month).shape[0]:
        raise ComplianceError(Problem(
            f"{contract} has not been checked for {month}: run compliance check --contract "
            f"{contract} --period {month} first", column="--period"))
    history = history_with_features(tx, {contract: schedule}, {contract: month})
    from compliance.views import notes_of

    forums = schedule.contract.forums
    notes = tx.notes([contract])
    ladder = []
    for e in tx.escalations([contract]):
        state = escalation_as_at(e.model_dump(), month, forums)
        if state:
            ladder.append({**state, **notes_of(notes.get((contract, e.measure_id, e.opened),
                                                          []))})
    findings = [f.model_dump() for f in tx.findings(contract)]
    return {"schedule": schedule, "history": history, "escalations": ladder,
            "findings": findings}


@app.command()
def report(
    contract: ContractOption,
    period: MonthOption,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="The HTML file to write. Default: CONTRACT-PERIOD.html")] = None,
    months: Annotated[int, typer.Option("--months", min=2, max=60,
                                        help="Months of history in each chart.")] = 12,
) -> None:
    """Write the committee report: one self-contained HTML file."""
    from compliance.report import render_report

    with _user_errors():
        month = _periods(period, None, None)[0]
        store = _store()
        with store.transaction(state.user) as tx:
            data = _report_data(tx, contract, month)
        html = render_report(data["schedule"], data["history"], data["escalations"],
                             data["findings"], month, months=months)
        path = out or Path(f"{contract}-{month}.html")
        with _atomic(path) as handle:
            handle.write(html)
        _info(f"report written to {path}")


class ExportFormat(str, Enum):
    xlsx = "xlsx"


@app.command()
def export(
    contract: ContractOption,
    period: MonthOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write.")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="File format.")]
    = ExportFormat.xlsx,
) -> None:
    """Export the month's scorecard as a spreadsheet commissioners can filter."""
    from compliance.escalation import records
    from compliance.report.xlsx import export_scorecard

    with _user_errors():
        month = _periods(period, None, None)[0]
        store = _store()
        with store.transaction(state.user) as tx:
            data = _report_data(tx, contract, month)
        history = data["history"]
        rows = records(history[history["period"] == month])
        if not out.resolve().parent.is_dir():
            raise ComplianceError(Problem(f"no such folder: {out.resolve().parent}",
                                          file=str(out)))
        export_scorecard(data["schedule"], rows, month, out)
        _info(f"scorecard written to {out}")


@app.command()
def demo(
    keep: Annotated[Path | None, typer.Option(
        "--keep", help="Keep the demo store at this path instead of a temporary file.")] = None,
    report: Annotated[Path, typer.Option(
        "--report", help="Where to write the committee report of the Sunderland contract.")]
    = Path("compliance-demo-report.html"),
) -> None:
    """Run the bundled seed contracts end to end on a temporary SQLite store."""
    import tempfile

    from compliance.store import Store

    root = _project_root()
    # Sunderland: June to August 2018 (returns designed to show the escalation ladder) and
    # the published September 2018 figures; Darlington: its quarter 2 2017/18 figures.
    runs = [("contracts/sunderland-tfc.yaml",
             [f"examples/sunderland-tfc-2018-{m:02d}.csv" for m in (6, 7, 8, 9)], "2018-09"),
            ("contracts/darlington-childrens.yaml", ["examples/darlington-2017-q2.csv"],
             "2017-09")]
    from compliance.report import render_report

    with _user_errors(), tempfile.TemporaryDirectory(prefix="compliance-demo-") as tmp:
        path = keep or Path(tmp) / "demo.db"
        store = Store(f"sqlite:///{path}")
        store.init()
        for schedule_file, return_files, period in runs:
            with store.transaction(state.user) as tx:
                result = _check(tx, [str(root / schedule_file)], [period],
                                [root / f for f in return_files])
            _print_check(result, Format.table)
        with store.transaction(state.user) as tx:
            data = _report_data(tx, "sunderland-tfc", "2018-09")
        html = render_report(data["schedule"], data["history"], data["escalations"],
                             data["findings"], "2018-09")
        with _atomic(report) as handle:
            handle.write(html)
        store.dispose()
        _info(f"committee report for Sunderland, September 2018: {report.resolve()}")
        _info(f"demo store: {path}" + ("" if keep else " (removed on exit; --keep PATH keeps it)"))


def _project_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here, Path.cwd()):
        if (candidate / "contracts" / "sunderland-tfc.yaml").exists():
            return candidate
    raise ComplianceError("cannot find the bundled contracts/ and examples/ folders; run the "
                          "demo from the project folder")


def main() -> None:
    """Console entry point.

    Once the command is done (its output flushed, its files closed, the exit handlers run),
    the process ends at once: the interpreter's own teardown, freeing every object of the
    hundreds of modules pandas and SQLAlchemy bring, takes about as long as a monthly check
    of one contract.
    """
    import atexit

    code: int = 0
    try:
        app()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            sys.stderr.write(f"{exc.code}\n")
            code = 1
        else:
            code = exc.code or 0
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    main()
