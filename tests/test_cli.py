"""The command line as a user meets it: exit codes, formats, store behaviour."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from compliance.cli import app
from tests.conftest import (
    DARLINGTON,
    DARLINGTON_RETURN,
    ROOT,
    SUNDERLAND,
    SUNDERLAND_RETURN,
    Result,
    StoreRef,
    connect,
    dump_store,
)


def test_help_does_not_import_heavy_libraries() -> None:
    code = ("import sys\nfrom compliance.cli import app\ntry:\n    app(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "heavy = ('pandas', 'sqlalchemy', 'sqlmodel', 'durable', 'numpy')\n"
            "print('loaded:' + ','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert "Usage" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "loaded:"


def test_usage_error_exits_2(cli: Callable[..., Result]) -> None:
    assert cli("check", "--contract", "x").exit_code == 2  # no period
    assert cli("check", "--period", "2018-09", "--format", "yaml").exit_code == 2
    assert cli("no-such-command").exit_code == 2


def test_bad_period_is_a_located_error(cli: Callable[..., Result]) -> None:
    result = cli("check", "--contract", SUNDERLAND, "--period", "2018-13")
    assert result.exit_code == 1
    assert "month 13 is outside 1-12" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_contract(cli: Callable[..., Result]) -> None:
    cli("contract", "load", SUNDERLAND)
    result = cli("check", "--contract", "sunderland", "--period", "2018-09")
    assert result.exit_code == 1
    assert "unknown contract 'sunderland'; the store holds: sunderland-tfc" in result.stderr


def test_empty_store(cli: Callable[..., Result]) -> None:
    result = cli("check", "--period", "2018-09")
    assert result.exit_code == 1
    assert "holds no contracts" in result.stderr


def test_table_scorecard(cli: Callable[..., Result]) -> None:
    result = cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
                 "--period", "2018-09")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "September 2018" in out and "2018/19" in out
    assert "✗ Breach" in out and "✓ Met" in out and "~ Within tolerance" in out
    assert "? Not reported" in out and "○ Monitor only" in out
    assert "85.8% (Aug 2018)" in out
    assert "165 of 330" in out


def test_csv_format(cli: Callable[..., Result]) -> None:
    result = cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
                 "--period", "2018-09", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 20
    by_measure = {r["measure"]: r for r in rows}
    assert by_measure["SM1.1"]["status"] == "breach"
    assert by_measure["SM1.1"]["tolerance"] == "22.1-28.9"
    assert by_measure["SM6.1"]["reason"].startswith("Unable to report")


def test_recheck_changes_nothing(cli: Callable[..., Result], db_path: StoreRef) -> None:
    first = cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
                "--period", "2018-09", "--format", "json")
    second = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                 "--format", "json")
    assert first.json() == second.json()
    with connect(db_path) as conn:
        assert conn.execute("select count(*) from assessment").fetchone() == (20,)
        assert conn.execute("select count(*) from schedule_version").fetchone() == (1,)
        assert conn.execute("select count(*) from check_run").fetchone() == (2,)


def test_check_every_contract_and_a_range(cli: Callable[..., Result], db_path: StoreRef) -> None:
    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    assert cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
    assert cli("submit", "--contract", "darlington-childrens",
               DARLINGTON_RETURN).exit_code == 0
    result = cli("check", "--from", "2017-07", "--to", "2017-09", "--format", "json")
    assert result.exit_code == 0, result.stderr
    docs = result.json()
    assert [(d["contract"], d["period"]) for d in docs] == [
        ("darlington-childrens", p) for p in ("2017-07", "2017-08", "2017-09")] + [
        ("sunderland-tfc", p) for p in ("2017-07", "2017-08", "2017-09")]
    with connect(db_path) as conn:
        assert conn.execute("select count(*) from assessment").fetchone() == (3 * 11 + 3 * 20,)


def test_documents_of_many_contracts_and_months_come_in_order_as_asked_for(
        cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    """A check of many contracts and months gives one document per contract and month, in
    that order, each made from its set of assessments only when it is asked for."""
    from compliance import checking, views

    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    assert cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
    assert cli("submit", "--contract", "darlington-childrens",
               DARLINGTON_RETURN).exit_code == 0
    made: list[tuple[str, str]] = []
    shown = checking.CheckResult.shown_assessments

    def counted(result: checking.CheckResult) -> Any:
        for cid, period, rows in shown(result):
            made.append((cid, period))
            yield cid, period, rows

    monkeypatch.setattr(checking.CheckResult, "shown_assessments", counted)
    seen: list[int] = []
    real = views._document

    def document(*args: Any) -> Any:
        seen.append(len(made))  # how many had been made when this one was
        return real(*args)

    monkeypatch.setattr(views, "_document", document)
    whole = cli("check", "--from", "2017-07", "--to", "2018-09", "--format", "json").json()
    assert len(whole) == 2 * 15 and any(d["escalations"] for d in whole)
    assert any(d["breaches"] for d in whole) and any(d["data_quality"] for d in whole)
    keys = [(d["contract"], d["period"]) for d in whole]
    assert keys == sorted(keys) == made
    assert seen == list(range(1, 31))
    assert all(len(d["assessments"]) > 5 for d in whole)


def test_json_documents_written_one_at_a_time_read_as_one_dump(
        cli: Callable[..., Result]) -> None:
    """Several documents are written one after the other; the text is exactly the indented
    dump of the whole list (and one document is still a single object)."""
    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    assert cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
    assert cli("submit", "--contract", "darlington-childrens",
               DARLINGTON_RETURN).exit_code == 0
    for args, count in ((("--from", "2017-07", "--to", "2018-09"), 30),
                        (("--from", "2018-08", "--to", "2018-09"), 4),
                        (("--contract", "sunderland-tfc", "--period", "2018-09"), None)):
        result = cli("check", *args, "--format", "json")
        assert result.exit_code == 0, result.stderr
        doc = result.json()
        assert (len(doc) if count else isinstance(doc, dict)) == (count or True)
        assert result.stdout == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def test_schedule_reload_makes_a_new_version(cli: Callable[..., Result], tmp_path: Path,
                                             db_path: StoreRef) -> None:
    assert cli("contract", "load", SUNDERLAND).exit_code == 0
    assert "unchanged" in cli("contract", "load", SUNDERLAND).stderr
    changed = tmp_path / "changed.yaml"
    changed.write_text(SUNDERLAND.read_text().replace(
        "target: 22\n    tolerance: [22.1, 28.9]", "target: 30\n    tolerance: [30.1, 35]"))
    result = cli("contract", "load", changed)
    assert "schedule version 2" in result.stderr
    cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN)
    doc = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
              "--format", "json").json()
    sm11 = next(a for a in doc["assessments"] if a["measure"] == "SM1.1")
    assert sm11["target"] == 30 and sm11["status"] == "met"


def test_tables_show_the_users_text_as_written(cli: Callable[..., Result], tmp_path: Path,
                                              db_path: StoreRef) -> None:
    """Square brackets and colons in a schedule's text are text, not rich's markup or emoji
    codes: nothing of a title goes missing from a table."""
    changed = tmp_path / "sunderland-tfc.yaml"
    changed.write_text(SUNDERLAND.read_text(encoding="utf-8").replace(
        "title: Together for Children children's services contract",
        'title: "Together for Children [tfc] :smile: contract"').replace(
        'title: "% of referrals with a decision within 24 hours"',
        'title: "% of referrals decided [in a day] :thumbs_up:"'), encoding="utf-8")
    assert cli("contract", "load", changed).exit_code == 0
    assert cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
    result = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09")
    assert result.exit_code == 0, result.stderr
    table = result.stdout
    assert "Together for Children [tfc] :smile: contract" in table
    assert "[in a day]" in " ".join(table.split()) and ":thumbs_up:" in table
    assert "\N{SMILING FACE WITH SMILING EYES}" not in table and "\N{THUMBS UP SIGN}" not in table


def test_every_write_is_audited(cli: Callable[..., Result], db_path: StoreRef) -> None:
    cli("contract", "load", SUNDERLAND)
    cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN)
    cli("check", "--contract", "sunderland-tfc", "--period", "2018-09", "--format", "json")
    with connect(db_path) as conn:
        rows = conn.execute("select command, actor, counts from audit order by id").fetchall()
    assert [r[0] for r in rows] == ["contract load", "submit", "check"]
    assert {r[1] for r in rows} == {"tester"}
    assert json.loads(rows[1][2])["figures"] == 21


def test_failed_check_leaves_store_unchanged(cli: Callable[..., Result], db_path: StoreRef,
                                             tmp_path: Path) -> None:
    cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN, "--period",
        "2018-09", "--format", "json")
    before = dump_store(db_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("measure,period,value\nKPI1,2018-10,abc\n")
    result = cli("check", "--contract", SUNDERLAND, "--returns", bad, "--period", "2018-10")
    assert result.exit_code == 1
    assert f"{bad}, row 2, column 'value', measure KPI1: error: 'abc' is not a number" \
        in result.stderr
    assert dump_store(db_path) == before


def test_compliance_db_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "env.db"
    runner = CliRunner()
    result = runner.invoke(app, ["contract", "load", str(SUNDERLAND)],
                           env={"COMPLIANCE_DB": f"sqlite:///{path}"})
    assert result.exit_code == 0, result.stderr
    with connect(path) as conn:
        assert conn.execute("select id from contract").fetchall() == [("sunderland-tfc",)]


def test_init_creates_store(cli: Callable[..., Result], db_path: StoreRef) -> None:
    result = cli("init")
    assert result.exit_code == 0
    assert "store ready" in result.stderr
    tables = set(dump_store(db_path))
    assert {"contract", "schedule_version", "measure", "submission", "figure",
            "assessment_set", "check_run", "audit"} <= tables


def test_bad_store_url(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--db", "nosuchdb://x", "init"])
    assert result.exit_code == 1
    assert "cannot use the store" in result.stderr


def test_demo_runs_both_seeds(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "compliance.cli", "demo"], capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Together for Children" in out.stdout
    assert "Darlington" in out.stdout
    assert "Breach: 8" in out.stdout


@pytest.mark.parametrize("command", ["init", "contract validate", "contract load",
                                     "contract list", "submit", "check", "demo", "escalations",
                                     "explain", "rules validate", "rules show", "history",
                                     "audit", "report", "export", "silence", "ack", "note",
                                     "overdue"])
def test_every_command_is_documented(command: str) -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert f"## compliance {command}" in text


# --- the schema revision without Alembic ------------------------------------------------------


def test_head_revision_is_alembics_head() -> None:
    """The head read from the revision files is the head Alembic finds: a new migration
    cannot leave the store checking against an older schema."""
    from alembic.script import ScriptDirectory

    from compliance.store import MIGRATIONS, Store

    assert Store.head() == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_revision_is_the_one_alembic_records(cli: Callable[..., Result], db_url: str) -> None:
    from alembic.runtime.migration import MigrationContext

    from compliance.store import Store

    store = Store(db_url)
    try:
        assert store.revision() is None
        assert cli("init").exit_code == 0
        with store.engine.connect() as conn:
            recorded = MigrationContext.configure(conn).get_current_revision()
        assert store.revision() == recorded == Store.head()
    finally:
        store.dispose()


def test_a_database_of_other_tables_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table things (id integer primary key)")
    conn.close()
    result = CliRunner().invoke(app, ["--db", f"sqlite:///{path}", "check", "--period",
                                      "2018-09"])
    assert result.exit_code == 1
    assert "holds tables that are not a compliance store" in result.stderr


def test_check_does_not_import_what_it_does_not_use(cli: Callable[..., Result],
                                                    db_url: str) -> None:
    """A check of a current store neither migrates nor draws: Alembic (and the Mako and
    Pygments it brings), the report's and workbook's libraries and rich stay unloaded."""
    assert cli("contract", "load", SUNDERLAND).exit_code == 0
    assert cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
    code = ("import sys\nfrom compliance.cli import app\ntry:\n"
            f"    app(['--db', {db_url!r}, '-q', 'check', '--contract', 'sunderland-tfc', "
            "'--period', '2018-09', '--format', 'json'])\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "unused = ('alembic', 'mako', 'pygments', 'jinja2', 'matplotlib', 'openpyxl', "
            "'rich')\n"
            "print('loaded:' + ','.join(m for m in unused if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert json.loads(out.stdout[:out.stdout.rindex("loaded:")])["contract"] == \
        "sunderland-tfc"
    assert out.stdout.strip().splitlines()[-1] == "loaded:"


# --- progress -------------------------------------------------------------------------------

STAGES = ("reading", "storing the figures", "assessing and running the rules",
          "storing the assessments", "writing the records")


def _off_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CI"):
        monkeypatch.delenv(name, raising=False)


def _on_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr taken for an interactive terminal (rich reads FORCE_COLOR)."""
    _off_terminal(monkeypatch)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")


def _load_and_submit(cli: Callable[..., Result]) -> Result:
    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    result = cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN)
    assert result.exit_code == 0, result.stderr
    return result


def test_no_progress_bar_when_stderr_is_not_a_terminal(cli: Callable[..., Result],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _off_terminal(monkeypatch)
    submitted = _load_and_submit(cli)
    checked = cli("check", "--from", "2018-07", "--to", "2018-09", "--format", "json")
    assert checked.exit_code == 0, checked.stderr
    assert submitted.stderr == "21 figures from 1 file stored\n"
    assert checked.stderr == ""
    assert len(checked.json()) == 6


def test_progress_bar_on_a_terminal(cli: Callable[..., Result],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _on_terminal(monkeypatch)
    submitted = _load_and_submit(cli)
    assert "reading sunderland-tfc-2018-09.csv" in submitted.stderr
    assert "storing the figures" in submitted.stderr
    assert "21 figures from 1 file stored" in submitted.stderr

    checked = cli("check", "--contract", "sunderland-tfc", "--from", "2018-08", "--to",
                  "2018-09", "--format", "json")
    assert checked.exit_code == 0, checked.stderr
    for stage in ("assessing", "storing the assessments", "running the rules",
                  "writing the records"):
        assert stage in checked.stderr
    # The bar is drawn on stderr only: the results stay clean.
    assert [d["period"] for d in checked.json()] == ["2018-08", "2018-09"]

    # One contract's one month is quick: no bar; nor with --quiet.
    single = cli("check", "--contract", "sunderland-tfc", "--period", "2018-09",
                 "--format", "json")
    quiet = cli("-q", "check", "--from", "2018-08", "--to", "2018-09", "--format", "json")
    for result in (single, quiet):
        assert result.exit_code == 0, result.stderr
        assert not any(stage in result.stderr for stage in STAGES)


def test_progress_bar_is_not_drawn_under_ci(cli: Callable[..., Result],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _on_terminal(monkeypatch)
    monkeypatch.setenv("CI", "true")
    submitted = _load_and_submit(cli)
    checked = cli("check", "--from", "2018-08", "--to", "2018-09", "--format", "json")
    assert checked.exit_code == 0, checked.stderr
    for result in (submitted, checked):
        assert not any(stage in result.stderr for stage in STAGES)


def test_a_check_reports_its_stages_in_order(cli: Callable[..., Result], db_url: str) -> None:
    from compliance.checking import run_check
    from compliance.store import Store

    _load_and_submit(cli)
    calls: list[tuple[str, int, int]] = []
    store = Store(db_url)
    try:
        with store.transaction("tester") as tx:
            run_check(tx, tx.schedules(), ["2018-07", "2018-08", "2018-09"],
                      progress=lambda stage, done, total: calls.append((stage, done, total)))
    finally:
        store.dispose()
    done = [d for _, d, _ in calls]
    totals = {t for _, _, t in calls}
    assert done[0] == 0 and done == sorted(done) and len(set(done)) > 2
    assert len(totals) == 1 and done[-1] == totals.pop()
    stages = [s for s, _, _ in calls]
    assert stages[0] == "assessing and running the rules"
    assert stages.index("storing the assessments") < stages.index("writing the records")


def test_reading_returns_reports_each_file(tmp_path: Path) -> None:
    from compliance.returns import parse_returns
    from compliance.schedule import load_schedule

    schedule = load_schedule(SUNDERLAND)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("measure,period,value\nKPI1,2018-08,99\n")
    second.write_text("measure,period,value\nKPI1,2018-09,98\n")
    calls: list[tuple[str, int, int]] = []
    figures = parse_returns([first, second], {schedule.id: schedule}, schedule.id,
                            progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert len(figures) == 2
    assert calls == [("reading a.csv", 0, 2), ("reading b.csv", 1, 2), ("returns read", 2, 2)]


def test_console_entry_point_exits_with_the_command_code_and_all_its_output(
        tmp_path: Path) -> None:
    """The entry point ends the process itself: codes and output are those of the command."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "compliance.cli", *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              env={**os.environ, "COLUMNS": "200"})

    url = f"sqlite:///{tmp_path / 'c.db'}"
    made = run("--db", url, "init")
    assert made.returncode == 0, made.stderr
    assert "store ready" in made.stderr
    assert run("--db", url, "check", "--contract", "x").returncode == 2
    wrong = run("--db", "nosuchdb://x", "init")
    assert wrong.returncode == 1
    assert "cannot use the store" in wrong.stderr
    shown = run("rules", "show", "standard")
    assert shown.returncode == 0, shown.stderr
    expected = CliRunner().invoke(app, ["rules", "show", "standard"],
                                  env={"COLUMNS": "200"})
    assert shown.stdout == expected.stdout
    assert "kpi-breach" in shown.stdout


def test_escalation_table_names_the_contract_of_each_measure(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    """With escalations of more than one contract, each contract's are a table of their own,
    named by it: the same measure id in two contracts is never left ambiguous."""
    assert cli("contract", "load", SUNDERLAND, DARLINGTON).exit_code == 0
    empty = cli("escalations")
    assert empty.exit_code == 0 and "No escalations." in empty.stdout
    assert "Escalations:" not in empty.stdout
    assert cli("submit", "--contract", "sunderland-tfc", SUNDERLAND_RETURN).exit_code == 0
    assert cli("submit", "--contract", "darlington-childrens",
               DARLINGTON_RETURN).exit_code == 0
    assert cli("check", "--from", "2017-07", "--to", "2018-09").exit_code == 0
    rows = cli("escalations", "--format", "json").json()
    contracts = {r["contract"] for r in rows}
    assert contracts == {"darlington-childrens", "sunderland-tfc"}

    for out in (None, tmp_path / "escalations.txt"):
        result = cli("escalations", *(["--out", str(out)] if out else []))
        assert result.exit_code == 0, result.stderr
        text = out.read_text() if out else result.stdout
        # Each contract's table, in order, holds exactly that contract's measures.
        parts = text.split("Escalations: ")
        assert parts[0].strip() == "" and len(parts) == 3
        for part, cid in zip(parts[1:], sorted(contracts), strict=True):
            assert part.startswith(cid)
            mine = [r["measure"] for r in rows if r["contract"] == cid]
            shown = [line.split("│")[3].split()[0] for line in part.splitlines()
                     if line.startswith("│") and line.split("│")[3].strip()
                     and line.split("│")[2].strip()]
            assert shown == mine, cid

    # One contract: one table, as before.
    alone = cli("escalations", "--contract", "sunderland-tfc")
    assert alone.stdout.lstrip().splitlines()[0].strip() == "Escalations"
    assert "Escalations:" not in alone.stdout


def test_json_written_by_orjson_is_the_text_json_dumps_writes() -> None:
    """The commands' JSON is written by orjson where it gives the very text of
    ``json.dumps(..., indent=2, ensure_ascii=False)``, and by json where it would not."""
    import json as std_json
    import random

    from compliance.cli import _json_text

    random.seed(7)
    numbers = [random.uniform(-1, 1) * 10.0 ** random.randint(-12, 20) for _ in range(3000)]
    numbers += [0.0, -0.0, 1e-4, 9.94e-05, 1e-05, 5e-324, 1e16, 1e22, 77.4, 100.0]
    samples: list[object] = [
        {"measure": "KPI1", "value": v, "target": [v, 2.5], "sources": 2, "ok": True,
         "none": None, "empty": [], "nested": {}, "text": "£12,000 — ✓ \"q\" \\ \x1f é\u2028"}
        for v in numbers]
    samples += [[], {}, [[], [{}]], "text", 3, None, {"1": {"2": [1, 2.0]}}]
    for value in samples:
        assert _json_text(value) == std_json.dumps(value, indent=2, ensure_ascii=False)
    # Keys that are not text, and numbers too large for orjson, are json's to write.
    assert _json_text({1: [2 ** 70]}) == std_json.dumps({1: [2 ** 70]}, indent=2)
